#pragma once
// ResBasicBlock<Norm>: the BasicBlock of ResNet-18/34 (mmdet / mmseg / torchvision; expansion 1),
// with plugins inserted at run time (models/block_plugin.hpp):
//   conv1 3x3/stride (padding = dilation, dilation) -> bn1 -> relu -> [after_conv1 plugins]
//   -> conv2 3x3 (padding 1) -> bn2 -> [after_conv2 plugins] -> + (downsample(x) or x) -> relu
// The dilation is conv1's only, as mmdet's and mmseg's BasicBlock (their conv2 is a plain 3x3
// with padding 1; torchvision's BasicBlock has no dilation at all). The downsample is
// conv 1x1/stride + norm, present when the stride is not 1 or the channels change.
//
// Plugin positions (mmdet's names; mmdet/mmseg's own BasicBlock takes no plugins):
//   AfterConv1  after conv1's ReLU (planes channels), as in the Bottleneck;
//   AfterConv2  after bn2, before the residual add (planes channels): the end of the residual
//               branch, the Bottleneck's after_conv3 place. GCNet's author puts the GC block
//               there in a BasicBlock (GCNet issue #34). Note that in a Bottleneck AfterConv2
//               is after conv2's ReLU; a BasicBlock has no ReLU at that point.
//   AfterConv3  refused with an Error (a BasicBlock has no conv3; mapping it silently to
//               AfterConv2 would hide a config written for a Bottleneck).
// State-dict names as mmdet/mmseg/torchvision: conv1.weight, bn1.*, conv2.weight, bn2.*,
// downsample.0.weight, downsample.1.*, and the plugins' (context_block.conv_mask.weight, ...).
//
// Structure and memory follow ResBottleneck (models/res_block.hpp): ReLUs in place on the
// norms' outputs, bn2 straight into y when no plugin follows it, a lone global-context plugin
// at AfterConv2 writing into y (models/block_memory.hpp, the direct plugin), the backbone's
// shared gradient and forward scratch, and an eval forward with the BatchNorms folded into
// per-channel scale/shift passes (fused with the ReLU, and bn2 with the residual add and the
// final ReLU); a backward after such a forward replays the block layer by layer first.
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
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/models/block_memory.hpp"
#include "gcnet/models/res_block.hpp"  // ResBlockConfig, the ReLU kernels, detail::apply_folded
#include "gcnet/models/norm_folding.hpp"

namespace gcnet {

template <class Norm>
class ResBasicBlock {
 public:
  using value_type = typename Norm::value_type;
  using backend_type = typename Norm::backend_type;
  using T = value_type;
  using B = backend_type;
  using tensor_type = Tensor<T, B>;
  using norm_type = Norm;
  static constexpr index_t expansion = 1;
  static_assert(Norm::backward_ignores_output,
                "ResBasicBlock runs its ReLUs in place on the norms' outputs: the norm's backward must read only the "
                "shape of its output (declare static constexpr bool backward_ignores_output = true)");

  // `c.width` must be 0 or c.planes, `c.groups` 1 and `c.deformable` false (a BasicBlock has
  // neither grouped nor deformable convolutions, as in mmdet/mmseg/torchvision).
  ResBasicBlock(const ResBlockConfig& c, std::vector<PlacedPlugin<T, B>> plugins = {})
      : c_(checked(c)),
        conv1_(Conv2dOptions{.in = c.inplanes, .out = c.planes, .kernel = 3, .stride = c.stride,
                             .padding = c.dilation, .dilation = c.dilation, .bias = false}),
        bn1_(c.planes),
        conv2_(Conv2dOptions{.in = c.planes, .out = c.planes, .kernel = 3, .padding = 1, .bias = false}),
        bn2_(c.planes),
        plugins_(std::move(plugins)) {
    // mmdet/mmseg ResNet.init_weights: kaiming (fan_out, relu, normal) on the convs; norms are 1/0.
    init::kaiming_init(conv1_);
    init::kaiming_init(conv2_);
    if (c_.downsample) {
      down_conv_.emplace(Conv2dOptions{.in = c_.inplanes, .out = c_.planes, .kernel = 1, .stride = c_.stride,
                                       .bias = false});
      init::kaiming_init(*down_conv_);
      down_bn_.emplace(c_.planes);
    }
    for (std::size_t i = 0; i < plugins_.size(); ++i) {
      GCNET_CHECK(plugins_[i].plugin, describe_config(c_), ": plugin ", i, " is empty");
      check_position(plugins_[i].position);
      for (std::size_t j = 0; j < i; ++j)
        GCNET_CHECK(plugins_[j].plugin->name() != plugins_[i].plugin->name(), describe_config(c_),
                    ": two plugins named '", plugins_[i].plugin->name(), "' (give them different names)");
    }
    direct_ = direct_plugin(plugins_, Position::AfterConv2);
  }

  const ResBlockConfig& config() const { return c_; }

  // Whether a plugin may sit at `p` (see the file comment): AfterConv1 and AfterConv2.
  static bool allows_position(Position p) { return p != Position::AfterConv3; }
  static void check_position(Position p) {
    GCNET_CHECK(allows_position(p), "ResBasicBlock: a BasicBlock has no conv3, so plugin position ",
                position_name(p), " does not exist; use AfterConv2 (after bn2, before the residual add: where ",
                "GCNet puts the GC block in a BasicBlock) or AfterConv1 (after conv1's ReLU)");
  }
  // Channels at a plugin's position (planes at both).
  static index_t plugin_channels(Position p, const ResBlockConfig& c) {
    check_position(p);
    return c.planes;
  }

  Shape setup(const Shape& in) {
    require_nchw(in, describe());
    GCNET_CHECK(in.c() == c_.inplanes, describe(), ": expected input with ", c_.inplanes, " channels, got shape ",
                in.str());
    Shape s = bn1_.setup(conv1_.setup(in));
    s = plugins_setup(Position::AfterConv1, s);
    s = bn2_.setup(conv2_.setup(s));
    s = plugins_setup(Position::AfterConv2, s);
    const Shape sc = c_.downsample ? down_bn_->setup(down_conv_->setup(in)) : in;
    GCNET_CHECK(sc == s, describe(), ": the residual branch gives ", s.str(), " but the shortcut gives ", sc.str(),
                " for input ", in.str());
    return s;
  }

  // Training (or eval with norms that do not fold): forward_layers(), keeping what backward
  // needs. Eval with foldable BatchNorms: forward_fused().
  void forward(const tensor_type& x, tensor_type& y) {
    require_contiguous(x, describe(), "input");
    setup(x.shape());
    // A FrozenBatchNorm2d has no mode, so only infer() folds it: here it would fold in training too.
    if (!std::is_same_v<Norm, FrozenBatchNorm2d<T, B>> && norms_fold()) forward_fused(x, y);
    else forward_layers(x, y);
  }
  // A forward after which no backward is expected: folds every norm that folds in its current
  // mode, keeps nothing of its own (as ResBottleneck::infer). A backward after it replays.
  void infer(const tensor_type& x, tensor_type& y) {
    require_contiguous(x, describe(), "input");
    setup(x.shape());
    release_activations();
    if (norms_fold()) forward_fused(x, y);
    else forward_layers(x, y);
  }

  void backward(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    if (fused_) forward_layers(x, y_again_);  // the fused forward kept no norm outputs: redo it
    backward_layers(x, y, dy, dx);
  }

  // The norms' backward reads their input and dy, never their output's values (only its
  // shape): the first ReLU runs in place on b1_, bn2 writes straight into y when no plugin
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
    const bool after2 = has_plugins(Position::AfterConv2);
    tensor_type& b2 = after2 ? static_cast<tensor_type&>(b2_) : y;
    bn2_.forward(a2_, b2);
    const tensor_type& p2 =
        plugins_forward(Position::AfterConv2, b2, nullptr, direct_ != kNoDirectPlugin ? &y : nullptr);
    const tensor_type* sc = &x;
    if (c_.downsample) {
      down_conv_->forward(x, da_);
      down_bn_->forward(da_, forward_scratch_->db);
      sc = &forward_scratch_->db;
    }
    GCNET_CHECK(p2.shape() == sc->shape(), describe(), ": the residual branch gives ", p2.shape().str(),
                " but the shortcut gives ", sc->shape().str());
    detail::add_relu_to(p2, *sc, y);  // in place on y when bn2 or the direct plugin wrote there
  }

  std::string describe() const {
    std::string s = describe_config(c_);
    s.pop_back();  // ")"
    for (const auto& p : plugins_) s += ", " + p.plugin->describe() + "@" + position_name(p.position);
    return s + ")";
  }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view("conv1"), conv1_);
    f(std::string_view("bn1"), bn1_);
    f(std::string_view("conv2"), conv2_);
    f(std::string_view("bn2"), bn2_);
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
    if (c_.downsample) f(*down_bn_);
  }

  Conv2d<T, B>& conv1() { return conv1_; }
  Conv2d<T, B>& conv2() { return conv2_; }
  Norm& bn1() { return bn1_; }
  Norm& bn2() { return bn2_; }
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
  // Drops what a layer-by-layer forward kept for backward.
  void release_activations() {
    for (tensor_type* t : std::initializer_list<tensor_type*>{&a1_, &b1_, &a2_, &b2_, &da_, &y_again_})
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

  // Multiply-accumulates of the convolutions and plugins for an input of shape `in`, per image
  // (models/counting.hpp's convention: norms, ReLUs and additions not counted).
  double macs(const Shape& in) const {
    const index_t ho = (in.h() - 1) / c_.stride + 1, wo = (in.w() - 1) / c_.stride + 1;
    const double hw = double(ho * wo), planes = double(c_.planes);
    double f = hw * 9.0 * planes * double(c_.inplanes) + hw * 9.0 * planes * planes;
    if (c_.downsample) f += hw * planes * double(c_.inplanes);
    for (const auto& p : plugins_)  // both positions are after the stride
      f += p.plugin->macs(Shape{in.n(), c_.planes, ho, wo}) / double(in.n());
    return f;
  }

 private:
  static std::string describe_config(const ResBlockConfig& c) {
    std::string s = "ResBasicBlock(" + std::to_string(c.inplanes) + ", " + std::to_string(c.planes) +
                    ", stride=" + std::to_string(c.stride);
    if (c.dilation != 1) s += ", dilation=" + std::to_string(c.dilation);
    if (c.downsample) s += ", downsample";
    return s + ")";
  }
  static ResBlockConfig checked(ResBlockConfig c) {
    const std::string who = describe_config(c);
    GCNET_CHECK(c.inplanes > 0 && c.planes > 0, who, ": inplanes and planes must be positive");
    GCNET_CHECK(c.stride > 0 && c.dilation > 0, who, ": stride and dilation must be positive, got ", c.stride,
                " and ", c.dilation);
    GCNET_CHECK(c.groups == 1, who, ": a BasicBlock has no grouped convolutions (groups must be 1, got ", c.groups,
                "; ResNeXt is built of Bottlenecks)");
    GCNET_CHECK(c.width == 0 || c.width == c.planes, who, ": a BasicBlock's width is its planes (", c.planes,
                "), got width ", c.width);
    GCNET_CHECK(!c.deformable, who, ": a BasicBlock has no deformable convolution (as mmdet/mmseg)");
    GCNET_CHECK(c.downsample || (c.stride == 1 && c.inplanes == c.planes), who,
                ": without a downsample the block needs stride 1 and inplanes == planes, got stride ", c.stride,
                " and ", c.inplanes, " -> ", c.planes);
    c.width = c.planes;
    return c;
  }

  // Given `g_out`, the gradient at the output of the plugins at `at`, writes into `g_in` the
  // gradient at their input (g_out and g_in may be the same tensor). `direct_y`: the block's
  // output, given to the direct plugin as its output (only its shape is read).
  void plugins_backward(Position at, const tensor_type& g_out, tensor_type& g_in,
                        const tensor_type* direct_y = nullptr) {
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
      add_into(dx, s.gsum, "ResBasicBlock");
    }
    GCNET_CHECK(*conv2_in_, describe(), ": backward needs a forward of this block first");
    const tensor_type& p1 = **conv2_in_;
    const bool after2 = has_plugins(Position::AfterConv2);
    plugins_backward(Position::AfterConv2, s.gsum, s.g, &y);  // s.g = d b2
    detail::zeros_like(a2_, s.ga);
    bn2_.backward(a2_, after2 ? static_cast<const tensor_type&>(b2_) : y, s.g, s.ga);  // y: bn2's output shape
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

  // Whether every norm folds in its current mode (models/norm_folding.hpp).
  bool norms_fold() const {
    if constexpr (detail::foldable_norm_type<Norm>) {
      auto ok = [](const Norm& n) { return detail::folds_now(n); };
      return ok(bn1_) && ok(bn2_) && (!c_.downsample || ok(*down_bn_));
    } else {
      return false;
    }
  }

  void forward_fused(const tensor_type& x, tensor_type& y) {
    if constexpr (detail::foldable_norm_type<Norm>) {
      BlockForwardScratch<T, B>& e = *forward_scratch_;
      if (e.plugin_out.size() < plugins_.size()) e.plugin_out.resize(plugins_.size());
      tensor_type* pout = e.plugin_out.data();
      // The norms fold in place on their convs' outputs: r1, a2 and da are all the scratch.
      conv1_.forward(x, e.r1);
      detail::apply_folded(bn1_, coef_[0], e.r1, nullptr, true, e.r1);
      const tensor_type& p1 = plugins_forward(Position::AfterConv1, e.r1, pout);
      conv2_.forward(p1, e.a2);
      const tensor_type* sc = &x;
      if (c_.downsample) {
        down_conv_->forward(x, e.da);
        detail::apply_folded(*down_bn_, coef_[2], e.da, nullptr, false, e.da);
        sc = &e.da;
      }
      GCNET_CHECK(e.a2.shape() == sc->shape(), describe(), ": the residual branch gives ", e.a2.shape().str(),
                  " but the shortcut gives ", sc->shape().str(), " for input ", x.shape().str());
      if (!has_plugins(Position::AfterConv2)) {
        detail::apply_folded(bn2_, coef_[1], e.a2, sc, true, y);  // bn2 + shortcut + ReLU in one pass
      } else {
        detail::apply_folded(bn2_, coef_[1], e.a2, nullptr, false, e.a2);
        const tensor_type& p2 = plugins_forward(Position::AfterConv2, e.a2, pout);
        detail::add_relu_to(p2, *sc, y);
      }
      fused_ = true;
    }
  }

  ResBlockConfig c_;
  Conv2d<T, B> conv1_;
  Norm bn1_;
  Conv2d<T, B> conv2_;
  Norm bn2_;
  std::vector<PlacedPlugin<T, B>> plugins_;
  std::optional<Conv2d<T, B>> down_conv_;
  std::optional<Norm> down_bn_;
  std::size_t direct_ = kNoDirectPlugin;  // the plugin writing into the block's output
  // Activations kept for backward: conv outputs a1/a2, relu(bn1) b1, bn2's output b2 (with
  // plugins after conv2), plugin outputs and inputs, the downsample's conv output.
  ScratchTensor<T, B> a1_, b1_, a2_, b2_, da_;
  ScratchValue<std::vector<tensor_type>> plugin_out_;
  ScratchValue<std::vector<const tensor_type*>> plugin_in_;
  ScratchValue<const tensor_type*> conv2_in_;  // r1, or the last AfterConv1 plugin's output
  OwnedScratch<BlockGradScratch<T, B>> scratch_;
  OwnedScratch<BlockForwardScratch<T, B>> forward_scratch_;
  // Eval fusion: per-norm scale/shift (bn1, bn2, downsample), and whether the last forward was
  // fused (backward then replays it layer by layer into y_again_).
  std::array<ScratchTensor<T, B>, 3> coef_{};
  ScratchTensor<T, B> y_again_;
  bool fused_ = false;
};

}  // namespace gcnet
