#pragma once
// Smooth L1 loss (torch.nn.SmoothL1Loss): with d = x - t,
//   l = 0.5 * d^2 / beta   where |d| < beta,   |d| - 0.5 * beta elsewhere,
// times an optional per-element weight (given to forward) and Options::loss_weight.
// beta = 0 is exactly L1 (as PyTorch); a negative beta is rejected. mmdet v0.6 used
// beta 1/9 (RPN) and 1.0 (RoI head).
#include <sstream>
#include <string>

#include "gcnet/loss/reduction.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class SmoothL1Loss : public detail::ElementwiseLoss<SmoothL1Loss<T, B>, T, B> {
  friend detail::ElementwiseLoss<SmoothL1Loss<T, B>, T, B>;
  using detail::ElementwiseLoss<SmoothL1Loss<T, B>, T, B>::state_;

 public:
  struct Options {
    double beta = 1.0;
    Reduction reduction = Reduction::mean;
    double loss_weight = 1.0;
  };
  SmoothL1Loss() : SmoothL1Loss(Options{}) {}
  explicit SmoothL1Loss(Options o) : opt_(o) {
    GCNET_CHECK(opt_.beta >= 0, "SmoothL1Loss: beta must be >= 0, got ", opt_.beta);
  }

  std::string describe() const {
    std::ostringstream os;
    os << "SmoothL1Loss(beta=" << opt_.beta << ", reduction=" << reduction_name(opt_.reduction);
    if (opt_.loss_weight != 1.0) os << ", loss_weight=" << opt_.loss_weight;
    os << ")";
    return os.str();
  }


 private:
  T run(const Tensor<T, B>& input, const Tensor<T, B>& target, const Tensor<T, B>* weight) {
    state_.prepare(describe(), input, target, weight);
    const T* x = input.data();
    const T* t = target.data();
    const T* w = weight ? weight->data() : nullptr;
    T* l = state_.losses_.data();
    T* s = state_.slope_.data();
    const T lw = static_cast<T>(opt_.loss_weight), beta = static_cast<T>(opt_.beta);
    for_each_index(B{}, input.numel(), [=] GCNET_HD(index_t i) {
      const T d = x[i] - t[i], a = d < T(0) ? -d : d;
      const T scale = lw * (w ? w[i] : T(1));
      const T sign = d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0));
      if (a < beta) {  // never taken when beta == 0: plain L1
        l[i] = scale * (T(0.5) * d * d / beta);
        s[i] = scale * (d / beta);
      } else {
        l[i] = scale * (a - T(0.5) * beta);
        s[i] = scale * sign;
      }
    });
    return state_.reduce(opt_.reduction);
  }

  Options opt_;
};

}  // namespace gcnet
