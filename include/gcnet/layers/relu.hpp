#pragma once
// ReLU: y = max(x, 0). Backward reads y (y > 0 exactly where x > 0).
#include "gcnet/core/layer.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class ReLU {
 public:
  using value_type = T;
  using backend_type = B;

  Shape setup(const Shape& in) {
    GCNET_CHECK(!in.has_zero() && in.rank() > 0, "ReLU: input shape ", in.str(), " is empty");
    return in;
  }
  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    require_contiguous(x, "ReLU", "input");
    y.resize(setup(x.shape()));
    const T* xp = x.data();
    T* yp = y.data();
    for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) { yp[i] = xp[i] > T(0) ? xp[i] : T(0); });
  }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args("ReLU", x, y, dy, dx);
    const T *yp = y.data(), *g = dy.data();
    T* d = dx.data();
    // The load of g is unconditional so the select vectorizes.
    for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) {
      const T gi = g[i];
      d[i] += yp[i] > T(0) ? gi : T(0);
    });
  }
  std::string describe() const { return "ReLU"; }
};

}  // namespace gcnet
