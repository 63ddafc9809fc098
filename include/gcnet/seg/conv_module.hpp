#pragma once
// ConvModule: mmcv's ConvModule with a norm and ReLU, the building brick of mmseg's heads:
//   conv (bias-free, since a norm follows) -> norm -> ReLU
// State-dict names as mmcv: conv.weight, bn.weight, bn.bias, bn.running_mean, ...
// Init as ConvModule.init_weights: the conv kaiming normal (fan_out, relu), the norm 1 / 0.
//   ConvModule<BatchNorm2d<>>({.in = 2048, .out = 512, .kernel = 3, .padding = 1})
#include <string>

#include "gcnet/core/layer.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/compose/children.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/relu.hpp"

namespace gcnet {

template <class Norm>
class ConvModule {
 public:
  using value_type = typename Norm::value_type;
  using backend_type = typename Norm::backend_type;
  using T = value_type;
  using B = backend_type;
  using tensor_type = Tensor<T, B>;

  explicit ConvModule(Conv2dOptions o) : conv_((o.bias = false, o)), norm_(o.out) { init::kaiming_init(conv_); }

  Shape setup(const Shape& in) { return relu_.setup(norm_.setup(conv_.setup(in))); }

  void forward(const tensor_type& x, tensor_type& y) {
    conv_.forward(x, a_);
    norm_.forward(a_, b_);
    relu_.forward(b_, y);
  }
  void backward(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    gb_.resize(b_.shape());
    fill(gb_, T(0));
    relu_.backward(b_, y, dy, gb_);
    ga_.resize(a_.shape());
    fill(ga_, T(0));
    norm_.backward(a_, b_, gb_, ga_);
    conv_.backward(x, a_, ga_, dx);
  }

  std::string describe() const { return "ConvModule(" + conv_.describe() + ", " + norm_.describe() + ", ReLU)"; }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view("conv"), conv_);
    f(std::string_view("bn"), norm_);
  }
  GCNET_COMBINATOR_HOOKS(T, B)

  Conv2d<T, B>& conv() { return conv_; }
  Norm& norm() { return norm_; }

 private:
  Conv2d<T, B> conv_;
  Norm norm_;
  ReLU<T, B> relu_;
  // The conv's and the norm's outputs (kept for backward) and their gradients.
  ScratchTensor<T, B> a_, b_, ga_, gb_;
};

}  // namespace gcnet
