#pragma once
// A minimal parametric test layer: y[n,c,...] = weight[c] * x[n,c,...] + bias[c].
// Lets the composition tests check parameter names, shape errors and gradients
// without depending on the real layers.
#include "gcnet/core/layer.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::test {

template <Scalar T = float, Backend B = Cpu>
class ChannelScale {
 public:
  using value_type = T;
  using backend_type = B;
  explicit ChannelScale(index_t channels) : channels_(channels) {
    Tensor<T, Cpu> w(Shape{channels}), b(Shape{channels});
    init::uniform(w, 0.5, 1.5);
    init::uniform(b, -0.5, 0.5);
    weight_.set(w);
    bias_.set(b);
  }
  Shape setup(const Shape& in) {
    GCNET_CHECK(in.rank() >= 2 && in[1] == channels_, describe(), ": expected input with ", channels_,
                " channels, got shape ", in.str());
    return in;
  }
  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    y.resize(setup(x.shape()));
    const index_t c = channels_, inner = x.numel() / (x.size(0) * c);
    for (index_t i = 0; i < x.numel(); ++i) {
      const index_t ch = (i / inner) % c;
      y[i] = weight_.value[ch] * x[i] + bias_.value[ch];
    }
  }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    const index_t c = channels_, inner = x.numel() / (x.size(0) * c);
    fill(weight_.grad, T(0));
    fill(bias_.grad, T(0));
    for (index_t i = 0; i < x.numel(); ++i) {
      const index_t ch = (i / inner) % c;
      dx[i] += weight_.value[ch] * dy[i];
      weight_.grad[ch] += x[i] * dy[i];
      bias_.grad[ch] += dy[i];
    }
  }
  std::string describe() const { return "ChannelScale(" + std::to_string(channels_) + ")"; }
  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    f(prefix + "weight", weight_);
    f(prefix + "bias", bias_);
  }
  Param<T, B>& weight() { return weight_; }

 private:
  index_t channels_;
  Param<T, B> weight_, bias_;
};

}  // namespace gcnet::test
