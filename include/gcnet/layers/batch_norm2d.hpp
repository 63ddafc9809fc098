#pragma once
// BatchNorm2d as torch.nn.BatchNorm2d. Training normalizes each channel with the batch's
// mean and biased variance and moves running_mean / running_var (the latter with the
// UNBIASED batch variance) towards them; eval normalizes with the running statistics.
// Without track_running_stats there are no buffers and batch statistics are always used.
//
// Work is split in two kinds of kernel: per-channel reductions (one index per channel,
// looping over N*H*W) and element-wise passes that apply per-channel coefficients.
// Sums are accumulated in double: a channel can hold 10^5..10^6 values.
#include <cmath>
#include <optional>
#include <sstream>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/channel_affine.hpp"
#include "gcnet/kernels/channel_stats.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

struct BatchNorm2dOptions {
  index_t channels = 0;
  double eps = 1e-5;
  std::optional<double> momentum = 0.1;  // nullopt: cumulative average (1 / num_batches_tracked)
  bool affine = true;
  bool track_running_stats = true;
};

template <Scalar T = float, Backend B = Cpu>
class BatchNorm2d {
 public:
  using value_type = T;
  using backend_type = B;
  // backward reads x, dy and what forward saved; of y only its shape (models/res_block.hpp relies
  // on it to run the ReLU after a norm in place).
  static constexpr bool backward_ignores_output = true;

  explicit BatchNorm2d(index_t channels) : BatchNorm2d(BatchNorm2dOptions{.channels = channels}) {}
  explicit BatchNorm2d(const BatchNorm2dOptions& o) : opt_(o) {
    GCNET_CHECK(o.channels > 0, "BatchNorm2d: the number of channels must be positive, got ", o.channels);
    GCNET_CHECK(o.eps >= 0, "BatchNorm2d: eps must be non-negative, got ", o.eps);
    GCNET_CHECK(!o.momentum || (*o.momentum >= 0 && *o.momentum <= 1),
                "BatchNorm2d: momentum must be in [0, 1], got ", o.momentum.value_or(0));
    name_ = make_name();
    const Shape c{o.channels};
    if (o.affine) {
      Tensor<T, Cpu> w(c), b(c);
      init::constant(w, 1.0);
      init::constant(b, 0.0);
      weight_.set(w);
      bias_.set(b);
    }
    if (o.track_running_stats) {
      Tensor<T, Cpu> rm(c), rv(c), count(Shape{});
      init::constant(rm, 0.0);
      init::constant(rv, 1.0);
      init::constant(count, 0.0);
      running_mean_ = to_backend<B>(rm);
      running_var_ = to_backend<B>(rv);
      num_batches_tracked_ = to_backend<B>(count);
    }
  }

  Shape setup(const Shape& in) {
    require_nchw(in, name_);
    GCNET_CHECK(in.c() == opt_.channels, name_, ": expected input with ", opt_.channels,
                " channels, got shape ", in.str());
    // As PyTorch: the variance of a single value is meaningless.
    GCNET_CHECK(!uses_batch_stats() || in.n() * in.h() * in.w() > 1, name_,
                ": Expected more than 1 value per channel when training, got input of shape ", in.str());
    return in;
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    GCNET_CHECK(x.is_contiguous(), name_, ": input of shape ", x.shape().str(), " must be contiguous");
    y.resize(setup(x.shape()));
    const index_t C = opt_.channels, HW = x.size(2) * x.size(3), N = x.size(0), M = N * HW;
    for (Tensor<T, B>* t : {&mean_, &invstd_, &scale_, &shift_}) t->resize(Shape{C});
    batch_stats_ = uses_batch_stats();
    const bool update = training_ && opt_.track_running_stats;

    const T* xp = x.data();
    T *mean = mean_.data(), *invstd = invstd_.data(), *scale = scale_.data(), *shift = shift_.data();
    const T* w = opt_.affine ? weight_.value.data() : nullptr;
    const T* b = opt_.affine ? bias_.value.data() : nullptr;
    T* rm = opt_.track_running_stats ? running_mean_.data() : nullptr;
    T* rv = opt_.track_running_stats ? running_var_.data() : nullptr;
    const T* count = opt_.track_running_stats ? num_batches_tracked_.data() : nullptr;
    const bool batch = batch_stats_;
    const double eps = opt_.eps, momentum = opt_.momentum.value_or(-1.0);  // < 0: cumulative

    // Per channel: statistics, running-stat update, and y = x * scale + shift coefficients.
    for_each_index_weighted(B{}, C, batch ? 2 * M : 1, [=] GCNET_HD(index_t c) {
      double m, istd;
      if (batch) {
        const detail::MeanVar st = detail::channel_mean_var(xp, N, C, c, HW);
        m = st.mean;
        const double var = st.var;
        istd = 1.0 / std::sqrt(var + eps);
        if (update) {
          const double f = momentum >= 0 ? momentum : 1.0 / (static_cast<double>(count[0]) + 1.0);
          rm[c] = static_cast<T>((1 - f) * rm[c] + f * m);
          rv[c] = static_cast<T>((1 - f) * rv[c] + f * var * static_cast<double>(M) / static_cast<double>(M - 1));
        }
      } else {
        m = rm[c];
        istd = 1.0 / std::sqrt(static_cast<double>(rv[c]) + eps);
      }
      mean[c] = static_cast<T>(m);
      invstd[c] = static_cast<T>(istd);
      const double sc = (w ? static_cast<double>(w[c]) : 1.0) * istd;
      scale[c] = static_cast<T>(sc);
      shift[c] = static_cast<T>((b ? static_cast<double>(b[c]) : 0.0) - m * sc);
    });
    if (update) {
      T* cnt = num_batches_tracked_.data();
      for_each_index(B{}, 1, [=] GCNET_HD(index_t) { cnt[0] += T(1); });
    }

    channel_affine(B{}, xp, scale, shift, y.data(), N, C, HW);
  }

  // Train: dx = w*invstd*(dy - mean(dy) - xhat*mean(dy*xhat)) (the batch statistics depend
  // on x); eval: dx = w*invstd*dy. Both: dweight = sum(dy*xhat), dbias = sum(dy).
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(name_, x, y, dy, dx);
    GCNET_CHECK(mean_.numel() == opt_.channels && x.shape() == y.shape(), name_,
                ": backward needs the forward pass of this input first");
    const index_t C = opt_.channels, HW = x.size(2) * x.size(3), N = x.size(0), M = N * HW;
    mean_dy_.resize(Shape{C});
    mean_dy_xhat_.resize(Shape{C});
    const T *xp = x.data(), *g = dy.data(), *mean = mean_.data(), *invstd = invstd_.data();
    T *mdy = mean_dy_.data(), *mdyx = mean_dy_xhat_.data();
    T* wg = opt_.affine ? weight_.grad.data() : nullptr;
    T* bg = opt_.affine ? bias_.grad.data() : nullptr;
    const T* w = opt_.affine ? weight_.value.data() : nullptr;

    for_each_index_weighted(B{}, C, 2 * M, [=] GCNET_HD(index_t c) {
      const double m = mean[c];
      const detail::GradSums gs = detail::channel_grad_sums(g, xp, m, N, C, c, HW);
      const double sdy = gs.dy, sdyx = gs.dy_xmu * static_cast<double>(invstd[c]);
      if (wg) wg[c] = static_cast<T>(sdyx);
      if (bg) bg[c] = static_cast<T>(sdy);
      mdy[c] = static_cast<T>(sdy / static_cast<double>(M));
      mdyx[c] = static_cast<T>(sdyx / static_cast<double>(M));
    });

    T* d = dx.data();
    const bool batch = batch_stats_;
    // dx += k * (dy - mdy - (x - mean) * invstd * mdyx), per plane.
    for_each_index_weighted(B{}, N * C, HW, [=] GCNET_HD(index_t plane) {
      const index_t c = plane % C;
      const T k = (w ? w[c] : T(1)) * invstd[c];
      const T* gp = g + plane * HW;
      const T* p = xp + plane * HW;
      T* q = d + plane * HW;
      if (batch) {
        const T a = -k * invstd[c] * mdyx[c], b = -k * mdy[c], mc = mean[c];
        GCNET_SIMD
        for (index_t j = 0; j < HW; ++j) q[j] += k * gp[j] + (p[j] - mc) * a + b;
      } else {
        GCNET_SIMD
        for (index_t j = 0; j < HW; ++j) q[j] += k * gp[j];
      }
    });
  }

  std::string describe() const { return name_; }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    if (!opt_.affine) return;
    f(prefix + "weight", weight_);
    f(prefix + "bias", bias_);
  }
  void visit_buffers(const std::string& prefix, const BufferVisitor<T, B>& f) {
    if (!opt_.track_running_stats) return;
    f(prefix + "running_mean", running_mean_);
    f(prefix + "running_var", running_var_);
    f(prefix + "num_batches_tracked", num_batches_tracked_);
  }
  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }

  const BatchNorm2dOptions& options() const { return opt_; }
  index_t channels() const { return opt_.channels; }
  double eps() const { return opt_.eps; }
  // nullptr without affine.
  Param<T, B>* weight() { return opt_.affine ? &weight_ : nullptr; }
  Param<T, B>* bias() { return opt_.affine ? &bias_ : nullptr; }
  const Param<T, B>* weight() const { return opt_.affine ? &weight_ : nullptr; }
  const Param<T, B>* bias() const { return opt_.affine ? &bias_ : nullptr; }
  // Undefined tensors without track_running_stats.
  Tensor<T, B>& running_mean() { return running_mean_; }
  Tensor<T, B>& running_var() { return running_var_; }
  Tensor<T, B>& num_batches_tracked() { return num_batches_tracked_; }
  const Tensor<T, B>& running_mean() const { return running_mean_; }
  const Tensor<T, B>& running_var() const { return running_var_; }
  const Tensor<T, B>& num_batches_tracked() const { return num_batches_tracked_; }

 private:
  bool uses_batch_stats() const { return training_ || !opt_.track_running_stats; }

  std::string make_name() const {
    std::ostringstream os;
    os << "BatchNorm2d(" << opt_.channels << ", eps=" << opt_.eps << ", momentum=";
    if (opt_.momentum) os << *opt_.momentum; else os << "None";
    os << ", affine=" << (opt_.affine ? "True" : "False")
       << ", track_running_stats=" << (opt_.track_running_stats ? "True" : "False") << ")";
    return os.str();
  }

  BatchNorm2dOptions opt_;
  std::string name_;
  bool training_ = true;
  Param<T, B> weight_, bias_;
  StateTensor<T, B> running_mean_, running_var_, num_batches_tracked_;
  // Saved by forward for backward: per-channel mean and 1/std used, and whether they were
  // batch statistics. Scratch: y = x*scale + shift coefficients, backward's channel means.
  ScratchTensor<T, B> mean_, invstd_, scale_, shift_, mean_dy_, mean_dy_xhat_;
  bool batch_stats_ = true;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(BatchNorm2d)
}  // namespace gcnet
