#pragma once
// Comparing a model against a PyTorch fixture that stores no weights (hash init on both sides,
// tools/fixtures/hash_init.py): the names and shapes of its tensors, and its parameter gradients,
// full or sampled (tools/fixtures/backbones.py's format: grad.<name>, or grad_idx/grad_val/
// grad_norm.<name> above 4096 elements).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/testing/parity.hpp"

namespace gcnet::test {
using Tn = Tensor<float, Cpu>;

// name -> shape from the fixture metadata "params" / "buffers" (JSON [[name, [dims]], ...]).
inline std::map<std::string, Shape> fixture_names(const io::SafetensorsReader& f, const std::string& key) {
  std::map<std::string, Shape> out;
  for (const auto& e : nlohmann::json::parse(f.meta(key))) {
    Shape s;
    for (const auto& d : e[1]) s.push_back(d.get<index_t>());
    out[e[0].get<std::string>()] = s;
  }
  return out;
}

// Every name (and shape) of the model is in the fixture and vice versa.
inline void check_same_names(const std::map<std::string, Shape>& ours, const std::map<std::string, Shape>& theirs,
                      const std::string& what) {
  std::vector<std::string> only_ours, only_theirs, shape_differs;
  for (const auto& [n, s] : ours) {
    auto it = theirs.find(n);
    if (it == theirs.end()) only_ours.push_back(n);
    else if (!(it->second == s)) shape_differs.push_back(n + " (ours " + s.str() + ", PyTorch " + it->second.str() + ")");
  }
  for (const auto& [n, s] : theirs)
    if (!ours.count(n)) only_theirs.push_back(n);
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& e : v) s += (s.empty() ? "" : ", ") + e;
    return s;
  };
  INFO(what, ": only in gcnet: [", join(only_ours), "]; only in PyTorch: [", join(only_theirs),
       "]; shapes differ: [", join(shape_differs), "]");
  CHECK(only_ours.empty());
  CHECK(only_theirs.empty());
  CHECK(shape_differs.empty());
}

// Names and shapes of a model's parameters / buffers (any scalar type).
template <class M>
std::map<std::string, Shape> param_shapes(M& m, const std::string& prefix = "") {
  std::map<std::string, Shape> out;
  gcnet::visit_parameters(m, prefix, [&](const std::string& n, auto& p) { out[n] = p.value.shape(); });
  return out;
}
template <class M>
std::map<std::string, Shape> buffer_shapes(M& m, const std::string& prefix = "") {
  std::map<std::string, Shape> out;
  gcnet::visit_buffers(m, prefix, [&](const std::string& n, auto& b) { out[n] = b.shape(); });
  return out;
}

// dL/dO for the probe term sum(O^2) / numel(O).
inline Tn probe_gradient(const Tn& o) {
  Tn g(o.shape());
  const float scale = 2.0f / static_cast<float>(o.numel());
  for (index_t i = 0; i < o.numel(); ++i) g[i] = o[i] * scale;
  return g;
}

inline double max_abs(const Tn& t) {
  double m = 0;
  for (index_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(static_cast<double>(t[i])));
  return m;
}

// The gradients of every parameter against the fixture: full, or sampled entries + the L2 norm.
// Biases whose gradient is 0 in exact arithmetic, where PyTorch's is rounding noise (a relative
// comparison is meaningless): conv_mask.bias (the softmax over HW is shift invariant), and in a
// Non-local block followed by a training-mode BatchNorm, g's bias (a per-channel constant the
// norm removes) and phi's (a per-query constant the softmax removes). Such a gradient must be
// negligible next to its weight's.
inline bool exactly_zero_gradient(const std::string& name, bool nl_with_batch_norm) {
  return name.ends_with("conv_mask.bias") ||
         (nl_with_batch_norm && (name.ends_with("nl_block.g.conv.bias") || name.ends_with("nl_block.phi.conv.bias")));
}

// `key` prefixes the fixture's names (a case name and '.', or nothing).
template <class M>
void compare_parameter_gradients(M& m, const std::string& prefix, const io::SafetensorsReader& f,
                                 testing::ParityResult& r, const std::string& key = "", double tolerance = 1e-4,
                                 bool nl_with_batch_norm = false) {
  std::map<std::string, const Tn*> grads;
  m.visit_parameters(prefix, ParamVisitor<float, Cpu>([&](const std::string& n, Param<float, Cpu>& p) {
    grads[n] = &p.grad;
  }));
  for (const auto& [name, g] : grads) {
    if (exactly_zero_gradient(name, nl_with_batch_norm)) {
      const std::string w = name.substr(0, name.size() - 4) + "weight";
      const double scale = grads.count(w) ? max_abs(*grads.at(w)) : 1.0;
      r.add("grad." + name + " (|g| / max|grad of its weight|)", max_abs(*g) / std::max(scale, 1e-30), 1e-3);
      continue;
    }
    if (f.contains(key + "grad." + name)) {
      r.add("grad." + name, testing::relative_error(*g, f.tensor<double>(key + "grad." + name)), tolerance);
      continue;
    }
    REQUIRE_MESSAGE(f.contains(key + "grad_idx." + name), f.path(), ": no gradient for '", name, "'");
    const auto idx = f.tensor<std::int64_t>(key + "grad_idx." + name);
    const auto val = f.tensor<double>(key + "grad_val." + name);
    Tn picked(val.shape());
    for (index_t i = 0; i < idx.numel(); ++i) picked[i] = (*g)[static_cast<index_t>(idx[i])];
    r.add("grad." + name + " (sampled)", testing::relative_error(picked, val), tolerance);
    double norm = 0;
    for (index_t i = 0; i < g->numel(); ++i) norm += static_cast<double>((*g)[i]) * (*g)[i];
    const double ref = f.tensor<double>(key + "grad_norm." + name)[0];
    r.add("grad." + name + " (L2 norm)", std::abs(std::sqrt(norm) - ref) / ref, tolerance);
  }
}

}  // namespace gcnet::test
