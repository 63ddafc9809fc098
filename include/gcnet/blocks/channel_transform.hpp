#pragma once
// Step 2 of the GC framework (transform): a small network on the pooled context [N, C, 1, 1],
// built from the library's own layers exactly as mmcv / mmdet build it from theirs:
//   bottleneck   Conv2d 1x1 C->P, [LayerNorm([P, 1, 1])], ReLU, Conv2d 1x1 P->C   (GC, SE)
//   single conv  Conv2d 1x1 C->C                                                  (simplified NL)
// So the state-dict shapes are PyTorch's ([P, C, 1, 1] weights, [P, 1, 1] LayerNorm affine) and
// any checkpoint loads. It is itself a Layer on [N, C, 1, 1] (data gradients accumulate).
//   ChannelTransform<>(256, {.planes = 16, .layer_norm = true}, {"channel_add_conv.0.", ...})
// The convolutions see a 1x1 map, so each is N matrix-vector products: on the CPU they run as
// such (cpu/vector_convs.hpp, with the layers' own weights and gradients); elsewhere the Conv2d
// layers run themselves. conv_forward / conv_backward are that one seam. The CPU single-region
// forward (cpu/global_context_team.hpp) computes the first convolution itself, from this
// object's layers, then calls finish_hidden() so that LayerNorm and ReLU run here, as in forward.
#include <optional>
#include <string>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/cpu/vector_convs.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/layer_norm.hpp"
#include "gcnet/layers/relu.hpp"

namespace gcnet::blocks {

struct ChannelTransformOptions {
  index_t planes = 0;       // bottleneck width P; 0: one convolution C->C, no activation
  bool layer_norm = false;  // LayerNorm([P, 1, 1]) before the ReLU (bottleneck only)
};

// State-dict prefixes of the layers, with their trailing dots ("channel_add_conv.0.").
struct ChannelTransformNames {
  std::string first, norm, second;
};

template <Scalar T = float, Backend B = Cpu>
class ChannelTransform {
 public:
  using value_type = T;
  using backend_type = B;

  ChannelTransform(index_t channels, const ChannelTransformOptions& o, ChannelTransformNames names)
      : channels_(channels),
        o_(o),
        names_(std::move(names)),
        first_(Conv2dOptions{.in = channels, .out = o.planes > 0 ? o.planes : channels, .kernel = 1}) {
    if (o.planes > 0) {
      if (o.layer_norm) norm_.emplace(Shape{o.planes, 1, 1});
      second_.emplace(Conv2dOptions{.in = o.planes, .out = channels, .kernel = 1});
    }
  }

  index_t channels() const { return channels_; }
  const ChannelTransformOptions& options() const { return o_; }
  bool bottleneck() const { return second_.has_value(); }
  Conv2d<T, B>& first() { return first_; }
  Conv2d<T, B>* second() { return second_ ? &*second_ : nullptr; }  // nullptr: a single conv
  LayerNorm<T, B>* norm() { return norm_ ? &*norm_ : nullptr; }
  // On the CPU, whether this transform's own forward/backward run its convolutions as
  // matrix-vector products (default) or as the Conv2d layers themselves (the generic path; tests
  // compare the two). The block's single-region forward computes them itself whatever this says:
  // GlobalContextBlock::set_forward_path chooses that one.
  void set_cpu_fast_path(bool on) { cpu_fast_path_ = on; }

  Shape setup(const Shape& in) {
    GCNET_CHECK(in.rank() == 4 && in.c() == channels_ && in.h() == 1 && in.w() == 1 && in.n() > 0, describe(),
                ": expected a context of shape [N, ", channels_, ", 1, 1], got shape ", in.str());
    return in;
  }

  void forward(const Tensor<T, B>& ctx, Tensor<T, B>& y) {
    setup(ctx.shape());
    if (!second_) return conv_forward(first_, ctx, y);
    conv_forward(first_, ctx, h1_);
    finish_hidden();
    conv_forward(*second_, h3_, y);
  }

  // The bottleneck's hidden vector after the first convolution: LayerNorm (when present) and
  // ReLU of first_output() into hidden(), saving what backward needs.
  void finish_hidden() {
    if (norm_) {
      norm_->forward(h1_, h2_);
      relu_.forward(h2_, h3_);
    } else {
      relu_.forward(h1_, h3_);
    }
  }
  // The first convolution's output [N, P, 1, 1] as forward saves it (the CPU single-region
  // forward writes it), and the ReLU's output that the second convolution reads.
  Tensor<T, B>& first_output() { return h1_; }
  Tensor<T, B>& hidden() { return h3_; }

  // dctx += J^T dy; assigns every parameter gradient. Reads what the last forward saved.
  void backward(const Tensor<T, B>& ctx, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dctx) {
    check_backward_args(describe(), ctx, y, dy, dctx);
    if (!second_) return conv_backward(first_, ctx, y, dy, dctx);
    zeroed(dh3_, h3_.shape());
    conv_backward(*second_, h3_, y, dy, dh3_);
    Tensor<T, B>& pre = norm_ ? h2_ : h1_;  // the ReLU's input
    Tensor<T, B>& dpre = norm_ ? dh2_ : dh1_;
    zeroed(dpre, pre.shape());
    relu_.backward(pre, h3_, dh3_, dpre);
    if (norm_) {
      zeroed(dh1_, h1_.shape());
      norm_->backward(h1_, h2_, dh2_, dh1_);
    }
    conv_backward(first_, ctx, h1_, dh1_, dctx);
  }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    first_.visit_parameters(prefix + names_.first, f);
    if (norm_) norm_->visit_parameters(prefix + names_.norm, f);
    if (second_) second_->visit_parameters(prefix + names_.second, f);
  }
  index_t parameter_count() const {
    const index_t p = o_.planes, c = channels_;
    if (p == 0) return c * c + c;
    return (c * p + p) + (o_.layer_norm ? 2 * p : 0) + (p * c + c);
  }
  // Forward FLOPs for a batch of n contexts: a 1x1 conv on vectors out * (2 in + 1) per sample
  // (multiply-add 2, bias 1); LayerNorm 5 and ReLU 1 per hidden element.
  double flops(index_t n) const {
    const double c = static_cast<double>(channels_), p = static_cast<double>(o_.planes), nd = static_cast<double>(n);
    if (o_.planes == 0) return nd * c * (2.0 * c + 1.0);
    return nd * (p * (2.0 * c + 1.0) + c * (2.0 * p + 1.0) + p * ((o_.layer_norm ? 5.0 : 0.0) + 1.0));
  }

  std::string describe() const {
    const std::string c = std::to_string(channels_);
    if (!second_) return "ChannelTransform(" + c + " -> " + c + ")";
    return "ChannelTransform(" + c + " -> " + std::to_string(o_.planes) + (norm_ ? ", LayerNorm" : "") + ", ReLU -> " +
           c + ")";
  }

 private:
  // The seam (see the top of the file): a conv of this transform on [N, in, 1, 1].
  void conv_forward(Conv2d<T, B>& conv, const Tensor<T, B>& x, Tensor<T, B>& y) {
    if constexpr (std::same_as<B, Cpu>)
      if (cpu_fast_path_) return cpu::conv1x1_vectors_forward(conv, x, y);
    conv.forward(x, y);
  }
  void conv_backward(Conv2d<T, B>& conv, const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy,
                     Tensor<T, B>& dx) {
    if constexpr (std::same_as<B, Cpu>) {
      if (cpu_fast_path_) {
        check_backward_args(conv.describe(), x, y, dy, dx);
        return cpu::conv1x1_vectors_backward(conv, x, dy, dx);
      }
    }
    conv.backward(x, y, dy, dx);
  }

  static void zeroed(Tensor<T, B>& t, const Shape& shape) {
    t.resize(shape);
    fill(t, T(0));
  }

  index_t channels_;
  ChannelTransformOptions o_;
  ChannelTransformNames names_;
  bool cpu_fast_path_ = true;
  Conv2d<T, B> first_;
  std::optional<LayerNorm<T, B>> norm_;
  ReLU<T, B> relu_;
  std::optional<Conv2d<T, B>> second_;
  // Saved by forward for backward: the first conv's output, the LayerNorm's, the ReLU's; and
  // backward scratch.
  ScratchTensor<T, B> h1_, h2_, h3_, dh1_, dh2_, dh3_;
};

}  // namespace gcnet::blocks

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet::blocks {
GCNET_EXTERN_CLASS(ChannelTransform)
}  // namespace gcnet::blocks
