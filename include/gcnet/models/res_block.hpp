#pragma once
// ResBottleneck<Norm, Conv2>: mmdet's Bottleneck (style 'pytorch': the stride sits on the 3x3
// conv), with plugins inserted at run time (models/block_plugin.hpp):
//   conv1 1x1 -> bn1 -> relu -> [after_conv1 plugins] -> conv2 3x3/stride -> bn2 -> relu
//   -> [after_conv2 plugins] -> conv3 1x1 -> bn3 -> [after_conv3 plugins]
//   -> + (downsample(x) or x) -> relu
// Norm is a type (BatchNorm2d, FrozenBatchNorm2d, SyncBatchNorm2d); conv2 is Conv2d or a
// deformable choice (models/conv2_choice.hpp); everything else, the downsample and the plugins
// included, is a value, so all blocks of every stage of a backbone share one type.
// State-dict names are mmdet's: conv1.weight, bn1.*, conv2.conv_offset.weight,
// context_block.conv_mask.weight, downsample.0.weight, downsample.1.*.
//
// This file is the structure and the training path. Two concerns live beside it:
//   models/res_block_eval_fusion.hpp  the eval forward with BatchNorm folded into the convs'
//                                     outputs (one pass per norm, ReLU and residual fused)
//   models/block_memory.hpp           what is kept, shared between blocks, or written in place
// The ReLUs run in place on the norms' outputs (detail::relu_to below, not the ReLU layer): a
// norm's backward reads its output's shape only (Norm::backward_ignores_output, checked).
// docs/design.md "Reading order" walks a GC block inside this bottleneck, forward and backward.
#include <array>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gcnet/compose/children.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/frozen_batch_norm2d.hpp"
#include "gcnet/models/block_memory.hpp"
#include "gcnet/models/conv2_choice.hpp"

namespace gcnet {

// The runtime shape of one bottleneck.
struct ResBlockConfig {
  index_t inplanes = 0, planes = 0;  // output channels = planes * expansion (4; 1 in a BasicBlock)
  index_t width = 0;                 // conv1/conv2 channels (planes, or the ResNeXt width)
  index_t stride = 1, dilation = 1, groups = 1;
  bool downsample = false;
  bool deformable = false;           // conv2 deformable (needs a Conv2 that can be)
};

namespace detail {
// y = relu(x) and dx = dy * (y > 0), as free functions (device lambdas, no `this`). NaN stays
// NaN (max(NaN, 0) = NaN, as PyTorch): a NaN in a block's input reaches the loss.
template <class T, class B>
void relu_to(const Tensor<T, B>& x, Tensor<T, B>& y) {
  y.resize(x.shape());
  const T* xp = x.data();
  T* yp = y.data();
  for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) { yp[i] = xp[i] < T(0) ? T(0) : xp[i]; });
}
template <class T, class B>
void relu_grad_to(const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
  dx.resize(y.shape());
  const T *yp = y.data(), *g = dy.data();
  T* d = dx.data();
  for_each_index(B{}, y.numel(), [=] GCNET_HD(index_t i) {
    const T gi = g[i];  // unconditional load: the select vectorizes
    d[i] = yp[i] <= T(0) ? T(0) : gi;  // as PyTorch's threshold_backward: a NaN output passes the gradient
  });
}
template <class T, class B>
void zeros_like(const Tensor<T, B>& x, Tensor<T, B>& g) {
  g.resize(x.shape());
  fill(g, T(0));
}
// y = relu(u + v) (NaN propagates).
template <class T, class B>
void add_relu_to(const Tensor<T, B>& u, const Tensor<T, B>& v, Tensor<T, B>& y) {
  y.resize(u.shape());
  const T *up = u.data(), *vp = v.data();
  T* yp = y.data();
  for_each_index(B{}, y.numel(), [=] GCNET_HD(index_t i) {
    const T s = up[i] + vp[i];
    yp[i] = s < T(0) ? T(0) : s;
  });
}
}  // namespace detail

template <class Norm, class Conv2>
class ResBottleneck {
 public:
  using value_type = typename Norm::value_type;
  using backend_type = typename Norm::backend_type;
  using T = value_type;
  using B = backend_type;
  using tensor_type = Tensor<T, B>;
  using norm_type = Norm;
  static constexpr index_t expansion = 4;
  // FrozenBatchNorm2d norms (and a plain 3x3 conv): training keeps only the ReLU outputs
  // (models/res_block_frozen_norms.hpp).
  static constexpr bool frozen_norm_training =
      std::is_same_v<Norm, FrozenBatchNorm2d<T, B>> && std::is_same_v<Conv2, Conv2d<T, B>>;
  static_assert(Norm::backward_ignores_output,
                "ResBottleneck runs its ReLUs in place on the norms' outputs: the norm's backward must read only the "
                "shape of its output (declare static constexpr bool backward_ignores_output = true)");

  ResBottleneck(const ResBlockConfig& c, std::vector<PlacedPlugin<T, B>> plugins = {})
      : c_(c),
        conv1_(Conv2dOptions{.in = c.inplanes, .out = c.width, .kernel = 1, .bias = false}),
        bn1_(c.width),
        conv2_(make_conv2<Conv2>(Conv2dOptions{.in = c.width, .out = c.width, .kernel = 3, .stride = c.stride,
                                               .padding = c.dilation, .dilation = c.dilation, .groups = c.groups,
                                               .bias = false},
                                 c.deformable, "ResBottleneck")),
        bn2_(c.width),
        conv3_(Conv2dOptions{.in = c.width, .out = c.planes * expansion, .kernel = 1, .bias = false}),
        bn3_(c.planes * expansion),
        plugins_(std::move(plugins)) {
    GCNET_CHECK(c.planes > 0 && c.width > 0, describe(), ": planes and width must be positive");
    // mmdet ResNet.init_weights: kaiming (fan_out, relu, normal) on the convs; norms are 1/0 already.
    init::kaiming_init(conv1_);
    init::kaiming_init(conv3_);
    if (c.downsample) {
      down_conv_.emplace(Conv2dOptions{.in = c.inplanes, .out = c.planes * expansion, .kernel = 1,
                                       .stride = c.stride, .bias = false});
      init::kaiming_init(*down_conv_);
      down_bn_.emplace(c.planes * expansion);
    }
    for (std::size_t i = 0; i < plugins_.size(); ++i) {
      GCNET_CHECK(plugins_[i].plugin, describe(), ": plugin ", i, " is empty");
      for (std::size_t j = 0; j < i; ++j)
        GCNET_CHECK(plugins_[j].plugin->name() != plugins_[i].plugin->name(), describe(), ": two plugins named '",
                    plugins_[i].plugin->name(), "' (give them different names)");
    }
    direct_ = direct_plugin(plugins_);
  }

  const ResBlockConfig& config() const { return c_; }
  // Output channels of a plugin's position.
  static index_t plugin_channels(Position p, const ResBlockConfig& c) {
    return p == Position::AfterConv3 ? c.planes * expansion : c.width;
  }

  Shape setup(const Shape& in) {
    require_nchw(in, describe());
    GCNET_CHECK(in.c() == c_.inplanes, describe(), ": expected input with ", c_.inplanes, " channels, got shape ",
                in.str());
    Shape s = bn1_.setup(conv1_.setup(in));
    s = plugins_setup(Position::AfterConv1, s);
    s = bn2_.setup(conv2_.setup(s));
    s = plugins_setup(Position::AfterConv2, s);
    s = bn3_.setup(conv3_.setup(s));
    s = plugins_setup(Position::AfterConv3, s);
    const Shape sc = c_.downsample ? down_bn_->setup(down_conv_->setup(in)) : in;
    GCNET_CHECK(sc == s, describe(), ": the residual branch gives ", s.str(), " but the shortcut gives ", sc.str(),
                " for input ", in.str());
    return s;
  }

  // Training (or eval with norms that do not fold): forward_layers(), keeping what backward
  // needs. Eval with foldable BatchNorms: forward_fused(). (Defined in res_block_eval_fusion.hpp.)
  void forward(const tensor_type& x, tensor_type& y);
  // A forward after which no backward is expected (the backbone's eval forward, its frozen
  // stages): folds every norm that folds in its current mode, FrozenBatchNorm2d included, keeps
  // nothing of its own, and drops what an earlier forward kept. A backward after it replays.
  void infer(const tensor_type& x, tensor_type& y);

  void backward(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    if constexpr (frozen_norm_training) {
      if (fused_) forward_frozen_norms(x, y_again_);  // infer() kept nothing: redo it
      backward_frozen_norms(x, y, dy, dx);
    } else {
      if (fused_) forward_layers(x, y_again_);  // the fused forward kept no norm outputs: redo it
      backward_layers(x, y, dy, dx);
    }
  }

  // Memory: the norms' backward reads their input and dy, never their output's values (only
  // its shape), so the ReLUs run in place on b1_/b2_, bn3 writes straight into y when no plugin
  // follows it, and the shortcut's norm output (read only by the add) goes to shared scratch.
  void forward_layers(const tensor_type& x, tensor_type& y) {
    fused_ = false;
    size_plugin_slots();
    conv1_.forward(x, a1_);
    bn1_.forward(a1_, b1_);
    detail::relu_to(b1_, b1_);
    const tensor_type& p1 = plugins_forward(Position::AfterConv1, b1_);
    *conv2_in_ = &p1;
    conv2_.forward(p1, a2_);
    bn2_.forward(a2_, b2_);
    detail::relu_to(b2_, b2_);
    const tensor_type& p2 = plugins_forward(Position::AfterConv2, b2_);
    *conv3_in_ = &p2;
    conv3_.forward(p2, a3_);
    const bool after3 = has_plugins(Position::AfterConv3);
    tensor_type& b3 = after3 ? static_cast<tensor_type&>(b3_) : y;
    bn3_.forward(a3_, b3);
    const tensor_type& p3 = plugins_forward(Position::AfterConv3, b3, nullptr, direct_ != kNoDirectPlugin ? &y : nullptr);
    const tensor_type* sc = &x;
    if (c_.downsample) {
      down_conv_->forward(x, da_);
      down_bn_->forward(da_, forward_scratch_->db);
      sc = &forward_scratch_->db;
    }
    GCNET_CHECK(p3.shape() == sc->shape(), describe(), ": the residual branch gives ", p3.shape().str(),
                " but the shortcut gives ", sc->shape().str());
    detail::add_relu_to(p3, *sc, y);  // in place on y when bn3 or the direct plugin wrote there
  }

  std::string describe() const {
    std::string s = "ResBottleneck(" + std::to_string(c_.inplanes) + ", " + std::to_string(c_.planes) +
                    ", stride=" + std::to_string(c_.stride);
    if (c_.dilation != 1) s += ", dilation=" + std::to_string(c_.dilation);
    if (c_.groups != 1) s += ", groups=" + std::to_string(c_.groups) + ", width=" + std::to_string(c_.width);
    if (c_.deformable) s += ", deformable";
    if (c_.downsample) s += ", downsample";
    for (const auto& p : plugins_) s += ", " + p.plugin->describe() + "@" + position_name(p.position);
    return s + ")";
  }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view("conv1"), conv1_);
    f(std::string_view("bn1"), bn1_);
    f(std::string_view("conv2"), conv2_);
    f(std::string_view("bn2"), bn2_);
    f(std::string_view("conv3"), conv3_);
    f(std::string_view("bn3"), bn3_);
    for (auto& p : plugins_) f(std::string_view(p.plugin->name()), *p.plugin);
    if (c_.downsample) {
      f(std::string_view("downsample.0"), *down_conv_);
      f(std::string_view("downsample.1"), *down_bn_);
    }
  }
  GCNET_COMBINATOR_HOOKS(value_type, backend_type)

  // norm_eval: the block's norms and those inside its plugins.
  void norms_to_eval() {
    for_each_norm([](auto& n) { gcnet::set_training(n, false); });
    for (auto& p : plugins_) p.plugin->set_norms_eval();
  }
  template <class F>
  void for_each_norm(F&& f) {
    f(bn1_);
    f(bn2_);
    f(bn3_);
    if (c_.downsample) f(*down_bn_);
  }

  Conv2d<T, B>& conv1() { return conv1_; }
  Conv2& conv2() { return conv2_; }
  Conv2d<T, B>& conv3() { return conv3_; }
  Norm& bn1() { return bn1_; }
  Norm& bn2() { return bn2_; }
  Norm& bn3() { return bn3_; }
  Conv2d<T, B>* downsample_conv() { return down_conv_ ? &*down_conv_ : nullptr; }
  Norm* downsample_norm() { return down_bn_ ? &*down_bn_ : nullptr; }
  std::vector<PlacedPlugin<T, B>>& plugins() { return plugins_; }
  bool has_plugins(Position at) const {
    for (const auto& p : plugins_)
      if (p.position == at) return true;
    return false;
  }

  // Memory planning (block_memory.hpp): the backbone shares these between its blocks.
  OwnedScratch<BlockGradScratch<T, B>>& grad_scratch() { return scratch_; }
  OwnedScratch<BlockForwardScratch<T, B>>& forward_scratch() { return forward_scratch_; }
  // Drops what a layer-by-layer forward kept for backward (before an eval forward, which would
  // otherwise leave it resident).
  void release_activations() {
    for (tensor_type* t : std::initializer_list<tensor_type*>{&a1_, &b1_, &a2_, &b2_, &a3_, &b3_, &da_, &y_again_})
      *t = tensor_type();
    for (tensor_type& t : *plugin_out_) t = tensor_type();
  }

  // Runs the plugins at `at` in order from `in`; returns the last output (or `in`). Outputs go
  // to out[i] (default: the block's own plugin outputs; the fused eval forward passes shared
  // scratch). With `direct`, the direct plugin writes there instead.
  const tensor_type& plugins_forward(Position at, const tensor_type& in, tensor_type* out = nullptr,
                                     tensor_type* direct = nullptr) {
    size_plugin_slots();
    if (!out) out = plugin_out_->data();
    const tensor_type* cur = &in;
    for (std::size_t i = 0; i < plugins_.size(); ++i) {
      if (plugins_[i].position != at) continue;
      (*plugin_in_)[i] = cur;
      tensor_type& dst = direct && i == direct_ ? *direct : out[i];
      plugins_[i].plugin->forward(*cur, dst);
      cur = &dst;
    }
    return *cur;
  }

  // Multiply-accumulates of the convolutions and plugins for an input of shape `in` (norms,
  // ReLUs and additions not counted, as the usual "FLOPs" of ResNets).
  double macs(const Shape& in) const {
    const index_t ho = (in.h() - 1) / c_.stride + 1, wo = (in.w() - 1) / c_.stride + 1;
    const double hw_in = double(in.h() * in.w()), hw = double(ho * wo), out = double(c_.planes * expansion);
    double f = hw_in * c_.width * c_.inplanes + hw * 9.0 * c_.width * (c_.width / c_.groups) + hw * out * c_.width;
    if (c_.downsample) f += hw * out * c_.inplanes;
    for (const auto& p : plugins_) {
      const index_t ch = plugin_channels(p.position, c_);
      const bool before_stride = p.position == Position::AfterConv1;
      f += p.plugin->macs(Shape{in.n(), ch, before_stride ? in.h() : ho, before_stride ? in.w() : wo}) /
           double(in.n());
    }
    return f;
  }

 private:
  // Given `g_out`, the gradient at the output of the plugins at `at`, writes into `g_in` the
  // gradient at their input (g_out and g_in may be the same tensor). `direct_y`: the block's
  // output, given to the direct plugin as its output (only its shape is read).
  void plugins_backward(Position at, const tensor_type& g_out, tensor_type& g_in, const tensor_type* direct_y = nullptr) {
    if (&g_out != &g_in) copy(g_out, g_in);
    for (std::size_t i = plugins_.size(); i-- > 0;) {
      if (plugins_[i].position != at) continue;
      const tensor_type& in = *(*plugin_in_)[i];
      detail::zeros_like(in, scratch_->plugin_g);
      const tensor_type& out = i == direct_ && direct_y ? *direct_y : (*plugin_out_)[i];
      plugins_[i].plugin->backward(in, out, g_in, scratch_->plugin_g);
      std::swap(g_in, scratch_->plugin_g);
    }
  }

  void backward_layers(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    BlockGradScratch<T, B>& s = *scratch_;
    detail::relu_grad_to(y, dy, s.gsum);  // gradient at the residual sum
    if (c_.downsample) {
      detail::zeros_like(da_, s.gda);
      down_bn_->backward(da_, da_, s.gsum, s.gda);  // da_: the output's shape (not kept)
      down_conv_->backward(x, da_, s.gda, dx);
    } else {
      add_into(dx, s.gsum, "ResBottleneck");
    }
    // Main branch, in reverse; s.g holds the gradient at the current point.
    GCNET_CHECK(*conv2_in_ && *conv3_in_, describe(), ": backward needs a forward of this block first");
    const tensor_type& p2 = **conv3_in_;
    const tensor_type& p1 = **conv2_in_;
    const bool after3 = has_plugins(Position::AfterConv3);
    plugins_backward(Position::AfterConv3, s.gsum, s.g, &y);  // s.g = d b3
    detail::zeros_like(a3_, s.ga);
    bn3_.backward(a3_, after3 ? static_cast<const tensor_type&>(b3_) : y, s.g, s.ga);  // y: bn3's output shape
    detail::zeros_like(p2, s.g);
    conv3_.backward(p2, a3_, s.ga, s.g);
    plugins_backward(Position::AfterConv2, s.g, s.g);  // s.g = d r2
    detail::relu_grad_to(b2_, s.g, s.gb);
    detail::zeros_like(a2_, s.ga);
    bn2_.backward(a2_, b2_, s.gb, s.ga);
    detail::zeros_like(p1, s.g);
    conv2_.backward(p1, a2_, s.ga, s.g);
    plugins_backward(Position::AfterConv1, s.g, s.g);  // s.g = d r1
    detail::relu_grad_to(b1_, s.g, s.gb);
    detail::zeros_like(a1_, s.ga);
    bn1_.backward(a1_, b1_, s.gb, s.ga);
    conv1_.backward(x, a1_, s.ga, dx);
  }

  void size_plugin_slots() {
    if (plugin_out_->size() != plugins_.size()) plugin_out_->resize(plugins_.size());
    if (plugin_in_->size() != plugins_.size()) plugin_in_->resize(plugins_.size());
  }

  Shape plugins_setup(Position at, Shape s) {
    for (auto& p : plugins_)
      if (p.position == at) s = p.plugin->setup(s);
    return s;
  }

  // Whether every norm of the block folds in its current mode (res_block_eval_fusion.hpp).
  bool norms_fold() const;
  // Training with frozen norms (res_block_frozen_norms.hpp).
  void forward_frozen_norms(const tensor_type& x, tensor_type& y);
  void backward_frozen_norms(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx);
  void forward_fused(const tensor_type& x, tensor_type& y);

  ResBlockConfig c_;
  Conv2d<T, B> conv1_;
  Norm bn1_;
  Conv2 conv2_;
  Norm bn2_;
  Conv2d<T, B> conv3_;
  Norm bn3_;
  std::vector<PlacedPlugin<T, B>> plugins_;
  std::optional<Conv2d<T, B>> down_conv_;
  std::optional<Norm> down_bn_;
  std::size_t direct_ = kNoDirectPlugin;  // the plugin writing into the block's output
  // Activations kept for backward: conv outputs a*, ReLU(norm) outputs b1/b2, bn3's output b3
  // (with plugins after conv3), plugin outputs and inputs, the downsample's conv output.
  ScratchTensor<T, B> a1_, b1_, a2_, b2_, a3_, b3_, da_;
  ScratchValue<std::vector<tensor_type>> plugin_out_;
  ScratchValue<std::vector<const tensor_type*>> plugin_in_;
  // conv2's and conv3's inputs (r1 / r2, or the last plugin's output at that position).
  ScratchValue<const tensor_type*> conv2_in_, conv3_in_;
  OwnedScratch<BlockGradScratch<T, B>> scratch_;
  OwnedScratch<BlockForwardScratch<T, B>> forward_scratch_;
  // Eval fusion: per-norm scale/shift (bn1, bn2, bn3, downsample), and whether the last forward
  // was fused (backward then replays it layer by layer into y_again_).
  std::array<ScratchTensor<T, B>, 4> coef_{};
  ScratchTensor<T, B> y_again_;
  bool fused_ = false;
};

}  // namespace gcnet

#include "gcnet/models/res_block_eval_fusion.hpp"
#include "gcnet/models/res_block_frozen_norms.hpp"
