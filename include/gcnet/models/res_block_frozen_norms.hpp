#pragma once
// The training path of ResBottleneck (models/res_block.hpp) when its norms are
// FrozenBatchNorm2d (torchvision's detection backbones): a frozen norm is a fixed per-channel
// affine map, folded into one pass with the ReLU (or the residual add and the final ReLU) as in
// the eval forward, and its backward is dx = dy * scale, which needs no activation. The convs'
// backward reads their input and dy (of their output, only its shape), so the block keeps just
// what PyTorch's autograd keeps: the ReLU outputs r1 and r2 (conv2's and conv3's inputs, and
// the ReLUs' masks), the block output y, and bn3's output when plugins follow it. The norms run
// in place on their convs' outputs; conv3's output and the downsample's (without plugins after
// conv3) go to the backbone's shared forward scratch (models/block_memory.hpp).
#include <type_traits>

#include "gcnet/layers/frozen_batch_norm2d.hpp"
#include "gcnet/models/res_block_eval_fusion.hpp"

namespace gcnet {

template <class Norm, class Conv2>
void ResBottleneck<Norm, Conv2>::forward_frozen_norms(const tensor_type& x, tensor_type& y) {
  if constexpr (frozen_norm_training) {
    fused_ = false;
    size_plugin_slots();
    BlockForwardScratch<T, B>& e = *forward_scratch_;
    // The norms fold in place on their convs' outputs (r1, r2 and b3 are kept; a3 and da scratch).
    conv1_.forward(x, b1_);
    detail::apply_folded(bn1_, coef_[0], b1_, nullptr, true, b1_);
    const tensor_type& p1 = plugins_forward(Position::AfterConv1, b1_);
    *conv2_in_ = &p1;
    conv2_.forward(p1, b2_);
    detail::apply_folded(bn2_, coef_[1], b2_, nullptr, true, b2_);
    const tensor_type& p2 = plugins_forward(Position::AfterConv2, b2_);
    *conv3_in_ = &p2;
    const bool after3 = has_plugins(Position::AfterConv3);
    tensor_type& a3 = after3 ? static_cast<tensor_type&>(b3_) : e.a3;
    conv3_.forward(p2, a3);
    const tensor_type* sc = &x;
    if (c_.downsample) {
      down_conv_->forward(x, e.da);
      detail::apply_folded(*down_bn_, coef_[3], e.da, nullptr, false, e.da);
      sc = &e.da;
    }
    GCNET_CHECK(a3.shape() == sc->shape(), describe(), ": the residual branch gives ", a3.shape().str(),
                " but the shortcut gives ", sc->shape().str(), " for input ", x.shape().str());
    if (!after3) {
      detail::apply_folded(bn3_, coef_[2], a3, sc, true, y);  // bn3 + shortcut + ReLU in one pass
    } else {
      detail::apply_folded(bn3_, coef_[2], a3, nullptr, false, a3);
      const tensor_type& p3 =
          plugins_forward(Position::AfterConv3, b3_, nullptr, direct_ != kNoDirectPlugin ? &y : nullptr);
      detail::add_relu_to(p3, *sc, y);  // in place on y when the direct plugin wrote there
    }
  }
}

template <class Norm, class Conv2>
void ResBottleneck<Norm, Conv2>::backward_frozen_norms(const tensor_type& x, const tensor_type& y,
                                                       const tensor_type& dy, tensor_type& dx) {
  if constexpr (frozen_norm_training) {
    static_assert(Norm::backward_ignores_input && Norm::backward_ignores_output &&
                  Conv2d<T, B>::backward_ignores_output);
    // A frozen norm's backward: dx += dy * scale. `g` stands in for the norm's input and output
    // (of the same shape), whose values it does not read.
    auto norm_backward = [](Norm& n, const tensor_type& g, tensor_type& out) {
      detail::zeros_like(g, out);
      n.backward(g, g, g, out);
    };
    BlockGradScratch<T, B>& s = *scratch_;
    detail::relu_grad_to(y, dy, s.gsum);  // gradient at the residual sum
    if (c_.downsample) {
      norm_backward(*down_bn_, s.gsum, s.gda);
      down_conv_->backward(x, s.gda, s.gda, dx);  // s.gda: the conv's output shape
    } else {
      add_into(dx, s.gsum, "ResBottleneck");
    }
    GCNET_CHECK(*conv2_in_ && *conv3_in_, describe(), ": backward needs a forward of this block first");
    const tensor_type& p2 = **conv3_in_;
    const tensor_type& p1 = **conv2_in_;
    plugins_backward(Position::AfterConv3, s.gsum, s.g, &y);  // s.g = d b3
    norm_backward(bn3_, s.g, s.ga);                            // s.ga = d a3
    detail::zeros_like(p2, s.g);
    conv3_.backward(p2, s.ga, s.ga, s.g);
    plugins_backward(Position::AfterConv2, s.g, s.g);  // s.g = d r2
    detail::relu_grad_to(b2_, s.g, s.gb);
    norm_backward(bn2_, s.gb, s.ga);  // s.ga = d a2
    detail::zeros_like(p1, s.g);
    conv2_.backward(p1, s.ga, s.ga, s.g);
    plugins_backward(Position::AfterConv1, s.g, s.g);  // s.g = d r1
    detail::relu_grad_to(b1_, s.g, s.gb);
    norm_backward(bn1_, s.gb, s.ga);  // s.ga = d a1
    conv1_.backward(x, s.ga, s.ga, dx);
  }
}

}  // namespace gcnet
