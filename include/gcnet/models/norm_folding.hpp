#pragma once
// Which norms fold into a per-channel affine map y = x * scale[c] + shift[c], and its
// coefficients: what a residual block's folded forward (models/res_block_eval_fusion.hpp)
// needs to run a norm as one pass fused with the ReLU or the residual add.
//   BatchNorm2d       in eval mode, with affine and running statistics
//   SyncBatchNorm2d   as its BatchNorm2d (in eval mode it never synchronizes)
//   FrozenBatchNorm2d always (it has no mode: its statistics are fixed)
// Any other norm does not fold (the block then runs layer by layer).
#include <type_traits>

#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/frozen_batch_norm2d.hpp"
#include "gcnet/layers/sync_batch_norm2d.hpp"

namespace gcnet::detail {

template <class T, class B>
bool folds_now(const BatchNorm2d<T, B>& n) {
  return !n.training() && n.options().affine && n.options().track_running_stats;
}
template <class T, class B>
bool folds_now(const SyncBatchNorm2d<T, B>& n) {
  return folds_now(n.batch_norm());
}
template <class T, class B>
bool folds_now(const FrozenBatchNorm2d<T, B>&) {
  return true;
}
template <class N>
bool folds_now(const N&) {
  return false;
}

// Whether a norm type can fold at all (the folded forward is compiled only for those).
template <class N>
inline constexpr bool foldable_norm_type = false;
template <class T, class B>
inline constexpr bool foldable_norm_type<BatchNorm2d<T, B>> = true;
template <class T, class B>
inline constexpr bool foldable_norm_type<SyncBatchNorm2d<T, B>> = true;
template <class T, class B>
inline constexpr bool foldable_norm_type<FrozenBatchNorm2d<T, B>> = true;

// scale into coef[0..C), shift into coef[C..2C), for a norm with folds_now(n).
template <class T, class B>
void fold_coefficients(const BatchNorm2d<T, B>& bn, Tensor<T, B>& coef) {
  const index_t C = bn.channels();
  coef.resize(Shape{2 * C});
  frozen_bn_coefficients(B{}, C, bn.eps(), bn.weight()->value.data(), bn.bias()->value.data(), bn.running_mean().data(),
                         bn.running_var().data(), coef.data(), coef.data() + C);
}
template <class T, class B>
void fold_coefficients(const SyncBatchNorm2d<T, B>& n, Tensor<T, B>& coef) {
  fold_coefficients(n.batch_norm(), coef);
}
template <class T, class B>
void fold_coefficients(const FrozenBatchNorm2d<T, B>& n, Tensor<T, B>& coef) {
  const index_t C = n.channels();
  coef.resize(Shape{2 * C});
  frozen_bn_coefficients(B{}, C, n.eps(), n.weight().data(), n.bias().data(), n.running_mean().data(),
                         n.running_var().data(), coef.data(), coef.data() + C);
}

}  // namespace gcnet::detail
