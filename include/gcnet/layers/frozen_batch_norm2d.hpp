#pragma once
// FrozenBatchNorm2d as torchvision.ops.FrozenBatchNorm2d: batch norm with fixed statistics
// and affine, y = x * scale + shift with scale = weight / sqrt(running_var + eps) and
// shift = bias - running_mean * scale. weight, bias, running_mean and running_var are all
// BUFFERS (nothing trains); backward gives dx only. from(bn) converts an eval-mode
// BatchNorm2d into the equivalent frozen layer.
#include <cmath>
#include <sstream>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/channel_affine.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/batch_norm2d.hpp"

namespace gcnet {

namespace detail {
// scale = w / sqrt(rv + eps), shift = b - rm * scale, per channel. A free function: nvcc
// rejects device lambdas in private member functions.
template <class T, class B>
void frozen_bn_coefficients(B, index_t channels, double eps, const T* w, const T* b, const T* rm, const T* rv,
                            T* scale, T* shift) {
  for_each_index(B{}, channels, [=] GCNET_HD(index_t c) {
    const double s = static_cast<double>(w[c]) / std::sqrt(static_cast<double>(rv[c]) + eps);
    scale[c] = static_cast<T>(s);
    shift[c] = static_cast<T>(static_cast<double>(b[c]) - static_cast<double>(rm[c]) * s);
  });
}
}  // namespace detail

template <Scalar T = float, Backend B = Cpu>
class FrozenBatchNorm2d {
 public:
  using value_type = T;
  using backend_type = B;
  // backward reads x, dy and what forward saved; of y only its shape (models/res_block.hpp relies
  // on it to run the ReLU after a norm in place).
  static constexpr bool backward_ignores_output = true;
  // backward is dx += dy * scale: of x too only the shape (models/res_block_frozen_norms.hpp).
  static constexpr bool backward_ignores_input = true;

  // Identity statistics: weight 1, bias 0, running_mean 0, running_var 1.
  explicit FrozenBatchNorm2d(index_t channels, double eps = 1e-5) : channels_(channels), eps_(eps) {
    GCNET_CHECK(channels > 0, "FrozenBatchNorm2d: the number of channels must be positive, got ", channels);
    GCNET_CHECK(eps >= 0, "FrozenBatchNorm2d: eps must be non-negative, got ", eps);
    std::ostringstream os;
    os << "FrozenBatchNorm2d(" << channels << ", eps=" << eps << ")";
    name_ = os.str();
    weight_ = full<T, B>(Shape{channels}, T(1));
    bias_ = zeros<T, B>(Shape{channels});
    running_mean_ = zeros<T, B>(Shape{channels});
    running_var_ = full<T, B>(Shape{channels}, T(1));
  }

  // The frozen equivalent of `bn` in eval mode: its statistics, affine (1 and 0 without
  // affine) and eps, copied.
  static FrozenBatchNorm2d from(const BatchNorm2d<T, B>& bn) {
    GCNET_CHECK(bn.options().track_running_stats, "FrozenBatchNorm2d::from: ", bn.describe(),
                " has no running statistics to freeze");
    FrozenBatchNorm2d f(bn.channels(), bn.eps());
    if (bn.weight()) copy(bn.weight()->value, f.weight_);
    if (bn.bias()) copy(bn.bias()->value, f.bias_);
    copy(bn.running_mean(), f.running_mean_);
    copy(bn.running_var(), f.running_var_);
    return f;
  }

  Shape setup(const Shape& in) {
    require_nchw(in, name_);
    GCNET_CHECK(in.c() == channels_, name_, ": expected input with ", channels_, " channels, got shape ",
                in.str());
    return in;
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    GCNET_CHECK(x.is_contiguous(), name_, ": input of shape ", x.shape().str(), " must be contiguous");
    y.resize(setup(x.shape()));
    update_coefficients();
    const index_t C = channels_, HW = x.size(2) * x.size(3);
    const T *xp = x.data(), *scale = scale_.data(), *shift = shift_.data();
    T* yp = y.data();
    channel_affine(B{}, xp, scale, shift, yp, x.size(0), C, HW);
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(name_, x, y, dy, dx);
    setup(x.shape());
    update_coefficients();  // the buffers may have been loaded since forward
    const index_t C = channels_, HW = x.size(2) * x.size(3);
    const T *g = dy.data(), *scale = scale_.data();
    T* d = dx.data();
    channel_scale_add(B{}, g, scale, d, x.size(0), C, HW);
  }

  std::string describe() const { return name_; }

  void visit_buffers(const std::string& prefix, const BufferVisitor<T, B>& f) {
    f(prefix + "weight", weight_);
    f(prefix + "bias", bias_);
    f(prefix + "running_mean", running_mean_);
    f(prefix + "running_var", running_var_);
  }

  index_t channels() const { return channels_; }
  double eps() const { return eps_; }
  Tensor<T, B>& weight() { return weight_; }
  Tensor<T, B>& bias() { return bias_; }
  Tensor<T, B>& running_mean() { return running_mean_; }
  Tensor<T, B>& running_var() { return running_var_; }
  const Tensor<T, B>& weight() const { return weight_; }
  const Tensor<T, B>& bias() const { return bias_; }
  const Tensor<T, B>& running_mean() const { return running_mean_; }
  const Tensor<T, B>& running_var() const { return running_var_; }

 private:
  void update_coefficients() {
    scale_.resize(Shape{channels_});
    shift_.resize(Shape{channels_});
    detail::frozen_bn_coefficients(B{}, channels_, eps_, weight_.data(), bias_.data(), running_mean_.data(),
                                   running_var_.data(), scale_.data(), shift_.data());
  }

  index_t channels_;
  double eps_;
  std::string name_;
  StateTensor<T, B> weight_, bias_, running_mean_, running_var_;
  ScratchTensor<T, B> scale_, shift_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(FrozenBatchNorm2d)
}  // namespace gcnet
