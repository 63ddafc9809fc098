#pragma once
// Conv2d: 2-d convolution as torch.nn.Conv2d (cross-correlation; stride, padding,
// dilation, groups, optional bias). Weight [out, in / groups, kh, kw], bias [out],
// PyTorch's default initialization.
//   Conv2d<>({.in = 3, .out = 64, .kernel = 7, .stride = 2, .padding = 3, .bias = false})
// Computed as im2col + GEMM (gcnet/kernels/conv_gemm.hpp); 1x1 stride-1 convolutions
// multiply the input directly.
#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/kernels/channel_bias.hpp"
#include "gcnet/kernels/conv_gemm.hpp"
#include "gcnet/layers/conv_common.hpp"

namespace gcnet {

struct Conv2dOptions {
  index_t in = 0;       // input channels
  index_t out = 0;      // output channels
  Size2 kernel = 0;
  Size2 stride = 1;
  Size2 padding = 0;
  Size2 dilation = 1;
  index_t groups = 1;
  bool bias = true;
};

template <Scalar T = float, Backend B = Cpu>
class Conv2d {
 public:
  using value_type = T;
  using backend_type = B;
  // backward reads of y only its shape (callers may pass another tensor of that shape).
  static constexpr bool backward_ignores_output = true;
  using Options = Conv2dOptions;

  explicit Conv2d(const Conv2dOptions& o) : o_(o) {
    detail::check_conv_options(describe(), o.in, o.out, o.kernel, o.stride, o.padding, o.dilation, o.groups);
    const index_t in_per_group = o.in / o.groups;
    Tensor<T, Cpu> w(Shape{o.out, in_per_group, o.kernel.h, o.kernel.w});
    init::torch_default_weight(w);
    weight_.set(w);
    if (o.bias) {
      Tensor<T, Cpu> b(Shape{o.out});
      init::torch_default_bias(b, in_per_group * o.kernel.h * o.kernel.w);
      bias_.set(b);
    }
  }

  const Conv2dOptions& options() const { return o_; }
  Param<T, B>& weight() { return weight_; }
  Param<T, B>* bias() { return o_.bias ? &bias_ : nullptr; }
  // The GEMM engine's blocking choices (defaults measured; exposed for benchmarking).
  ConvGemmTuning& tuning() { return gemm_.tuning(); }

  Shape setup(const Shape& in) {
    return detail::conv_output_shape(describe(), in, o_.in, o_.out, o_.kernel, o_.stride, o_.padding, o_.dilation);
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    require_contiguous(x, describe(), "input");
    y.resize(setup(x.shape()));
    configure(x.shape(), y.shape());
    gemm_.unfold_multiply(weight_.value.data(), x.data(), x.size(0), y.data(), false);
    if (o_.bias) add_channel_bias(B{}, y.data(), bias_.value.data(), y.size(0), o_.out, y.size(2) * y.size(3));
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    require_contiguous(x, describe(), "input");
    configure(x.shape(), y.shape());
    const index_t n = x.size(0);
    // dW = sum dy . im2col(x)^T and dx += col2im(W^T . dy), in one sweep over the batch.
    gemm_.weight_grad_and_fold(weight_.value.data(), dy.data(), x.data(), n, weight_.grad.data(), dx.data());
    if (o_.bias) channel_sum(B{}, dy.data(), bias_.grad.data(), n, o_.out, y.size(2) * y.size(3));
  }

  // backward's parameter gradients only, when the input gradient is not wanted (an FPN's
  // lateral conv on a map that feeds only frozen stages): no dx buffer and no col2im pass.
  void param_backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy) {
    require_shape(dy, y.shape(), describe(), "output gradient");
    require_contiguous(x, describe(), "input");
    configure(x.shape(), y.shape());
    gemm_.weight_grad_and_fold(weight_.value.data(), dy.data(), x.data(), x.size(0), weight_.grad.data(), nullptr);
    if (o_.bias) channel_sum(B{}, dy.data(), bias_.grad.data(), x.size(0), o_.out, y.size(2) * y.size(3));
  }

  std::string describe() const {
    return detail::describe_conv("Conv2d", o_.in, o_.out, o_.kernel, o_.stride, o_.padding, Size2(0), o_.dilation,
                                 o_.groups, o_.bias);
  }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    f(prefix + "weight", weight_);
    if (o_.bias) f(prefix + "bias", bias_);
  }

 private:
  // The input is the unfolded image; the output channels are the matrix side.
  void configure(const Shape& in, const Shape& out) {
    gemm_.configure(detail::conv_geometry(o_.in, in.h(), in.w(), o_.kernel, o_.stride, o_.padding, o_.dilation,
                                          out.h(), out.w()),
                    o_.groups, o_.out);
  }

  Conv2dOptions o_;
  Param<T, B> weight_, bias_;
  ConvGemm<T, B> gemm_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(Conv2d)
}  // namespace gcnet
