#pragma once
// Flatten: [N, d1, d2, ...] -> [N, d1*d2*...] (torch.nn.Flatten with start_dim 1), e.g.
// between global pooling and a Linear classifier.
#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class Flatten {
 public:
  using value_type = T;
  using backend_type = B;

  Shape setup(const Shape& in) {
    GCNET_CHECK(in.rank() >= 2 && !in.has_zero(), "Flatten: expected a non-empty input of rank >= 2, got shape ",
                in.str());
    return Shape{in[0], in.numel() / in[0]};
  }
  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    const Shape out = setup(x.shape());
    copy(x, y);
    y = y.reshape(out);
  }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args("Flatten", x, y, dy, dx);
    add_into(dx, dy.reshape(x.shape()), "Flatten");
  }
  std::string describe() const { return "Flatten"; }
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(Flatten)
}  // namespace gcnet
