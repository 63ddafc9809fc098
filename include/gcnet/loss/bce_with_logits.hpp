#pragma once
// Binary cross-entropy on logits (torch.nn.BCEWithLogitsLoss), element-wise over any shape:
//   l = (1 - t) * x + (1 + (pos_weight - 1) * t) * softplus(-x),  times weight (optional,
//   same shape as x, given to forward) and Options::loss_weight; softplus(-x) is computed
//   as log1p(exp(-|x|)) + max(-x, 0), which never overflows.
// pos_weight has 1 entry or one per entry of the last dim (PyTorch's broadcasting of a
// [C] pos_weight). Targets are probabilities in [0, 1].
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "gcnet/core/state.hpp"
#include "gcnet/loss/reduction.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class BCEWithLogitsLoss : public detail::ElementwiseLoss<BCEWithLogitsLoss<T, B>, T, B> {
  friend detail::ElementwiseLoss<BCEWithLogitsLoss<T, B>, T, B>;
  using detail::ElementwiseLoss<BCEWithLogitsLoss<T, B>, T, B>::state_;

 public:
  struct Options {
    Reduction reduction = Reduction::mean;
    std::vector<double> pos_weight = {};  // empty: 1 for every class
    double loss_weight = 1.0;
  };
  BCEWithLogitsLoss() : BCEWithLogitsLoss(Options{}) {}
  explicit BCEWithLogitsLoss(Options o) : opt_(std::move(o)) {
    for (double v : opt_.pos_weight)
      GCNET_CHECK(std::isfinite(v) && v >= 0, describe(), ": pos_weight entries must be finite and >= 0, got ", v);
    if (!opt_.pos_weight.empty()) {
      Tensor<T, Cpu> h(Shape{static_cast<index_t>(opt_.pos_weight.size())});
      for (index_t i = 0; i < h.numel(); ++i) h[i] = static_cast<T>(opt_.pos_weight[static_cast<std::size_t>(i)]);
      pos_weight_ = to_backend<B>(h);
    }
  }

  std::string describe() const {
    std::ostringstream os;
    os << "BCEWithLogitsLoss(reduction=" << reduction_name(opt_.reduction);
    if (!opt_.pos_weight.empty()) os << ", pos_weight=" << opt_.pos_weight.size() << " entries";
    if (opt_.loss_weight != 1.0) os << ", loss_weight=" << opt_.loss_weight;
    os << ")";
    return os.str();
  }


 private:
  T run(const Tensor<T, B>& input, const Tensor<T, B>& target, const Tensor<T, B>* weight) {
    const std::string who = describe();
    state_.prepare(who, input, target, weight);
    const index_t n = input.numel(), last = input.shape()[input.rank() - 1];
    const index_t npw = pos_weight_.defined() ? pos_weight_.numel() : 0;
    GCNET_CHECK(npw <= 1 || npw == last, who, ": pos_weight has ", npw, " entries, expected 1 or ", last,
                " (the last dim of input shape ", input.shape().str(), ")");
    static_assert(std::is_same_v<B, Cpu>, "BCEWithLogitsLoss: only the CPU backend is implemented so far");
    for (index_t i = 0; i < n; ++i)
      GCNET_CHECK(target[i] >= T(0) && target[i] <= T(1), who, ": target ", target[i], " at element ", i,
                  " is outside [0, 1]");
    const T* x = input.data();
    const T* t = target.data();
    const T* w = weight ? weight->data() : nullptr;
    const T* pw = npw ? pos_weight_.data() : nullptr;
    T* l = state_.losses_.data();
    T* s = state_.slope_.data();
    const T lw = static_cast<T>(opt_.loss_weight);
    for_each_index(B{}, n, [=] GCNET_HD(index_t i) {
      const T xi = x[i], ti = t[i];
      const T p = pw ? pw[npw == 1 ? 0 : i % last] : T(1);
      const T coeff = T(1) + (p - T(1)) * ti;
      const T softplus_neg = std::log1p(std::exp(-std::abs(xi))) + (xi < T(0) ? -xi : T(0));
      // sigmoid(-x) without overflow
      const T sig_neg = xi >= T(0) ? std::exp(-xi) / (T(1) + std::exp(-xi)) : T(1) / (T(1) + std::exp(xi));
      const T scale = lw * (w ? w[i] : T(1));
      l[i] = scale * ((T(1) - ti) * xi + coeff * softplus_neg);
      s[i] = scale * ((T(1) - ti) - coeff * sig_neg);
    });
    return state_.reduce(opt_.reduction);
  }

  Options opt_;
  StateTensor<T, B> pos_weight_;
};

}  // namespace gcnet
