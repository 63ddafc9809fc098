#pragma once
// The two ways IoUMetric's results leave the program:
//  - iou_table(): the text mmseg logs, a per-class table (Class, IoU, Acc) and a summary
//    table (aAcc, mIoU, mAcc), values x100 with 2 decimals, "nan" where undefined;
//  - iou_json(): the same numbers for tools, plus the unrounded fractions, the histograms
//    and the confusion matrix. NaN is written as null (JSON has no NaN).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gcnet/seg/iou_metric.hpp"

namespace gcnet::seg {

namespace detail {
inline std::string percent_cell(double v) {
  if (std::isnan(v)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// A PrettyTable-style grid, numbers right-aligned; `names_first` left-aligns the first column.
inline std::string text_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                              bool names_first) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  std::string rule = "+";
  for (std::size_t w : width) rule += std::string(w + 2, '-') + "+";
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(width[c] - cells[c].size(), ' ');
      const bool left = c == 0 && names_first;
      s.append(" ").append(left ? cells[c] : pad).append(left ? pad : cells[c]).append(" |");
    }
    return s + "\n";
  };
  std::string out = rule + "\n" + line(header) + rule + "\n";
  for (const auto& r : rows) out += line(r);
  return out + rule + "\n";
}

inline nlohmann::json number_or_null(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

inline nlohmann::json numbers_or_null(const std::vector<double>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (double x : v) a.push_back(number_or_null(x));
  return a;
}
}  // namespace detail

inline std::string iou_table(const IoUResults& r) {
  std::vector<std::vector<std::string>> rows;
  for (std::size_t c = 0; c < r.classes.size(); ++c)
    rows.push_back({r.classes[c], detail::percent_cell(r.reported.iou[c]), detail::percent_cell(r.reported.acc[c])});
  return "per class results:\n" + detail::text_table({"Class", "IoU", "Acc"}, rows, true) + "Summary:\n" +
         detail::text_table({"aAcc", "mIoU", "mAcc"},
                            {{detail::percent_cell(r.reported.all_acc), detail::percent_cell(r.reported.mean_iou),
                              detail::percent_cell(r.reported.mean_acc)}},
                            false);
}

inline nlohmann::json iou_json(const IoUMetric& metric) {
  using detail::number_or_null;
  const IoUResults r = metric.compute();
  nlohmann::json j;
  j["aAcc"] = number_or_null(r.reported.all_acc);
  j["mIoU"] = number_or_null(r.reported.mean_iou);
  j["mAcc"] = number_or_null(r.reported.mean_acc);
  j["per_class"] = nlohmann::json::array();
  for (std::size_t c = 0; c < r.classes.size(); ++c)
    j["per_class"].push_back({{"class", r.classes[c]},
                              {"IoU", number_or_null(r.reported.iou[c])},
                              {"Acc", number_or_null(r.reported.acc[c])}});
  j["unrounded"] = {{"aAcc", number_or_null(r.raw.all_acc)},
                    {"mIoU", number_or_null(r.raw.mean_iou)},
                    {"mAcc", number_or_null(r.raw.mean_acc)},
                    {"IoU", detail::numbers_or_null(r.raw.iou)},
                    {"Acc", detail::numbers_or_null(r.raw.acc)}};
  j["num_classes"] = metric.num_classes();
  j["ignore_index"] = metric.ignore_index();
  j["images"] = metric.images();
  j["area_intersect"] = metric.area_intersect();
  j["area_union"] = metric.area_union();
  j["area_pred_label"] = metric.area_pred_label();
  j["area_label"] = metric.area_label();
  nlohmann::json cm = nlohmann::json::array();  // rows: ground truth, columns: prediction
  for (index_t g = 0; g < metric.num_classes(); ++g) {
    nlohmann::json row = nlohmann::json::array();
    for (index_t p = 0; p < metric.num_classes(); ++p) row.push_back(metric.confusion(g, p));
    cm.push_back(row);
  }
  j["confusion_matrix"] = cm;
  return j;
}

}  // namespace gcnet::seg
