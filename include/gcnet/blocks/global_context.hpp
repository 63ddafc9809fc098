#pragma once
// GlobalContextBlock<T, B>: the GCNet paper's three-step global context framework, with every
// choice a runtime value, so GC (any ratio, pooling, fusion, with or without LayerNorm), SE and
// the simplified NL are one C++ type per (T, B):
//   1. context modeling   ctx = pool(x)                     blocks::ContextModeling (attention | average)
//   2. transform          a = T_add(ctx), m = T_mul(ctx)    blocks::ChannelTransform, real Conv2d /
//                                                           LayerNorm / ReLU layers, one per fusion branch
//   3. fusion             y = x * sigmoid(m) + a            Fusion::Add | Mul | MulAdd
// Which published block an instance reproduces (GlobalContextKind) sets its state-dict names,
// initialization and describe(); the factories gc_options / se_options / snl_options give the
// presets, and GCBlock<Ratio, Fusion>, SELayer<>, SimplifiedNL<> (gc_block.hpp, se_layer.hpp,
// simplified_nl.hpp) are the same type with only a constructor added.
//   GlobalContextBlock<> gc(gc_options(256, {1, 16}, Pooling::Attention, Fusion::Add));
//   GlobalContextBlock<> se(se_options(256, 16));
//
// The code below is the backend-generic algorithm (what CUDA runs, the reference everywhere):
// forward reads x from memory once for the context (in position tiles, each read a second time
// from cache), runs the transforms, and writes the output in one fused pass over x; backward is one pass over (dy, x) for the branch
// gradients and one fused pass writing dx that also forms the attention logits' gradient and
// gathers the conv_mask gradient. The one CPU-specific step is the seam at the top of forward():
// on the CPU a small x runs as a single parallel region instead (cpu/global_context_team.hpp).
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/blocks/channel_transform.hpp"
#include "gcnet/blocks/context_modeling.hpp"
#include "gcnet/blocks/fusion.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/cpu/global_context_team.hpp"
#include "gcnet/layers/sigmoid.hpp"

namespace gcnet {

// Which published block a GlobalContextBlock reproduces: its state-dict names, initialization
// and describe().
//   GC   mmcv ContextBlock: conv_mask.*, channel_add_conv.{0,1,3}.* / channel_mul_conv.*
//        (without LayerNorm {0,2}, as nn.Sequential(conv, ReLU, conv) would name them).
//   SE   mmdet SELayer: conv1.conv.*, conv2.conv.*; average pooling, mul fusion, no LayerNorm.
//   SNL  the paper's simplified NL: conv_mask.*, transform.* (one 1x1 conv C->C); attention
//        pooling, add fusion.
enum class GlobalContextKind { GC, SE, SNL };

// planes = int(channels * num / den): mmcv's int(C * ratio) (truncation); SE's ratio r is 1/r.
struct PlanesRatio {
  index_t num = 1, den = 16;
};

struct GlobalContextOptions {
  GlobalContextKind kind = GlobalContextKind::GC;
  index_t channels = 0;
  PlanesRatio ratio{};
  Pooling pooling = Pooling::Attention;
  Fusion fusion = Fusion::Add;
  bool layer_norm = true;  // LayerNorm([planes, 1, 1]) in each transform (GC)
};

// mmcv ContextBlock(channels, ratio, pooling_type, fusion_types); layer_norm=false is the
// paper's bottleneck ablation without it.
inline GlobalContextOptions gc_options(index_t channels, PlanesRatio ratio = {}, Pooling pooling = Pooling::Attention,
                                       Fusion fusion = Fusion::Add, bool layer_norm = true) {
  return {.kind = GlobalContextKind::GC, .channels = channels, .ratio = ratio, .pooling = pooling, .fusion = fusion,
          .layer_norm = layer_norm};
}
// mmdet SELayer(channels, ratio): planes = int(channels / ratio).
inline GlobalContextOptions se_options(index_t channels, index_t ratio = 16) {
  return {.kind = GlobalContextKind::SE, .channels = channels, .ratio = {1, ratio}, .pooling = Pooling::Average,
          .fusion = Fusion::Mul, .layer_norm = false};
}
// The simplified NL block of the GCNet paper (Sec. 3.2).
inline GlobalContextOptions snl_options(index_t channels) {
  return {.kind = GlobalContextKind::SNL, .channels = channels, .ratio = {1, 1}, .pooling = Pooling::Attention,
          .fusion = Fusion::Add, .layer_norm = false};
}

// describe() of a block with these options, e.g. "GCBlock(256, ratio=1/16, pooling=attention,
// fusion=add)", "SELayer(256, ratio=16)", "SimplifiedNL(256)".
inline std::string describe_global_context(const GlobalContextOptions& o) {
  std::ostringstream os;
  switch (o.kind) {
    case GlobalContextKind::GC:
      os << "GCBlock(" << o.channels << ", ratio=" << o.ratio.num << "/" << o.ratio.den
         << ", pooling=" << pooling_name(o.pooling) << ", fusion=" << fusion_name(o.fusion)
         << (o.layer_norm ? "" : ", layer_norm=False") << ")";
      break;
    case GlobalContextKind::SE: os << "SELayer(" << o.channels << ", ratio=" << o.ratio.den << ")"; break;
    case GlobalContextKind::SNL: os << "SimplifiedNL(" << o.channels << ")"; break;
    default: os << "GlobalContextBlock(invalid kind " << static_cast<int>(o.kind) << ")";
  }
  return os.str();
}

// The transform's width: int(C * num / den) (GC, SE), 0 for SNL's single C->C conv. Throws,
// naming the block, for options no reference block has.
inline index_t global_context_planes(const GlobalContextOptions& o) {
  const std::string who = describe_global_context(o);
  const int kind = static_cast<int>(o.kind);
  GCNET_CHECK(kind >= 0 && kind <= 2, who, ": expected kind GC, SE or SNL");
  GCNET_CHECK(o.channels > 0, who, ": channels must be positive, got ", o.channels);
  const int pooling = static_cast<int>(o.pooling), fusion = static_cast<int>(o.fusion);
  GCNET_CHECK(pooling >= 0 && pooling <= 1, who, ": invalid pooling (", pooling, ")");
  GCNET_CHECK(fusion >= 0 && fusion <= 2, who, ": invalid fusion (", fusion, ")");
  if (o.kind == GlobalContextKind::SNL) {
    GCNET_CHECK(o.pooling == Pooling::Attention && o.fusion == Fusion::Add && !o.layer_norm, who,
                ": the simplified NL has attention pooling, add fusion and no LayerNorm (use kind GC for other "
                "combinations)");
    return 0;
  }
  if (o.kind == GlobalContextKind::SE) {
    GCNET_CHECK(o.ratio.num == 1 && o.ratio.den > 0, who, ": ratio must be positive, got ", o.ratio.den);
    GCNET_CHECK(o.pooling == Pooling::Average && o.fusion == Fusion::Mul && !o.layer_norm, who,
                ": mmdet's SELayer has average pooling, mul fusion and no LayerNorm (use kind GC for other "
                "combinations)");
    const index_t p = o.channels / o.ratio.den;
    GCNET_CHECK(p > 0, who, ": planes = int(", o.channels, " / ", o.ratio.den,
                ") = 0; use more channels or a smaller ratio");
    return p;
  }
  GCNET_CHECK(o.ratio.num > 0 && o.ratio.den > 0, who, ": ratio must be positive, got ", o.ratio.num, "/",
              o.ratio.den);
  const index_t p = o.channels * o.ratio.num / o.ratio.den;
  GCNET_CHECK(p > 0, who, ": planes = int(", o.channels, " * ", o.ratio.num, "/", o.ratio.den,
              ") = 0; use more channels or a larger ratio");
  return p;
}

namespace blocks {
struct NoCpuFastPath {};
}  // namespace blocks

template <Scalar T = float, Backend B = Cpu>
class GlobalContextBlock {
 public:
  using value_type = T;
  using backend_type = B;
  using Options = GlobalContextOptions;

  // backward() reads x, dy and what forward saved, never the values of y, so a model may let
  // the block write its output into memory it overwrites before backward (models/res_block.hpp
  // writes a plugin after conv3 straight into the bottleneck's output).
  static constexpr bool backward_ignores_output = true;

  explicit GlobalContextBlock(const GlobalContextOptions& o)
      : o_(o), planes_(global_context_planes(o)), name_(describe_global_context(o)), context_(o.channels, o.pooling) {
    if (has_add(o.fusion)) add_.emplace(make_transform("channel_add_conv"));
    if (has_mul(o.fusion)) mul_.emplace(make_transform("channel_mul_conv"));
    initialize();
  }

  const GlobalContextOptions& options() const { return o_; }
  index_t channels() const { return o_.channels; }
  index_t planes() const { return planes_; }
  blocks::ContextModeling<T, B>& context() { return context_; }
  blocks::ChannelTransform<T, B>* add_transform() { return add_ ? &*add_ : nullptr; }
  blocks::ChannelTransform<T, B>* mul_transform() { return mul_ ? &*mul_ : nullptr; }

  // Auto by default; tests and benchmarks pin a path (see cpu::ForwardPath; other backends
  // always run the generic forward).
  void set_forward_path(cpu::ForwardPath path) { path_ = path; }
  cpu::ForwardPath forward_path() const { return path_; }

  Shape setup(const Shape& in) const {
    GCNET_CHECK(in.rank() == 4, describe(), ": expected a 4-d NCHW input, got shape ", in.str());
    GCNET_CHECK(in.c() == channels(), describe(), ": expected input with ", channels(), " channels, got shape ",
                in.str());
    GCNET_CHECK(in.n() > 0 && in.h() * in.w() > 0, describe(), ": expected a non-empty batch and H*W > 0, got shape ",
                in.str());
    return in;
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    require_contiguous(x, describe(), "input");
    y.resize(setup(x.shape()));
    if constexpr (std::same_as<B, Cpu>) {
      // The seam: the CPU fast path runs the whole forward when it applies, else the generic one.
      if (cpu_.forward(path_, x, y, {context_, add_transform(), mul_transform(), pooled_, a_, m_, scale_})) return;
    }
    forward_generic(x, y);
  }

  // The backend-generic forward behind forward(), which validates x and sizes y first (public
  // only because nvcc rejects extended lambdas in private member functions).
  void forward_generic(const Tensor<T, B>& x, Tensor<T, B>& y) {
    const index_t n = x.size(0), c = channels(), s = x.size(2) * x.size(3);
    context_.forward(x, pooled_);
    if (add_) add_->forward(pooled_, a_);
    if (mul_) mul_->forward(pooled_, m_);
    // scale = sigmoid(m) per (n, c), or 1; backward reads it.
    scale_.resize(Shape{n, c});
    T* sc = scale_.data();
    if (mul_) {
      const T* mp = m_.data();
      for_each_index(B{}, n * c, [=] GCNET_HD(index_t i) { sc[i] = stable_sigmoid(mp[i]); });
    } else {
      fill(scale_, T(1));
    }
    // Fusion fused with the output write: one pass reading x, writing y.
    const T *xp = x.data(), *shift = add_ ? a_.data() : nullptr;
    T* yp = y.data();
    for_each_index_weighted(B{}, n * c, s, [=] GCNET_HD(index_t row) {
      const T a = sc[row], b = shift ? shift[row] : T(0);
      const T* xr = xp + row * s;
      T* yr = yp + row * s;
      for (index_t j = 0; j < s; ++j) yr[j] = xr[j] * a + b;
    });
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    const index_t n = x.size(0), c = channels(), s = x.size(2) * x.size(3);
    // Pass 1 over dy (and x when there is a mul branch): per row, da = sum dy,
    // dm = sum dy x * sigmoid'(m).
    da_.resize(Shape{n, c, 1, 1});
    dm_.resize(Shape{n, c, 1, 1});
    {
      const T *xp = x.data(), *g = dy.data(), *sc = scale_.data();
      T *da = da_.data(), *dm = dm_.data();
      const bool mul = mul_.has_value();
      for_each_index_weighted(B{}, n * c, s, [=] GCNET_HD(index_t row) {
        const T* gr = g + row * s;
        da[row] = blocks::sum(gr, s);
        dm[row] = mul ? blocks::dot(gr, xp + row * s, s) * sc[row] * (T(1) - sc[row]) : T(0);
      });
    }
    // Transforms (tiny): dctx = J_add^T da + J_mul^T dm.
    dctx_.resize(Shape{n, c, 1, 1});
    fill(dctx_, T(0));
    if (add_) add_->backward(pooled_, a_, da_, dctx_);
    if (mul_) mul_->backward(pooled_, m_, dm_, dctx_);
    const T *xp = x.data(), *g = dy.data(), *sc = scale_.data(), *dc = dctx_.data();
    T* d = dx.data();
    if (context_.pooling() == Pooling::Average) {
      // Pass 2: dx += dy * scale + dctx / S.
      const T inv = T(1) / T(s);
      for_each_index_weighted(B{}, n * c, s, [=] GCNET_HD(index_t row) {
        const T* gr = g + row * s;
        T* dr = d + row * s;
        const T a = sc[row], b = dc[row] * inv;
        for (index_t j = 0; j < s; ++j) dr[j] += gr[j] * a + b;
      });
      return;
    }
    // Attention: with p the softmax and g[s] = dctx . x[:, s], the logits' gradient is
    // v = p (g - dctx . ctx) = p (dctx . (x[:, s] - ctx)) (since sum_s p = 1 and sum_s p x = ctx).
    // It is formed from x - ctx, centred before the product: when x has a large mean (after
    // BatchNorm) g and dctx . ctx are both large and nearly equal, and their difference would
    // cancel. It needs no global pass: pass 2 works on tiles of positions, computing v for the
    // tile (x from memory), then dx += dy * scale + p dctx + v w_mask per channel row (x from
    // cache), gathering the tile's share of dw_mask[c] = sum_s v (x[c, s] - ctx[c]) (the same
    // centring; sum_s v = 0 makes it equal sum_s v x[c, s]).
    const index_t block = blocks::position_block(c), tiles = (s + block - 1) / block;
    dw_rows_.resize(Shape{n * tiles, c});
    const T *p = context_.probabilities().data(), *wm = context_.mask_weight_param().value.data(), *cx = pooled_.data();
    T* dwr = dw_rows_.data();
    for_each_index_weighted(B{}, n * tiles, 3 * c * block, [=] GCNET_HD(index_t t) {
      const index_t k = t / tiles, s0 = (t % tiles) * block, len = std::min(block, s - s0);
      T v[blocks::kMaxPositionBlock], chunk[blocks::kMaxPositionBlock];  // the sum over channels in chunks
      for (index_t j = 0; j < len; ++j) v[j] = T(0);
      const index_t base = k * c * s + s0;
      const T *dck = dc + k * c, *ck = cx + k * c;
      for (index_t c0 = 0; c0 < c; c0 += blocks::kSumChunk) {
        const index_t c1 = c - c0 < blocks::kSumChunk ? c : c0 + blocks::kSumChunk;
        for (index_t j = 0; j < len; ++j) chunk[j] = T(0);
        for (index_t ch = c0; ch < c1; ++ch) {
          const T w = dck[ch], mean = ck[ch];
          const T* xr = xp + base + ch * s;
          for (index_t j = 0; j < len; ++j) chunk[j] += w * (xr[j] - mean);
        }
        for (index_t j = 0; j < len; ++j) v[j] += chunk[j];
      }
      const T* pk = p + k * s + s0;
      for (index_t j = 0; j < len; ++j) v[j] *= pk[j];
      for (index_t ch = 0; ch < c; ++ch) {
        const index_t off = base + ch * s;
        const T* xr = xp + off;
        const T* gr = g + off;
        T* dr = d + off;
        const T a = sc[k * c + ch], b = dck[ch], w = wm[ch], mean = ck[ch];
        T acc = 0;
#pragma omp simd reduction(+ : acc)
        for (index_t j = 0; j < len; ++j) {
          dr[j] += gr[j] * a + pk[j] * b + v[j] * w;
          acc += v[j] * (xr[j] - mean);
        }
        dwr[t * c + ch] = acc;
      }
    });
    context_.assign_mask_gradients(dw_rows_);
  }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    context_.visit_parameters(prefix, f);
    if (add_) add_->visit_parameters(prefix, f);
    if (mul_) mul_->visit_parameters(prefix, f);
  }

  index_t parameter_count() const {
    return context_.parameter_count() + (add_ ? add_->parameter_count() : 0) + (mul_ ? mul_->parameter_count() : 0);
  }

  // Forward FLOPs for an input shape: multiply-adds count 2, other arithmetic 1 (a sigmoid
  // counts 1). Fusion: 1 per element per branch (mul and/or add).
  double flops(const Shape& input) const {
    const Shape in = setup(input);
    const index_t n = in.n(), s = in.h() * in.w();
    const double elems = static_cast<double>(in.numel());
    double f = context_.flops(n, s);
    if (add_) f += add_->flops(n) + elems;
    if (mul_) f += mul_->flops(n) + static_cast<double>(n * channels()) + elems;
    return f;
  }

  std::string describe() const { return name_; }

 private:
  // The transform of one fusion branch, named as the kind's reference names it.
  blocks::ChannelTransform<T, B> make_transform(const std::string& branch) const {
    switch (o_.kind) {
      case GlobalContextKind::SE:
        return {o_.channels, {.planes = planes_, .layer_norm = false}, {"conv1.conv.", "", "conv2.conv."}};
      case GlobalContextKind::SNL: return {o_.channels, {.planes = 0, .layer_norm = false}, {"transform.", "", ""}};
      default:
        return {o_.channels,
                {.planes = planes_, .layer_norm = o_.layer_norm},
                {branch + ".0.", branch + ".1.", branch + (o_.layer_norm ? ".3." : ".2.")}};
    }
  }

  // The reference's initialization (the conv_mask's, kaiming normal fan_in, is ContextModeling's):
  //   GC   first conv PyTorch's default, LayerNorm 1/0, last conv zeros (mmcv last_zero_init):
  //        add fusion is the identity at init and mul fusion halves x;
  //   SE   both convs kaiming normal fan_out 'relu', bias 0 (mmdet ConvModule);
  //   SNL  the conv zeros: the identity at init.
  void initialize() {
    for (blocks::ChannelTransform<T, B>* t : {add_transform(), mul_transform()}) {
      if (!t) continue;
      switch (o_.kind) {
        case GlobalContextKind::SE:
          init::kaiming_init(t->first());
          init::kaiming_init(*t->second());
          break;
        case GlobalContextKind::SNL: init::constant_init(t->first(), 0.0); break;
        default: init::constant_init(*t->second(), 0.0);
      }
    }
  }

  using CpuFastPath = std::conditional_t<std::same_as<B, Cpu>, cpu::GlobalContextTeam<T>, blocks::NoCpuFastPath>;

  GlobalContextOptions o_;
  index_t planes_;
  std::string name_;
  cpu::ForwardPath path_ = cpu::ForwardPath::Auto;
  blocks::ContextModeling<T, B> context_;
  std::optional<blocks::ChannelTransform<T, B>> add_, mul_;
  [[no_unique_address]] CpuFastPath cpu_;
  // Saved by forward for backward: the context, the transforms' outputs, the scale sigmoid(m).
  ScratchTensor<T, B> pooled_, a_, m_, scale_;  // the pooled context (ctx above), the transforms' outputs
  ScratchTensor<T, B> da_, dm_, dctx_, dw_rows_;  // backward scratch
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(GlobalContextBlock)
}  // namespace gcnet
