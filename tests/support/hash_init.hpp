#pragma once
// Deterministic "hash init": every parameter and buffer of a model computed from its
// state-dict name, bit for bit equal to tools/fixtures/hash_init.py (whose docstring is the
// spec). The backbone parity fixtures store no weights; both sides regenerate them.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "gcnet/core/error.hpp"
#include "gcnet/core/param.hpp"
#include "gcnet/core/tensor.hpp"
#include "gcnet/core/transfer.hpp"

namespace gcnet::test {

inline std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

inline std::uint64_t splitmix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// u_i in [0, 1) for element i of the tensor whose name hashes to `key`.
inline double hash_uniform(std::uint64_t key, std::uint64_t i) {
  return static_cast<double>(splitmix64(key + (i + 1) * 0x9E3779B97F4A7C15ull) >> 11) * 0x1p-53;
}

struct HashRange {
  double lo, hi;
};

// The (lo, hi) rule of the spec; nullopt for tensors left untouched (num_batches_tracked).
inline std::optional<HashRange> hash_range(const std::string& name, const Shape& shape) {
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("num_batches_tracked")) return std::nullopt;
  if (ends_with("weight") && (shape.rank() == 2 || shape.rank() == 4)) {
    double a = std::sqrt(3.0 / static_cast<double>(shape.numel() / shape[0]));
    if (ends_with("conv_offset.weight")) a /= 4;
    return HashRange{-a, a};
  }
  if (ends_with("weight")) return HashRange{0.5, 1.5};
  if (ends_with("bias")) return HashRange{-0.1, 0.1};
  if (ends_with("running_mean")) return HashRange{-0.2, 0.2};
  if (ends_with("running_var")) return HashRange{0.5, 1.5};
  detail::fail("hash_init: no rule for tensor '", name, "' of shape ", shape.str());
}

// The value of element i, in float64 (cast to the tensor's type by the caller).
inline double hash_value(std::uint64_t key, std::uint64_t i, HashRange r) {
  // volatile: keeps the product rounded on its own, as in numpy (no fused multiply-add
  // under -march=native), so C++ and Python agree to the last bit.
  volatile double scaled = (r.hi - r.lo) * hash_uniform(key, i);
  return r.lo + scaled;
}

// A host tensor of `shape` filled for `name`; false (and `out` untouched) for untouched names.
template <class T>
bool hash_tensor(const std::string& name, const Shape& shape, Tensor<T, Cpu>& out) {
  const auto r = hash_range(name, shape);
  if (!r) return false;
  out = Tensor<T, Cpu>(shape);
  const std::uint64_t key = fnv1a64(name);
  for (index_t i = 0; i < out.numel(); ++i)
    out[i] = static_cast<T>(hash_value(key, static_cast<std::uint64_t>(i), *r));
  return true;
}

// Fills every parameter and buffer of `model` (anything with visit_parameters and, optionally,
// visit_buffers: layers and multi-output backbones alike). `prefix` is prepended to the names
// the model reports (e.g. "neck." for an FPN whose fixture names carry it).
template <class M>
void hash_init(M& model, const std::string& prefix = "") {
  using T = typename M::value_type;
  using B = typename M::backend_type;
  model.visit_parameters(prefix, ParamVisitor<T, B>([](const std::string& name, Param<T, B>& p) {
    Tensor<T, Cpu> host;
    if (hash_tensor(name, p.value.shape(), host)) p.load(host, "hash_init");
  }));
  if constexpr (requires { model.visit_buffers(prefix, BufferVisitor<T, B>{}); }) {
    model.visit_buffers(prefix, BufferVisitor<T, B>([](const std::string& name, Tensor<T, B>& b) {
      Tensor<T, Cpu> host;
      if (hash_tensor(name, b.shape(), host)) copy(to_backend<B>(host), b);  // in place
    }));
  }
}

}  // namespace gcnet::test
