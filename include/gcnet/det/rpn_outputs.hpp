#pragma once
// What the RPN head gives per FPN level (det/rpn_head.hpp), and the check every consumer of it
// (loss, proposals) runs first.
//   cls_scores[l]  [N, A, H_l, W_l]   objectness logits (sigmoid), anchor a at channel a
//   bbox_preds[l]  [N, 4A, H_l, W_l]  deltas (dx, dy, dw, dh) of anchor a at channels 4a..4a+3
// Flattened per image as mmdet's permute(1, 2, 0): anchor (y * W_l + x) * A + a of level l.
#include <string>
#include <vector>

#include "gcnet/core/fields.hpp"
#include "gcnet/ops/anchor_generator.hpp"

namespace gcnet {

template <Scalar T = float>
struct RPNOutputs {
  std::vector<Tensor<T>> cls_scores;
  std::vector<Tensor<T>> bbox_preds;
  GCNET_FIELDS(cls_scores, bbox_preds)
};

// Checks `out` (levels, shapes, one batch size) for a head with `levels` levels and `anchors`
// anchors per position; returns the feature size of each level.
template <Scalar T>
std::vector<ops::FeatSize> check_rpn_outputs(const RPNOutputs<T>& out, std::size_t levels, index_t anchors,
                                             const std::string& who) {
  GCNET_CHECK(out.cls_scores.size() == levels && out.bbox_preds.size() == levels, who, ": expected ", levels,
              " levels of cls_scores and bbox_preds, got ", out.cls_scores.size(), " and ", out.bbox_preds.size());
  std::vector<ops::FeatSize> sizes;
  for (std::size_t l = 0; l < levels; ++l) {
    const Tensor<T>& c = out.cls_scores[l];
    const Tensor<T>& b = out.bbox_preds[l];
    GCNET_CHECK(c.rank() == 4 && c.size(1) == anchors && c.is_contiguous(), who, ": cls_scores[", l,
                "] must be a contiguous [N, ", anchors, ", H, W] tensor, got shape ", c.shape().str());
    GCNET_CHECK(b.rank() == 4 && b.size(1) == 4 * anchors && b.size(0) == c.size(0) && b.size(2) == c.size(2) &&
                    b.size(3) == c.size(3) && b.is_contiguous(),
                who, ": bbox_preds[", l, "] must be a contiguous [", c.size(0), ", ", 4 * anchors, ", ", c.size(2), ", ",
                c.size(3), "] tensor (as cls_scores[", l, "]), got shape ", b.shape().str());
    GCNET_CHECK(c.size(0) == out.cls_scores[0].size(0), who, ": cls_scores[", l, "] has batch size ", c.size(0),
                ", level 0 has ", out.cls_scores[0].size(0));
    sizes.push_back(ops::FeatSize{c.size(2), c.size(3)});
  }
  return sizes;
}

}  // namespace gcnet
