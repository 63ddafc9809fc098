#pragma once
// Linear as torch.nn.Linear: y = x W^T + b over the last dim, [*, in] -> [*, out]
// (in practice [N, in] -> [N, out]; flattening NCHW maps is Flatten's job). Weight
// [out, in] and bias [out] get PyTorch's default init, U(-1/sqrt(in), 1/sqrt(in)).
#include <sstream>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/blas.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class Linear {
 public:
  using value_type = T;
  using backend_type = B;

  Linear(index_t in_features, index_t out_features, bool bias = true)
      : in_(in_features), out_(out_features), has_bias_(bias) {
    GCNET_CHECK(in_features > 0 && out_features > 0, "Linear: in_features and out_features must be positive, got ",
                in_features, " and ", out_features);
    std::ostringstream os;
    os << "Linear(in_features=" << in_ << ", out_features=" << out_ << ", bias=" << (bias ? "True" : "False") << ")";
    name_ = os.str();
    Tensor<T, Cpu> w(Shape{out_, in_});
    init::torch_default_weight(w);
    weight_.set(w);
    if (has_bias_) {
      Tensor<T, Cpu> b(Shape{out_});
      init::torch_default_bias(b, in_);
      bias_.set(b);
    }
  }

  Shape setup(const Shape& in) {
    GCNET_CHECK(in.rank() >= 1 && in[-1] == in_, name_, ": expected input with last dimension ", in_,
                " (in_features), got shape ", in.str());
    GCNET_CHECK(!in.has_zero(), name_, ": input shape ", in.str(), " has a zero extent");
    Shape out = in;
    out[-1] = out_;
    return out;
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    GCNET_CHECK(x.is_contiguous(), name_, ": input of shape ", x.shape().str(), " must be contiguous");
    y.resize(setup(x.shape()));
    const index_t rows = x.numel() / in_, out = out_;
    T* yp = y.data();
    blas::gemm(B{}, blas::Op::N, blas::Op::T, rows, out_, in_, T(1), x.data(), in_, weight_.value.data(), in_,
               T(0), yp, out_);
    if (!has_bias_) return;
    const T* b = bias_.value.data();
    for_each_index(B{}, rows * out, [=] GCNET_HD(index_t i) { yp[i] += b[i % out]; });
  }

  // dx += dy W; weight.grad = dy^T x; bias.grad = column sums of dy.
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(name_, x, y, dy, dx);
    const index_t rows = x.numel() / in_, out = out_;
    blas::gemm(B{}, blas::Op::N, blas::Op::N, rows, in_, out_, T(1), dy.data(), out_, weight_.value.data(), in_,
               T(1), dx.data(), in_);
    blas::gemm(B{}, blas::Op::T, blas::Op::N, out_, in_, rows, T(1), dy.data(), out_, x.data(), in_, T(0),
               weight_.grad.data(), in_);
    if (!has_bias_) return;
    const T* g = dy.data();
    T* bg = bias_.grad.data();
    for_each_index_weighted(B{}, out, rows, [=] GCNET_HD(index_t o) {
      T s = 0;
      for (index_t r = 0; r < rows; ++r) s += g[r * out + o];
      bg[o] = s;
    });
  }

  std::string describe() const { return name_; }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    f(prefix + "weight", weight_);
    if (has_bias_) f(prefix + "bias", bias_);
  }

  index_t in_features() const { return in_; }
  index_t out_features() const { return out_; }
  Param<T, B>& weight() { return weight_; }
  Param<T, B>* bias() { return has_bias_ ? &bias_ : nullptr; }

 private:
  index_t in_, out_;
  bool has_bias_;
  std::string name_;
  Param<T, B> weight_, bias_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(Linear)
}  // namespace gcnet
