#pragma once
// ResBottleneck<Norm, Conv2, Placed...>: mmdet's Bottleneck (style 'pytorch': stride on the
// 3x3 conv) with a chosen norm type, a chosen conv2 type (Conv2d, or DCN / DCNv2 packs) and
// plugins (resnet::Placed<Spec, Position>) after conv1 / conv2 / conv3:
//   conv1 1x1 -> bn1 -> relu -> [after_conv1] -> conv2 3x3 -> bn2 -> relu -> [after_conv2]
//   -> conv3 1x1 -> bn3 -> [after_conv3] -> + downsample(x) or x -> relu
// The downsample (1x1/stride conv + norm) is a runtime choice, so all blocks of a stage share
// one type. State-dict names are mmdet's: conv1.weight, bn1.*, conv2.conv_offset.weight,
// context_block.conv_mask.weight, downsample.0.weight, downsample.1.*.
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include "gcnet/core/layer.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/frozen_batch_norm2d.hpp"
#include "gcnet/models/plugins.hpp"

namespace gcnet {

using resnet::Position;

// The runtime shape of one bottleneck.
struct ResBlockConfig {
  index_t inplanes = 0, planes = 0;  // output channels = planes * 4
  index_t width = 0;                 // conv1/conv2 channels (planes, or the ResNeXt width)
  index_t stride = 1, dilation = 1, groups = 1;
  bool downsample = false;
};

namespace detail {
// y = max(x, 0) and dx = dy * (y > 0), as free functions (device lambdas, no `this`).
template <class T, class B>
void relu_to(const Tensor<T, B>& x, Tensor<T, B>& y) {
  y.resize(x.shape());
  const T* xp = x.data();
  T* yp = y.data();
  for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) { yp[i] = xp[i] > T(0) ? xp[i] : T(0); });
}
template <class T, class B>
void relu_grad_to(const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
  dx.resize(y.shape());
  const T *yp = y.data(), *g = dy.data();
  T* d = dx.data();
  for_each_index(B{}, y.numel(), [=] GCNET_HD(index_t i) {
    const T gi = g[i];  // unconditional load: the select vectorizes
    d[i] = yp[i] > T(0) ? gi : T(0);
  });
}
template <class T, class B>
void zeros_like(const Tensor<T, B>& x, Tensor<T, B>& g) {
  g.resize(x.shape());
  fill(g, T(0));
}

// y = x * scale[c] + shift[c] (+ res) (then ReLU) over NCHW planes: an eval-mode BatchNorm2d
// fused with what follows it, one pass instead of two or three.
template <class T, class B>
void affine_channels(B, const T* x, const T* scale, const T* shift, const T* res, bool relu, T* y, index_t n,
                     index_t c, index_t hw) {
  for_each_index_weighted(B{}, n * c, hw, [=] GCNET_HD(index_t p) {
    const T s = scale[p % c], t = shift[p % c];
    const T* xp = x + p * hw;
    const T* rp = res ? res + p * hw : nullptr;
    T* yp = y + p * hw;
    for (index_t j = 0; j < hw; ++j) {
      T v = xp[j] * s + t;
      if (rp) v += rp[j];
      yp[j] = relu && v < T(0) ? T(0) : v;
    }
  });
}

// conv2 options for Conv2d or a deformable pack (same fields, plus deform_groups).
template <class Conv>
Conv make_conv2(const ResBlockConfig& c) {
  if constexpr (std::is_constructible_v<Conv, Conv2dOptions>) {
    return Conv(Conv2dOptions{.in = c.width, .out = c.width, .kernel = 3, .stride = c.stride,
                              .padding = c.dilation, .dilation = c.dilation, .groups = c.groups, .bias = false});
  } else {
#if GCNET_HAS_DEFORM_CONV
    return Conv(DeformConv2dOptions{.in = c.width, .out = c.width, .kernel = 3, .stride = c.stride, .padding = c.dilation,
                  .dilation = c.dilation, .groups = c.groups, .deform_groups = 1, .bias = false});
#else
    static_assert(sizeof(Conv) == 0, "conv2 type takes neither Conv2dOptions nor DeformConv2dOptions");
#endif
  }
}
}  // namespace detail

// Plugins whose backward reads x and dy but not the values of their output y (the
// global-context family: GC, SE): placed alone after conv3, such a plugin writes straight
// into the block's output, the residual add and ReLU run there in place, and no copy of the
// plugin's output is kept for backward (training memory).
template <fusion::Fusion F, class Tr, Scalar T, Backend B>
std::true_type backward_ignores_output_probe(const blocks::GlobalContext<F, Tr, T, B>*);
std::false_type backward_ignores_output_probe(const void*);
template <class P>
inline constexpr bool backward_ignores_output = decltype(backward_ignores_output_probe(static_cast<P*>(nullptr)))::value;

// Gradient scratch of a bottleneck's backward; the blocks of a backbone share one (backward
// runs one block at a time), so training keeps one set of gradient buffers, not one per block.
template <class T, class B>
struct BlockGradScratch {
  Tensor<T, B> gsum, gda, g, ga, gb, plugin_g;
};

// Activation scratch of the fused eval forward, shared by all blocks of a backbone the same
// way: an eval forward keeps nothing between blocks but each block's output, so the backbone
// holds one set of intermediate activations instead of one per block (peak memory).
template <class T, class B>
struct BlockEvalScratch {
  Tensor<T, B> a1, r1, a2, r2, a3, b3, da, db;
  std::vector<Tensor<T, B>> plugin_out;  // one per plugin of the block with the most
};

template <class Norm, class Conv2, class... Placed>
class ResBottleneck {
 public:
  using value_type = typename Norm::value_type;
  using backend_type = typename Norm::backend_type;
  using T = value_type;
  using B = backend_type;
  using tensor_type = Tensor<T, B>;
  static constexpr index_t expansion = 4;
  static constexpr std::size_t kPlugins = sizeof...(Placed);

  explicit ResBottleneck(const ResBlockConfig& c)
      : c_(c),
        conv1_(Conv2dOptions{.in = c.inplanes, .out = c.width, .kernel = 1, .bias = false}),
        bn1_(c.width),
        conv2_(detail::make_conv2<Conv2>(c)),
        bn2_(c.width),
        conv3_(Conv2dOptions{.in = c.width, .out = c.planes * expansion, .kernel = 1, .bias = false}),
        bn3_(c.planes * expansion),
        plugins_(Placed::spec::template make<T, B>(plugin_channels(Placed::position, c))...) {
    GCNET_CHECK(c.planes > 0 && c.width > 0, describe(), ": planes and width must be positive");
    // mmdet ResNet.init_weights: kaiming (fan_out, relu, normal) on the convs; norms are 1/0 already.
    init::kaiming_init(conv1_);
    if constexpr (init::HasWeight<Conv2>) init::kaiming_init(conv2_);
    init::kaiming_init(conv3_);
    if (c.downsample) {
      down_conv_.emplace(Conv2dOptions{.in = c.inplanes, .out = c.planes * expansion, .kernel = 1,
                                       .stride = c.stride, .bias = false});
      init::kaiming_init(*down_conv_);
      down_bn_.emplace(c.planes * expansion);
    }
  }

  const ResBlockConfig& config() const { return c_; }

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

  void forward(const tensor_type& x, tensor_type& y) {
    require_contiguous(x, describe(), "input");
    if constexpr (kFusable) {
      if (eval_norms()) return forward_fused(x, y);
    }
    forward_layers(x, y);
  }

  void backward(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    if (fused_) {  // the fused forward kept no norm outputs: redo the forward layer by layer
      forward_layers(x, y_again_);
    }
    backward_layers(x, y, dy, dx);
  }

 private:
  // Eval-mode BatchNorm2d with affine and running statistics folds into per-channel affines.
  static constexpr bool kFusable = std::is_same_v<Norm, BatchNorm2d<T, B>>;
  bool eval_norms() const {
    if constexpr (kFusable) {
      auto ok = [](const Norm& n) {
        return !n.training() && n.options().affine && n.options().track_running_stats;
      };
      return ok(bn1_) && ok(bn2_) && ok(bn3_) && (!c_.downsample || ok(*down_bn_));
    } else {
      return false;
    }
  }
  // scale/shift of `bn` into coef[0..C) and coef[C..2C).
  static void norm_coefficients(const Norm& bn, tensor_type& coef) {
    const index_t C = bn.channels();
    coef.resize(Shape{2 * C});
    detail::frozen_bn_coefficients(B{}, C, bn.eps(), bn.weight()->value.data(), bn.bias()->value.data(),
                                   bn.running_mean().data(), bn.running_var().data(), coef.data(), coef.data() + C);
  }
  void apply_norm(const Norm& bn, tensor_type& coef, const tensor_type& x, const tensor_type* res, bool relu,
                  tensor_type& y) {
    norm_coefficients(bn, coef);
    y.resize(x.shape());
    const index_t C = x.size(1);
    detail::affine_channels(B{}, x.data(), coef.data(), coef.data() + C, res ? res->data() : nullptr, relu, y.data(),
                            x.size(0), C, x.size(2) * x.size(3));
  }
  static constexpr bool kAfterConv3Plugins = ((Placed::position == Position::AfterConv3) || ...);
  // The one plugin after conv3 writes into the block's output (see backward_ignores_output).
  static constexpr std::size_t kNoPlugin = std::size_t(-1);
  static constexpr std::size_t kDirectPlugin = [] {
    std::size_t at = kNoPlugin, count = 0;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((std::tuple_element_t<I, std::tuple<Placed...>>::position == Position::AfterConv3 ? (at = I, ++count) : 0), ...);
    }(std::index_sequence_for<Placed...>{});
    if (count != 1) return kNoPlugin;
    bool ignores = false;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((I == at ? (ignores = backward_ignores_output<
                       typename std::tuple_element_t<I, std::tuple<Placed...>>::spec::template type<T, B>>,
                   0)
                : 0),
       ...);
    }(std::index_sequence_for<Placed...>{});
    return ignores ? at : kNoPlugin;
  }();

  void forward_fused(const tensor_type& x, tensor_type& y) {
    BlockEvalScratch<T, B>& e = *eval_;
    if (e.plugin_out.size() < kPlugins) e.plugin_out.resize(kPlugins);
    tensor_type* pout = e.plugin_out.data();
    conv1_.forward(x, e.a1);
    apply_norm(bn1_, coef_[0], e.a1, nullptr, true, e.r1);
    const tensor_type& p1 = plugins_forward(Position::AfterConv1, e.r1, pout);
    conv2_.forward(p1, e.a2);
    apply_norm(bn2_, coef_[1], e.a2, nullptr, true, e.r2);
    const tensor_type& p2 = plugins_forward(Position::AfterConv2, e.r2, pout);
    conv3_.forward(p2, e.a3);
    const tensor_type* sc = &x;
    if (c_.downsample) {
      down_conv_->forward(x, e.da);
      apply_norm(*down_bn_, coef_[3], e.da, nullptr, false, e.db);
      sc = &e.db;
    }
    GCNET_CHECK(e.a3.shape() == sc->shape(), describe(), ": the residual branch gives ", e.a3.shape().str(),
                " but the shortcut gives ", sc->shape().str(), " for input ", x.shape().str());
    if constexpr (!kAfterConv3Plugins) {
      apply_norm(bn3_, coef_[2], e.a3, sc, true, y);  // bn3 + shortcut + ReLU in one pass
    } else {
      apply_norm(bn3_, coef_[2], e.a3, nullptr, false, e.b3);
      const tensor_type& p3 = plugins_forward(Position::AfterConv3, e.b3, pout);
      add_relu(p3, *sc, y);
    }
    fused_ = true;
  }

  void add_relu(const tensor_type& p3, const tensor_type& sc, tensor_type& y) {
    GCNET_CHECK(p3.shape() == sc.shape(), describe(), ": the residual branch gives ", p3.shape().str(),
                " but the shortcut gives ", sc.shape().str());
    y.resize(p3.shape());
    const T *u = p3.data(), *v = sc.data();
    T* yp = y.data();
    for_each_index(B{}, y.numel(), [=] GCNET_HD(index_t i) {
      const T s = u[i] + v[i];
      yp[i] = s > T(0) ? s : T(0);
    });
  }

  void forward_layers(const tensor_type& x, tensor_type& y) {
    fused_ = false;
    // Memory: the norms' backward reads their input and dy, never their output's values (only
    // its shape), so the ReLUs run in place on b1_/b2_, bn3 writes straight into y when no
    // plugin follows it, and the shortcut's norm output (read only by the add) goes to the
    // shared scratch.
    conv1_.forward(x, a1_);
    bn1_.forward(a1_, b1_);
    detail::relu_to(b1_, b1_);
    const tensor_type& p1 = plugins_forward(Position::AfterConv1, b1_);
    conv2_in_ = &p1;
    conv2_.forward(p1, a2_);
    bn2_.forward(a2_, b2_);
    detail::relu_to(b2_, b2_);
    const tensor_type& p2 = plugins_forward(Position::AfterConv2, b2_);
    conv3_in_ = &p2;
    conv3_.forward(p2, a3_);
    tensor_type& b3 = kAfterConv3Plugins ? b3_ : y;
    bn3_.forward(a3_, b3);
    const tensor_type& p3 = plugins_forward(Position::AfterConv3, b3, nullptr, kDirectPlugin != kNoPlugin ? &y : nullptr);
    const tensor_type* sc = &x;
    if (c_.downsample) {
      down_conv_->forward(x, da_);
      down_bn_->forward(da_, eval_->db);
      sc = &eval_->db;
    }
    add_relu(p3, *sc, y);  // in place on y when bn3 or the direct plugin wrote there
  }

  void backward_layers(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    detail::relu_grad_to(y, dy, scratch_->gsum);  // gradient at the residual sum
    if (c_.downsample) {
      detail::zeros_like(da_, scratch_->gda);
      down_bn_->backward(da_, da_, scratch_->gsum, scratch_->gda);  // da_: the output's shape (not kept)
      down_conv_->backward(x, da_, scratch_->gda, dx);
    } else {
      add_into(dx, scratch_->gsum, "ResBottleneck");
    }
    // Main branch, in reverse; scratch_->g holds the gradient at the current point.
    const tensor_type& p2 = *conv3_in_;
    const tensor_type& p1 = *conv2_in_;
    plugins_backward(Position::AfterConv3, scratch_->gsum, scratch_->g, &y);  // scratch_->g = d b3
    detail::zeros_like(a3_, scratch_->ga);
    bn3_.backward(a3_, kAfterConv3Plugins ? b3_ : y, scratch_->g, scratch_->ga);  // y: bn3's output shape
    detail::zeros_like(p2, scratch_->g);
    conv3_.backward(p2, a3_, scratch_->ga, scratch_->g);
    plugins_backward(Position::AfterConv2, scratch_->g, scratch_->g);  // scratch_->g = d r2
    detail::relu_grad_to(b2_, scratch_->g, scratch_->gb);
    detail::zeros_like(a2_, scratch_->ga);
    bn2_.backward(a2_, b2_, scratch_->gb, scratch_->ga);
    detail::zeros_like(p1, scratch_->g);
    conv2_.backward(p1, a2_, scratch_->ga, scratch_->g);
    plugins_backward(Position::AfterConv1, scratch_->g, scratch_->g);  // scratch_->g = d r1
    detail::relu_grad_to(b1_, scratch_->g, scratch_->gb);
    detail::zeros_like(a1_, scratch_->ga);
    bn1_.backward(a1_, b1_, scratch_->gb, scratch_->ga);
    conv1_.backward(x, a1_, scratch_->ga, dx);
  }

 public:
  std::string describe() const {
    std::string s = "ResBottleneck(" + std::to_string(c_.inplanes) + ", " + std::to_string(c_.planes) +
                    ", stride=" + std::to_string(c_.stride);
    if (c_.dilation != 1) s += ", dilation=" + std::to_string(c_.dilation);
    if (c_.groups != 1) s += ", groups=" + std::to_string(c_.groups) + ", width=" + std::to_string(c_.width);
    if (c_.downsample) s += ", downsample";
    ((s += std::string(", ") + Placed::spec::name + "@" + position_name(Placed::position)), ...);
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
    each_plugin([&]<std::size_t I>(auto& p) { f(std::string_view(plugin_name<I>()), p); });
    if (c_.downsample) {
      f(std::string_view("downsample.0"), *down_conv_);
      f(std::string_view("downsample.1"), *down_bn_);
    }
  }
  GCNET_COMBINATOR_HOOKS(value_type, backend_type)

  // The norm layers (norm_eval switches them to eval).
  template <class F>
  void for_each_norm(F&& f) {
    f(bn1_);
    f(bn2_);
    f(bn3_);
    if (c_.downsample) f(*down_bn_);
  }
  Conv2& conv2() { return conv2_; }
  // Shares the backward's gradient scratch with other blocks (see BlockGradScratch).
  void share_scratch(std::shared_ptr<BlockGradScratch<T, B>> s) { scratch_ = std::move(s); }
  // Shares the fused eval forward's activation scratch with other blocks (see BlockEvalScratch).
  // Drops the activations a layer-by-layer forward kept for backward: the backbone calls it
  // before an eval forward (no backward expected), which would otherwise keep them resident.
  // Only when the next forward is the fused one (other blocks would just reallocate them).
  void release_activations() {
    if (!eval_norms()) return;
    for (tensor_type* t : {&a1_, &b1_, &a2_, &b2_, &a3_, &b3_, &da_, &y_again_}) *t = tensor_type();
    for (tensor_type& t : plugin_out_) t = tensor_type();
  }
  void share_eval_scratch(std::shared_ptr<BlockEvalScratch<T, B>> s) { eval_ = std::move(s); }

  // Multiply-accumulates of the convolutions and plugins for an input of shape `in` (norms,
  // ReLUs and additions not counted, as the usual "FLOPs" of ResNets).
  double flops(const Shape& in) const {
    const index_t ho = (in.h() + 2 * c_.dilation - 2 * c_.dilation - 1) / c_.stride + 1;
    const index_t wo = (in.w() + 2 * c_.dilation - 2 * c_.dilation - 1) / c_.stride + 1;
    const double hw_in = double(in.h() * in.w()), hw = double(ho * wo), out = double(c_.planes * expansion);
    double f = hw_in * c_.width * c_.inplanes + hw * 9.0 * c_.width * (c_.width / c_.groups) + hw * out * c_.width;
    if (c_.downsample) f += hw * out * c_.inplanes;
    ((f += Placed::position == Position::AfterConv1
               ? Placed::spec::flops(c_.width, in.h(), in.w())
               : Placed::spec::flops(Placed::position == Position::AfterConv2 ? c_.width : c_.planes * expansion, ho, wo)),
     ...);
    return f;
  }
  template <std::size_t I>
  auto& plugin() { return std::get<I>(plugins_); }

 private:
  static index_t plugin_channels(Position p, const ResBlockConfig& c) {
    return p == Position::AfterConv3 ? c.planes * expansion : c.width;
  }
  static const char* position_name(Position p) {
    return p == Position::AfterConv1 ? "after_conv1" : p == Position::AfterConv2 ? "after_conv2" : "after_conv3";
  }
  template <std::size_t I>
  static const char* plugin_name() {
    return std::tuple_element_t<I, std::tuple<Placed...>>::spec::name;
  }
  template <std::size_t I>
  static constexpr Position position_of() {
    return std::tuple_element_t<I, std::tuple<Placed...>>::position;
  }

  template <class F>
  void each_plugin(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<I>(std::get<I>(plugins_)), ...);
    }(std::index_sequence_for<Placed...>{});
  }

  Shape plugins_setup(Position at, Shape s) {
    each_plugin([&]<std::size_t I>(auto& p) {
      if (position_of<I>() == at) s = p.setup(s);
    });
    return s;
  }
  // Runs the plugins at `at` in order from `in`; returns the last output (or `in`).
  // Outputs go to out[I] (default: the block's own plugin_out_; the fused eval forward passes
  // the shared scratch).
  // With `direct`, the direct plugin (kDirectPlugin) writes there instead.
  const tensor_type& plugins_forward(Position at, const tensor_type& in, tensor_type* out = nullptr,
                                     tensor_type* direct = nullptr) {
    if (!out) out = plugin_out_.data();
    const tensor_type* cur = &in;
    each_plugin([&]<std::size_t I>(auto& p) {
      if (position_of<I>() != at) return;
      plugin_in_[I] = cur;
      tensor_type& dst = direct && I == kDirectPlugin ? *direct : out[I];
      p.forward(*cur, dst);
      cur = &dst;
    });
    return *cur;
  }
  // Given `g_out`, the gradient at the output of the plugins at `at`, writes into `g_in` the
  // gradient at their input (g_out and g_in may be the same tensor).
  // `direct_y`: the block's output, given to the direct plugin as its output (its shape).
  void plugins_backward(Position at, const tensor_type& g_out, tensor_type& g_in,
                        const tensor_type* direct_y = nullptr) {
    bool any = false;
    if (&g_out != &g_in) copy(g_out, g_in);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      // Reverse order: the last plugin first.
      ((backward_plugin<sizeof...(I) - 1 - I>(at, g_in, any, direct_y)), ...);
    }(std::index_sequence_for<Placed...>{});
    (void)any;
  }
  template <std::size_t I>
  void backward_plugin(Position at, tensor_type& g, bool& any, const tensor_type* direct_y) {
    if (position_of<I>() != at) return;
    any = true;
    detail::zeros_like(*plugin_in_[I], scratch_->plugin_g);
    const tensor_type& out = I == kDirectPlugin && direct_y ? *direct_y : plugin_out_[I];
    std::get<I>(plugins_).backward(*plugin_in_[I], out, g, scratch_->plugin_g);
    std::swap(g, scratch_->plugin_g);
  }

  ResBlockConfig c_;
  Conv2d<T, B> conv1_;
  Norm bn1_;
  Conv2 conv2_;
  Norm bn2_;
  Conv2d<T, B> conv3_;
  Norm bn3_;
  std::tuple<typename Placed::spec::template type<T, B>...> plugins_;
  std::optional<Conv2d<T, B>> down_conv_;
  std::optional<Norm> down_bn_;
  // Activations kept for backward: conv outputs a*, ReLU(norm) outputs b1/b2, bn3's output b3
  // (with plugins after conv3), plugin outputs, the downsample's conv output.
  tensor_type a1_, b1_, a2_, b2_, a3_, b3_, da_;
  std::array<tensor_type, kPlugins> plugin_out_{};
  std::array<const tensor_type*, kPlugins> plugin_in_{};
  const tensor_type *conv2_in_ = nullptr, *conv3_in_ = nullptr;  // r1 / r2 or the last plugin's output
  std::shared_ptr<BlockGradScratch<T, B>> scratch_ = std::make_shared<BlockGradScratch<T, B>>();
  std::shared_ptr<BlockEvalScratch<T, B>> eval_ = std::make_shared<BlockEvalScratch<T, B>>();
  // Eval fusion: per-norm scale/shift (bn1, bn2, bn3, downsample), and whether the last forward
  // was fused (backward then replays it layer by layer into y_again_).
  std::array<tensor_type, 4> coef_{};
  tensor_type y_again_;
  bool fused_ = false;
};

}  // namespace gcnet
