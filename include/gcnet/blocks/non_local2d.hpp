#pragma once
// NonLocal2d: mmcv's non-local block (mmcv/cnn/bricks/non_local.py, _NonLocalNd + NonLocal2d).
//   out = x + conv_out(f(theta(x), phi(x)) . g(x))
// g, theta, phi: 1x1 convolutions C -> Ci = max(C / reduction, 1); conv_out: Ci -> C (bias-free
// and followed by BatchNorm2d with `norm`). Modes:
//   EmbeddedGaussian  softmax(theta^T phi / sqrt(Ci))   (no division without use_scale)
//   DotProduct        theta^T phi / P'
//   Gaussian          softmax(x^T x'), theta and phi are x itself (x' max-pooled with sub_sample)
//   Concatenation     ReLU(w . [theta_i; phi_j]) / P'  (concat_project, bias-free)
// sub_sample: MaxPool2d(2) after g and phi (P' = positions after pooling).
// Initialization as mmcv's _NonLocalNd.init_weights(std=0.01, zeros_init): g/theta/phi convs
// ~ N(0, 0.01), bias 0; conv_out (ConvModule) with norm: its conv kaiming normal fan_out 'relu'
// (ConvModule's own init, bias-free), and the norm's gamma and beta 0 with zeros_init, else
// gamma ~ N(0, 0.01) and beta 0 (mmcv normal_init on the norm); without norm: conv_out's conv 0
// with zeros_init, else N(0, 0.01) and bias 0. zeros_init makes the block the identity.
// State-dict names as mmcv: g.conv.weight, theta.conv.*, phi.conv.*,
// conv_out.conv.*, conv_out.bn.*, concat_project.conv.weight; with sub_sample g and phi are
// nn.Sequential(conv, pool) there, so g.0.conv.weight and phi.0.conv.weight.
// The P x P' attention is computed in blocks of query rows (gcnet/blocks/pairwise_attention.hpp).
// The 1x1 convolutions are Conv2d layers (the backend-generic path); on the CPU, for maps of up
// to 256 positions, they run instead as cpu::PointwiseProjections (g, theta, phi in one pass over
// the stacked batch; conv_out likewise) reading those layers' weights: one seam, fused(), decides.
//   NonLocal2d<>({.in_channels = 256, .mode = NonLocalMode::EmbeddedGaussian})
#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/blocks/pairwise_attention.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/cpu/pointwise_projections.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/max_pool2d.hpp"

namespace gcnet {

enum class NonLocalMode { Gaussian, EmbeddedGaussian, DotProduct, Concatenation };

inline const char* to_string(NonLocalMode m) {
  switch (m) {
    case NonLocalMode::Gaussian: return "gaussian";
    case NonLocalMode::EmbeddedGaussian: return "embedded_gaussian";
    case NonLocalMode::DotProduct: return "dot_product";
    case NonLocalMode::Concatenation: return "concatenation";
  }
  return "invalid";
}

// mmcv's mode names.
inline NonLocalMode parse_non_local_mode(std::string_view name) {
  for (auto m : {NonLocalMode::Gaussian, NonLocalMode::EmbeddedGaussian, NonLocalMode::DotProduct,
                 NonLocalMode::Concatenation})
    if (name == to_string(m)) return m;
  detail::fail("NonLocal2d: unknown mode '", std::string(name),
               "', expected one of gaussian, embedded_gaussian, dot_product, concatenation");
}

struct NonLocal2dOptions {
  index_t in_channels = 0;
  index_t reduction = 2;
  bool use_scale = true;  // embedded gaussian: divide the scores by sqrt(Ci)
  NonLocalMode mode = NonLocalMode::EmbeddedGaussian;
  bool sub_sample = false;
  bool zeros_init = true;
  bool norm = false;  // BatchNorm2d after conv_out
};

template <Scalar T = float, Backend B = Cpu>
class NonLocal2d {
 public:
  using value_type = T;
  using backend_type = B;
  using Options = NonLocal2dOptions;

  explicit NonLocal2d(const NonLocal2dOptions& o) : o_(check(o)), ci_(std::max<index_t>(o.in_channels / o.reduction, 1)),
        attention_(kind(o.mode), T(1)) {
    const index_t C = o.in_channels;
    g_.emplace(Conv2dOptions{.in = C, .out = ci_, .kernel = 1});
    normal_init(*g_);
    if (o.mode != NonLocalMode::Gaussian) {
      theta_.emplace(Conv2dOptions{.in = C, .out = ci_, .kernel = 1});
      phi_.emplace(Conv2dOptions{.in = C, .out = ci_, .kernel = 1});
      normal_init(*theta_);
      normal_init(*phi_);
    }
    conv_out_.emplace(Conv2dOptions{.in = ci_, .out = C, .kernel = 1, .bias = !o.norm});
    if (o.norm) {
      bn_.emplace(C);
      // mmcv ConvModule: kaiming_normal(fan_out, relu) for its conv; zeros_init zeroes the norm.
      Tensor<T, Cpu> w(conv_out_->weight().shape());
      init::kaiming(w, 0.0, init::FanMode::FanOut, "relu", init::Distribution::Normal);
      conv_out_->weight().set(w);
      // zeros_init: gamma = beta = 0; else gamma ~ N(0, 0.01), beta = 0 (own tensors each:
      // two parameters never share storage).
      Tensor<T, Cpu> gamma(Shape{C}), beta(Shape{C});
      if (o.zeros_init) init::constant(gamma, 0.0);
      else init::normal(gamma, 0.0, 0.01);
      init::constant(beta, 0.0);
      bn_->weight()->set(gamma);
      bn_->bias()->set(beta);
    } else if (o.zeros_init) {
      zero_init(*conv_out_);
    } else {
      normal_init(*conv_out_);
    }
    if (o.mode == NonLocalMode::Concatenation) {
      Tensor<T, Cpu> w(Shape{1, 2 * ci_, 1, 1});
      init::kaiming(w, 0.0, init::FanMode::FanOut, "relu", init::Distribution::Normal);
      concat_w_.set(w);
    }
    if (o.sub_sample) {
      pool_g_.emplace(MaxPool2dOptions{.kernel = 2});
      pool_phi_.emplace(MaxPool2dOptions{.kernel = 2});
    }
  }

  const NonLocal2dOptions& options() const { return o_; }
  // Largest H*W that takes the fused 1x1 path on the CPU (a tuning knob; results agree
  // within rounding either way).
  void set_fused_max_positions(index_t positions) { fused_max_positions_ = positions; }
  index_t inter_channels() const { return ci_; }
  // Largest block of query rows in the attention (a tuning knob, see pairwise_attention.hpp;
  // tests set it small to cover many blocks per image).
  void set_max_block_rows(index_t rows) { attention_.set_max_block_rows(rows); }

  Shape setup(const Shape& in) {
    require_nchw(in, describe());
    GCNET_CHECK(in.c() == o_.in_channels, describe(), ": expected input with ", o_.in_channels,
                " channels, got shape ", in.str());
    GCNET_CHECK(!o_.sub_sample || (in.h() >= 2 && in.w() >= 2), describe(),
                ": sub_sample max-pools by 2 and needs H, W >= 2, got shape ", in.str());
    return in;
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& out) {
    require_contiguous(x, describe(), "input");
    out.resize(setup(x.shape()));
    const index_t N = x.size(0);
    if (fused(x)) {
      const Shape inner{N, ci_, x.size(2), x.size(3)};
      gx_.resize(inner);
      if (theta_) {
        th_.resize(inner);
        phx_.resize(inner);
        in_proj_.set({projection(*g_), projection(*theta_), projection(*phi_)});
      } else {
        in_proj_.set({projection(*g_)});
      }
      in_proj_.forward(N, o_.in_channels, x.size(2) * x.size(3), x.data(), {gx_.data(), th_.data(), phx_.data()});
    } else {
      g_->forward(x, gx_);
      if (theta_) {
        theta_->forward(x, th_);
        phi_->forward(x, phx_);
      }
    }
    if (o_.sub_sample) {
      pool_g_->forward(gx_, gp_);
      pool_phi_->forward(theta_ ? phx_ : x, php_);
    }
    const Tensor<T, B>& th = theta_ ? th_ : x;
    const Tensor<T, B>& ph = key_phi(x);
    const Tensor<T, B>& gk = o_.sub_sample ? gp_ : gx_;
    const PairwiseGeometry s = geometry(x.shape(), ph.shape());
    attention_.set_scale(scale(s));
    att_.resize(gx_.shape());
    // In training a backward follows: keep the softmax when it is small enough (PyTorch keeps
    // it always), so the backward need not recompute the scores.
    const bool store = training_ && static_cast<double>(N) * static_cast<double>(s.P) *
                                            static_cast<double>(s.Pp) * sizeof(T) <= kStoreBytes;
    attention_.forward_batch(N, s, th.data(), ph.data(), gk.data(), concat_w_.value.data(), att_.data(), store);
    if (fused(x)) {
      z_.resize(x.shape());
      out_proj_.set({projection(*conv_out_)});
      out_proj_.forward(N, ci_, s.P, att_.data(), {z_.data(), nullptr, nullptr});
    } else {
      conv_out_->forward(att_, z_);
    }
    if (bn_) bn_->forward(z_, zn_);
    add(x, bn_ ? zn_ : z_, out, "NonLocal2d");
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& out, const Tensor<T, B>& dout, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, out, dout, dx);
    require_contiguous(x, describe(), "input");
    const index_t N = x.size(0);
    add_into(dx, dout, "NonLocal2d");  // the residual
    const Tensor<T, B>* dz = &dout;
    if (bn_) {
      zeroed(dz_, z_.shape());
      bn_->backward(z_, zn_, dout, dz_);
      dz = &dz_;
    }
    zeroed(datt_, att_.shape());
    if (fused(x)) {
      require_contiguous(*dz, describe(), "output gradient");
      out_proj_.backward({dz->data(), nullptr, nullptr}, {conv_out_->weight().grad.data(), nullptr, nullptr},
                         {bias_grad(*conv_out_), nullptr, nullptr}, datt_.data());
    } else {
      conv_out_->backward(att_, z_, *dz, datt_);
    }

    const Tensor<T, B>& th = theta_ ? th_ : x;
    const Tensor<T, B>& ph = key_phi(x);
    const Tensor<T, B>& gk = o_.sub_sample ? gp_ : gx_;
    const PairwiseGeometry s = geometry(x.shape(), ph.shape());
    dth_.resize(th.shape());
    dph_.resize(ph.shape());
    dgk_.resize(gk.shape());
    if (o_.mode == NonLocalMode::Concatenation) fill(concat_w_.grad, T(0));
    attention_.backward_batch(N, s, th.data(), ph.data(), gk.data(), concat_w_.value.data(), datt_.data(),
                              dth_.data(), dph_.data(), dgk_.data(), concat_w_.grad.data());

    // g and phi: back through the pools (sub_sample), then the projections
    const Tensor<T, B>* dgx = &dgk_;
    const Tensor<T, B>* dphx = &dph_;
    if (o_.sub_sample) {
      zeroed(dgx_, gx_.shape());
      pool_g_->backward(gx_, gp_, dgk_, dgx_);
      dgx = &dgx_;
      zeroed(dphx_, theta_ ? phx_.shape() : x.shape());
      pool_phi_->backward(theta_ ? phx_ : x, php_, dph_, dphx_);
      dphx = &dphx_;
    }
    if (fused(x)) {
      require_contiguous(dx, describe(), "input gradient");
      if (theta_)
        in_proj_.backward({dgx->data(), dth_.data(), dphx->data()},
                          {g_->weight().grad.data(), theta_->weight().grad.data(), phi_->weight().grad.data()},
                          {bias_grad(*g_), bias_grad(*theta_), bias_grad(*phi_)}, dx.data());
      else
        in_proj_.backward({dgx->data(), nullptr, nullptr}, {g_->weight().grad.data(), nullptr, nullptr},
                          {bias_grad(*g_), nullptr, nullptr}, dx.data());
    } else {
      g_->backward(x, gx_, *dgx, dx);
      if (theta_) {
        theta_->backward(x, th_, dth_, dx);
        phi_->backward(x, phx_, *dphx, dx);
      }
    }
    if (!theta_) {
      add_into(dx, dth_, "NonLocal2d");
      add_into(dx, *dphx, "NonLocal2d");
    }
  }

  std::string describe() const {
    std::string s = "NonLocal2d(" + std::to_string(o_.in_channels) + ", inter_channels=" + std::to_string(ci_) +
                    ", mode=" + to_string(o_.mode);
    if (o_.mode == NonLocalMode::EmbeddedGaussian) s += o_.use_scale ? ", use_scale=True" : ", use_scale=False";
    if (o_.sub_sample) s += ", sub_sample=True";
    if (o_.norm) s += ", norm=BN";
    return s + ")";
  }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    const std::string seq = o_.sub_sample ? "0.conv" : "conv";  // nn.Sequential(conv, pool) with sub_sample
    g_->visit_parameters(child_prefix(child_prefix(prefix, "g"), seq), f);
    conv_out_->visit_parameters(child_prefix(prefix, "conv_out.conv"), f);
    if (bn_) bn_->visit_parameters(child_prefix(prefix, "conv_out.bn"), f);
    if (theta_) {
      theta_->visit_parameters(child_prefix(prefix, "theta.conv"), f);
      phi_->visit_parameters(child_prefix(child_prefix(prefix, "phi"), seq), f);
    }
    if (o_.mode == NonLocalMode::Concatenation) f(child_prefix(prefix, "concat_project.conv") + "weight", concat_w_);
  }
  void visit_buffers(const std::string& prefix, const BufferVisitor<T, B>& f) {
    if (bn_) bn_->visit_buffers(child_prefix(prefix, "conv_out.bn"), f);
  }
  void set_training(bool training) {
    training_ = training;
    if (bn_) bn_->set_training(training);
  }

  index_t parameter_count() { return gcnet::parameter_count(*this); }

  // FLOPs of one forward on `in` (multiply-adds count 2): the 1x1 convolutions and the two
  // attention products (for concatenation the projections and the P x P' sums); softmax,
  // biases, pooling, normalization and the residual add are not counted. The count follows
  // the block's definition (dot_product is computed with fewer operations, by associativity).
  double flops(const Shape& in) const {
    const double N = static_cast<double>(in.n()), C = static_cast<double>(in.c());
    const double P = static_cast<double>(in.h()) * static_cast<double>(in.w());
    const double Pp = o_.sub_sample ? static_cast<double>(in.h() / 2) * static_cast<double>(in.w() / 2) : P;
    const double Ci = static_cast<double>(ci_);
    const double D = o_.mode == NonLocalMode::Gaussian ? C : Ci;
    const double convs = (o_.mode == NonLocalMode::Gaussian ? 1.0 : 3.0) * 2.0 * C * Ci * P + 2.0 * Ci * C * P;
    const double scores =
        o_.mode == NonLocalMode::Concatenation ? 2.0 * D * (P + Pp) + P * Pp : 2.0 * D * P * Pp;
    return N * (convs + scores + 2.0 * Ci * P * Pp);
  }

 private:
  static NonLocal2dOptions check(const NonLocal2dOptions& o) {
    GCNET_CHECK(o.in_channels > 0, "NonLocal2d: in_channels must be positive, got ", o.in_channels);
    GCNET_CHECK(o.reduction > 0, "NonLocal2d: reduction must be positive, got ", o.reduction);
    const int m = static_cast<int>(o.mode);
    GCNET_CHECK(m >= 0 && m <= 3, "NonLocal2d: invalid mode (", m,
                "), expected one of gaussian, embedded_gaussian, dot_product, concatenation");
    return o;
  }
  static PairwiseKind kind(NonLocalMode m) {
    switch (m) {
      case NonLocalMode::Gaussian:
      case NonLocalMode::EmbeddedGaussian: return PairwiseKind::Softmax;
      case NonLocalMode::DotProduct: return PairwiseKind::Linear;
      default: return PairwiseKind::Concat;
    }
  }
  template <class Conv>
  static void normal_init(Conv& conv) {
    Tensor<T, Cpu> w(conv.weight().shape());
    init::normal(w, 0.0, 0.01);
    conv.weight().set(w);
    if (auto* b = conv.bias()) {
      Tensor<T, Cpu> z(b->shape());
      init::constant(z, 0.0);
      b->set(z);
    }
  }
  template <class Conv>
  static void zero_init(Conv& conv) {
    Tensor<T, Cpu> w(conv.weight().shape());
    init::constant(w, 0.0);
    conv.weight().set(w);
    if (auto* b = conv.bias()) {
      Tensor<T, Cpu> z(b->shape());
      init::constant(z, 0.0);
      b->set(z);
    }
  }

  // The seam: whether the 1x1 convolutions run as the CPU fast path (cpu::PointwiseProjections)
  // or as the Conv2d layers (the generic path, the only one on other backends). It pays on small
  // maps, where the projections dominate (7x7 and 14x14 at batch 2: 10-25% less CPU time per
  // fwd+bwd); at 28x28 the Conv2d path (per-image bands, no stacking) measured ~10% faster, so
  // larger maps keep it.
  bool fused(const Tensor<T, B>& x) const {
    return std::same_as<B, Cpu> && x.size(2) * x.size(3) <= fused_max_positions_;
  }
  static typename cpu::PointwiseProjections<T>::Projection projection(Conv2d<T, B>& conv) {
    const Param<T, B>* b = conv.bias();
    return {.weight = conv.weight().value.data(), .bias = b ? b->value.data() : nullptr,
            .rows = conv.weight().shape()[0]};
  }
  static T* bias_grad(Conv2d<T, B>& conv) { return conv.bias() ? conv.bias()->grad.data() : nullptr; }

  static void zeroed(Tensor<T, B>& t, const Shape& shape) {
    t.resize(shape);
    fill(t, T(0));
  }
  const Tensor<T, B>& key_phi(const Tensor<T, B>& x) const {
    if (o_.sub_sample) return php_;
    return theta_ ? phx_ : x;
  }
  PairwiseGeometry geometry(const Shape& in, const Shape& key) const {
    return {.D = o_.mode == NonLocalMode::Gaussian ? o_.in_channels : ci_, .Ci = ci_, .P = in.h() * in.w(),
            .Pp = key.h() * key.w()};
  }
  T scale(const PairwiseGeometry& s) const {
    switch (o_.mode) {
      case NonLocalMode::EmbeddedGaussian:
        return o_.use_scale ? T(1) / static_cast<T>(std::sqrt(static_cast<double>(ci_))) : T(1);
      case NonLocalMode::Gaussian: return T(1);
      default: return T(1) / static_cast<T>(s.Pp);
    }
  }

  index_t fused_max_positions_ = 256;
  static constexpr double kStoreBytes = 128.0 * 1024 * 1024;  // budget for the stored softmax

  NonLocal2dOptions o_;
  index_t ci_;
  bool training_ = true;
  std::optional<Conv2d<T, B>> g_, theta_, phi_, conv_out_;
  std::optional<BatchNorm2d<T, B>> bn_;
  std::optional<MaxPool2d<T, B>> pool_g_, pool_phi_;
  Param<T, B> concat_w_;
  BlockedPairwiseAttention<T, B> attention_;
  cpu::PointwiseProjections<T> in_proj_, out_proj_;  // CPU fast path: g / theta / phi, and conv_out
  // forward intermediates (backward reads them) and backward scratch
  ScratchTensor<T, B> gx_, gp_, th_, phx_, php_, att_, z_, zn_;
  ScratchTensor<T, B> dz_, datt_, dth_, dph_, dgk_, dgx_, dphx_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(NonLocal2d)
}  // namespace gcnet
