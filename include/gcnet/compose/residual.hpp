#pragma once
// Residual<Body, Shortcut>: y = body(x) + shortcut(x), Shortcut = Identity by default or
// a projection (e.g. Seq<Conv2d, BatchNorm2d>, mmdet's "downsample"). No activation after
// the sum: put a ReLU after the Residual in a Seq, as mmdet's Bottleneck does.
// State-dict names: the body's parameters sit directly under the Residual's prefix (as in
// mmdet, "conv1.weight"), the shortcut's under "downsample." unless renamed.
#include <type_traits>

#include "gcnet/core/state.hpp"
#include "gcnet/compose/children.hpp"
#include "gcnet/compose/identity.hpp"

namespace gcnet {

template <Layer Body, Layer Shortcut = Identity<typename Body::value_type, typename Body::backend_type>>
  requires SameNumerics<Body, Shortcut>
class Residual {
  static constexpr bool kIdentity =
      std::is_same_v<Shortcut, Identity<typename Body::value_type, typename Body::backend_type>>;

 public:
  using value_type = typename Body::value_type;
  using backend_type = typename Body::backend_type;
  using tensor_type = Tensor<value_type, backend_type>;

  explicit Residual(Body body, Shortcut shortcut = {})
      : body_(std::move(body)), shortcut_(std::move(shortcut)) {}

  Residual& named(std::string body_name, std::string shortcut_name) {
    body_name_ = std::move(body_name);
    shortcut_name_ = std::move(shortcut_name);
    return *this;
  }

  Body& body() { return body_; }
  Shortcut& shortcut() { return shortcut_; }

  Shape setup(const Shape& in) {
    Shape b, s;
    try { b = body_.setup(in); } catch (const Error& e) { detail::rethrow_in("Residual body", e); }
    try { s = shortcut_.setup(in); } catch (const Error& e) { detail::rethrow_in("Residual shortcut", e); }
    GCNET_CHECK(b == s, "Residual: body (", body_.describe(), ") gives ", b.str(), " but shortcut (",
                shortcut_.describe(), ") gives ", s.str(), " for input ", in.str());
    return b;
  }

  void forward(const tensor_type& x, tensor_type& y) {
    body_.forward(x, body_out_);
    const tensor_type* sc = &x;
    if constexpr (!kIdentity) {
      shortcut_.forward(x, shortcut_out_);
      sc = &shortcut_out_;
    }
    GCNET_CHECK(body_out_.shape() == sc->shape(), "Residual: body (", body_.describe(), ") gives ",
                body_out_.shape().str(), " but shortcut (", shortcut_.describe(), ") gives ",
                sc->shape().str(), " for input ", x.shape().str());
    add(body_out_, *sc, y, "Residual");
  }

  void backward(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    check_backward_args("Residual", x, y, dy, dx);
    body_.backward(x, body_out_, dy, dx);
    if constexpr (kIdentity) add_into(dx, dy, "Residual");
    else shortcut_.backward(x, shortcut_out_, dy, dx);
  }

  std::string describe() const {
    return "Residual(" + body_.describe() + (kIdentity ? "" : " + " + shortcut_.describe()) + ")";
  }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view(body_name_), body_);
    f(std::string_view(shortcut_name_), shortcut_);
  }
  GCNET_COMBINATOR_HOOKS(value_type, backend_type)

 private:
  Body body_;
  Shortcut shortcut_;
  std::string body_name_ = "", shortcut_name_ = "downsample";
  ScratchTensor<value_type, backend_type> body_out_, shortcut_out_;
};

}  // namespace gcnet
