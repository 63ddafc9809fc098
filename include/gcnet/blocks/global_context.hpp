#pragma once
// GlobalContext<Fusion, Transform>: the paper's three-step global context framework.
//   1. context modeling   ctx = pool(x)                       (ContextModeling: attention | average)
//   2. transform          a = T_add(ctx), m = T_mul(ctx)      (one Transform per fusion branch)
//   3. fusion             y = x * sigmoid(m) + a              (fusion::Add | Mul | MulAdd)
// GC, SE and the simplified NL are this class with different transforms (see gc_block.hpp,
// se_layer.hpp, simplified_nl.hpp). Hot loops: forward is 2 passes over x for the context
// plus one fused output write; backward is one pass over (dy, x) for the branch gradients and
// one fused pass writing dx that also computes the attention logits' gradient (in tiles, x
// re-read from cache) and gathers the conv_mask gradient.
// On the CPU the forward on a small x runs as a single parallel region instead (ForwardPath).
#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "gcnet/blocks/context_modeling.hpp"
#include "gcnet/blocks/fusion.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/layers/sigmoid.hpp"

namespace gcnet::blocks {

// How GlobalContext::forward runs on the CPU (other backends: always Stepwise).
//   Stepwise      one parallel loop per step (context tiles, their combination, each layer of
//                 the transform, the fused output write); the context pass reads x from memory
//                 once, in tiles re-read from cache.
//   SingleRegion  every step in ONE parallel region (run_team). With a batch that is a multiple
//                 of the team, each thread pools whole images and writes their output; else each
//                 owns a range of channels of every sample. Either way it reads its part of x
//                 three times (logits, context, output write) and its own slices of the transform
//                 weights, with a barrier per transform and one after the context (image split)
//                 or the attention logits (channel split). Why: on a small x each step is a few
//                 microseconds, about what a fork/join costs, and what a thread touches stays in
//                 its core's cache from one call to the next.
//   Auto          SingleRegion when each thread's share of x is at most kSingleRegionMaxBytes,
//                 about one core's L2 (2 MB here), so that the second and third reads of x come
//                 mostly from cache, else Stepwise. (Measured on 2 threads, batch 2: 512@28,
//                 1.6 MB per thread, is faster in one region; 256@56, 3.2 MB, stepwise.)
enum class ForwardPath { Auto, SingleRegion, Stepwise };
inline constexpr index_t kSingleRegionMaxBytes = index_t{2} << 20;

// Channels [c0, c1) of a team member: equal shares, edges on multiples of 16 channels so that
// members write disjoint cache lines of the [N, C] vectors (with few channels some get none).
inline std::pair<index_t, index_t> channel_share(index_t channels, const TeamMember& me) {
  auto edge = [&](int r) {
    return r >= me.size ? channels : std::min(channels, (channels * r / me.size + 8) / 16 * 16);
  };
  return {edge(me.rank), edge(me.rank + 1)};
}

template <fusion::Fusion F, class Transform, Scalar T = float, Backend B = Cpu>
class GlobalContext {
 public:
  using value_type = T;
  using backend_type = B;
  using fusion_type = F;

  // `name` is used by describe() and error messages; the transforms are built by the caller
  // (std::nullopt for the branch the fusion does not have).
  GlobalContext(std::string name, index_t channels, Pooling pooling, std::optional<Transform> add,
                std::optional<Transform> mul)
      : name_(std::move(name)), context_(channels, pooling), add_(std::move(add)), mul_(std::move(mul)) {}

  index_t channels() const { return context_.channels(); }
  ContextModeling<T, B>& context() { return context_; }
  Transform& add_transform() requires(F::add) { return *add_; }
  Transform& mul_transform() requires(F::mul) { return *mul_; }

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
      const int team = team_size(Cpu{});
      const bool small = static_cast<std::size_t>(x.numel()) * sizeof(T) <=
                         static_cast<std::size_t>(kSingleRegionMaxBytes) * static_cast<std::size_t>(team);
      if (path_ == ForwardPath::SingleRegion || (path_ == ForwardPath::Auto && small)) {
        forward_single_region(x, y, team);
        return;
      }
    }
    forward_stepwise(x, y);
  }

  // Auto by default; tests and benchmarks pin one path.
  void set_forward_path(ForwardPath path) { path_ = path; }
  ForwardPath forward_path() const { return path_; }

  // The two forwards behind forward(), which validates x and sizes y first (they are public
  // only because nvcc rejects extended lambdas in private member functions).
  void forward_stepwise(const Tensor<T, B>& x, Tensor<T, B>& y) {
    const index_t n = x.size(0), c = channels(), s = x.size(2) * x.size(3);
    context_.forward(x, ctx_);
    // Per-(n,c) scale and shift: scale = sigmoid(m) or 1, shift = a or 0.
    scale_.resize(Shape{n, c});
    shift_.resize(Shape{n, c});
    if constexpr (F::mul) {
      mul_->forward(ctx_, m_);
      const T* mp = m_.data();
      T* sc = scale_.data();
      for_each_index(B{}, n * c, [=] GCNET_HD(index_t i) { sc[i] = stable_sigmoid(mp[i]); });
    } else {
      fill(scale_, T(1));
    }
    if constexpr (F::add) add_->forward(ctx_, shift_);
    else fill(shift_, T(0));
    // Fusion fused with the output write: one pass reading x, writing y.
    const T *xp = x.data(), *sc = scale_.data(), *sh = shift_.data();
    T* yp = y.data();
    for_each_index_weighted(B{}, n * c, s, [=] GCNET_HD(index_t row) {
      const T a = sc[row], b = sh[row];
      const T* xr = xp + row * s;
      T* yr = yp + row * s;
      for (index_t j = 0; j < s; ++j) yr[j] = xr[j] * a + b;
    });
  }

  // ForwardPath::SingleRegion (see above). Each member writes ctx, the transform outputs, scale,
  // shift and y only in its own channels; what backward reads (ctx, scale, u, the transforms'
  // hidden vectors) ends up as the stepwise forward leaves it.
  void forward_single_region(const Tensor<T, B>& x, Tensor<T, B>& y, int team) {
    const index_t n = x.size(0), c = channels(), s = x.size(2) * x.size(3);
    ctx_.resize(Shape{n, c});
    scale_.resize(Shape{n, c});
    shift_.resize(Shape{n, c});
    context_.prepare_team(n, s, team);
    if constexpr (F::add) add_->prepare_team(n, team);
    if constexpr (F::mul) {
      m_.resize(Shape{n, c});
      mul_->prepare_team(n, team);
    }
    const T* xp = x.data();
    T *yp = y.data(), *cx = ctx_.data(), *sc = scale_.data(), *sh = shift_.data();
    T* mp = F::mul ? m_.data() : nullptr;
    // Image split when every member gets as many whole images: the context then needs no
    // exchange of partial logits, and x[k] is read by one core only (twice for the context, once
    // for the output), so it stays in that core's cache. Else the channel split.
    const bool by_image = n % team == 0;
    auto fuse_rows = [=](index_t k, index_t ch0, index_t ch1) {
      for (index_t ch = ch0; ch < ch1; ++ch) {
        const index_t row = k * c + ch;
        const T a = F::mul ? stable_sigmoid(mp[row]) : T(1), b = F::add ? sh[row] : T(0);
        sc[row] = a;
        sh[row] = b;
        const T* xr = xp + row * s;
        T* yr = yp + row * s;
        for (index_t j = 0; j < s; ++j) yr[j] = xr[j] * a + b;
      }
    };
    run_team(Cpu{}, team, [&](const TeamMember& me) {
      const auto [c0, c1] = channel_share(c, me);
      if (by_image) {
        context_.forward_team_images(xp, n, s, cx, me);
        me.barrier();
      } else {
        context_.forward_team(xp, n, s, cx, c0, c1, me);
      }
      // The transforms are split by channels either way (each member its slices of the weights).
      if constexpr (F::add) add_->forward_team(cx, n, sh, c0, c1, me);
      if constexpr (F::mul) mul_->forward_team(cx, n, mp, c0, c1, me);
      if (by_image) {
        me.barrier();  // every channel of the member's images has its scale and shift
        for (index_t k = me.rank; k < n; k += me.size) fuse_rows(k, 0, c);
      } else {
        for (index_t k = 0; k < n; ++k) fuse_rows(k, c0, c1);
      }
    });
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    const index_t n = x.size(0), c = channels(), s = x.size(2) * x.size(3);
    // Pass 1 over dy (and x when there is a mul branch): per row, da = sum dy,
    // dm = sum dy x * sigmoid'(m).
    da_.resize(Shape{n, c});
    dm_.resize(Shape{n, c});
    {
      const T *xp = x.data(), *g = dy.data(), *sc = scale_.data();
      T *da = da_.data(), *dm = dm_.data();
      for_each_index_weighted(B{}, n * c, s, [=] GCNET_HD(index_t row) {
        const T* xr = xp + row * s;
        const T* gr = g + row * s;
        da[row] = sum(gr, s);
        dm[row] = F::mul ? dot(gr, xr, s) * sc[row] * (T(1) - sc[row]) : T(0);
      });
    }
    // Transforms (tiny): dctx = J_add^T da + J_mul^T dm.
    dctx_.resize(Shape{n, c});
    fill(dctx_, T(0));
    if constexpr (F::add) add_->backward(ctx_, da_, dctx_);
    if constexpr (F::mul) mul_->backward(ctx_, dm_, dctx_);
    const T *xp = x.data(), *g = dy.data(), *sc = scale_.data(), *dc = dctx_.data(), *p = context_.u();
    T* d = dx.data();
    if (context_.pooling() == Pooling::Average) {
      // Pass 2: dx += dy * scale + dctx / S.
      for_each_index_weighted(B{}, n * c, s, [=] GCNET_HD(index_t row) {
        const T* gr = g + row * s;
        T* dr = d + row * s;
        const T a = sc[row], b = dc[row] * p[0];
        for (index_t j = 0; j < s; ++j) dr[j] += gr[j] * a + b;
      });
      return;
    }
    // Attention. With g[s] = dctx . x[:, s], the logits' gradient is v = p (g - dctx . ctx)
    // (since sum_s p g = dctx . ctx), so it needs no global pass: pass 2 works on tiles of
    // positions, computing g and v for the tile (x from memory), then
    // dx += dy * scale + p dctx + v w_mask per channel row (x from cache), gathering the
    // tile's share of dw_mask[c] = sum_s v x[c, s].
    pg_.resize(Shape{n});
    {
      const T* cx = ctx_.data();
      T* pg = pg_.data();
      for_each_index(B{}, n, [=] GCNET_HD(index_t k) { pg[k] = dot(dc + k * c, cx + k * c, c); });
    }
    const index_t block = position_block(c), blocks = (s + block - 1) / block;
    dw_rows_.resize(Shape{n * blocks, c});
    const T *pg = pg_.data(), *wm = context_.mask_weight();
    T* dwr = dw_rows_.data();
    for_each_index_weighted(B{}, n * blocks, 3 * c * block, [=] GCNET_HD(index_t t) {
      const index_t k = t / blocks, s0 = (t % blocks) * block, len = std::min(block, s - s0);
      T v[kMaxPositionBlock];
      for (index_t j = 0; j < len; ++j) v[j] = T(0);
      const index_t base = k * c * s + s0;
      const T* dck = dc + k * c;
      for (index_t ch = 0; ch < c; ++ch) {
        const T w = dck[ch];
        const T* xr = xp + base + ch * s;
        for (index_t j = 0; j < len; ++j) v[j] += w * xr[j];
      }
      const T* pk = p + k * s + s0;
      for (index_t j = 0; j < len; ++j) v[j] = pk[j] * (v[j] - pg[k]);
      for (index_t ch = 0; ch < c; ++ch) {
        const index_t off = base + ch * s;
        const T* xr = xp + off;
        const T* gr = g + off;
        T* dr = d + off;
        const T a = sc[k * c + ch], b = dck[ch], w = wm[ch];
        T acc = 0;
#pragma omp simd reduction(+ : acc)
        for (index_t j = 0; j < len; ++j) {
          dr[j] += gr[j] * a + pk[j] * b + v[j] * w;
          acc += v[j] * xr[j];
        }
        dwr[t * c + ch] = acc;
      }
    });
    context_.finish_backward(dw_rows_);
  }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    context_.visit_parameters(prefix, f);
    if constexpr (F::add) add_->visit_parameters(prefix, f);
    if constexpr (F::mul) mul_->visit_parameters(prefix, f);
  }

  index_t parameter_count() const {
    index_t p = context_.parameter_count();
    if constexpr (F::add) p += add_->parameter_count();
    if constexpr (F::mul) p += mul_->parameter_count();
    return p;
  }

  // Forward FLOPs for an input shape: multiply-adds count 2, other arithmetic 1 (a sigmoid
  // counts 1). Fusion: 1 per element per branch (mul and/or add).
  double flops(const Shape& input) const {
    const Shape in = setup(input);
    const index_t n = in.n(), s = in.h() * in.w();
    const double elems = static_cast<double>(in.numel());
    double f = context_.flops(n, s);
    if constexpr (F::add) f += add_->flops(n) + elems;
    if constexpr (F::mul) f += mul_->flops(n) + static_cast<double>(n * channels()) + elems;
    return f;
  }

  std::string describe() const { return name_; }

 private:
  std::string name_;
  ForwardPath path_ = ForwardPath::Auto;
  ContextModeling<T, B> context_;
  std::optional<Transform> add_, mul_;
  // Saved by forward for backward, and scratch (resized, never reallocated at a fixed shape).
  Tensor<T, B> ctx_, m_, scale_, shift_, da_, dm_, dctx_, dw_rows_, pg_;
};

}  // namespace gcnet::blocks
