#pragma once
// GlobalAvgPool2d: [N, C, H, W] -> [N, C, 1, 1], the mean of each plane
// (torch.nn.AdaptiveAvgPool2d(1); the 'avg' context of a GC/SE block).
#include <string>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class GlobalAvgPool2d {
 public:
  using value_type = T;
  using backend_type = B;

  Shape setup(const Shape& in) {
    require_nchw(in, describe());
    return Shape{in.n(), in.c(), 1, 1};
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    require_contiguous(x, describe(), "input");
    y.resize(setup(x.shape()));
    const index_t HW = x.size(2) * x.size(3);
    const T* xp = x.data();
    T* yp = y.data();
    for_each_index_weighted(B{}, x.size(0) * x.size(1), HW, [=] GCNET_HD(index_t p) {
      const T* in = xp + p * HW;
      T sum = 0;
      for (index_t i = 0; i < HW; ++i) sum += in[i];
      yp[p] = sum / T(HW);
    });
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    const index_t HW = x.size(2) * x.size(3);
    const T* g = dy.data();
    T* d = dx.data();
    for_each_index_weighted(B{}, x.size(0) * x.size(1), HW, [=] GCNET_HD(index_t p) {
      const T share = g[p] / T(HW);
      T* gi = d + p * HW;
      for (index_t i = 0; i < HW; ++i) gi[i] += share;
    });
  }

  std::string describe() const { return "GlobalAvgPool2d"; }
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(GlobalAvgPool2d)
}  // namespace gcnet
