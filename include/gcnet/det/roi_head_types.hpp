#pragma once
// The values that flow through the RoI head (det/standard_roi_head.hpp):
//   RoIHeadInput    what the module's forward reads: the FPN levels, the RoIs of the box branch
//                   and those of the mask branch (training: the sampled RoIs and their positives;
//                   inference: the proposals and the detected boxes).
//   RoIHeadOutputs  the heads' raw outputs for those RoIs.
//   RoIHeadTargets  what sampling gives for one training step (det/roi_head_targets.hpp): the RoIs
//                   to forward and the targets the losses compare with (det/roi_head_loss.hpp).
#include <cstdint>
#include <vector>

#include "gcnet/core/fields.hpp"
#include "gcnet/core/rois.hpp"

namespace gcnet {

template <Scalar T = float>
struct RoIHeadInput {
  std::vector<Tensor<T>> feats;  // FPN levels [N, C, Hl, Wl], finest first (extra levels are ignored)
  RoIs<T> rois;                  // box branch
  RoIs<T> mask_rois;             // mask branch (boxes undefined: the mask head does not run)
  GCNET_FIELDS(feats, rois, mask_rois)
};

template <Scalar T = float>
struct RoIHeadOutputs {
  Tensor<T> cls_score;  // [K, nc + 1]
  Tensor<T> bbox_pred;  // [K, 4 nc] (mmdet) or [K, 4 (nc + 1)] (torchvision)
  Tensor<T> mask_pred;  // [P, nc', M, M] logits (undefined when the mask head did not run)
  GCNET_FIELDS(cls_score, bbox_pred, mask_pred)
};

// Targets of one training step; K sampled RoIs (per image: positives, then negatives; images in
// order), P = sum of positives. "Class index" is a column of cls_score: mmdet the GT label, nc for
// background; torchvision the GT label + 1, 0 for background. The regression group and the mask
// channel of a positive are its class index too.
template <Scalar T = float>
struct RoIHeadTargets {
  static constexpr bool differentiable = false;
  RoIs<T> rois;                      // [K] sampled RoIs: the box branch's input
  RoIs<T> mask_rois;                 // [P] the positives: the mask branch's input
  Tensor<std::int64_t> labels;       // [K] class index
  Tensor<T> label_weights;           // [K]
  Tensor<T> bbox_targets;            // [K, 4] encoded deltas (zeros for negatives)
  Tensor<T> bbox_weights;            // [K, 4] (1 for positives)
  Tensor<std::int64_t> pos_labels;   // [P] class index of each positive (its mask channel)
  Tensor<T> mask_targets;            // [P, M, M] (undefined without GT masks)
  std::vector<index_t> num_pos, num_neg;  // per image
  GCNET_FIELDS(rois, mask_rois, labels, label_weights, bbox_targets, bbox_weights, pos_labels, mask_targets)
};

}  // namespace gcnet
