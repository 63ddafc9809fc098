#pragma once
// The RPN's training targets (mmdet v3 AnchorHead.get_targets / _get_targets_single,
// detection-reference §13.6), per image over the anchors of all levels:
//   inside  = valid flags & anchor_inside_flags(img_shape, allowed_border)   (-1: every valid anchor)
//   assign  MaxIoUAssigner on the inside anchors, every GT label 0 (foreground: the two-stage
//           detector zeroes the labels for its RPN); ignore boxes go to the assigner, which uses
//           them only with ignore_iof_thr > 0 (mmdet's gt_instances_ignore; off in the presets)
//   sample  RandomSampler (256 x 0.5, no GT proposals) with a random or injected subset picker
//   targets positives: cls target 1, weight 1 (or pos_weight), deltas encode(anchor, gt), bbox
//           weight 1; sampled negatives: cls target 0, weight 1; everything else weight 0
//           (mmdet's label num_classes = background, i.e. an all-zero one-hot target)
//   avg_factor = sum over images of num_pos + num_neg (each at least 1)
// An image without any anchor inside it is an error (mmdet raises ValueError).
#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/det/rpn_anchors.hpp"

namespace gcnet {

template <Scalar T = float>
struct RPNTargets {
  // Per image, over all anchors (levels concatenated, (y, x, a) within a level):
  std::vector<Tensor<T, Cpu>> cls_targets;   // [M] 1 for positives, 0 otherwise
  std::vector<Tensor<T, Cpu>> cls_weights;   // [M] nonzero for sampled anchors
  std::vector<Tensor<T, Cpu>> bbox_targets;  // [M, 4] encoded deltas of positives, 0 elsewhere
  std::vector<Tensor<T, Cpu>> bbox_weights;  // [M] 1 for positives (the same for the 4 deltas)
  std::vector<index_t> level_sizes;          // anchors per level
  // Per image: the sample, its indices into the image's inside anchors, and those anchors' positions in [0, M).
  std::vector<ops::SamplingResult<T>> sampling;
  std::vector<Tensor<std::int64_t, Cpu>> inside_index;
  double avg_factor = 0;
};

// Targets for the batch. `pick` chooses the random subsets of the sampler (ops::random_subset over
// an Rng, or a test's deterministic choice).
template <Scalar T>
RPNTargets<T> rpn_targets(const RPNHeadOptions& o, const ops::AnchorGenerator<T>& gen, const RPNAnchors<T>& anchors,
                          const std::vector<DetGroundTruth<T>>& gt, const std::vector<DetImageShape>& shapes,
                          const ops::SubsetPicker& pick) {
  const std::string who = "RPNHead::loss";
  GCNET_CHECK(gt.size() == shapes.size(), who, ": ", gt.size(), " ground truths for ", shapes.size(), " image shapes");
  const ops::MaxIoUAssigner<T> assigner(o.train.assigner);
  const ops::RandomSampler<T> sampler(o.train.sampler);
  const ops::DeltaXYWHBBoxCoder<T> coder(o.coder);
  const index_t m = anchors.flat.size(0);
  RPNTargets<T> t;
  t.level_sizes = anchors.level_sizes;
  for (std::size_t i = 0; i < gt.size(); ++i) {
    const DetGroundTruth<T>& g = gt[i];
    const DetImageShape& s = shapes[i];
    const std::string img = who + ": image " + std::to_string(i);
    GCNET_CHECK(g.boxes.defined() && g.boxes.rank() == 2 && g.boxes.size(1) == 4, img,
                ": gt boxes must have shape [n, 4] (x1, y1, x2, y2), got ", g.boxes.shape().str());
    GCNET_CHECK(s.img_h > 0 && s.img_w > 0, img, ": image size ", s.img_h, "x", s.img_w, " must be positive");
    const Tensor<std::uint8_t, Cpu> valid = rpn_valid_flags(o, gen, anchors, s);
    const Tensor<std::uint8_t, Cpu> inside =
        ops::anchor_inside_flags(anchors.flat, valid, ops::ImageSize{s.img_h, s.img_w}, o.train.allowed_border);
    std::vector<std::int64_t> in_idx;
    for (index_t j = 0; j < m; ++j)
      if (inside[j]) in_idx.push_back(j);
    GCNET_CHECK(!in_idx.empty(), img, ": no anchor lies inside the image (", s.img_h, "x", s.img_w,
                "); check the image size and allowed_border");
    const Tensor<std::int64_t, Cpu> inside_index = ops::index_tensor(in_idx);
    const Tensor<T, Cpu> priors = ops::select_rows(anchors.flat, inside_index, img);
    const Tensor<T, Cpu> boxes = ops::contiguous(g.boxes);
    Tensor<std::int64_t, Cpu> labels(Shape{boxes.size(0)});
    std::fill_n(labels.data(), labels.numel(), std::int64_t{0});
    const Tensor<T, Cpu>* ignore = g.ignore_boxes.defined() && g.ignore_boxes.numel() > 0 ? &g.ignore_boxes : nullptr;
    const ops::AssignResult<T> assign = assigner.assign(boxes, labels, priors, ignore);
    ops::SamplingResult<T> sr = sampler.sample(assign, priors, boxes, labels, pick);

    Tensor<T, Cpu> ct = zeros<T>(Shape{m}), cw = zeros<T>(Shape{m}), bt = zeros<T>(Shape{m, 4}), bw = zeros<T>(Shape{m});
    const T pos_w = o.train.pos_weight > 0 ? static_cast<T>(o.train.pos_weight) : T(1);
    if (sr.pos_inds.size(0) > 0) {
      const Tensor<T, Cpu> deltas = coder.encode(sr.pos_priors, sr.pos_gt_bboxes);
      for (index_t k = 0; k < sr.pos_inds.size(0); ++k) {
        const std::int64_t a = in_idx[static_cast<std::size_t>(sr.pos_inds[k])];
        ct[a] = T(1);
        cw[a] = pos_w;
        bw[a] = T(1);
        for (int c = 0; c < 4; ++c) bt[a * 4 + c] = deltas[k * 4 + c];
      }
    }
    for (index_t k = 0; k < sr.neg_inds.size(0); ++k) cw[in_idx[static_cast<std::size_t>(sr.neg_inds[k])]] = T(1);
    t.avg_factor += static_cast<double>(sr.avg_factor());
    t.cls_targets.push_back(ct);
    t.cls_weights.push_back(cw);
    t.bbox_targets.push_back(bt);
    t.bbox_weights.push_back(bw);
    t.inside_index.push_back(inside_index);
    t.sampling.push_back(std::move(sr));
  }
  return t;
}

}  // namespace gcnet
