#pragma once
// Gradient clipping by the global norm, as torch.nn.utils.clip_grad_norm_ (PyTorch 1.13):
//   total = (sum over all gradient entries |g|^p)^(1/p)   (p = inf: max |g|)
//   coef = max_norm / (total + 1e-6); when coef < 1 every gradient is multiplied by coef.
// Returns the total norm (before clipping). A non-finite total behaves as in PyTorch: inf
// zeroes the gradients, NaN makes them NaN (the trainer stops on a non-finite loss first).
// The official GCNet recipe clips at max_norm 35.
// The sum runs over fixed blocks (not per thread), so the result does not depend on the
// thread count: a resumed run reproduces an uninterrupted one bit for bit.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gcnet/core/param.hpp"
#include "gcnet/core/parallel.hpp"

namespace gcnet {

namespace detail {
// sum |x|^p (or max |x| when p is inf) of one tensor, in double.
template <class T, class B>
double grad_norm_part(const Tensor<T, B>& g, double p) {
  static_assert(std::is_same_v<B, Cpu>, "clip_grad_norm: only the CPU backend is implemented so far");
  const index_t n = g.numel();
  constexpr index_t block = 4096;
  const index_t blocks = (n + block - 1) / block;
  std::vector<double> part(static_cast<std::size_t>(blocks), 0.0);
  const T* x = g.data();
  double* out = part.data();
  const bool inf = std::isinf(p);
  for_each_index(B{}, blocks, [=](index_t b) {
    const index_t e = std::min(n, (b + 1) * block);
    double s = 0;
    for (index_t i = b * block; i < e; ++i) {
      const double a = std::abs(static_cast<double>(x[i]));
      if (inf)
        s = std::isnan(a) || a > s ? a : s;
      else
        s += p == 2 ? a * a : (p == 1 ? a : std::pow(a, p));
    }
    out[b] = s;
  }, 4);
  double total = 0;
  for (double s : part) total = inf ? (std::isnan(s) || s > total ? s : total) : total + s;
  return total;
}
}  // namespace detail

template <class T, class B>
double clip_grad_norm(const std::vector<std::pair<std::string, Param<T, B>*>>& params, double max_norm,
                      double norm_type = 2) {
  GCNET_CHECK(norm_type > 0, "clip_grad_norm: norm_type must be > 0 (or inf), got ", norm_type);
  GCNET_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, got ", max_norm);
  const bool inf = std::isinf(norm_type);
  double acc = 0;
  for (auto& [name, p] : params) {
    if (!p->grad.defined()) continue;
    const double part = detail::grad_norm_part(p->grad, norm_type);
    acc = inf ? (std::isnan(part) || part > acc ? part : acc) : acc + part;
  }
  const double total = inf ? acc : (norm_type == 2 ? std::sqrt(acc) : std::pow(acc, 1.0 / norm_type));
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1 || std::isnan(coef)) {
    const T c = static_cast<T>(coef);
    for (auto& [name, p] : params) {
      if (!p->grad.defined()) continue;
      T* g = p->grad.data();
      for_each_index(B{}, p->grad.numel(), [=] GCNET_HD(index_t i) { g[i] *= c; });
    }
  }
  return total;
}

}  // namespace gcnet
