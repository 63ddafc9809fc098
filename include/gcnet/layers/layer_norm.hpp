#pragma once
// LayerNorm as torch.nn.LayerNorm: each input is normalized over its trailing dims equal to
// normalized_shape (mean and biased variance, eps inside the sqrt), then an element-wise
// affine of normalized_shape (weight 1, bias 0). The GC block uses LayerNorm({planes, 1, 1})
// on [N, planes, 1, 1]. Rows (the leading dims) are independent: forward and dx run one
// index per row; the affine gradients one index per normalized element, over the rows.
#include <cmath>
#include <sstream>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class LayerNorm {
 public:
  using value_type = T;
  using backend_type = B;

  explicit LayerNorm(const Shape& normalized_shape, double eps = 1e-5, bool elementwise_affine = true)
      : shape_(normalized_shape), eps_(eps), affine_(elementwise_affine) {
    GCNET_CHECK(shape_.rank() > 0 && !shape_.has_zero(),
                "LayerNorm: normalized_shape must be non-empty with positive extents, got ", shape_.str());
    GCNET_CHECK(eps >= 0, "LayerNorm: eps must be non-negative, got ", eps);
    std::ostringstream os;
    os << "LayerNorm(" << shape_.str() << ", eps=" << eps << ", elementwise_affine=" << (affine_ ? "True" : "False")
       << ")";
    name_ = os.str();
    if (affine_) {
      Tensor<T, Cpu> w(shape_), b(shape_);
      init::constant(w, 1.0);
      init::constant(b, 0.0);
      weight_.set(w);
      bias_.set(b);
    }
  }

  Shape setup(const Shape& in) {
    const int k = shape_.rank(), lead = in.rank() - k;
    bool fits = lead >= 0;
    for (int i = 0; fits && i < k; ++i) fits = in[lead + i] == shape_[i];
    GCNET_CHECK(fits, name_, ": given normalized_shape=", shape_.str(), ", expected input with shape [*, ",
                shape_.str().substr(1), ", got shape ", in.str());
    GCNET_CHECK(!in.has_zero(), name_, ": input shape ", in.str(), " has a zero extent");
    return in;
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    GCNET_CHECK(x.is_contiguous(), name_, ": input of shape ", x.shape().str(), " must be contiguous");
    y.resize(setup(x.shape()));
    const index_t D = shape_.numel(), rows = x.numel() / D;
    mean_.resize(Shape{rows});
    invstd_.resize(Shape{rows});
    const T* xp = x.data();
    T *yp = y.data(), *mean = mean_.data(), *invstd = invstd_.data();
    const T* w = affine_ ? weight_.value.data() : nullptr;
    const T* b = affine_ ? bias_.value.data() : nullptr;
    const double eps = eps_;
    for_each_index_weighted(B{}, rows, 3 * D, [=] GCNET_HD(index_t r) {
      const T* p = xp + r * D;
      double s = 0;
      for (index_t j = 0; j < D; ++j) s += p[j];
      const double m = s / static_cast<double>(D);
      double v = 0;
      for (index_t j = 0; j < D; ++j) v += (p[j] - m) * (p[j] - m);
      const double is = 1.0 / std::sqrt(v / static_cast<double>(D) + eps);
      mean[r] = static_cast<T>(m);
      invstd[r] = static_cast<T>(is);
      T* q = yp + r * D;
      for (index_t j = 0; j < D; ++j) {
        const T xhat = static_cast<T>((p[j] - m) * is);
        q[j] = w ? xhat * w[j] + b[j] : xhat;
      }
    });
  }

  // Per row, with g = dy * weight: dx = invstd * (g - mean(g) - xhat * mean(g * xhat)).
  // weight.grad = sum over rows of dy * xhat, bias.grad = sum over rows of dy.
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(name_, x, y, dy, dx);
    const index_t D = shape_.numel(), rows = x.numel() / D;
    GCNET_CHECK(mean_.numel() == rows, name_, ": backward needs the forward pass of this input first");
    const T *xp = x.data(), *g = dy.data(), *mean = mean_.data(), *invstd = invstd_.data();
    const T* w = affine_ ? weight_.value.data() : nullptr;
    T* d = dx.data();
    for_each_index_weighted(B{}, rows, 3 * D, [=] GCNET_HD(index_t r) {
      const index_t base = r * D;
      const double m = mean[r], is = invstd[r];
      double sg = 0, sgx = 0;
      for (index_t j = 0; j < D; ++j) {
        const double gj = w ? static_cast<double>(g[base + j]) * w[j] : g[base + j];
        sg += gj;
        sgx += gj * (xp[base + j] - m) * is;
      }
      const double mg = sg / static_cast<double>(D), mgx = sgx / static_cast<double>(D);
      for (index_t j = 0; j < D; ++j) {
        const double gj = w ? static_cast<double>(g[base + j]) * w[j] : g[base + j];
        const double xhat = (xp[base + j] - m) * is;
        d[base + j] += static_cast<T>(is * (gj - mg - xhat * mgx));
      }
    });
    if (!affine_) return;
    T *wg = weight_.grad.data(), *bg = bias_.grad.data();
    for_each_index_weighted(B{}, D, 2 * rows, [=] GCNET_HD(index_t j) {
      double sw = 0, sb = 0;
      for (index_t r = 0; r < rows; ++r) {
        const double gj = g[r * D + j];
        sw += gj * (xp[r * D + j] - mean[r]) * invstd[r];
        sb += gj;
      }
      wg[j] = static_cast<T>(sw);
      bg[j] = static_cast<T>(sb);
    });
  }

  std::string describe() const { return name_; }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    if (!affine_) return;
    f(prefix + "weight", weight_);
    f(prefix + "bias", bias_);
  }

  const Shape& normalized_shape() const { return shape_; }
  double eps() const { return eps_; }
  // nullptr without elementwise_affine.
  Param<T, B>* weight() { return affine_ ? &weight_ : nullptr; }
  Param<T, B>* bias() { return affine_ ? &bias_ : nullptr; }

 private:
  Shape shape_;
  double eps_;
  bool affine_;
  std::string name_;
  Param<T, B> weight_, bias_;
  ScratchTensor<T, B> mean_, invstd_;  // per row, saved by forward for backward
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(LayerNorm)
}  // namespace gcnet
