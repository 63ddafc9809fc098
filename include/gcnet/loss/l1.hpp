#pragma once
// L1 loss (torch.nn.L1Loss): l = |x - t| element-wise, times an optional per-element
// weight (given to forward) and Options::loss_weight. The gradient at x == t is 0, as
// PyTorch's sign().
#include <sstream>
#include <string>

#include "gcnet/loss/reduction.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class L1Loss : public detail::ElementwiseLoss<L1Loss<T, B>, T, B> {
  friend detail::ElementwiseLoss<L1Loss<T, B>, T, B>;
  using detail::ElementwiseLoss<L1Loss<T, B>, T, B>::state_;

 public:
  struct Options {
    Reduction reduction = Reduction::mean;
    double loss_weight = 1.0;
  };
  L1Loss() = default;
  explicit L1Loss(Options o) : opt_(o) {}

  std::string describe() const {
    std::ostringstream os;
    os << "L1Loss(reduction=" << reduction_name(opt_.reduction);
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
    const T lw = static_cast<T>(opt_.loss_weight);
    for_each_index(B{}, input.numel(), [=] GCNET_HD(index_t i) {
      const T d = x[i] - t[i];
      const T scale = lw * (w ? w[i] : T(1));
      l[i] = scale * (d < T(0) ? -d : d);
      s[i] = scale * (d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0)));
    });
    return state_.reduce(opt_.reduction);
  }

  Options opt_;
};

}  // namespace gcnet
