#pragma once
// The inputs and outputs of modules (docs/layer-contract.md, "Modules"): plain values made of
// tensors, walked generically by the gradient checker, the parity helper and the trainer.
// A field type is one of
//   Tensor<E, B>         any element type E: float/double tensors carry gradients, integer
//                        tensors (labels, indices) flow between modules without any;
//   std::vector<X>       X a field type; elements are named "0", "1", ...;
//   a struct            that names its members with GCNET_FIELDS(a, b, ...), e.g.
//                          struct FeatureMaps { Tensor<T, B> c2, c3, c4, c5; GCNET_FIELDS(c2, c3, c4, c5) };
//                        A struct may declare `static constexpr bool differentiable = false;`
//                        (e.g. RoIs: boxes are inputs of RoIAlign, never differentiated).
// for_each_tensor(x, f) calls f(name, tensor, differentiable) for every tensor, with nested names
// joined by '.' ("feats.0"). Undefined tensors (an output a module did not produce, a gradient
// nobody asked for) are visited too; callers check defined().
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "gcnet/core/tensor.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

namespace detail {
template <class X>
struct is_tensor : std::false_type {};
template <class E, class B>
struct is_tensor<Tensor<E, B>> : std::true_type {};
template <class X>
struct is_vector : std::false_type {};
template <class X, class A>
struct is_vector<std::vector<X, A>> : std::true_type {};

// "a, b, c" (the stringized GCNET_FIELDS list) -> the i-th name.
inline std::string_view field_name(std::string_view list, std::size_t i) {
  std::size_t start = 0;
  for (std::size_t k = 0; k < i; ++k) start = list.find(',', start) + 1;
  std::size_t end = list.find(',', start);
  std::string_view n = list.substr(start, end == std::string_view::npos ? list.size() - start : end - start);
  while (!n.empty() && n.front() == ' ') n.remove_prefix(1);
  while (!n.empty() && n.back() == ' ') n.remove_suffix(1);
  return n;
}
template <class F, class... M>
void visit_named_fields(std::string_view list, F&& f, M&... members) {
  std::size_t i = 0;
  (f(field_name(list, i++), members), ...);
}
inline std::string join_field(const std::string& prefix, std::string_view name) {
  return prefix.empty() ? std::string(name) : prefix + "." + std::string(name);
}
}  // namespace detail

template <class X>
inline constexpr bool is_field_struct = requires(X& x) { x.for_each_field([](std::string_view, auto&) {}); };

template <class X>
concept FieldType = detail::is_tensor<std::remove_cv_t<X>>::value || detail::is_vector<std::remove_cv_t<X>>::value ||
                    is_field_struct<std::remove_cv_t<X>>;

// Whether the tensors of X may carry gradients (a struct can opt out; see above).
template <class X>
constexpr bool differentiable_fields() {
  if constexpr (requires { X::differentiable; }) return X::differentiable;
  else return true;
}

// f(name, tensor, differentiable) for every tensor of x (const or not).
template <class X, class F>
void for_each_tensor(X& x, F&& f, const std::string& prefix = "", bool differentiable = true) {
  using V = std::remove_cv_t<X>;
  if constexpr (detail::is_tensor<V>::value) {
    f(prefix, x, differentiable && Scalar<typename V::value_type>);
  } else if constexpr (detail::is_vector<V>::value) {
    for (std::size_t i = 0; i < x.size(); ++i) for_each_tensor(x[i], f, detail::join_field(prefix, std::to_string(i)), differentiable);
  } else {
    static_assert(is_field_struct<V>, "not a field type: use a Tensor, a std::vector of field types, or a struct "
                                      "naming its tensors with GCNET_FIELDS(...)");
    const bool d = differentiable && differentiable_fields<V>();
    x.for_each_field([&](std::string_view name, auto& member) { for_each_tensor(member, f, detail::join_field(prefix, name), d); });
  }
}

// Visits the tensors of two values of one field type side by side: f(name, a_tensor, b_tensor,
// differentiable). Vectors are matched element by element; `b` is grown to `a`'s sizes.
template <class X, class Y, class F>
void for_each_tensor_pair(X& a, Y& b, F&& f, const std::string& prefix = "", bool differentiable = true) {
  using V = std::remove_cv_t<X>;
  static_assert(std::is_same_v<V, std::remove_cv_t<Y>>, "for_each_tensor_pair: two different field types");
  if constexpr (detail::is_tensor<V>::value) {
    f(prefix, a, b, differentiable && Scalar<typename V::value_type>);
  } else if constexpr (detail::is_vector<V>::value) {
    if constexpr (!std::is_const_v<Y>) {
      if (b.size() < a.size()) b.resize(a.size());
    }
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
      for_each_tensor_pair(a[i], b[i], f, detail::join_field(prefix, std::to_string(i)), differentiable);
  } else {
    const bool d = differentiable && differentiable_fields<V>();
    // Both structs list the same members in the same order: walk b's into a vector first.
    std::vector<void*> bs;
    b.for_each_field([&](std::string_view, auto& m) { bs.push_back(const_cast<void*>(static_cast<const void*>(&m))); });
    std::size_t i = 0;
    a.for_each_field([&](std::string_view name, auto& m) {
      using M = std::remove_cv_t<std::remove_reference_t<decltype(m)>>;
      using BM = std::conditional_t<std::is_const_v<Y>, const M, M>;
      for_each_tensor_pair(m, *static_cast<BM*>(bs[i++]), f, detail::join_field(prefix, name), d);
    });
  }
}

// The gradient buffers of x: every defined differentiable tensor of x gets a zero tensor of its
// shape in g (data gradients accumulate, so they start at zero); the other tensors of g are
// left undefined ("no gradient").
template <class X>
void zero_grad_like(const X& x, X& g) {
  for_each_tensor_pair(x, g, [](const std::string&, const auto& t, auto& gt, bool diff) {
    using Tn = std::remove_cvref_t<decltype(gt)>;
    if (diff && t.defined()) {
      gt.resize(t.shape());
      fill(gt, typename Tn::value_type(0));
    } else {
      gt = Tn();
    }
  });
}

// A copy of x whose tensors have their own storage (a plain copy of a field value shares it).
template <class X>
X clone_fields(const X& x) {
  X out = x;
  for_each_tensor_pair(x, out, [](const std::string&, const auto& t, auto& o, bool) {
    if (t.defined()) o = clone(t);
  });
  return out;
}

}  // namespace gcnet

// Names the tensor members of a struct (in order) for for_each_tensor.
#define GCNET_FIELDS(...)                                                                       \
  template <class F>                                                                            \
  void for_each_field(F&& f) {                                                                  \
    ::gcnet::detail::visit_named_fields(#__VA_ARGS__, f, __VA_ARGS__);                          \
  }                                                                                             \
  template <class F>                                                                            \
  void for_each_field(F&& f) const {                                                            \
    ::gcnet::detail::visit_named_fields(#__VA_ARGS__, f, __VA_ARGS__);                          \
  }
