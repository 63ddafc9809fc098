#pragma once
// The RPN head on ONE feature level (mmdet RPNHead.forward_single, num_convs 1):
//   h = relu(rpn_conv(x))      3x3 conv, padding 1, in -> feat channels
//   cls_score = rpn_cls(h)     1x1 conv, feat -> A           (sigmoid objectness logits)
//   bbox_pred = rpn_reg(h)     1x1 conv, feat -> 4A          (deltas, channel 4a + k)
// A module (core/module.hpp) so that AppliedToEach can run one set of parameters over the five
// FPN levels (det/rpn_head.hpp). Names rpn_conv.*, rpn_cls.*, rpn_reg.*; init normal(0, std),
// bias 0 (mmdet init_cfg Normal std 0.01; torchvision's RPNHead the same).
#include <string>

#include "gcnet/compose/children.hpp"
#include "gcnet/core/module.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/relu.hpp"  // relu_in_place, relu_grad_in_place

namespace gcnet {

template <Scalar T = float>
struct RPNLevelOutputs {
  Tensor<T> cls_score;  // [N, A, H, W]
  Tensor<T> bbox_pred;  // [N, 4A, H, W]
  GCNET_FIELDS(cls_score, bbox_pred)
};

template <Scalar T = float>
class RPNConvHead {
 public:
  using value_type = T;
  using backend_type = Cpu;
  using tensor_type = Tensor<T>;
  using input_type = Tensor<T>;
  using output_type = RPNLevelOutputs<T>;

  RPNConvHead(index_t in_channels, index_t feat_channels, index_t num_anchors, double init_std = 0.01)
      : conv_(Conv2dOptions{.in = in_channels, .out = feat_channels, .kernel = 3, .padding = 1}),
        cls_(Conv2dOptions{.in = feat_channels, .out = num_anchors, .kernel = 1}),
        reg_(Conv2dOptions{.in = feat_channels, .out = 4 * num_anchors, .kernel = 1}) {
    init::normal_init(conv_, 0, init_std);
    init::normal_init(cls_, 0, init_std);
    init::normal_init(reg_, 0, init_std);
  }

  index_t in_channels() const { return conv_.options().in; }
  index_t num_anchors() const { return cls_.options().out; }

  // Training keeps the hidden map h (the ReLU runs in place on the conv's output: its backward
  // needs h only, and the conv's backward the shape of its output); eval (no backward expected)
  // frees h at the end, and a backward after it replays the training forward first.
  void forward(const Context& ctx, const tensor_type& x, output_type& y) {
    sync_mode(*this, ctx);
    conv_.forward(x, h_);
    relu_in_place(h_);
    cls_.forward(h_, y.cls_score);
    reg_.forward(h_, y.bbox_pred);
    *inferred_ = !training_;
    if (!training_) h_ = tensor_type();
  }

  // dx accumulates (undefined: not wanted); an undefined output gradient contributes nothing (its
  // conv's parameter gradients are zero).
  void backward(const Context&, const tensor_type& x, const output_type& y, const output_type& dy, tensor_type& dx) {
    if (*inferred_) {  // recompute h (the outputs are given)
      conv_.forward(x, h_);
      relu_in_place(h_);
      *inferred_ = false;
    }
    static_assert(Conv2d<T>::backward_ignores_output);
    tensor_type& gh = *gh_;
    gh.resize(h_.shape());
    fill(gh, T(0));
    auto head_backward = [&](Conv2d<T>& conv, const tensor_type& out, const tensor_type& dout) {
      if (dout.defined()) {
        conv.backward(h_, out, dout, gh);
      } else {
        fill(conv.weight().grad, T(0));
        fill(conv.bias()->grad, T(0));
      }
    };
    head_backward(cls_, y.cls_score, dy.cls_score);
    head_backward(reg_, y.bbox_pred, dy.bbox_pred);
    relu_grad_in_place(h_, gh);
    if (dx.defined()) {
      conv_.backward(x, h_, gh, dx);  // h_: the conv's output shape
    } else {
      tensor_type gx = zeros<T>(x.shape());
      conv_.backward(x, h_, gh, gx);
    }
    gh = tensor_type();  // one call's scratch: the next call (another level) sizes its own
  }

  std::string describe() const {
    return "RPNConvHead(" + std::to_string(conv_.options().in) + " -> " + std::to_string(conv_.options().out) + ", " +
           std::to_string(num_anchors()) + " anchors)";
  }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view("rpn_conv"), conv_);
    f(std::string_view("rpn_cls"), cls_);
    f(std::string_view("rpn_reg"), reg_);
  }
  GCNET_CHILD_STATE_HOOKS(T, Cpu)
  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }

 private:
  Conv2d<T> conv_, cls_, reg_;
  bool training_ = true;
  ScratchTensor<T, Cpu> h_;  // relu(rpn_conv(x)), kept for backward
  ScratchValue<tensor_type> gh_;  // its gradient (backward only)
  ScratchValue<bool> inferred_;  // the last forward was the eval one, which kept nothing
};

}  // namespace gcnet
