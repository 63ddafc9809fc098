#pragma once
// Finiteness of a training state: parameters, their gradients, buffers (BatchNorm's running
// statistics) and the optimizer's state (momentum). A NaN or Inf in any of them is found with
// the tensor's name and the first bad element, so the trainer can stop at the iteration it
// appeared in and never write it into a checkpoint (a finite loss does not prove a finite
// state: inputs of 1e38 made running_var infinite while the loss stayed finite).
//
// Cost: one pass over the values, split over the threads on the CPU (7-10 ms per 100 MB
// on one core here); tensors on another backend are copied to the host first, so checking
// them every iteration costs a transfer (docs/training.md).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/core/transfer.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

// The first non-finite element found: which tensor, where, and its value.
struct NonFinite {
  std::string what;  // "parameter 'conv1.weight'", "gradient of 'fc.bias'", "buffer '...'", "optimizer state '...'"
  index_t index = 0;
  double value = 0;
  std::string str() const {
    return what + " is not finite (" + std::to_string(value) + " at element " + std::to_string(index) + ")";
  }
};

// What to check: gradients are meaningful only after a backward.
struct HealthCheckParts {
  bool parameters = true, gradients = true, buffers = true, optimizer_state = true;
};

namespace detail {
// Whether x[b, e) holds a NaN or Inf: all exponent bits set. Written on the bits so that it
// vectorizes (std::isfinite in a loop does not), about twice as fast.
template <class T>
bool any_non_finite(const T* x, index_t b, index_t e) {
  static_assert(std::is_floating_point_v<T> && (sizeof(T) == 4 || sizeof(T) == 8));
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr U exponent = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  U bad = 0;
  for (index_t i = b; i < e; ++i) bad |= U((std::bit_cast<U>(x[i]) & exponent) == exponent);
  return bad != 0;
}

// The index of the first non-finite element of `t`, or -1. CPU: fixed blocks over the threads.
template <class T, class B>
index_t first_non_finite_index(const Tensor<T, B>& t) {
  if (!t.defined() || t.numel() == 0) return -1;
  if constexpr (!std::is_same_v<B, Cpu>) {
    return first_non_finite_index(to_backend<Cpu>(t));
  } else {
    const Tensor<T, Cpu> c = t.is_contiguous() ? t : clone(t);
    const T* x = c.data();
    const index_t n = c.numel();
    constexpr index_t block = 1 << 14;
    const index_t blocks = (n + block - 1) / block;
    std::vector<index_t> first(static_cast<std::size_t>(blocks), -1);
    index_t* out = first.data();
    for_each_index(Cpu{}, blocks, [=](index_t b) {
      const index_t e = std::min(n, (b + 1) * block);
      if (!any_non_finite(x, b * block, e)) return;
      for (index_t i = b * block; i < e; ++i)
        if (!std::isfinite(x[i])) {
          out[b] = i;
          return;
        }
    }, 4);  // parallel from 4 blocks (64K elements) on: small tensors are not worth a thread team
    for (index_t f : first)
      if (f >= 0) return f;
    return -1;
  }
}

template <class T, class B>
double element_at(const Tensor<T, B>& t, index_t i) {
  if constexpr (std::is_same_v<B, Cpu>) {
    return static_cast<double>((t.is_contiguous() ? t : clone(t)).data()[i]);
  } else {
    return element_at(to_backend<Cpu>(t), i);
  }
}
}  // namespace detail

// The first non-finite element of the model's state (in this order: parameters, gradients,
// buffers, optimizer state; each in visiting order), or nullopt when all are finite.
// `opt` may be nullptr; an optimizer is anything with state() -> [(name, Tensor*)].
template <HasNumerics Model, class Optimizer>
std::optional<NonFinite> first_non_finite(Model& model, Optimizer* opt, HealthCheckParts parts = {}) {
  std::optional<NonFinite> bad;
  auto check = [&](const std::string& what, const auto& t) {
    if (bad) return;
    const index_t i = detail::first_non_finite_index(t);
    if (i >= 0) bad = NonFinite{what, i, detail::element_at(t, i)};
  };
  const auto params = named_parameters(model);
  if (parts.parameters)
    for (const auto& [name, p] : params) check("parameter '" + name + "'", p->value);
  if (parts.gradients)
    for (const auto& [name, p] : params) check("gradient of '" + name + "'", p->grad);
  if (parts.buffers)
    for (const auto& [name, t] : named_buffers(model)) check("buffer '" + name + "'", *t);
  if constexpr (!std::is_same_v<Optimizer, std::nullptr_t>) {
    if (parts.optimizer_state && opt)
      for (const auto& [name, t] : opt->state()) check("optimizer state '" + name + "'", *t);
  }
  return bad;
}

}  // namespace gcnet
