#pragma once
// ConvTranspose2d: the adjoint of Conv2d, as torch.nn.ConvTranspose2d (stride, padding,
// output_padding, dilation, groups, optional bias). Weight [in, out / groups, kh, kw],
// bias [out], PyTorch's default initialization. Output size per dim:
//   (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1.
//   ConvTranspose2d<>({.in = 256, .out = 256, .kernel = 2, .stride = 2})   // Mask R-CNN's upsampler
// Computed with the same GEMM engine as Conv2d with the roles swapped: the output is the
// unfolded image, so forward is Conv2d's input gradient and the input gradient is
// Conv2d's forward.
#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/kernels/channel_bias.hpp"
#include "gcnet/kernels/conv_gemm.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/conv_common.hpp"

namespace gcnet {

struct ConvTranspose2dOptions {
  index_t in = 0;       // input channels
  index_t out = 0;      // output channels
  Size2 kernel = 0;
  Size2 stride = 1;
  Size2 padding = 0;
  Size2 output_padding = 0;  // extra rows/columns on one side of the output
  Size2 dilation = 1;
  index_t groups = 1;
  bool bias = true;
};

template <Scalar T = float, Backend B = Cpu>
class ConvTranspose2d {
 public:
  using value_type = T;
  using backend_type = B;
  // backward reads of y only its shape (callers may pass another tensor of that shape).
  static constexpr bool backward_ignores_output = true;
  using Options = ConvTranspose2dOptions;

  explicit ConvTranspose2d(const ConvTranspose2dOptions& o) : o_(o) {
    detail::check_conv_options(describe(), o.in, o.out, o.kernel, o.stride, o.padding, o.dilation, o.groups);
    GCNET_CHECK(o.output_padding.h >= 0 && o.output_padding.w >= 0, describe(),
                ": output_padding must be non-negative, got ", o.output_padding.str(true));
    // As PyTorch: otherwise the extra output rows would lie beyond every kernel tap's reach.
    GCNET_CHECK((o.output_padding.h < o.stride.h || o.output_padding.h < o.dilation.h) &&
                    (o.output_padding.w < o.stride.w || o.output_padding.w < o.dilation.w),
                describe(), ": output_padding (", o.output_padding.str(true),
                ") must be smaller than either stride (", o.stride.str(true), ") or dilation (",
                o.dilation.str(true), ")");
    const index_t out_per_group = o.out / o.groups;
    Tensor<T, Cpu> w(Shape{o.in, out_per_group, o.kernel.h, o.kernel.w});
    init::torch_default_weight(w);  // fan_in = weight.size(1) * kh * kw, as PyTorch
    weight_.set(w);
    if (o.bias) {
      Tensor<T, Cpu> b(Shape{o.out});
      init::torch_default_bias(b, out_per_group * o.kernel.h * o.kernel.w);
      bias_.set(b);
    }
  }

  const ConvTranspose2dOptions& options() const { return o_; }
  Param<T, B>& weight() { return weight_; }
  Param<T, B>* bias() { return o_.bias ? &bias_ : nullptr; }
  // The GEMM engine's blocking choices (defaults measured; exposed for benchmarking).
  ConvGemmTuning& tuning() { return gemm_.tuning(); }

  Shape setup(const Shape& in) {
    require_nchw(in, describe());
    GCNET_CHECK(in.c() == o_.in, describe(), ": expected input with ", o_.in, " channels, got shape ", in.str());
    const index_t oh = out_size(in.h(), o_.kernel.h, o_.stride.h, o_.padding.h, o_.output_padding.h, o_.dilation.h);
    const index_t ow = out_size(in.w(), o_.kernel.w, o_.stride.w, o_.padding.w, o_.output_padding.w, o_.dilation.w);
    GCNET_CHECK(oh >= 1 && ow >= 1, describe(), ": input of shape ", in.str(), " gives an empty output (", oh, "x",
                ow, "): the padding removes more than the transposed convolution produces");
    return Shape{in.n(), o_.out, oh, ow};
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    require_contiguous(x, describe(), "input");
    y.resize(setup(x.shape()));
    configure(x.shape(), y.shape());
    const index_t n = x.size(0), area = y.size(2) * y.size(3);
    fill(y, T(0));
    if (o_.bias) add_channel_bias(B{}, y.data(), bias_.value.data(), n, o_.out, area);
    gemm_.multiply_fold(weight_.value.data(), x.data(), n, y.data());
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    require_contiguous(x, describe(), "input");
    configure(x.shape(), y.shape());
    const index_t n = x.size(0);
    // dW = sum x . im2col(dy)^T and dx += W . im2col(dy), sharing each unfolded band of dy.
    gemm_.weight_grad_and_unfold(weight_.value.data(), x.data(), dy.data(), n, weight_.grad.data(), dx.data());
    if (o_.bias) channel_sum(B{}, dy.data(), bias_.grad.data(), n, o_.out, y.size(2) * y.size(3));
  }

  std::string describe() const {
    return detail::describe_conv("ConvTranspose2d", o_.in, o_.out, o_.kernel, o_.stride, o_.padding,
                                 o_.output_padding, o_.dilation, o_.groups, o_.bias);
  }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    f(prefix + "weight", weight_);
    if (o_.bias) f(prefix + "bias", bias_);
  }

 private:
  static index_t out_size(index_t in, index_t k, index_t s, index_t p, index_t op, index_t d) {
    return (in - 1) * s - 2 * p + d * (k - 1) + op + 1;
  }

  // The output is the unfolded image (its windows are the input's pixels); the input
  // channels are the matrix side.
  void configure(const Shape& in, const Shape& out) {
    gemm_.configure(detail::conv_geometry(o_.out, out.h(), out.w(), o_.kernel, o_.stride, o_.padding, o_.dilation,
                                          in.h(), in.w()),
                    o_.groups, o_.in);
  }

  ConvTranspose2dOptions o_;
  Param<T, B> weight_, bias_;
  ConvGemm<T, B> gemm_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(ConvTranspose2d)
}  // namespace gcnet
