#pragma once
// Checkpoints: a model's parameters and buffers (and optionally an optimizer's state) in
// one safetensors file (docs/checkpoints.md).
//   - model tensors under their mmdet state-dict names, unchanged, so a PyTorch state dict
//     converted with tools/convert_checkpoint.py loads as it is;
//   - optimizer state under "optimizer.<state name>" (Sgd: "optimizer.<param>.momentum_buffer");
//   - string metadata in __metadata__: the caller's keys (the trainer writes iter, epoch,
//     seed, ...) plus "format" = "pt", "gcnet_version", and "gcnet_optimizer" = "1" when an optimizer
//     was saved.
// Every tensor and the header carry CRC-32 checksums (io/safetensors_checksums.hpp, written by
// SafetensorsWriter, verified by SafetensorsReader): a damaged checkpoint is an error on load,
// never other values; files without them (converted from PyTorch) load unchecked.
// Writes are atomic. Loading is strict by default: every missing, unexpected and mis-shaped
// tensor is listed by name in ONE Error (file name first) and nothing is loaded. Non-strict
// loading loads what matches and returns the lists in the LoadReport.
// The model is anything whose parameters and buffers can be visited: a layer, a module (a
// backbone, a detector), or any class with visit_parameters / visit_buffers.
// An optimizer is any class with state() -> vector<pair<string, Tensor*>> and
// load_state(name, host tensor); pass nullptr to save or load the model alone.
#include <algorithm>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gcnet/core/layer.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/io/safetensors_writer.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::io {

inline constexpr const char* kGcnetVersion = "0.1.0";
inline constexpr const char* kOptimizerPrefix = "optimizer.";
inline constexpr const char* kOptimizerMarker = "gcnet_optimizer";

struct LoadOptions {
  bool strict = true;  // false: load what matches and report the rest
};

struct LoadReport {
  std::string path;
  std::map<std::string, std::string> metadata;
  std::vector<std::string> missing;     // wanted by the model/optimizer, absent from the file
  std::vector<std::string> unexpected;  // in the file, not wanted
  std::vector<std::string> mis_shaped;  // in both, with different shapes (not loaded)
  std::vector<std::string> mis_shaped_detail;  // "name (checkpoint [..], model [..])", same order
  bool optimizer_loaded = false;

  // Orders each list by name (mis_shaped_detail follows mis_shaped).
  void sort() {
    std::sort(missing.begin(), missing.end());
    std::sort(unexpected.begin(), unexpected.end());
    std::vector<std::pair<std::string, std::string>> m;
    for (std::size_t i = 0; i < mis_shaped.size(); ++i) m.emplace_back(mis_shaped[i], mis_shaped_detail[i]);
    std::sort(m.begin(), m.end());
    for (std::size_t i = 0; i < m.size(); ++i) std::tie(mis_shaped[i], mis_shaped_detail[i]) = m[i];
  }

  bool complete() const { return missing.empty() && unexpected.empty() && mis_shaped.empty(); }

  // "2 missing: a, b; 1 unexpected: c; 1 mis-shaped: d (checkpoint [3], model [4])"
  std::string summary() const {
    std::ostringstream os;
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      if (os.tellp() > 0) os << "; ";
      os << v.size() << ' ' << what << ": ";
      for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("mis-shaped", mis_shaped_detail);
    return os.str();
  }

  // A metadata value as an integer, e.g. meta_int("iter"); a clear Error if absent or bad.
  long long meta_int(const std::string& key) const {
    auto it = metadata.find(key);
    GCNET_CHECK(it != metadata.end(), path, ": no metadata key '", key, "'");
    try {
      std::size_t used = 0;
      const long long v = std::stoll(it->second, &used);
      if (used == it->second.size()) return v;
    } catch (const std::exception&) {
    }
    gcnet::detail::fail(path, ": metadata '", key, "' = '", it->second, "' is not an integer");
  }
};

// Stands in for "no optimizer" so that nullptr can be passed.
struct NoOptimizer {
  std::vector<std::pair<std::string, Tensor<float, Cpu>*>> state() { return {}; }
  void load_state(const std::string&, const Tensor<float, Cpu>&) {}
};

template <HasNumerics L, class Optimizer>
void save_checkpoint(const std::string& path, L& model, Optimizer* opt,
                     const std::map<std::string, std::string>& metadata = {}) {
  SafetensorsWriter w;
  for (const auto& [k, v] : metadata) w.add_metadata(k, v);
  w.add_metadata("format", "pt");  // what the Python safetensors/transformers loaders expect
  w.add_metadata("gcnet_version", kGcnetVersion);
  auto add = [&](const std::string& name, const auto& t) {
    GCNET_CHECK(!w.contains(name), path, ": the model has two tensors named '", name,
                "' (give the layers distinct names)");
    w.add(name, t);
  };
  visit_parameters(model, "", [&](const std::string& n, auto& p) { add(n, p.value); });
  visit_buffers(model, "", [&](const std::string& n, auto& t) { add(n, t); });
  if (opt) {
    w.add_metadata(kOptimizerMarker, "1");
    for (auto& [n, t] : opt->state()) add(kOptimizerPrefix + n, *t);
  }
  w.write(path);
}

template <HasNumerics L>
void save_checkpoint(const std::string& path, L& model, std::nullptr_t,
                     const std::map<std::string, std::string>& metadata = {}) {
  save_checkpoint(path, model, static_cast<NoOptimizer*>(nullptr), metadata);
}

inline std::map<std::string, std::string> read_checkpoint_metadata(const std::string& path) {
  return SafetensorsReader(path, SafetensorsReader::HeaderOnly{}).metadata();
}

namespace detail {
inline bool readable_dtype(const std::string& d) {
  return d == "F32" || d == "F64" || d == "I64" || d == "I32" || d == "U8" || d == "BOOL";
}
inline bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}
}  // namespace detail

template <HasNumerics L, class Optimizer>
LoadReport load_checkpoint(const std::string& path, L& model, Optimizer* opt, LoadOptions options = {}) {
  using T = typename L::value_type;
  using B = typename L::backend_type;
  const SafetensorsReader f(path);
  LoadReport r;
  r.path = path;
  r.metadata = f.metadata();
  std::set<std::string> claimed;  // file names that something wants
  std::vector<std::pair<std::string, Tensor<T, B>*>> to_load;
  auto want = [&](const std::string& file_name, const Shape& shape, Tensor<T, B>* dst) {
    if (!f.contains(file_name)) {
      r.missing.push_back(file_name);
      return;
    }
    claimed.insert(file_name);
    const auto& e = f.entry(file_name);
    GCNET_CHECK(detail::readable_dtype(e.dtype), path, ": tensor '", file_name, "' has dtype ", e.dtype,
                ", which gcnet cannot load (convert it to F32)");
    if (!(e.shape == shape)) {
      r.mis_shaped.push_back(file_name);
      r.mis_shaped_detail.push_back(file_name + " (checkpoint " + e.shape.str() + ", model " + shape.str() + ")");
      return;
    }
    to_load.emplace_back(file_name, dst);
  };
  visit_parameters(model, "", [&](const std::string& n, auto& p) { want(n, p.value.shape(), &p.value); });
  visit_buffers(model, "", [&](const std::string& n, auto& t) { want(n, t.shape(), &t); });

  // Optimizer state: entries the optimizer already has must be present; every "optimizer.*"
  // entry of the file is offered to load_state (a fresh optimizer has no state yet).
  std::vector<std::string> opt_entries;
  const bool has_opt_state = f.metadata().count(kOptimizerMarker) != 0;
  for (const auto& n : f.names()) {
    if (!detail::starts_with(n, kOptimizerPrefix)) continue;
    if (opt) {
      claimed.insert(n);
      opt_entries.push_back(n);
    }
  }
  if (opt) {
    if (!has_opt_state) r.missing.push_back(std::string(kOptimizerPrefix) + "* (saved without an optimizer)");
    for (auto& [n, t] : opt->state()) {
      const std::string fn = kOptimizerPrefix + n;
      if (!f.contains(fn)) {
        if (has_opt_state) r.missing.push_back(fn);
      } else if (!(f.entry(fn).shape == t->shape())) {
        r.mis_shaped.push_back(fn);
        r.mis_shaped_detail.push_back(fn + " (checkpoint " + f.entry(fn).shape.str() + ", optimizer " +
                                      t->shape().str() + ")");
        std::erase(opt_entries, fn);
      }
    }
    // Optimizers that list their parameters (Sgd: params()) let the strict check see entries it
    // does not know yet: state "<param>.<kind>" must name a parameter and have its shape
    // (true of SGD momentum buffers), so a bad file is rejected before anything is loaded.
    if constexpr (requires { opt->params(); }) {
      std::map<std::string, Shape> param_shapes;
      for (const auto& [pn, p] : opt->params()) param_shapes[pn] = p->value.shape();
      std::vector<std::string> keep;
      for (const auto& fn : opt_entries) {
        const std::string n = fn.substr(std::string(kOptimizerPrefix).size());
        const auto dot = n.rfind('.');
        auto it = dot == std::string::npos ? param_shapes.end() : param_shapes.find(n.substr(0, dot));
        const bool named = it != param_shapes.end();
        if (!named) {
          r.unexpected.push_back(fn);
        } else if (!(f.entry(fn).shape == it->second)) {
          r.mis_shaped.push_back(fn);
          r.mis_shaped_detail.push_back(fn + " (checkpoint " + f.entry(fn).shape.str() + ", parameter " +
                                        it->second.str() + ")");
        } else {
          keep.push_back(fn);
        }
      }
      opt_entries = keep;
    }
  }
  for (const auto& n : f.names())
    if (!claimed.count(n) && !(opt == nullptr && detail::starts_with(n, kOptimizerPrefix))) r.unexpected.push_back(n);

  r.sort();
  GCNET_CHECK(!options.strict || r.complete(), path,
              ": checkpoint does not match the model (strict load, nothing was loaded): ", r.summary());

  for (auto& [n, dst] : to_load) copy(to_backend<B>(f.tensor<T>(n)), *dst);
  if (opt) {
    using OptimizerTensor = std::remove_pointer_t<typename decltype(opt->state())::value_type::second_type>;
    using S = typename OptimizerTensor::value_type;
    for (const auto& n : opt_entries) {
      try {
        opt->load_state(n.substr(std::string(kOptimizerPrefix).size()), f.tensor<S>(n));
      } catch (const Error& e) {
        gcnet::detail::fail(path, ": cannot load optimizer state '", n, "': ", e.what());
      }
    }
    r.optimizer_loaded = has_opt_state;
  }
  return r;
}

template <HasNumerics L>
LoadReport load_checkpoint(const std::string& path, L& model, std::nullptr_t, LoadOptions options = {}) {
  return load_checkpoint(path, model, static_cast<NoOptimizer*>(nullptr), options);
}

}  // namespace gcnet::io
