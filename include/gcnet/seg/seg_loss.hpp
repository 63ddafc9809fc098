#pragma once
// SegLoss: mmseg's BaseDecodeHead.loss_by_feat for one head:
//   logits [N, K, h, w] -> bilinear resize to the label size [H, W] (the head's align_corners)
//   -> cross-entropy with ignore_index, mean over ALL N*H*W pixels (ignored ones count 0:
//   mmseg's avg_non_ignore=False) -> times loss_weight
// plus acc_seg, the percentage of non-ignored pixels whose argmax is the label.
#include <cstdint>
#include <optional>

#include "gcnet/core/tensor.hpp"
#include "gcnet/core/transfer.hpp"
#include "gcnet/layers/resize_bilinear.hpp"
#include "gcnet/loss/cross_entropy.hpp"
#include "gcnet/seg/decode_head.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class SegLoss {
 public:
  explicit SegLoss(const DecodeHeadOptions& o)
      : align_corners_(o.align_corners),
        ce_({.ignore_index = o.ignore_index, .reduction = Reduction::mean_all, .loss_weight = o.loss_weight}),
        ignore_(o.ignore_index) {}

  // The weighted loss; keeps what backward and accuracy() need.
  T forward(const Tensor<T, B>& logits, const Tensor<std::int64_t, B>& labels) {
    const Shape& s = logits.shape();
    GCNET_CHECK(s.rank() == 4, "SegLoss: logits must be [N, K, h, w], got shape ", s.str());
    GCNET_CHECK(labels.rank() == 3 && labels.size(0) == s.n(), "SegLoss: labels must be [N, H, W] with N = ", s.n(),
                ", got shape ", labels.shape().str());
    resized_needed_ = labels.size(1) != s.h() || labels.size(2) != s.w();
    if (resized_needed_) {
      resize_.emplace(ResizeBilinearOptions{.size = Size2(labels.size(1), labels.size(2)),
                                            .align_corners = align_corners_});
      resize_->forward(logits, resized_);
    }
    const T loss = ce_.forward(resized_needed_ ? resized_ : logits, labels);
    labels_ = labels;
    return loss;
  }

  // dlogits += d loss / d logits.
  void backward(const Tensor<T, B>& logits, Tensor<T, B>& dlogits) {
    require_shape(dlogits, logits.shape(), "SegLoss", "dlogits");
    if (!resized_needed_) return ce_.backward(dlogits);
    g_.resize(resized_.shape());
    fill(g_, T(0));
    ce_.backward(g_);
    resize_->backward(logits, resized_, g_, dlogits);
  }

  // acc_seg of the last forward (mmseg's accuracy with ignore_index), in percent; 0 when every
  // pixel is ignored.
  double accuracy() const {
    const Tensor<T, Cpu> p = to_backend<Cpu>(ce_.probabilities());
    const Tensor<std::int64_t, Cpu> t = to_backend<Cpu>(labels_);
    const index_t n = p.size(0), k = p.size(1), hw = p.numel() / (n * k);
    // The argmax over classes (first maximum wins) in tiles of pixels, class by class, so the
    // inner loops run along contiguous pixels and vectorize.
    constexpr index_t tile = 256;
    T best[tile];
    std::int32_t best_class[tile];
    std::int64_t correct = 0, valid = 0;
    for (index_t b = 0; b < n; ++b)
      for (index_t j0 = 0; j0 < hw; j0 += tile) {
        const index_t m = hw - j0 < tile ? hw - j0 : tile;
        const T* pb = p.data() + b * k * hw + j0;
        for (index_t j = 0; j < m; ++j) {
          best[j] = pb[j];
          best_class[j] = 0;
        }
        for (index_t c = 1; c < k; ++c) {
          const T* pc = pb + c * hw;
          for (index_t j = 0; j < m; ++j) {
            const bool above = pc[j] > best[j];
            best[j] = above ? pc[j] : best[j];
            best_class[j] = above ? static_cast<std::int32_t>(c) : best_class[j];
          }
        }
        const std::int64_t* tb = t.data() + b * hw + j0;
        for (index_t j = 0; j < m; ++j) {
          const bool counted = tb[j] != ignore_;
          valid += counted;
          correct += counted && tb[j] == best_class[j];
        }
      }
    return valid ? 100.0 * double(correct) / double(valid) : 0.0;
  }

 private:
  bool align_corners_;
  CrossEntropyLoss<T, B> ce_;
  std::int64_t ignore_;
  bool resized_needed_ = false;
  std::optional<ResizeBilinear<T, B>> resize_;
  Tensor<T, B> resized_, g_;  // the resized logits and their gradient
  Tensor<std::int64_t, B> labels_;
};

}  // namespace gcnet
