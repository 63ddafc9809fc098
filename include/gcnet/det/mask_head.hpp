#pragma once
// FCNMaskHead: mmdet's mask head of Mask R-CNN (and torchvision's MaskRCNNHeads +
// MaskRCNNPredictor, the same graph):
//   x [K, C, 14, 14] -> num_convs x (3x3 conv + ReLU) -> 2x2 stride-2 deconv + ReLU -> 1x1 conv
//   -> logits [K, nc', 28, 28],  nc' = nc (mmdet) or nc + 1 (torchvision: a background channel)
// A module (core/module.hpp), one tensor in and out. State-dict names as mmdet: convs.0.conv.weight
// .. convs.3.conv.bias, upsample.weight / bias, conv_logits.weight / bias (torchvision's
// mask_head.{0..3}.0, mask_predictor.conv5_mask, mask_predictor.mask_fcn_logits map one to one).
// Init as both: kaiming normal (fan_out, relu), bias 0, for every conv, the deconv and the logits.
// K = 0 gives an empty output and zero parameter gradients.
#include <string>
#include <vector>

#include "gcnet/compose/children.hpp"
#include "gcnet/core/module.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/conv_transpose2d.hpp"
#include "gcnet/layers/relu.hpp"

namespace gcnet {

struct FCNMaskHeadOptions {
  index_t in_channels = 256;
  index_t conv_out_channels = 256;
  int num_convs = 4;
  index_t roi_feat_size = 14;
  index_t num_classes = 80;         // foreground classes
  bool background_channel = false;  // torchvision: nc + 1 output channels, channel 0 background
};

template <Scalar T = float>
class FCNMaskHead {
 public:
  using value_type = T;
  using backend_type = Cpu;
  using input_type = Tensor<T>;
  using output_type = Tensor<T>;

  explicit FCNMaskHead(const FCNMaskHeadOptions& o)
      : o_(check(o)),
        up_(ConvTranspose2dOptions{.in = o.conv_out_channels, .out = o.conv_out_channels, .kernel = 2, .stride = 2}),
        logits_(Conv2dOptions{.in = o.conv_out_channels, .out = out_channels(o), .kernel = 1}) {
    for (int i = 0; i < o.num_convs; ++i) {
      convs_.emplace_back(Conv2dOptions{.in = i == 0 ? o.in_channels : o.conv_out_channels,
                                        .out = o.conv_out_channels, .kernel = 3, .padding = 1});
      init::kaiming_init(convs_.back());
      names_.push_back("convs." + std::to_string(i) + ".conv");
    }
    init::kaiming_init(up_);
    init::kaiming_init(logits_);
  }

  const FCNMaskHeadOptions& options() const { return o_; }
  static index_t out_channels(const FCNMaskHeadOptions& o) { return o.num_classes + (o.background_channel ? 1 : 0); }
  index_t out_channels() const { return out_channels(o_); }
  index_t mask_size() const { return 2 * o_.roi_feat_size; }

  void check_input(const Shape& s) const {
    const index_t S = o_.roi_feat_size;
    GCNET_CHECK(s.rank() == 4 && s[1] == o_.in_channels && s[2] == S && s[3] == S, describe(),
                ": expected RoI features of shape [K, ", o_.in_channels, ", ", S, ", ", S, "], got ", s.str());
  }

  void forward(const Context& ctx, const Tensor<T>& x, Tensor<T>& y) {
    sync_mode(*this, ctx);
    check_input(x.shape());
    require_contiguous(x, describe(), "RoI features");
    if (x.size(0) == 0) {
      y.resize(Shape{0, out_channels(), mask_size(), mask_size()});
      return;
    }
    *inferred_ = !training_;
    if (training_) return forward_kept(x, y);
    // Eval (no backward expected): ReLUs in place, two maps alive at a time, nothing kept; a
    // backward after it replays the training forward first.
    post_->clear();
    Tensor<T> buf[2];
    const Tensor<T>* cur = &x;
    for (std::size_t i = 0; i < convs_.size(); ++i) {
      convs_[i].forward(*cur, buf[i % 2]);
      relu_in_place(buf[i % 2]);
      cur = &buf[i % 2];
    }
    Tensor<T>& up = buf[convs_.size() % 2];
    up_.forward(*cur, up);
    buf[(convs_.size() + 1) % 2] = Tensor<T>();
    relu_in_place(up);
    logits_.forward(up, y);
  }

  // dx accumulates (undefined: not wanted).
  void backward(const Context&, const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) {
    if (dx.defined()) require_shape(dx, x.shape(), describe(), "input gradient");
    if (x.size(0) == 0) {
      visit_parameters("", [](const std::string&, Param<T, Cpu>& p) { fill(p.grad, T(0)); });
      return;
    }
    require_shape(dy, y.shape(), describe(), "output gradient");
    if (*inferred_) {
      Tensor<T> again;
      forward_kept(x, again);
      *inferred_ = false;
    }
    // post[i] = relu(conv_i(...)) is all that is kept: a ReLU's backward reads its output, and a
    // conv's backward of its output only the shape.
    static_assert(Conv2d<T>::backward_ignores_output && ConvTranspose2d<T>::backward_ignores_output);
    const std::size_t n = convs_.size();
    auto& post = *post_;
    logits_.backward(post[n], y, dy, zeroed(g_, post[n].shape()));
    relu_grad_in_place(post[n], g_);
    const Tensor<T>& up_in = n == 0 ? x : post[n - 1];
    Tensor<T>& gx = dx.defined() ? dx : zeroed(gx_, x.shape());
    up_.backward(up_in, post[n], g_, n == 0 ? gx : zeroed(gp_, up_in.shape()));
    for (std::size_t i = n; i-- > 0;) {
      relu_grad_in_place(post[i], gp_);
      if (i == 0) convs_[0].backward(x, post[0], gp_, gx);
      else convs_[i].backward(post[i - 1], post[i], gp_, zeroed(g_, post[i - 1].shape()));
      std::swap(g_, gp_);
    }
    for (Tensor<T>* t : {&g_, &gp_, &gx_}) *t = Tensor<T>();  // gradient scratch lives for one backward
  }

  std::string describe() const {
    return "FCNMaskHead(in_channels=" + std::to_string(o_.in_channels) + ", conv_out_channels=" +
           std::to_string(o_.conv_out_channels) + ", num_convs=" + std::to_string(o_.num_convs) +
           ", roi_feat_size=" + std::to_string(o_.roi_feat_size) + ", out_channels=" + std::to_string(out_channels()) + ")";
  }

  template <class F>
  void for_each_child(F&& f) {
    for (std::size_t i = 0; i < convs_.size(); ++i) f(std::string_view(names_[i]), convs_[i]);
    f(std::string_view("upsample"), up_);
    f(std::string_view("conv_logits"), logits_);
  }
  GCNET_CHILD_STATE_HOOKS(T, Cpu)
  void set_training(bool t) { training_ = t; }
  bool training() const { return training_; }

 private:
  void forward_kept(const Tensor<T>& x, Tensor<T>& y) {
    const std::size_t n = convs_.size();
    post_->resize(n + 1);  // the convs' outputs after their ReLUs, then the deconv's
    const Tensor<T>* cur = &x;
    for (std::size_t i = 0; i < n; ++i) {
      convs_[i].forward(*cur, (*post_)[i]);
      relu_in_place((*post_)[i]);
      cur = &(*post_)[i];
    }
    up_.forward(*cur, (*post_)[n]);
    relu_in_place((*post_)[n]);
    logits_.forward((*post_)[n], y);
  }

  static FCNMaskHeadOptions check(const FCNMaskHeadOptions& o) {
    GCNET_CHECK(o.in_channels > 0 && o.conv_out_channels > 0 && o.roi_feat_size > 0 && o.num_classes > 0 &&
                    o.num_convs >= 0,
                "FCNMaskHead: in_channels, conv_out_channels, roi_feat_size and num_classes must be positive and "
                "num_convs >= 0, got ", o.in_channels, ", ", o.conv_out_channels, ", ", o.roi_feat_size, ", ",
                o.num_classes, ", ", o.num_convs);
    GCNET_CHECK(o.num_convs > 0 || o.in_channels == o.conv_out_channels,
                "FCNMaskHead: with num_convs 0 in_channels (", o.in_channels, ") must equal conv_out_channels (",
                o.conv_out_channels, ")");
    return o;
  }
  static Tensor<T>& zeroed(Tensor<T>& t, const Shape& s) {
    t.resize(s);
    fill(t, T(0));
    return t;
  }

  FCNMaskHeadOptions o_;
  std::vector<Conv2d<T>> convs_;
  std::vector<std::string> names_;
  ConvTranspose2d<T> up_;
  Conv2d<T> logits_;
  bool training_ = true;
  ScratchValue<std::vector<Tensor<T>>> post_;  // each conv's output after its ReLU (in place)
  ScratchTensor<T, Cpu> g_, gp_, gx_;
  ScratchValue<bool> inferred_;  // the last forward was the eval one, which kept nothing
};

}  // namespace gcnet
