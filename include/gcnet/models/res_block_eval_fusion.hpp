#pragma once
// The eval forward of ResBottleneck (models/res_block.hpp) with its norms folded: an eval-mode
// BatchNorm2d with affine and running statistics, or a FrozenBatchNorm2d, is
// y = x * scale[c] + shift[c] (models/norm_folding.hpp), so
// each norm becomes one pass over its conv's output fused with what follows it (the ReLU; for
// bn3, the residual add and the final ReLU) instead of two or three. Plugins run as in
// training. The intermediate activations live in the backbone's shared eval scratch
// (models/block_memory.hpp); if backward is called after such a forward, the block replays the
// forward layer by layer first (res_block.hpp).
#include <type_traits>

#include "gcnet/models/norm_folding.hpp"
#include "gcnet/models/res_block.hpp"

namespace gcnet {

namespace detail {
// y = x * scale[c] + shift[c] (+ res) (then ReLU) over NCHW planes. NaN propagates.
template <class T, class B>
void affine_channels(B, const T* x, const T* scale, const T* shift, const T* res, bool relu, T* y, index_t n,
                     index_t c, index_t hw) {
  for_each_index_weighted(B{}, n * c, hw, [=] GCNET_HD(index_t p) {
    const T s = scale[p % c], t = shift[p % c];
    const T* xp = x + p * hw;
    const T* rp = res ? res + p * hw : nullptr;
    T* yp = y + p * hw;
    for (index_t j = 0; j < hw; ++j) {
      T v = xp[j] * s + t;
      if (rp) v += rp[j];
      yp[j] = relu && v < T(0) ? T(0) : v;
    }
  });
}

// y = fold(norm)(x) (+ res) (then ReLU), coefficients computed into `coef` (models/norm_folding.hpp).
// y may be x (each element is read before it is written): the conv's output becomes the norm's.
template <class Norm, class T, class B>
void apply_folded(const Norm& norm, Tensor<T, B>& coef, const Tensor<T, B>& x,
                  const std::type_identity_t<Tensor<T, B>>* res, bool relu, Tensor<T, B>& y) {
  fold_coefficients(norm, coef);
  y.resize(x.shape());
  const index_t C = x.size(1);
  affine_channels(B{}, x.data(), coef.data(), coef.data() + C, res ? res->data() : nullptr, relu, y.data(), x.size(0),
                  C, x.size(2) * x.size(3));
}
}  // namespace detail

template <class Norm, class Conv2>
bool ResBottleneck<Norm, Conv2>::norms_fold() const {
  if constexpr (detail::foldable_norm_type<Norm>) {
    auto ok = [](const Norm& n) { return detail::folds_now(n); };
    return ok(bn1_) && ok(bn2_) && ok(bn3_) && (!c_.downsample || ok(*down_bn_));
  } else {
    return false;
  }
}

template <class Norm, class Conv2>
void ResBottleneck<Norm, Conv2>::forward(const tensor_type& x, tensor_type& y) {
  require_contiguous(x, describe(), "input");
  // A FrozenBatchNorm2d has no mode: infer() folds it keeping nothing, forward() folds it keeping
  // what its training backward needs (res_block_frozen_norms.hpp).
  if constexpr (frozen_norm_training) forward_frozen_norms(x, y);
  else if (!std::is_same_v<Norm, FrozenBatchNorm2d<T, B>> && norms_fold()) forward_fused(x, y);
  else forward_layers(x, y);
}

template <class Norm, class Conv2>
void ResBottleneck<Norm, Conv2>::infer(const tensor_type& x, tensor_type& y) {
  require_contiguous(x, describe(), "input");
  release_activations();
  if (norms_fold()) forward_fused(x, y);
  else forward_layers(x, y);
}

template <class Norm, class Conv2>
void ResBottleneck<Norm, Conv2>::forward_fused(const tensor_type& x, tensor_type& y) {
  if constexpr (detail::foldable_norm_type<Norm>) {
    BlockForwardScratch<T, B>& e = *forward_scratch_;
    if (e.plugin_out.size() < plugins_.size()) e.plugin_out.resize(plugins_.size());
    tensor_type* pout = e.plugin_out.data();
    // The norms fold in place on their convs' outputs: r1, r2, a3 and da are all the scratch.
    conv1_.forward(x, e.r1);
    detail::apply_folded(bn1_, coef_[0], e.r1, nullptr, true, e.r1);
    const tensor_type& p1 = plugins_forward(Position::AfterConv1, e.r1, pout);
    conv2_.forward(p1, e.r2);
    detail::apply_folded(bn2_, coef_[1], e.r2, nullptr, true, e.r2);
    const tensor_type& p2 = plugins_forward(Position::AfterConv2, e.r2, pout);
    conv3_.forward(p2, e.a3);
    const tensor_type* sc = &x;
    if (c_.downsample) {
      down_conv_->forward(x, e.da);
      detail::apply_folded(*down_bn_, coef_[3], e.da, nullptr, false, e.da);
      sc = &e.da;
    }
    GCNET_CHECK(e.a3.shape() == sc->shape(), describe(), ": the residual branch gives ", e.a3.shape().str(),
                " but the shortcut gives ", sc->shape().str(), " for input ", x.shape().str());
    if (!has_plugins(Position::AfterConv3)) {
      detail::apply_folded(bn3_, coef_[2], e.a3, sc, true, y);  // bn3 + shortcut + ReLU in one pass
    } else {
      detail::apply_folded(bn3_, coef_[2], e.a3, nullptr, false, e.a3);
      const tensor_type& p3 = plugins_forward(Position::AfterConv3, e.a3, pout);
      detail::add_relu_to(p3, *sc, y);
    }
    fused_ = true;
  }
}

}  // namespace gcnet
