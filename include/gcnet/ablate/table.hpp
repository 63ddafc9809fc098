#pragma once
// The ablation table: one row per variant with its cost (params, MACs, the blocks' own work,
// latency) and its score over seeds, written as Markdown, CSV and JSON (each atomically) with
// the run's record (ablate/run_info.hpp). Scores: mean and sample standard deviation (n - 1)
// over the seeds; the difference to the baseline is paired by seed (same seeds, so the same
// data order and initialization of the shared layers): mean and standard deviation of the
// per-seed differences.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/ablate/run_info.hpp"
#include "gcnet/core/error.hpp"
#include "gcnet/io/atomic_file.hpp"

namespace gcnet::ablate {

struct AblationRow {
  std::string variant, label;
  index_t params = 0, block_params = 0;
  double macs = 0, block_macs = 0, block_other_flops = 0;  // per image
  double fwd_ms = 0, fwd_bwd_ms = 0;                       // per batch (median)
  std::vector<double> scores;                              // one per seed, in the table's seed order
};

struct AblationTable {
  std::string task;        // "classification" / "segmentation"
  std::string dataset;     // what was trained and evaluated on
  std::string metric;      // "top-1 %" / "mIoU %"
  std::string input_shape; // the cost columns' input, e.g. "[1, 1, 28, 28]"
  std::string model;       // the network, e.g. its describe()
  std::string cost_note;   // what the cost columns count
  index_t latency_batch = 0;
  int latency_warmup = 0, latency_repeats = 0;
  std::vector<std::uint64_t> seeds;
  RunInfo run;
  nlohmann::json settings = nlohmann::json::object();
  std::vector<AblationRow> rows;
};

struct ScoreSummary {
  double mean = NAN, std = NAN;
};

inline ScoreSummary summarize(const std::vector<double>& v) {
  ScoreSummary s;
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / double(v.size());
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(ss / double(v.size() - 1)) : 0.0;
  return s;
}

// The row of the baseline variant "none", if the table has one.
inline const AblationRow* baseline_row(const AblationTable& t) {
  for (const auto& r : t.rows)
    if (r.variant == "none") return &r;
  return nullptr;
}

// Per-seed differences to the baseline, summarized (empty when there is no baseline).
inline std::optional<ScoreSummary> delta_to_baseline(const AblationTable& t, const AblationRow& r) {
  const AblationRow* b = baseline_row(t);
  if (!b || b->scores.size() != r.scores.size() || r.scores.empty()) return std::nullopt;
  std::vector<double> d;
  for (std::size_t i = 0; i < r.scores.size(); ++i) d.push_back(r.scores[i] - b->scores[i]);
  return summarize(d);
}

// Every row has one score per seed and finite costs (what "complete" means for a table).
inline void check_table(const AblationTable& t) {
  GCNET_CHECK(!t.rows.empty(), "ablation table: no rows");
  for (const auto& r : t.rows) {
    GCNET_CHECK(r.scores.size() == t.seeds.size(), "ablation table: row ", r.variant, " has ", r.scores.size(),
                " scores for ", t.seeds.size(), " seeds");
    for (double v : {r.macs, r.block_macs, r.block_other_flops, r.fwd_ms, r.fwd_bwd_ms})
      GCNET_CHECK(std::isfinite(v) && v >= 0, "ablation table: row ", r.variant, " has a bad cost value ", v);
  }
}

namespace table_detail {
inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
inline std::string seeds_text(const std::vector<std::uint64_t>& s) {
  std::string r;
  for (auto v : s) r += (r.empty() ? "" : ",") + std::to_string(v);
  return r;
}
inline std::string scores_text(const std::vector<double>& v, const char* sep) {
  std::string r;
  for (double x : v) r += (r.empty() ? "" : sep) + fmt("%.2f", x);
  return r;
}
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}
}  // namespace table_detail

inline std::string to_markdown(const AblationTable& t) {
  using table_detail::fmt;
  check_table(t);
  std::string s = "## Ablation: " + t.task + " (" + t.metric + ")\n\n";
  s += "- data: " + t.dataset + "\n- model: " + t.model + "\n";
  s += "- command: `" + t.run.command + "`\n";
  s += "- date " + t.run.date + ", commit " + t.run.commit + ", " + t.run.compiler + ", build " + t.run.build_type +
       ", " + std::to_string(t.run.threads) + " threads\n";
  s += "- seeds " + table_detail::seeds_text(t.seeds) + "; scores: mean ± sample std over seeds; Δ: per-seed "
       "difference to the baseline, mean ± std\n";
  s += "- costs per image for input " + t.input_shape + ": " + t.cost_note + "\n";
  s += "- latency: batch " + std::to_string(t.latency_batch) + ", " + std::to_string(t.run.threads) +
       " threads, median of " + std::to_string(t.latency_repeats) + " after " + std::to_string(t.latency_warmup) +
       " warm-up; fwd = eval-mode forward, fwd+bwd = training-mode forward + backward\n\n";
  s += "| variant | params | block params | MACs (M) | block MACs (M) | block other (MFLOP) | fwd ms | fwd+bwd ms | " +
       t.metric + " | Δ vs baseline | per seed |\n";
  s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const auto& r : t.rows) {
    const ScoreSummary m = summarize(r.scores);
    const auto d = delta_to_baseline(t, r);
    s += "| " + r.label + " | " + std::to_string(r.params) + " | " + std::to_string(r.block_params) + " | " +
         fmt("%.3f", r.macs / 1e6) + " | " + fmt("%.3f", r.block_macs / 1e6) + " | " +
         fmt("%.3f", r.block_other_flops / 1e6) + " | " + fmt("%.1f", r.fwd_ms) + " | " + fmt("%.1f", r.fwd_bwd_ms) +
         " | " + fmt("%.2f", m.mean) + " ± " + fmt("%.2f", m.std) + " | " +
         (r.variant == "none" || !d ? std::string("—") : fmt("%+.2f", d->mean) + " ± " + fmt("%.2f", d->std)) + " | " +
         table_detail::scores_text(r.scores, ", ") + " |\n";
  }
  return s;
}

inline std::string to_csv(const AblationTable& t) {
  using table_detail::csv_field;
  using table_detail::fmt;
  check_table(t);
  std::string s = "variant,label,params,block_params,macs,block_macs,block_other_flops,fwd_ms,fwd_bwd_ms,"
                  "score_mean,score_std,delta_mean,delta_std,scores\n";
  for (const auto& r : t.rows) {
    const ScoreSummary m = summarize(r.scores);
    const auto d = delta_to_baseline(t, r);
    s += csv_field(r.variant) + "," + csv_field(r.label) + "," + std::to_string(r.params) + "," +
         std::to_string(r.block_params) + "," + fmt("%.0f", r.macs) + "," + fmt("%.0f", r.block_macs) + "," +
         fmt("%.0f", r.block_other_flops) + "," + fmt("%.4f", r.fwd_ms) + "," + fmt("%.4f", r.fwd_bwd_ms) + "," +
         fmt("%.4f", m.mean) + "," + fmt("%.4f", m.std) + "," + (d ? fmt("%.4f", d->mean) : "") + "," +
         (d ? fmt("%.4f", d->std) : "") + "," + table_detail::scores_text(r.scores, ";") + "\n";
  }
  return s;
}

inline nlohmann::json to_json(const AblationTable& t) {
  check_table(t);
  nlohmann::json j;
  j["task"] = t.task;
  j["dataset"] = t.dataset;
  j["metric"] = t.metric;
  j["model"] = t.model;
  j["input_shape"] = t.input_shape;
  j["cost_note"] = t.cost_note;
  j["latency"] = {{"batch", t.latency_batch}, {"warmup", t.latency_warmup}, {"repeats", t.latency_repeats},
                  {"statistic", "median"}};
  j["seeds"] = t.seeds;
  j["run"] = {{"command", t.run.command},       {"date", t.run.date},       {"compiler", t.run.compiler},
              {"build_type", t.run.build_type}, {"commit", t.run.commit},   {"threads", t.run.threads}};
  j["settings"] = t.settings;
  j["rows"] = nlohmann::json::array();
  for (const auto& r : t.rows) {
    const ScoreSummary m = summarize(r.scores);
    const auto d = delta_to_baseline(t, r);
    j["rows"].push_back({{"variant", r.variant},
                         {"label", r.label},
                         {"params", r.params},
                         {"block_params", r.block_params},
                         {"macs", r.macs},
                         {"block_macs", r.block_macs},
                         {"block_other_flops", r.block_other_flops},
                         {"fwd_ms", r.fwd_ms},
                         {"fwd_bwd_ms", r.fwd_bwd_ms},
                         {"scores", r.scores},
                         {"mean", m.mean},
                         {"std", m.std},
                         {"delta_mean", d ? nlohmann::json(d->mean) : nlohmann::json(nullptr)},
                         {"delta_std", d ? nlohmann::json(d->std) : nlohmann::json(nullptr)}});
  }
  return j;
}

struct TablePaths {
  std::string markdown, csv, json;
};

// Writes <dir>/<stem>.md, .csv and .json, each atomically (the folder is created).
inline TablePaths write_table(const AblationTable& t, const std::string& dir, const std::string& stem = "ablation") {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const TablePaths p{(fs::path(dir) / (stem + ".md")).string(), (fs::path(dir) / (stem + ".csv")).string(),
                     (fs::path(dir) / (stem + ".json")).string()};
  auto put = [](const std::string& path, const std::string& text) {
    io::write_file_atomically(path, [&](io::FileSink& f) { f.write(text.data(), text.size()); });
  };
  put(p.markdown, to_markdown(t));
  put(p.csv, to_csv(t));
  put(p.json, to_json(t).dump(2) + "\n");
  return p;
}

}  // namespace gcnet::ablate
