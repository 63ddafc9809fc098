#pragma once
// Turns a training log (<timestamp>.log.json, see json_log.hpp) into an SVG with two
// panels: the losses (every key containing "loss", e.g. "loss_cls" or mmseg's "decode.loss_ce") and the
// learning rate, against the global iteration. Used by tools/plot_log and the examples.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/core/error.hpp"

namespace gcnet {

struct TrainLog {
  std::vector<double> iter;                           // global iteration of each record
  std::vector<double> lr;
  std::vector<std::string> loss_names;                // in first-seen order
  std::map<std::string, std::vector<double>> losses;  // NaN where a record lacks the key
};

// Reads the "train" records of a log.json; errors name the file (and the line).
inline TrainLog read_train_log(const std::string& path) {
  std::ifstream in(path);
  GCNET_CHECK(in.good(), path, ": cannot open the training log");
  TrainLog log;
  bool by_epoch = false;
  double iters_per_epoch = 0;
  std::string text;
  for (int line_no = 1; std::getline(in, text); ++line_no) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const std::exception&) {
      detail::fail(path, ": line ", line_no, " is not valid JSON (expected one JSON object per line)");
    }
    GCNET_CHECK(j.is_object(), path, ": line ", line_no, " is not a JSON object");
    if (j.contains("env_info")) {  // the meta record
      by_epoch = j.value("by_epoch", false);
      iters_per_epoch = j.value("iters_per_epoch", 0.0);
      continue;
    }
    if (j.value("mode", "") != "train") continue;
    for (const char* key : {"iter", "lr"})
      GCNET_CHECK(j.contains(key) && j[key].is_number(), path, ": line ", line_no, " (a train record) has no number '",
                  key, "'");
    double x = j["iter"].get<double>();
    if (by_epoch && iters_per_epoch > 0 && j.contains("epoch") && j["epoch"].is_number())
      x += (j["epoch"].get<double>() - 1) * iters_per_epoch;
    const std::size_t k = log.iter.size();
    log.iter.push_back(x);
    log.lr.push_back(j["lr"].get<double>());
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key().find("loss") == std::string::npos || !it->is_number()) continue;
      auto& series = log.losses[it.key()];
      if (series.empty() && std::find(log.loss_names.begin(), log.loss_names.end(), it.key()) == log.loss_names.end())
        log.loss_names.push_back(it.key());
      series.resize(k, NAN);
      series.push_back(it->get<double>());
    }
  }
  GCNET_CHECK(!log.iter.empty(), path, ": no training records (lines with \"mode\": \"train\") in the log");
  for (auto& [name, series] : log.losses) series.resize(log.iter.size(), NAN);
  // The total first, as the curve to look at.
  auto total = std::find(log.loss_names.begin(), log.loss_names.end(), "loss");
  if (total != log.loss_names.end()) std::rotate(log.loss_names.begin(), total, total + 1);
  return log;
}

namespace detail {

// About `target` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of 10).
inline std::vector<double> nice_ticks(double lo, double hi, int target = 5) {
  if (!(hi > lo)) hi = lo + (lo == 0 ? 1 : std::abs(lo) * 0.1);
  const double raw = (hi - lo) / target, mag = std::pow(10, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) t.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
  return t;
}

inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

inline std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return o;
}

// One panel: frame, ticks, labels, one polyline per series (NaN points are skipped).
inline void svg_panel(std::string& svg, double top, double height, const std::vector<double>& x,
                      const std::vector<std::pair<std::string, const std::vector<double>*>>& series,
                      const std::string& ylabel, const char* yfmt) {
  static const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"};
  const double left = 80, width = 560;
  double ylo = INFINITY, yhi = -INFINITY;
  for (const auto& [name, ys] : series)
    for (double v : *ys)
      if (std::isfinite(v)) ylo = std::min(ylo, v), yhi = std::max(yhi, v);
  if (!std::isfinite(ylo)) ylo = 0, yhi = 1;
  const auto yt = nice_ticks(ylo, yhi);
  ylo = std::min(ylo, yt.front());
  yhi = std::max(yhi, yt.back());
  if (!(yhi > ylo)) yhi = ylo + 1;
  const auto xt = nice_ticks(x.front(), x.back());
  const double xlo = std::min(x.front(), xt.front()), xhi = std::max({x.back(), xt.back(), xlo + 1});
  auto px = [&](double v) { return left + (v - xlo) / (xhi - xlo) * width; };
  auto py = [&](double v) { return top + height - (v - ylo) / (yhi - ylo) * height; };
  svg += "<rect x=\"" + fmt("%.1f", left) + "\" y=\"" + fmt("%.1f", top) + "\" width=\"" + fmt("%.1f", width) +
         "\" height=\"" + fmt("%.1f", height) + "\" fill=\"none\" stroke=\"black\"/>\n";
  for (double v : yt) {
    if (v < ylo - 1e-12 || v > yhi + 1e-12) continue;
    svg += "<line x1=\"" + fmt("%.1f", left - 4) + "\" x2=\"" + fmt("%.1f", left) + "\" y1=\"" + fmt("%.1f", py(v)) +
           "\" y2=\"" + fmt("%.1f", py(v)) + "\" stroke=\"black\"/><text x=\"" + fmt("%.1f", left - 6) + "\" y=\"" +
           fmt("%.1f", py(v) + 4) + "\" text-anchor=\"end\">" + fmt(yfmt, v) + "</text>\n";
  }
  for (double v : xt) {
    if (v < xlo - 1e-12 || v > xhi + 1e-12) continue;
    svg += "<line x1=\"" + fmt("%.1f", px(v)) + "\" x2=\"" + fmt("%.1f", px(v)) + "\" y1=\"" + fmt("%.1f", top + height) +
           "\" y2=\"" + fmt("%.1f", top + height + 4) + "\" stroke=\"black\"/><text x=\"" + fmt("%.1f", px(v)) +
           "\" y=\"" + fmt("%.1f", top + height + 18) + "\" text-anchor=\"middle\">" + fmt("%g", v) + "</text>\n";
  }
  svg += "<text x=\"" + fmt("%.1f", left + width / 2) + "\" y=\"" + fmt("%.1f", top + height + 36) +
         "\" text-anchor=\"middle\">iteration</text>\n";
  svg += "<text transform=\"translate(18," + fmt("%.1f", top + height / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         xml_escape(ylabel) + "</text>\n";
  for (std::size_t s = 0; s < series.size(); ++s) {
    const char* colour = colours[s % std::size(colours)];
    std::string points;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (std::isfinite((*series[s].second)[i]))
        points += fmt("%.2f", px(x[i])) + "," + fmt("%.2f", py((*series[s].second)[i])) + " ";
    svg += "<polyline fill=\"none\" stroke=\"" + std::string(colour) + "\" stroke-width=\"1.5\" points=\"" + points +
           "\"/>\n";
    const double ly = top + 14 + 18 * static_cast<double>(s);
    svg += "<line x1=\"" + fmt("%.1f", left + width + 12) + "\" x2=\"" + fmt("%.1f", left + width + 32) + "\" y1=\"" +
           fmt("%.1f", ly - 4) + "\" y2=\"" + fmt("%.1f", ly - 4) + "\" stroke=\"" + colour +
           "\" stroke-width=\"2\"/><text x=\"" + fmt("%.1f", left + width + 36) + "\" y=\"" + fmt("%.1f", ly) + "\">" +
           xml_escape(series[s].first) + "</text>\n";
  }
}

}  // namespace detail

// An SVG document: losses on top, the learning rate below.
inline std::string render_train_log_svg(const TrainLog& log, const std::string& title) {
  GCNET_CHECK(!log.iter.empty(), "render_train_log_svg: the log has no training records");
  std::string svg =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"620\" viewBox=\"0 0 800 620\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"800\" height=\"620\" fill=\"white\"/>\n";
  svg += "<text x=\"400\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">" + detail::xml_escape(title) + "</text>\n";
  std::vector<std::pair<std::string, const std::vector<double>*>> losses, lr{{"lr", &log.lr}};
  for (const auto& name : log.loss_names) losses.emplace_back(name, &log.losses.at(name));
  detail::svg_panel(svg, 40, 300, log.iter, losses, "loss", "%.3g");
  detail::svg_panel(svg, 410, 150, log.iter, lr, "learning rate", "%.2e");
  svg += "</svg>\n";
  return svg;
}

// Reads `log_path` and writes the SVG to `svg_path` (through a temporary file and a rename).
inline void plot_train_log(const std::string& log_path, const std::string& svg_path) {
  const TrainLog log = read_train_log(log_path);
  const std::string svg = render_train_log_svg(log, std::filesystem::path(log_path).filename().string());
  const std::string tmp = svg_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    GCNET_CHECK(out.good(), tmp, ": cannot open for writing");
    out << svg;
    out.flush();
    GCNET_CHECK(out.good(), tmp, ": write failed");
  }
  std::filesystem::rename(tmp, svg_path);
}

// The training programs' last step: the loss curve of `log_path` as WORK_DIR/curve.svg, and one
// line each naming the log, the last checkpoint and the curve. Returns the curve's path.
inline std::string write_curve_and_report(const std::filesystem::path& log_path,
                                          const std::filesystem::path& checkpoint, const std::string& work_dir) {
  const std::string curve = (std::filesystem::path(work_dir) / "curve.svg").string();
  plot_train_log(log_path.string(), curve);
  std::printf("log %s\ncheckpoint %s\ncurve %s\n", log_path.c_str(), checkpoint.c_str(), curve.c_str());
  return curve;
}

}  // namespace gcnet
