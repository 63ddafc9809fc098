#pragma once
// How a loss turns per-element losses into the value forward() returns, and the shared
// machinery of the element-wise losses (BCEWithLogits, L1, SmoothL1).
//   mean      PyTorch's 'mean'. Element-wise losses: sum / numel (an element weight scales
//             the element's loss but does not change the divisor, as in PyTorch).
//             CrossEntropyLoss: sum(w[t] * l) / sum(w[t]) over the non-ignored elements.
//   sum       the sum of the (weighted) per-element losses.
//   none      forward() returns the sum; losses() holds the per-element losses and
//             backward(d, dlosses) takes one upstream gradient per element.
//   mean_all  mmseg's default (avg_non_ignore=False): sum / number of ALL elements, ignored
//             ones counted as 0. Same as mean for the element-wise losses.
// Every loss multiplies its value and gradient by Options::loss_weight (mmseg's aux head: 0.4).
#include <cmath>
#include <string>
#include <type_traits>

#include "gcnet/core/state.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/core/tensor.hpp"

namespace gcnet {

enum class Reduction { mean, sum, none, mean_all };

inline const char* reduction_name(Reduction r) {
  switch (r) {
    case Reduction::mean: return "mean";
    case Reduction::sum: return "sum";
    case Reduction::none: return "none";
    case Reduction::mean_all: return "mean_all";
  }
  return "?";
}

namespace detail {

// Per-element loss l[i] and slope s[i] = dl[i]/dinput[i], both already multiplied by the
// element weight and the loss_weight; forward() of a loss fills them, this reduces them
// and applies the chain rule in backward().
template <class T, class B>
class PointwiseLoss {
 public:
  // Checks input/target (and weight when given) agree; sizes the buffers.
  void prepare(const std::string& who, const Tensor<T, B>& input, const Tensor<T, B>& target,
               const Tensor<T, B>* weight) {
    GCNET_CHECK(!input.shape().has_zero(), who, ": input must be non-empty, got shape ", input.shape().str());
    require_shape(target, input.shape(), who, "target");
    require_contiguous(input, who, "input");
    require_contiguous(target, who, "target");
    if (weight) {
      require_shape(*weight, input.shape(), who, "weight");
      require_contiguous(*weight, who, "weight");
    }
    losses_.resize(input.shape());
    slope_.resize(input.shape());
  }

  // Reduced value of losses_ (the sum for Reduction::none). Accumulates in double.
  T reduce(Reduction r) {
    static_assert(std::is_same_v<B, Cpu>, "element-wise losses: only the CPU backend is implemented so far");
    reduction_ = r;
    const T* l = losses_.data();
    double total = 0;
    for (index_t i = 0; i < losses_.numel(); ++i) total += static_cast<double>(l[i]);
    const bool mean = r == Reduction::mean || r == Reduction::mean_all;
    return static_cast<T>(mean ? total / static_cast<double>(losses_.numel()) : total);
  }

  // d += scale * dloss/dinput (for Reduction::none: the gradient of the sum).
  void backward(const std::string& who, Tensor<T, B>& d, T scale) const {
    require_shape(d, slope_.shape(), who, "dinput");
    require_contiguous(d, who, "dinput");
    const bool mean = reduction_ == Reduction::mean || reduction_ == Reduction::mean_all;
    const T c = mean ? scale / static_cast<T>(slope_.numel()) : scale;
    const T* s = slope_.data();
    T* dp = d.data();
    for_each_index(B{}, d.numel(), [=] GCNET_HD(index_t i) { dp[i] += c * s[i]; });
  }

  // d += dlosses * dl/dinput element-wise: the upstream gradient of Reduction::none.
  void backward(const std::string& who, Tensor<T, B>& d, const Tensor<T, B>& dlosses) const {
    GCNET_CHECK(reduction_ == Reduction::none, who, ": backward with per-element gradients needs reduction none, not ",
                reduction_name(reduction_));
    require_shape(d, slope_.shape(), who, "dinput");
    require_shape(dlosses, slope_.shape(), who, "dlosses");
    require_contiguous(d, who, "dinput");
    require_contiguous(dlosses, who, "dlosses");
    const T* s = slope_.data();
    const T* u = dlosses.data();
    T* dp = d.data();
    for_each_index(B{}, d.numel(), [=] GCNET_HD(index_t i) { dp[i] += u[i] * s[i]; });
  }

  ScratchTensor<T, B> losses_, slope_;
  Reduction reduction_ = Reduction::mean;
};

// The public interface every element-wise loss shares (CRTP): Derived provides
// describe() and run(input, target, weight-or-nullptr), which fills state_ and reduces.
template <class Derived, class T, class B>
class ElementwiseLoss {
 public:
  T forward(const Tensor<T, B>& input, const Tensor<T, B>& target) { return self().run(input, target, nullptr); }
  // weight: one rescaling factor per element, shaped like input.
  T forward(const Tensor<T, B>& input, const Tensor<T, B>& target, const Tensor<T, B>& weight) {
    return self().run(input, target, &weight);
  }
  void backward(Tensor<T, B>& dinput, T scale = T(1)) const { state_.backward(cself().describe(), dinput, scale); }
  void backward(Tensor<T, B>& dinput, const Tensor<T, B>& dlosses) const {
    state_.backward(cself().describe(), dinput, dlosses);
  }
  // Per-element losses of the last forward (weights and loss_weight applied).
  const Tensor<T, B>& losses() const { return state_.losses_; }

 protected:
  PointwiseLoss<T, B> state_;

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
  const Derived& cself() const { return static_cast<const Derived&>(*this); }
};
}  // namespace detail
}  // namespace gcnet
