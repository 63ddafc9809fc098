#pragma once
// ReLU: y = max(x, 0), with NaN propagating as in PyTorch (relu(NaN) = NaN): a NaN input must
// reach the loss, which stops training, instead of turning into 0 while backward writes NaN
// into the weights. Backward reads y and, as PyTorch's threshold_backward, zeroes the
// gradient exactly where y <= 0 (so it passes where y is NaN).
#include "gcnet/core/extern_instances.hpp"
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
    // !(x <= 0) is true for x > 0 and for NaN.
    for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) { yp[i] = !(xp[i] <= T(0)) ? xp[i] : T(0); });
  }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args("ReLU", x, y, dy, dx);
    const T *yp = y.data(), *g = dy.data();
    T* d = dx.data();
    // The load of g is unconditional so the select vectorizes.
    for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) {
      const T gi = g[i];
      d[i] += yp[i] <= T(0) ? T(0) : gi;
    });
  }
  std::string describe() const { return "ReLU"; }
};

// t = relu(t) in place (NaN propagating as ReLU): for inference, where no backward reads the input.
template <class T, class B>
void relu_in_place(Tensor<T, B>& t) {
  T* p = t.data();
  for_each_index(B{}, t.numel(), [=] GCNET_HD(index_t i) { p[i] = !(p[i] <= T(0)) ? p[i] : T(0); });
}

// g = dL/dx of y = relu(x) given g = dL/dy, in place (ReLU::backward's rule: zero where y <= 0).
template <class T, class B>
void relu_grad_in_place(const Tensor<T, B>& y, Tensor<T, B>& g) {
  const T* yp = y.data();
  T* gp = g.data();
  for_each_index(B{}, y.numel(), [=] GCNET_HD(index_t i) {
    const T gi = gp[i];
    gp[i] = yp[i] <= T(0) ? T(0) : gi;
  });
}

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(ReLU)
}  // namespace gcnet
