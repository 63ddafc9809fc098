#pragma once
// pycocotools' summarize() for bbox / segm: the 12 numbers and their printed lines, and the
// per-category AP table of mmdetection's CocoMetric(classwise=True).
//   _summarize(ap, iouThr, areaRng, maxDets): the cells of precision (or recall) at the area
//   range labelled areaRng, at maxDets, at the thresholds equal to iouThr (exact comparison) or
//   all; the mean of those > -1, or -1 if none.  stats[0] asks for maxDets=100 whatever the
//   params say (pycocotools' default argument); the others use maxDets[0], [1], [2].
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "gcnet/eval/coco_eval_accumulate.hpp"
#include "gcnet/eval/coco_eval_params.hpp"

namespace gcnet::eval {

// numpy's s[..., aind, mind] with two index lists: paired element by element, a list of one
// broadcast against the other, an empty one giving nothing.
inline std::vector<std::array<index_t, 2>> paired_indices(const std::vector<index_t>& ai, const std::vector<index_t>& mi) {
  std::vector<std::array<index_t, 2>> out;
  if (ai.empty() || mi.empty()) return out;
  GCNET_CHECK(ai.size() == mi.size() || ai.size() == 1 || mi.size() == 1,
              "COCOeval summarize: ", ai.size(), " area ranges and ", mi.size(),
              " maxDets share the label (numpy cannot broadcast them)");
  const std::size_t n = std::max(ai.size(), mi.size());
  for (std::size_t i = 0; i < n; ++i) out.push_back({ai[ai.size() == 1 ? 0 : i], mi[mi.size() == 1 ? 0 : i]});
  return out;
}

struct SummaryQuery {
  bool ap = true;
  std::optional<double> iou;
  std::string area = "all";
  index_t max_dets = 100;
};

// Returns the mean and prints the line in pycocotools' layout into `line`.
inline double summarize_one(const SummaryQuery& q, const CocoEvalParams& p, const EvalDims& dims,
                            const std::vector<double>& precision, const std::vector<double>& recall,
                            std::string* line = nullptr) {
  std::vector<index_t> ts, ai, mi;
  for (index_t t = 0; t < dims.T; ++t)
    if (!q.iou || p.iou_thresholds[t] == *q.iou) ts.push_back(t);
  for (index_t a = 0; a < dims.A; ++a)
    if (p.area_ranges[a].label == q.area) ai.push_back(a);
  for (index_t m = 0; m < dims.M; ++m)
    if (p.max_dets[m] == q.max_dets) mi.push_back(m);
  const auto am = paired_indices(ai, mi);
  double sum = 0;
  std::size_t count = 0;
  for (const index_t t : ts)
    for (const auto& [a, m] : am)
      for (index_t k = 0; k < dims.K; ++k) {
        if (q.ap) {
          for (index_t r = 0; r < dims.R; ++r) {
            const double v = precision[dims.precision_index(t, r, k, a, m)];
            if (v > -1) sum += v, ++count;
          }
        } else {
          const double v = recall[dims.recall_index(t, k, a, m)];
          if (v > -1) sum += v, ++count;
        }
      }
  const double mean = count == 0 ? -1.0 : sum / static_cast<double>(count);
  if (line) {
    char iou[64];
    if (q.iou)
      std::snprintf(iou, sizeof iou, "%0.2f", *q.iou);
    else
      std::snprintf(iou, sizeof iou, "%0.2f:%0.2f", p.iou_thresholds.front(), p.iou_thresholds.back());
    char buf[256];
    std::snprintf(buf, sizeof buf, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3lld ] = %0.3f",
                  q.ap ? "Average Precision" : "Average Recall", q.ap ? "(AP)" : "(AR)", iou, q.area.c_str(),
                  static_cast<long long>(q.max_dets), mean);
    *line = buf;
  }
  return mean;
}

// The 12 queries of _summarizeDets, in order.
inline std::array<SummaryQuery, 12> detection_queries(const CocoEvalParams& p) {
  GCNET_CHECK(p.max_dets.size() >= 3, "COCOeval summarize: needs 3 maxDets (pycocotools indexes maxDets[2]), got ",
              p.max_dets.size());
  const index_t m0 = p.max_dets[0], m1 = p.max_dets[1], m2 = p.max_dets[2];
  return {{{true, std::nullopt, "all", 100},
           {true, 0.5, "all", m2},
           {true, 0.75, "all", m2},
           {true, std::nullopt, "small", m2},
           {true, std::nullopt, "medium", m2},
           {true, std::nullopt, "large", m2},
           {false, std::nullopt, "all", m0},
           {false, std::nullopt, "all", m1},
           {false, std::nullopt, "all", m2},
           {false, std::nullopt, "small", m2},
           {false, std::nullopt, "medium", m2},
           {false, std::nullopt, "large", m2}}};
}

// mmdetection's classwise table: for each category, the mean of its precision cells > -1 at the
// last maxDets, over all thresholds and area "all" (ap), threshold 0.5 / 0.75, and area
// small / medium / large; NaN where the category has none (no non-ignored GT there).
struct CategoryAp {
  std::int64_t category_id = 0;
  double ap = 0, ap50 = 0, ap75 = 0, ap_small = 0, ap_medium = 0, ap_large = 0;
};

inline double category_mean(const EvalDims& dims, const std::vector<double>& precision, index_t k,
                            std::optional<index_t> t_only, std::optional<index_t> a) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (!a) return nan;
  double sum = 0;
  std::size_t count = 0;
  for (index_t t = 0; t < dims.T; ++t) {
    if (t_only && t != *t_only) continue;
    for (index_t r = 0; r < dims.R; ++r) {
      const double v = precision[dims.precision_index(t, r, k, *a, dims.M - 1)];
      if (v > -1) sum += v, ++count;
    }
  }
  return count == 0 ? nan : sum / static_cast<double>(count);
}

inline std::vector<CategoryAp> per_category_ap(const CocoEvalParams& p, const EvalDims& dims,
                                               const std::vector<double>& precision) {
  const auto area = [&](const char* label) -> std::optional<index_t> {
    for (index_t a = 0; a < dims.A; ++a)
      if (p.area_ranges[a].label == label) return a;
    return std::nullopt;
  };
  const auto threshold = [&](double v) -> std::optional<index_t> {
    for (index_t t = 0; t < dims.T; ++t)
      if (p.iou_thresholds[t] == v) return t;
    return index_t{-1};  // no such threshold: nothing matches, so NaN
  };
  const auto all = area("all");
  std::vector<CategoryAp> out(static_cast<std::size_t>(dims.K));
  for (index_t k = 0; k < dims.K; ++k) {
    CategoryAp& c = out[k];
    c.category_id = p.category_ids[k];
    c.ap = category_mean(dims, precision, k, std::nullopt, all);
    c.ap50 = category_mean(dims, precision, k, threshold(0.5), all);
    c.ap75 = category_mean(dims, precision, k, threshold(0.75), all);
    c.ap_small = category_mean(dims, precision, k, std::nullopt, area("small"));
    c.ap_medium = category_mean(dims, precision, k, std::nullopt, area("medium"));
    c.ap_large = category_mean(dims, precision, k, std::nullopt, area("large"));
  }
  return out;
}

}  // namespace gcnet::eval
