#pragma once
// The layer contract (docs/layer-contract.md), as a concept. Required:
//   value_type, backend_type
//   Shape setup(const Shape& in)          validate `in`, return the output shape
//   void forward(const Tensor& x, Tensor& y)            y is resized to setup(x.shape())
//   void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx)
//        dx += dL/dx  (data gradients ACCUMULATE; dx is shaped like x)
//        param.grad = dL/dparam  (parameter gradients are ASSIGNED)
//   std::string describe() const          e.g. "Conv2d(3, 16, kernel=3x3, stride=1)"
// Optional hooks, detected: visit_parameters(prefix, ParamVisitor), visit_buffers(prefix,
// BufferVisitor), set_training(bool), for_each_child(f) (combinators).
#include <concepts>
#include <type_traits>
#include <string>
#include <vector>

#include "gcnet/core/param.hpp"
#include "gcnet/core/tensor.hpp"

namespace gcnet {

template <class L>
concept Layer = requires(L& l, const L& cl, const Shape& s,
                         const Tensor<typename L::value_type, typename L::backend_type>& cx,
                         Tensor<typename L::value_type, typename L::backend_type>& x) {
  typename L::value_type;
  typename L::backend_type;
  requires Scalar<typename L::value_type>;
  requires Backend<typename L::backend_type>;
  { l.setup(s) } -> std::same_as<Shape>;
  l.forward(cx, x);
  l.backward(cx, cx, cx, x);
  { cl.describe() } -> std::convertible_to<std::string>;
};

// Layers that can be composed: the same scalar type and backend.
namespace detail {
template <class... Ls>
struct same_numerics : std::true_type {};
template <class L0, class... Ls>
struct same_numerics<L0, Ls...>
    : std::bool_constant<((std::is_same_v<typename L0::value_type, typename Ls::value_type> &&
                           std::is_same_v<typename L0::backend_type, typename Ls::backend_type>) && ...)> {};
}  // namespace detail
template <class... Ls>
concept SameNumerics = detail::same_numerics<Ls...>::value;

template <Layer L>
using tensor_of = Tensor<typename L::value_type, typename L::backend_type>;

// Anything with a scalar type and a backend: leaf layers, combinators and modules
// (core/module.hpp). The free functions below call their optional hooks when present.
template <class L>
concept HasNumerics = requires {
  typename L::value_type;
  typename L::backend_type;
} && Scalar<typename L::value_type> && Backend<typename L::backend_type>;

template <HasNumerics L>
void visit_parameters(L& l, const std::string& prefix,
                      const ParamVisitor<typename L::value_type, typename L::backend_type>& f) {
  if constexpr (requires { l.visit_parameters(prefix, f); }) l.visit_parameters(prefix, f);
}
template <HasNumerics L>
void visit_buffers(L& l, const std::string& prefix,
                   const BufferVisitor<typename L::value_type, typename L::backend_type>& f) {
  if constexpr (requires { l.visit_buffers(prefix, f); }) l.visit_buffers(prefix, f);
}
template <HasNumerics L>
void set_training(L& l, bool training) {
  if constexpr (requires { l.set_training(training); }) l.set_training(training);
}

// A forward after which no backward is expected (inference): the optional hook infer(x, y) of
// layers that can then keep less (Seq, the residual blocks), forward(x, y) otherwise. y is the
// same as forward's; a backward after infer() still works (the layer replays its forward).
template <Layer L>
void infer(L& l, const Tensor<typename L::value_type, typename L::backend_type>& x,
           Tensor<typename L::value_type, typename L::backend_type>& y) {
  if constexpr (requires { l.infer(x, y); }) l.infer(x, y);
  else l.forward(x, y);
}

// Named parameters in visiting order (mmdet state-dict names).
template <HasNumerics L>
std::vector<std::pair<std::string, Param<typename L::value_type, typename L::backend_type>*>>
named_parameters(L& l) {
  std::vector<std::pair<std::string, Param<typename L::value_type, typename L::backend_type>*>> out;
  visit_parameters(l, "", [&](const std::string& n, auto& p) { out.emplace_back(n, &p); });
  return out;
}
template <HasNumerics L>
std::vector<std::pair<std::string, Tensor<typename L::value_type, typename L::backend_type>*>> named_buffers(L& l) {
  std::vector<std::pair<std::string, Tensor<typename L::value_type, typename L::backend_type>*>> out;
  visit_buffers(l, "", [&](const std::string& n, auto& t) { out.emplace_back(n, &t); });
  return out;
}

// Number of trainable scalars.
template <HasNumerics L>
index_t parameter_count(L& l) {
  index_t n = 0;
  visit_parameters(l, "", [&](const std::string&, auto& p) { n += p.value.numel(); });
  return n;
}

// Checks dy/dx against x/y at the top of backward(); names the layer.
template <class T, class B>
void check_backward_args(const std::string& who, const Tensor<T, B>& x, const Tensor<T, B>& y,
                         const Tensor<T, B>& dy, const Tensor<T, B>& dx) {
  require_shape(dy, y.shape(), who, "output gradient dy");
  require_shape(dx, x.shape(), who, "input gradient dx");
  require_contiguous(dy, who, "output gradient dy");
  require_contiguous(dx, who, "input gradient dx");
}

}  // namespace gcnet
