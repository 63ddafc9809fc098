#pragma once
// Sigmoid: y = 1 / (1 + std::exp(-x)), computed without overflow for large |x|.
// Backward reads y: dy/dx = y (1 - y).
#include <cmath>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <class T>
GCNET_HD inline T stable_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

template <Scalar T = float, Backend B = Cpu>
class Sigmoid {
 public:
  using value_type = T;
  using backend_type = B;

  Shape setup(const Shape& in) {
    GCNET_CHECK(!in.has_zero() && in.rank() > 0, "Sigmoid: input shape ", in.str(), " is empty");
    return in;
  }
  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    require_contiguous(x, "Sigmoid", "input");
    y.resize(setup(x.shape()));
    const T* xp = x.data();
    T* yp = y.data();
    for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) { yp[i] = stable_sigmoid(xp[i]); });
  }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args("Sigmoid", x, y, dy, dx);
    const T *yp = y.data(), *g = dy.data();
    T* d = dx.data();
    for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) { d[i] += g[i] * yp[i] * (T(1) - yp[i]); });
  }
  std::string describe() const { return "Sigmoid"; }
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(Sigmoid)
}  // namespace gcnet
