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
#include "gcnet/seg/score_maps.hpp"

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
    const Tensor<std::int64_t, Cpu> pred = seg::argmax_over_classes(to_backend<Cpu>(ce_.probabilities()));
    const Tensor<std::int64_t, Cpu> t = to_backend<Cpu>(labels_);
    std::int64_t correct = 0, valid = 0;
    for (index_t i = 0; i < t.numel(); ++i) {
      const bool counted = t[i] != ignore_;
      valid += counted;
      correct += counted && t[i] == pred[i];
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
