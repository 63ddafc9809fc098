#pragma once
// Training targets of the RoI head (mmdet v3 StandardRoIHead.loss's assign + sample,
// BBoxHead.get_targets, FCNMaskHead.get_targets):
//   per image: MaxIoUAssigner (0.5 / 0.5 / min_pos 0.5, low-quality matches) of the proposals to
//   the GT boxes (ignore boxes only with ignore_iof_thr > 0, as mmdet); RandomSampler (512, 0.25,
//   GT boxes prepended as proposals); sampled RoIs = positives then negatives;
//   labels: the GT's class index for positives, background for negatives; label weights 1
//   (pos_weight > 0 overrides the positives'); bbox targets = encode(positive RoI, its GT),
//   weights 1; mask targets: mask_target_single of the positives (28 x 28, mmdet: clipped, aligned
//   RoIAlign, >= 0.5; torchvision: project_masks_on_boxes' soft targets).
// torchvision's RoIHeads samples the same way (Matcher 0.5 / 0.5 without low-quality matches,
// BalancedPositiveNegativeSampler 512 x 0.25, GT boxes added): torchvision_roi_head_train_options().
// Proposals are per image, [k, 4] in the pixels of the network input (detached: mmdet and
// torchvision do not differentiate through them).
#include <functional>
#include <string>
#include <vector>

#include "gcnet/det/det_types.hpp"
#include "gcnet/det/roi_box_coder.hpp"
#include "gcnet/det/roi_head_types.hpp"
#include "gcnet/ops/mask_target.hpp"
#include "gcnet/ops/random_sampler.hpp"
#include "gcnet/ops/rois.hpp"

namespace gcnet {

struct RoIHeadTrainOptions {
  ops::MaxIoUAssignerOptions assigner{.pos_iou_thr = 0.5, .neg_iou_thr = 0.5, .min_pos_iou = 0.5,
                                      .match_low_quality = true};
  ops::RandomSamplerOptions sampler{.num = 512, .pos_fraction = 0.25, .neg_pos_ub = -1, .add_gt_as_proposals = true};
  ops::MaskTargetOptions mask_target{};  // mmdet: 28 x 28, binary
  double pos_weight = -1;                // <= 0: 1
};

inline RoIHeadTrainOptions torchvision_roi_head_train_options() {
  RoIHeadTrainOptions o;
  o.assigner.match_low_quality = false;  // Matcher(0.5, 0.5, allow_low_quality_matches=False)
  o.mask_target = ops::torchvision_mask_target_options(28);
  return o;
}

// Targets of a batch. `pick(image)` gives the sampler's subset picker of each image (a random one
// from an Rng, or a deterministic one in tests). gt[i].masks are needed when with_masks: [G, img_h,
// img_w] of shapes[i].
template <Scalar T>
RoIHeadTargets<T> roi_head_targets(const std::vector<Tensor<T>>& proposals, const std::vector<DetGroundTruth<T>>& gt,
                                   const std::vector<DetImageShape>& shapes, const RoIHeadTrainOptions& o,
                                   RoIHeadStyle style, index_t num_classes, bool with_masks,
                                   const std::function<ops::SubsetPicker(std::size_t)>& pick) {
  const std::string who = "StandardRoIHead::sample";
  GCNET_CHECK(proposals.size() == gt.size() && gt.size() == shapes.size(), who, ": ", proposals.size(),
              " images of proposals, ", gt.size(), " of ground truth and ", shapes.size(), " image shapes");
  const ops::MaxIoUAssigner<T> assigner(o.assigner);
  const ops::RandomSampler<T> sampler(o.sampler);
  const RoIBoxCoder<T> coder(style);
  const std::int64_t bg = style == RoIHeadStyle::Mmdet ? num_classes : 0;
  const std::int64_t shift = style == RoIHeadStyle::Mmdet ? 0 : 1;
  const T pos_w = o.pos_weight > 0 ? static_cast<T>(o.pos_weight) : T(1);

  RoIHeadTargets<T> t;
  std::vector<Tensor<T>> sampled, pos_boxes;
  std::vector<std::int64_t> labels, pos_labels;
  std::vector<T> label_w, targets, target_w;
  std::vector<Tensor<T>> mask_parts;
  for (std::size_t i = 0; i < gt.size(); ++i) {
    const auto& g = gt[i];
    const std::string img = who + ": image " + std::to_string(i);
    ops::check_boxes(proposals[i], img, "proposals");
    ops::check_boxes(g.boxes, img, "gt boxes");
    const index_t G = g.boxes.size(0);
    GCNET_CHECK(g.labels.rank() == 1 && g.labels.size(0) == G, img, ": gt labels must have shape [", G, "], got ",
                g.labels.shape().str());
    for (index_t j = 0; j < G; ++j)
      GCNET_CHECK(g.labels[j] >= 0 && g.labels[j] < num_classes, img, ": gt label ", g.labels[j], " of box ", j,
                  " is outside [0, ", num_classes, ")");
    if (with_masks) {
      GCNET_CHECK(g.masks.defined() && g.masks.rank() == 3 && g.masks.size(0) == G &&
                      g.masks.size(1) == shapes[i].img_h && g.masks.size(2) == shapes[i].img_w,
                  img, ": gt masks must have shape [", G, ", ", shapes[i].img_h, ", ", shapes[i].img_w,
                  "] (one per gt box, at the image's size before padding), got ",
                  g.masks.defined() ? g.masks.shape().str() : std::string("none"));
    }
    const Tensor<T>* ignore = g.ignore_boxes.defined() && g.ignore_boxes.numel() > 0 ? &g.ignore_boxes : nullptr;
    const auto assign = assigner.assign(g.boxes, g.labels, proposals[i], ignore);
    const auto s = sampler.sample(assign, proposals[i], g.boxes, g.labels, pick(i));
    const index_t np = s.pos_inds.size(0), nn = s.neg_inds.size(0);
    t.num_pos.push_back(np);
    t.num_neg.push_back(nn);
    sampled.push_back(s.sampled_priors());
    pos_boxes.push_back(s.pos_priors);
    const Tensor<T> enc = np > 0 ? coder.encode(s.pos_priors, s.pos_gt_bboxes) : Tensor<T>(Shape{0, 4});
    for (index_t k = 0; k < np; ++k) {
      const std::int64_t c = s.pos_gt_labels[k] + shift;
      labels.push_back(c);
      pos_labels.push_back(c);
      label_w.push_back(pos_w);
      for (int q = 0; q < 4; ++q) targets.push_back(enc[4 * k + q]), target_w.push_back(T(1));
    }
    for (index_t k = 0; k < nn; ++k) {
      labels.push_back(bg);
      label_w.push_back(T(1));
      for (int q = 0; q < 4; ++q) targets.push_back(T(0)), target_w.push_back(T(0));
    }
    if (with_masks) mask_parts.push_back(ops::mask_target_single(s.pos_priors, s.pos_assigned_gt_inds, g.masks, o.mask_target));
  }
  t.rois = ops::rois_from_lists(sampled);
  t.mask_rois = ops::rois_from_lists(pos_boxes);
  const auto K = static_cast<index_t>(labels.size());
  t.labels = ops::index_tensor(labels);
  t.pos_labels = ops::index_tensor(pos_labels);
  t.label_weights = Tensor<T>(Shape{K});
  std::copy(label_w.begin(), label_w.end(), t.label_weights.data());
  t.bbox_targets = Tensor<T>(Shape{K, 4});
  std::copy(targets.begin(), targets.end(), t.bbox_targets.data());
  t.bbox_weights = Tensor<T>(Shape{K, 4});
  std::copy(target_w.begin(), target_w.end(), t.bbox_weights.data());
  if (with_masks) {
    const index_t M = o.mask_target.size, P = static_cast<index_t>(pos_labels.size());
    t.mask_targets = Tensor<T>(Shape{P, M, M});
    index_t at = 0;
    for (const auto& m : mask_parts) {
      std::copy_n(m.data(), m.numel(), t.mask_targets.data() + at);
      at += m.numel();
    }
  }
  return t;
}

}  // namespace gcnet
