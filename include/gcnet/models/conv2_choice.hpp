#pragma once
// The 3x3 convolution of a bottleneck: Conv2d, or, in a backbone whose type names a deformable
// kind (Dcn<...> / DcnV2<...>: DeformConv2dPack / ModulatedDeformConv2dPack), Conv2d or that
// deformable layer chosen per block at run time (ResNetOptions::dcn_stages). So a backbone with
// DCN on some stages still has one block type.
//   Conv2Choice<void, T, B>     is Conv2d<T, B>
//   Conv2Choice<Deform, T, B>   holds a Conv2d or a Deform (state-dict names: weight, and the
//                               pack's conv_offset.* when deformable)
#include <optional>
#include <string>
#include <type_traits>

#include "gcnet/core/layer.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/deform_conv2d_pack.hpp"

namespace gcnet {

template <class Deform, Scalar T, Backend B>
class ConvOrDeform {
 public:
  using value_type = T;
  using backend_type = B;

  // A deformable layer when `deformable`, else a plain convolution, with the same geometry.
  ConvOrDeform(const Conv2dOptions& o, bool deformable) {
    if (deformable) {
      deform_.emplace(DeformConv2dOptions{.in = o.in, .out = o.out, .kernel = o.kernel, .stride = o.stride,
                                          .padding = o.padding, .dilation = o.dilation, .groups = o.groups,
                                          .deform_groups = 1, .bias = o.bias});
    } else {
      conv_.emplace(o);
    }
  }

  bool deformable() const { return deform_.has_value(); }
  Param<T, B>& weight() { return deform_ ? deform_->weight() : conv_->weight(); }
  Param<T, B>* bias() {
    if (!deform_) return conv_->bias();
    if constexpr (requires { deform_->bias(); }) return deform_->bias();
    else return nullptr;
  }
  Conv2d<T, B>* conv() { return conv_ ? &*conv_ : nullptr; }
  Deform* deform() { return deform_ ? &*deform_ : nullptr; }

  Shape setup(const Shape& in) { return deform_ ? deform_->setup(in) : conv_->setup(in); }
  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    if (deform_) deform_->forward(x, y);
    else conv_->forward(x, y);
  }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    if (deform_) deform_->backward(x, y, dy, dx);
    else conv_->backward(x, y, dy, dx);
  }
  std::string describe() const { return deform_ ? deform_->describe() : conv_->describe(); }
  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    if (deform_) deform_->visit_parameters(prefix, f);
    else conv_->visit_parameters(prefix, f);
  }
  // The geometry, as Conv2d's options.
  Conv2dOptions options() const {
    if (conv_) return conv_->options();
    const auto& d = deform_->options();
    return {.in = d.in, .out = d.out, .kernel = d.kernel, .stride = d.stride, .padding = d.padding,
            .dilation = d.dilation, .groups = d.groups, .bias = d.bias};
  }

 private:
  std::optional<Conv2d<T, B>> conv_;
  std::optional<Deform> deform_;
};

namespace detail {
template <class Deform, Scalar T, Backend B>
struct conv2_choice {
  using type = ConvOrDeform<Deform, T, B>;
};
template <Scalar T, Backend B>
struct conv2_choice<void, T, B> {
  using type = Conv2d<T, B>;
};
}  // namespace detail

template <class Deform, Scalar T, Backend B>
using Conv2Choice = typename detail::conv2_choice<Deform, T, B>::type;

// Builds the choice (mmdet initializes conv2 with kaiming; a deformable layer's conv_offset
// stays zero).
template <class Conv2>
Conv2 make_conv2(const Conv2dOptions& o, bool deformable, const std::string& who) {
  if constexpr (std::is_constructible_v<Conv2, Conv2dOptions, bool>) {
    Conv2 c(o, deformable);
    init::kaiming_init(c);
    return c;
  } else {
    GCNET_CHECK(!deformable, who, ": a deformable conv2 was asked for, but the backbone type has no deformable kind "
                                  "(add Dcn<...> or DcnV2<...> to its features)");
    Conv2 c(o);
    init::kaiming_init(c);
    return c;
  }
}

}  // namespace gcnet
