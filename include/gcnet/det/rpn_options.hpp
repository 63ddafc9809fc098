#pragma once
// Options of the RPN head (det/rpn_head.hpp): the layers, anchors, box coder, training targets and
// losses, and the proposals at training and test time. Two presets:
//   mmdet_rpn_head_options()        mmdet v3's rpn_head of mask-rcnn_r50_fpn (gcnet-reference §9,
//                                   detection-reference §13.5-§13.7): anchors scales {8}, ratios
//                                   {0.5, 1, 2}, strides 4..64; coder means 0, stds 1 (clamp of
//                                   dw, dh on both sides); assigner 0.7 / 0.3 / 0.3 with low-quality
//                                   matches, sampler 256 x 0.5, allowed_border -1; sigmoid CE 1.0 +
//                                   L1 1.0; proposals: train nms_pre 2000, max 1000, test 1000 / 1000,
//                                   NMS 0.7 per level, min_bbox_size 0.
//   torchvision_rpn_head_options()  torchvision 0.14's maskrcnn_resnet50_fpn RegionProposalNetwork:
//                                   base anchors rounded, strides from the padded batch size over the
//                                   feature size (image_size // grid_size), BoxCoder clamp (upper
//                                   only), per-level top-k of the logits (2000 train / 1000 test),
//                                   clip, remove_small_boxes 1e-3, score_thresh 0, NMS 0.7 per level,
//                                   post_nms_top_n 2000 train / 1000 test. Training targets and
//                                   losses stay mmdet's (see RPNStyle).
#include <vector>

#include "gcnet/ops/anchor_generator.hpp"
#include "gcnet/ops/delta_xywh_coder.hpp"
#include "gcnet/ops/max_iou_assigner.hpp"
#include "gcnet/ops/random_sampler.hpp"

namespace gcnet {

// Whose semantics anchors and proposals follow. Training targets and losses are mmdet's in both
// (torchvision's own RPN loss, smooth L1 with beta 1/9 and a BCE mean, is not reproduced); in the
// torchvision style every anchor is valid (torchvision has no valid flags).
enum class RPNStyle { mmdet, torchvision };

// The proposals of one image from the head's outputs (detection-reference §13.7; torchvision's
// RegionProposalNetwork.filter_proposals).
struct RPNProposalOptions {
  index_t nms_pre = 1000;      // per level: the highest scores kept before NMS (<= 0: all)
  index_t max_per_img = 1000;  // kept after NMS, all levels mixed (<= 0: all)
  double iou_threshold = 0.7;  // NMS within each level
  // mmdet: boxes need width and height > min_bbox_size (< 0: no filter). torchvision:
  // remove_small_boxes, width and height >= min_bbox_size (1e-3).
  double min_bbox_size = 0;
  double score_thr = 0;        // torchvision only: sigmoid score >= score_thr
};

struct RPNTrainOptions {
  ops::MaxIoUAssignerOptions assigner{.pos_iou_thr = 0.7, .neg_iou_thr = 0.3, .min_pos_iou = 0.3,
                                      .gt_max_assign_all = true, .ignore_iof_thr = -1,
                                      .ignore_wrt_candidates = true, .match_low_quality = true};
  ops::RandomSamplerOptions sampler{.num = 256, .pos_fraction = 0.5, .neg_pos_ub = -1, .add_gt_as_proposals = false};
  double allowed_border = -1;   // anchor_inside_flags: < 0 keeps every valid anchor
  double pos_weight = -1;       // <= 0: positives weigh 1 in the classification loss
  double loss_cls_weight = 1;   // CrossEntropyLoss(use_sigmoid=True, loss_weight)
  double loss_bbox_weight = 1;  // L1Loss(loss_weight)
  index_t pad_size_divisor = 32;  // mmdet's pad_shape of an image: img size rounded up to this (valid flags)
};

struct RPNHeadOptions {
  index_t in_channels = 256;
  index_t feat_channels = 256;
  ops::AnchorGeneratorOptions anchors{.strides = {4, 8, 16, 32, 64}, .ratios = {0.5, 1.0, 2.0}, .scales = {8}};
  ops::DeltaXYWHOptions coder{};
  RPNTrainOptions train{};
  RPNProposalOptions test{.nms_pre = 1000, .max_per_img = 1000, .iou_threshold = 0.7, .min_bbox_size = 0};
  RPNProposalOptions train_proposals{.nms_pre = 2000, .max_per_img = 1000, .iou_threshold = 0.7, .min_bbox_size = 0};
  RPNStyle style = RPNStyle::mmdet;
  double init_std = 0.01;  // mmdet / torchvision: every conv normal(0, 0.01), bias 0
};

inline RPNHeadOptions mmdet_rpn_head_options(index_t in_channels = 256, index_t feat_channels = 256) {
  RPNHeadOptions o;
  o.in_channels = in_channels;
  o.feat_channels = feat_channels;
  return o;
}

inline RPNHeadOptions torchvision_rpn_head_options(index_t in_channels = 256) {
  RPNHeadOptions o;
  o.in_channels = in_channels;
  o.feat_channels = in_channels;  // torchvision's RPNHead keeps the channels
  o.style = RPNStyle::torchvision;
  // AnchorGenerator(sizes ((32,), (64,), ...), aspect_ratios (0.5, 1, 2)): base size 4..64 x scale 8
  // (exact products), rounded; the strides are recomputed per batch from the feature sizes.
  o.anchors.base_sizes = {4, 8, 16, 32, 64};
  o.anchors.round_base_anchors = true;
  o.coder.wh_clamp = ops::WhClamp::upper_only;
  o.test = {.nms_pre = 1000, .max_per_img = 1000, .iou_threshold = 0.7, .min_bbox_size = 1e-3, .score_thr = 0};
  o.train_proposals = {.nms_pre = 2000, .max_per_img = 2000, .iou_threshold = 0.7, .min_bbox_size = 1e-3,
                       .score_thr = 0};
  return o;
}

}  // namespace gcnet
