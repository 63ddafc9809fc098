#pragma once
// Identity<T, B>: y = x. The default shortcut of Residual.
#include "gcnet/core/layer.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class Identity {
 public:
  using value_type = T;
  using backend_type = B;
  Shape setup(const Shape& in) { return in; }
  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) { copy(x, y); }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy,
                Tensor<T, B>& dx) {
    check_backward_args("Identity", x, y, dy, dx);
    add_into(dx, dy, "Identity");
  }
  std::string describe() const { return "Identity"; }
};

}  // namespace gcnet
