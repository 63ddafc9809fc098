#pragma once
// Step 2 of the GC framework (transform): a small network on the pooled context vectors
// [N, C] -> [N, C]. The activations are vectors, so these run as GEMMs on [N, C] and a few
// tiny element loops; their cost is negligible next to the passes over x.
//   VectorConv   a 1x1 convolution on [N, in] vectors (PyTorch layout [out, in, 1, 1] + bias)
//   Bottleneck   conv C->P, optional LayerNorm([P,1,1]), ReLU, conv P->C  (GC and SE branches)
//   Linear       one conv C->C                                             (simplified NL)
// Each also has a team form for GlobalContext's single-region forward: prepare_team(n, threads)
// sizes the scratch before the region, forward_team(x, n, y, c0, c1, member) is one thread's
// share. A member reads only x[:, c0:c1] (its own channels, computed by itself), writes only
// y[:, c0:c1], and reads only its own slices of the weights (the first conv's columns c0:c1, the
// last conv's rows c0:c1), so across calls those stay in its core's cache. In between, each
// member reduces the partial sums of the whole team itself (a few hundred values, computed
// identically on every member) instead of waiting for one member to do it.
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "gcnet/blocks/reductions.hpp"
#include "gcnet/core/init.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::blocks {

template <Scalar T, Backend B>
class VectorConv {
 public:
  VectorConv() = default;
  // PyTorch's default Conv2d initialization; callers re-initialize with gcnet::init helpers.
  VectorConv(index_t in, index_t out, std::string name) : in_(in), out_(out), name_(std::move(name)) {
    Tensor<T, Cpu> w(Shape{out, in, 1, 1}), b(Shape{out});
    init::torch_default_weight(w);
    init::torch_default_bias(b, in);
    weight_.set(w);
    bias_.set(b);
  }
  Param<T, B>& weight() { return weight_; }
  Param<T, B>* bias() { return &bias_; }
  index_t in() const { return in_; }
  index_t out() const { return out_; }

  // y[N, out] = x[N, in] W^T + b. N (the batch) is tiny, so these are matrix-vector
  // products written as loops over the weight rows: a GEMM library would pack the whole
  // weight matrix first, which costs more than the product itself.
  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    const index_t n = x.size(0), in = in_, out = out_;
    y.resize(Shape{n, out});
    const T *xp = x.data(), *w = weight_.value.data(), *bp = bias_.value.data();
    T* yp = y.data();
    // Four weight rows per task (dot_rows4: independent accumulators), the rest one by one.
    const index_t quads = out / 4;
    for_each_index_weighted(B{}, quads + out % 4, 4 * n * in, [=] GCNET_HD(index_t t) {
      const index_t o = t < quads ? 4 * t : 4 * quads + (t - quads);
      rows_times(w + o * in, in, xp, in, n, in, t < quads ? 4 : 1, bp + o, yp + o, out);
    });
  }
  // Serial pieces of forward, for one team member (CPU):
  // y[k, o] = b[o] + W[o, :] . x[k, :] for the rows o in [o0, o1) and every sample k (y is [n, out]).
  void forward_rows(const T* x, index_t n, index_t o0, index_t o1, T* y) const {
    dot_rows_batch(weight_.value.data() + o0 * in_, in_, o1 - o0, x, in_, n, in_, bias_.value.data() + o0, y + o0,
                   out_);
  }
  // part[k, o] = sum_{i in [i0, i1)} W[o, i] x[k, i] for every row o (no bias; zeros when the
  // range is empty): a member's share of y when the inputs are split across the team.
  void forward_columns(const T* x, index_t n, index_t i0, index_t i1, T* part) const {
    dot_rows_batch(weight_.value.data() + i0, in_, out_, x + i0, in_, n, i1 - i0, static_cast<const T*>(nullptr),
                   part, out_);
  }
  // Assigns dW = dy^T x and db = sum_n dy; dx += dy W.
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    const index_t n = x.size(0), in = in_, out = out_;
    const T *xp = x.data(), *g = dy.data(), *w = weight_.value.data();
    T *dw = weight_.grad.data(), *db = bias_.grad.data(), *d = dx.data();
    for_each_index_weighted(B{}, out, n * in, [=] GCNET_HD(index_t o) {
      T* dwr = dw + o * in;
      T sb = 0;
      for (index_t i = 0; i < in; ++i) dwr[i] = T(0);
      for (index_t k = 0; k < n; ++k) {
        const T gk = g[k * out + o];
        sb += gk;
        const T* xr = xp + k * in;
        for (index_t i = 0; i < in; ++i) dwr[i] += gk * xr[i];
      }
      db[o] = sb;
    });
    // dx[k, i0:i0+64] += sum_o dy[k, o] W[o, i0:i0+64]: contiguous rows of W per task.
    constexpr index_t kBlock = 64;
    const index_t blocks = (in + kBlock - 1) / kBlock;
    for_each_index_weighted(B{}, n * blocks, out * kBlock, [=] GCNET_HD(index_t t) {
      const index_t k = t / blocks, i0 = (t % blocks) * kBlock, len = in - i0 < kBlock ? in - i0 : kBlock;
      T acc[kBlock];
      for (index_t j = 0; j < len; ++j) acc[j] = T(0);
      for (index_t o = 0; o < out; ++o) {
        const T gk = g[k * out + o];
        const T* wr = w + o * in + i0;
        for (index_t j = 0; j < len; ++j) acc[j] += gk * wr[j];
      }
      for (index_t j = 0; j < len; ++j) d[k * in + i0 + j] += acc[j];
    });
  }
  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    f(prefix + name_ + "weight", weight_);
    f(prefix + name_ + "bias", bias_);
  }
  index_t parameter_count() const { return in_ * out_ + out_; }
  // 2 per multiply-add, 1 per bias add.
  double flops(index_t n) const { return static_cast<double>(n * out_) * (2.0 * static_cast<double>(in_) + 1.0); }

 private:
  // y[k * ldy + q] = bias[q] + w[q * ldw : + len] . x[k * ldx : + len] for q < rows (1 or 4; no
  // bias when null) and k < n: the body of every product above.
  GCNET_HD static void rows_times(const T* w, index_t ldw, const T* x, index_t ldx, index_t n, index_t len,
                                  index_t rows, const T* bias, T* y, index_t ldy) {
    for (index_t k = 0; k < n; ++k) {
      T r[4];
      if (rows == 4) dot_rows4(w, ldw, x + k * ldx, len, r);
      else r[0] = dot(w, x + k * ldx, len);
      for (index_t q = 0; q < rows; ++q) y[k * ldy + q] = bias ? r[q] + bias[q] : r[q];
    }
  }

  index_t in_ = 0, out_ = 0;
  std::string name_;
  Param<T, B> weight_, bias_;
};

// LayerNorm([P, 1, 1]) on [N, P] vectors: per-sample mean and biased variance, eps 1e-5,
// per-channel affine (weight 1, bias 0 at init).
template <Scalar T, Backend B>
class VectorLayerNorm {
 public:
  VectorLayerNorm() = default;
  VectorLayerNorm(index_t p, std::string name) : p_(p), name_(std::move(name)) {
    weight_.set(full<T>(Shape{p, 1, 1}, T(1)));
    bias_.set(zeros<T>(Shape{p, 1, 1}));
  }
  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    const index_t n = x.size(0), p = p_;
    y.resize(x.shape());
    prepare(n);
    const T *xp = x.data(), *w = weight_.value.data(), *b = bias_.value.data();
    T *yp = y.data(), *xh = xhat_.data(), *rs = rstd_.data();
    for_each_index(B{}, n, [=] GCNET_HD(index_t k) {
      normalize(xp + k * p, p, w, b, yp + k * p, xh + k * p, rs + k);
    });
  }
  // Team form (CPU): prepare(n) sizes what forward saves; forward_sample(x, y, k) normalizes one
  // sample's row (x and y may be the same row), saving xhat and rstd for backward when save.
  void prepare(index_t n) {
    xhat_.resize(Shape{n, p_});
    rstd_.resize(Shape{n});
  }
  void forward_sample(const T* x, T* y, index_t k, bool save) {
    normalize(x, p_, weight_.value.data(), bias_.value.data(), y, save ? xhat_.data() + k * p_ : nullptr,
              save ? rstd_.data() + k : nullptr);
  }
  // dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy * weight (assigned, not accumulated:
  // dx is internal scratch).
  void backward(const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    const index_t n = dy.size(0), p = p_;
    dx.resize(dy.shape());
    const T *g = dy.data(), *xh = xhat_.data(), *rs = rstd_.data(), *w = weight_.value.data();
    T *d = dx.data(), *dw = weight_.grad.data(), *db = bias_.grad.data();
    for_each_index(B{}, p, [=] GCNET_HD(index_t j) {
      T sw = 0, sb = 0;
      for (index_t k = 0; k < n; ++k) {
        sw += g[k * p + j] * xh[k * p + j];
        sb += g[k * p + j];
      }
      dw[j] = sw;
      db[j] = sb;
    });
    for_each_index(B{}, n, [=] GCNET_HD(index_t k) {
      T m1 = 0, m2 = 0;
      for (index_t j = 0; j < p; ++j) {
        const T gj = g[k * p + j] * w[j];
        m1 += gj;
        m2 += gj * xh[k * p + j];
      }
      m1 /= T(p);
      m2 /= T(p);
      for (index_t j = 0; j < p; ++j)
        d[k * p + j] = rs[k] * (g[k * p + j] * w[j] - m1 - xh[k * p + j] * m2);
    });
  }
  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    f(prefix + name_ + "weight", weight_);
    f(prefix + name_ + "bias", bias_);
  }
  index_t parameter_count() const { return 2 * p_; }

 private:
  // One sample: y = xhat * w + b with xhat = (x - mean) * rstd; xhat and rstd stored when given.
  // Plain sequential sums, so every team member normalizing the same row gets the same bits.
  GCNET_HD static void normalize(const T* x, index_t p, const T* w, const T* b, T* y, T* xhat, T* rstd) {
    T mean = 0, var = 0;
    for (index_t j = 0; j < p; ++j) mean += x[j];
    mean /= T(p);
    for (index_t j = 0; j < p; ++j) var += (x[j] - mean) * (x[j] - mean);
    const T inv = T(1) / std::sqrt(var / T(p) + T(1e-5));
    if (rstd) *rstd = inv;
    for (index_t j = 0; j < p; ++j) {
      const T xh = (x[j] - mean) * inv;
      if (xhat) xhat[j] = xh;
      y[j] = xh * w[j] + b[j];
    }
  }

  index_t p_ = 0;
  std::string name_;
  Param<T, B> weight_, bias_;
  Tensor<T, B> xhat_, rstd_;
};

// Names of a Bottleneck's pieces in the state dict (with trailing dots).
struct BottleneckNames {
  std::string first, norm, second;
};

// conv C->P, [LayerNorm], ReLU, conv P->C. The GC branch (with LayerNorm) and SE's excitation
// (without) are both this.
template <Scalar T, Backend B>
class Bottleneck {
 public:
  Bottleneck(index_t channels, index_t planes, bool layer_norm, const BottleneckNames& names)
      : first_(channels, planes, names.first), second_(planes, channels, names.second) {
    if (layer_norm) norm_.emplace(planes, names.norm);
  }
  VectorConv<T, B>& first() { return first_; }
  VectorConv<T, B>& second() { return second_; }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    first_.forward(x, h1_);
    if (norm_) norm_->forward(h1_, h2_);
    else copy(h1_, h2_);
    T* h = h2_.data();
    for_each_index(B{}, h2_.numel(), [=] GCNET_HD(index_t i) { h[i] = h[i] > T(0) ? h[i] : T(0); });
    second_.forward(h2_, y);
  }
  // Team form (see the top of the file): every member reduces the first conv's partial sums into
  // its own copy of the hidden vector (member 0's copy, with the norm's statistics, is what
  // backward uses), then computes its own output channels from it.
  void prepare_team(index_t n, int threads) {
    const index_t p = first_.out(), stride = team_stride(n * p);
    h1_.resize(Shape{n, p});
    h2_.resize(Shape{n, p});
    parts_.resize(Shape{threads, stride});
    hidden_.resize(Shape{std::max(threads - 1, 1), stride});
    if (norm_) norm_->prepare(n);
  }
  void forward_team(const T* x, index_t n, T* y, index_t c0, index_t c1, const TeamMember& me) {
    const index_t p = first_.out(), stride = team_stride(n * p);
    first_.forward_columns(x, n, c0, c1, parts_.data() + me.rank * stride);
    me.barrier();
    const bool keeper = me.rank == 0;
    T* h = keeper ? h2_.data() : hidden_.data() + (me.rank - 1) * stride;
    T* pre = keeper ? h1_.data() : h;
    const T* b1 = first_.bias()->value.data();
    for (index_t k = 0; k < n; ++k) {
      sum_partials(parts_.data() + k * p, me.size, stride, p, b1, pre + k * p);
      if (norm_) norm_->forward_sample(pre + k * p, h + k * p, k, keeper);
      else if (pre != h) std::copy(pre + k * p, pre + (k + 1) * p, h + k * p);
    }
    for (index_t i = 0; i < n * p; ++i) h[i] = h[i] > T(0) ? h[i] : T(0);
    second_.forward_rows(h, n, c0, c1, y);
  }
  // dx += d(transform)/dx . dy; assigns every parameter gradient.
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    dh2_.resize(h2_.shape());
    fill(dh2_, T(0));
    second_.backward(h2_, dy, dh2_);
    const T* h = h2_.data();
    T* d = dh2_.data();
    for_each_index(B{}, h2_.numel(), [=] GCNET_HD(index_t i) { d[i] = h[i] > T(0) ? d[i] : T(0); });
    if (norm_) norm_->backward(dh2_, dh1_);
    else copy(dh2_, dh1_);
    first_.backward(x, dh1_, dx);
  }
  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    first_.visit_parameters(prefix, f);
    if (norm_) norm_->visit_parameters(prefix, f);
    second_.visit_parameters(prefix, f);
  }
  index_t parameter_count() const {
    return first_.parameter_count() + (norm_ ? norm_->parameter_count() : 0) + second_.parameter_count();
  }
  // Multiply-adds count 2; the LayerNorm ~5 per element (mean, var, scale, affine), ReLU 1.
  double flops(index_t n) const {
    const double p = static_cast<double>(first_.out());
    return first_.flops(n) + second_.flops(n) + static_cast<double>(n) * p * ((norm_ ? 5.0 : 0.0) + 1.0);
  }

 private:
  VectorConv<T, B> first_, second_;
  std::optional<VectorLayerNorm<T, B>> norm_;
  Tensor<T, B> h1_, h2_, dh1_, dh2_;
  Tensor<T, B> parts_, hidden_;  // team form: partial sums per member, hidden vectors of members > 0
};

// One conv C->C (the simplified NL's transform).
template <Scalar T, Backend B>
class Linear {
 public:
  Linear(index_t channels, const std::string& name) : conv_(channels, channels, name) {}
  VectorConv<T, B>& conv() { return conv_; }
  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) { conv_.forward(x, y); }
  // Team form: partial sums over the member's input channels, then each member reduces its own
  // output channels.
  void prepare_team(index_t n, int threads) { parts_.resize(Shape{threads, team_stride(n * conv_.out())}); }
  void forward_team(const T* x, index_t n, T* y, index_t c0, index_t c1, const TeamMember& me) {
    const index_t c = conv_.out(), stride = team_stride(n * c);
    conv_.forward_columns(x, n, c0, c1, parts_.data() + me.rank * stride);
    me.barrier();
    const T* b = conv_.bias()->value.data();
    for (index_t k = 0; k < n; ++k)
      sum_partials(parts_.data() + k * c + c0, me.size, stride, c1 - c0, b + c0, y + k * c + c0);
  }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& dy, Tensor<T, B>& dx) { conv_.backward(x, dy, dx); }
  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) { conv_.visit_parameters(prefix, f); }
  index_t parameter_count() const { return conv_.parameter_count(); }
  double flops(index_t n) const { return conv_.flops(n); }

 private:
  VectorConv<T, B> conv_;
  Tensor<T, B> parts_;  // team form: partial sums per member
};

}  // namespace gcnet::blocks
