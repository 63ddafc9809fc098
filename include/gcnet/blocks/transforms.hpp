#pragma once
// Step 2 of the GC framework (transform): a small network on the pooled context vectors
// [N, C] -> [N, C]. The activations are vectors, so these run as GEMMs on [N, C] and a few
// tiny element loops; their cost is negligible next to the passes over x.
//   VectorConv   a 1x1 convolution on [N, in] vectors (PyTorch layout [out, in, 1, 1] + bias)
//   Bottleneck   conv C->P, optional LayerNorm([P,1,1]), ReLU, conv P->C  (GC and SE branches)
//   Linear       one conv C->C                                             (simplified NL)
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
      if (t < quads) {
        const index_t o = 4 * t;
        for (index_t k = 0; k < n; ++k) {
          T r[4];
          dot_rows4(w + o * in, in, xp + k * in, in, r);
          for (index_t q = 0; q < 4; ++q) yp[k * out + o + q] = r[q] + bp[o + q];
        }
        return;
      }
      const index_t o = 4 * quads + (t - quads);
      for (index_t k = 0; k < n; ++k) yp[k * out + o] = dot(w + o * in, xp + k * in, in) + bp[o];
    });
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
    xhat_.resize(x.shape());
    rstd_.resize(Shape{n});
    const T *xp = x.data(), *w = weight_.value.data(), *b = bias_.value.data();
    T *yp = y.data(), *xh = xhat_.data(), *rs = rstd_.data();
    for_each_index(B{}, n, [=] GCNET_HD(index_t k) {
      const T* r = xp + k * p;
      T mean = 0, var = 0;
      for (index_t j = 0; j < p; ++j) mean += r[j];
      mean /= T(p);
      for (index_t j = 0; j < p; ++j) var += (r[j] - mean) * (r[j] - mean);
      const T inv = T(1) / std::sqrt(var / T(p) + T(1e-5));
      rs[k] = inv;
      for (index_t j = 0; j < p; ++j) {
        xh[k * p + j] = (r[j] - mean) * inv;
        yp[k * p + j] = xh[k * p + j] * w[j] + b[j];
      }
    });
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
};

// One conv C->C (the simplified NL's transform).
template <Scalar T, Backend B>
class Linear {
 public:
  Linear(index_t channels, const std::string& name) : conv_(channels, channels, name) {}
  VectorConv<T, B>& conv() { return conv_; }
  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) { conv_.forward(x, y); }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& dy, Tensor<T, B>& dx) { conv_.backward(x, dy, dx); }
  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) { conv_.visit_parameters(prefix, f); }
  index_t parameter_count() const { return conv_.parameter_count(); }
  double flops(index_t n) const { return conv_.flops(n); }

 private:
  VectorConv<T, B> conv_;
};

}  // namespace gcnet::blocks
