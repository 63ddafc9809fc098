#pragma once
// Softmax over one dim (negative dims count from the end), as torch.nn.Softmax(dim).
// Max-subtracted so exp never overflows; sums accumulate in T. The input is viewed as
// [outer, D, inner]: each (outer, inner) pair is one row of D values, inner apart.
// Backward reads y: dx += y * (dy - sum(dy * y)).
#include <cmath>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class Softmax {
 public:
  using value_type = T;
  using backend_type = B;

  explicit Softmax(int dim) : dim_(dim) {}

  Shape setup(const Shape& in) {
    GCNET_CHECK(dim_ >= -in.rank() && dim_ < in.rank(), describe(), ": dim ", dim_,
                " is out of range for input of shape ", in.str(), " (rank ", in.rank(), ")");
    GCNET_CHECK(!in.has_zero(), describe(), ": input shape ", in.str(), " has a zero extent");
    return in;
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    GCNET_CHECK(x.is_contiguous(), describe(), ": input of shape ", x.shape().str(), " must be contiguous");
    y.resize(setup(x.shape()));
    const Geometry g = geometry(x.shape());
    const index_t D = g.d, inner = g.inner;
    const T* xp = x.data();
    T* yp = y.data();
    for_each_index_weighted(B{}, g.outer * inner, 3 * D, [=] GCNET_HD(index_t r) {
      const index_t base = (r / inner) * D * inner + r % inner;
      T mx = xp[base];
      for (index_t k = 1; k < D; ++k) mx = xp[base + k * inner] > mx ? xp[base + k * inner] : mx;
      T s = 0;
      for (index_t k = 0; k < D; ++k) {
        const T e = std::exp(xp[base + k * inner] - mx);
        yp[base + k * inner] = e;
        s += e;
      }
      const T inv = T(1) / s;
      for (index_t k = 0; k < D; ++k) yp[base + k * inner] *= inv;
    });
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    GCNET_CHECK(y.shape() == x.shape(), describe(), ": output of shape ", y.shape().str(),
                " does not match input of shape ", x.shape().str());
    const Geometry g = geometry(x.shape());
    const index_t D = g.d, inner = g.inner;
    const T *yp = y.data(), *gp = dy.data();
    T* d = dx.data();
    for_each_index_weighted(B{}, g.outer * inner, 3 * D, [=] GCNET_HD(index_t r) {
      const index_t base = (r / inner) * D * inner + r % inner;
      T dot = 0;
      for (index_t k = 0; k < D; ++k) dot += gp[base + k * inner] * yp[base + k * inner];
      for (index_t k = 0; k < D; ++k) {
        const index_t i = base + k * inner;
        d[i] += yp[i] * (gp[i] - dot);
      }
    });
  }

  std::string describe() const { return "Softmax(dim=" + std::to_string(dim_) + ")"; }
  int dim() const { return dim_; }

 private:
  struct Geometry {
    index_t outer = 1, d = 1, inner = 1;
  };
  Geometry geometry(const Shape& s) const {
    const int dim = dim_ < 0 ? dim_ + s.rank() : dim_;
    Geometry g;
    for (int i = 0; i < s.rank(); ++i) {
      if (i < dim) g.outer *= s[i];
      else if (i > dim) g.inner *= s[i];
    }
    g.d = s[dim];
    return g;
  }

  int dim_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(Softmax)
}  // namespace gcnet
