#pragma once
// Small operations on NCHW score maps (logits or probabilities, one channel per class) that
// segmentation inference chains together: resize, horizontal flip, softmax over classes,
// argmax over classes. CPU only. Every output is filled with NaN before it is written, so a
// pixel a bug leaves unwritten shows up in the tests instead of passing as stale memory.
#include <cstdint>
#include <limits>
#include <string>

#include "gcnet/core/tensor.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/resize_bilinear.hpp"
#include "gcnet/layers/softmax.hpp"

namespace gcnet::seg {

// Throws unless `t` is a non-empty [N, C, H, W] tensor.
template <Scalar T>
void require_score_map(const Tensor<T>& t, const std::string& who, const char* what) {
  GCNET_CHECK(t.rank() == 4, who, ": ", what, " must be [N, C, H, W], got shape ", t.shape().str());
  GCNET_CHECK(!t.shape().has_zero(), who, ": ", what, " of shape ", t.shape().str(), " is empty");
}

// A tensor of `shape` filled with NaN: written in full by the caller.
template <Scalar T>
Tensor<T> nan_tensor(const Shape& shape) {
  return full<T>(shape, std::numeric_limits<T>::quiet_NaN());
}

// mmseg's resize(): F.interpolate(x, size, mode='bilinear', align_corners). A map that is
// already `size` is returned as is (PyTorch's result would be an exact copy).
template <Scalar T>
Tensor<T> resize_to(const Tensor<T>& x, Size2 size, bool align_corners) {
  require_score_map(x, "seg::resize_to", "input");
  if (x.size(2) == size.h && x.size(3) == size.w) return x;
  ResizeBilinear<T> resize({.size = size, .align_corners = align_corners});
  Tensor<T> y = nan_tensor<T>(resize.setup(x.shape()));
  resize.forward(x.is_contiguous() ? x : clone(x), y);
  return y;
}

// x.flip(dims=(3,)): mirror every row (mmseg's horizontal flip).
template <Scalar T>
Tensor<T> flip_horizontal(const Tensor<T>& x) {
  require_score_map(x, "seg::flip_horizontal", "input");
  const Tensor<T> src = x.is_contiguous() ? x : clone(x);
  Tensor<T> y = nan_tensor<T>(x.shape());
  const index_t rows = x.numel() / x.size(3), W = x.size(3);
  const T* s = src.data();
  T* d = y.data();
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = 0; j < W; ++j) d[r * W + j] = s[r * W + (W - 1 - j)];
  return y;
}

// softmax(dim=1): per-pixel class probabilities.
template <Scalar T>
Tensor<T> softmax_over_classes(const Tensor<T>& logits) {
  require_score_map(logits, "seg::softmax_over_classes", "logits");
  Softmax<T> softmax(1);
  Tensor<T> y = nan_tensor<T>(logits.shape());
  softmax.forward(logits.is_contiguous() ? logits : clone(logits), y);
  return y;
}

// argmax(dim=1): [N, K, H, W] scores -> [N, H, W] class ids. Ties go to the lowest class, as
// torch.argmax. In tiles of pixels, class by class, so the inner loops run along contiguous
// pixels and vectorize (SegLoss's acc_seg runs it every training iteration).
template <Scalar T>
Tensor<std::int64_t> argmax_over_classes(const Tensor<T>& scores) {
  require_score_map(scores, "seg::argmax_over_classes", "scores");
  const Tensor<T> s = scores.is_contiguous() ? scores : clone(scores);
  const index_t N = s.size(0), K = s.size(1), P = s.size(2) * s.size(3);
  Tensor<std::int64_t> labels = full<std::int64_t>(Shape{N, s.size(2), s.size(3)}, -1);
  constexpr index_t tile = 256;
  T best[tile];
  std::int64_t best_class[tile];
  for (index_t n = 0; n < N; ++n)
    for (index_t i0 = 0; i0 < P; i0 += tile) {
      const index_t m = P - i0 < tile ? P - i0 : tile;
      const T* img = s.data() + n * K * P + i0;
      for (index_t i = 0; i < m; ++i) {
        best[i] = img[i];
        best_class[i] = 0;
      }
      for (index_t k = 1; k < K; ++k) {
        const T* plane = img + k * P;
        for (index_t i = 0; i < m; ++i) {
          const bool above = plane[i] > best[i];
          best[i] = above ? plane[i] : best[i];
          best_class[i] = above ? k : best_class[i];
        }
      }
      std::int64_t* out = labels.data() + n * P + i0;
      for (index_t i = 0; i < m; ++i) out[i] = best_class[i];
    }
  return labels;
}

}  // namespace gcnet::seg
