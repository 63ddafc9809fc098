#pragma once
// Tap<"c3", L>: L, with its output exposed under a name, for consumers outside the
// chain (FPN reads c2..c5). After forward, tap(net, "c3").output() is L's output. A
// consumer's gradient for it is added with add_grad() before net.backward(); backward
// then feeds L with dy + that gradient. Taps add nothing to state-dict names.
#include <algorithm>
#include <string>
#include <string_view>

#include "gcnet/core/state.hpp"
#include "gcnet/compose/children.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <std::size_t N>
struct FixedString {
  char chars[N]{};
  constexpr FixedString(const char (&s)[N]) { std::copy_n(s, N, chars); }
  constexpr std::string_view view() const { return {chars, N - 1}; }
};

// The part of a Tap that does not depend on the wrapped layer's type.
template <class T, class B>
class TapPoint {
 public:
  virtual ~TapPoint() = default;
  virtual std::string_view tap_name() const = 0;
  const Tensor<T, B>& output() const { return output_; }
  // Adds a consumer's gradient w.r.t. output() (same shape); cleared by each forward.
  void add_grad(const Tensor<T, B>& g) {
    if (!has_grad_) {
      copy(g, grad_);
      has_grad_ = true;
    } else {
      add_into(grad_, g, "Tap::add_grad");
    }
  }

 protected:
  ScratchTensor<T, B> output_, grad_, dy_total_;
  bool has_grad_ = false;
};

template <FixedString Name, Layer L>
class Tap : public TapPoint<typename L::value_type, typename L::backend_type> {
  using Base = TapPoint<typename L::value_type, typename L::backend_type>;

 public:
  using value_type = typename L::value_type;
  using backend_type = typename L::backend_type;
  using tensor_type = Tensor<value_type, backend_type>;
  static constexpr std::string_view name = Name.view();

  explicit Tap(L layer) : layer_(std::move(layer)) {}
  Tap(const Tap& o) : Base(o), layer_(o.layer_) {}
  Tap(Tap&& o) noexcept : Base(std::move(o)), layer_(std::move(o.layer_)) {}

  std::string_view tap_name() const override { return name; }
  L& inner() { return layer_; }

  Shape setup(const Shape& in) { return layer_.setup(in); }
  void forward(const tensor_type& x, tensor_type& y) {
    layer_.forward(x, y);
    this->output_ = y;  // shallow: shares y's storage
    this->has_grad_ = false;
  }
  void backward(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    if (!this->has_grad_) return layer_.backward(x, y, dy, dx);
    require_shape(this->grad_, y.shape(), describe(), "added gradient");
    add(dy, this->grad_, this->dy_total_, "Tap");
    layer_.backward(x, y, this->dy_total_, dx);
  }
  std::string describe() const { return "Tap<" + std::string(name) + ">(" + layer_.describe() + ")"; }

  template <class F>
  void for_each_child(F&& f) { f(std::string_view(), layer_); }
  GCNET_COMBINATOR_HOOKS(value_type, backend_type)

 private:
  L layer_;
};

namespace detail {
template <class T, class B, class L>
TapPoint<T, B>* find_tap(L& layer, std::string_view name) {
  if constexpr (std::is_base_of_v<TapPoint<T, B>, L>) {
    if (layer.tap_name() == name) return &layer;
  }
  TapPoint<T, B>* found = nullptr;
  if constexpr (requires { layer.for_each_child([](std::string_view, auto&) {}); }) {
    layer.for_each_child([&](std::string_view, auto& child) {
      if (!found) found = find_tap<T, B>(child, name);
    });
  }
  return found;
}
}  // namespace detail

// The first tap named `name` in `net` (depth-first); throws if there is none.
template <Layer L>
TapPoint<typename L::value_type, typename L::backend_type>& tap(L& net, std::string_view name) {
  auto* t = detail::find_tap<typename L::value_type, typename L::backend_type>(net, name);
  GCNET_CHECK(t != nullptr, "no tap named '", name, "' in ", net.describe());
  return *t;
}

}  // namespace gcnet
