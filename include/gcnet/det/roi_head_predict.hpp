#pragma once
// Inference of the RoI head, per image (the module det/standard_roi_head.hpp runs the heads and
// calls these):
//   postprocess_roi_boxes: scores and boxes of one image's RoIs -> detections in the pixels of the
//     network input (before padding)
//     mmdet (BBoxHead._predict_by_feat_single): softmax; delta2bbox of every class's deltas,
//       clipped to img_shape; multiclass_nms (score > score_thr, per-class NMS IoU > 0.5
//       suppresses, first max_per_img by score)
//     torchvision (RoIHeads.postprocess_detections): softmax; BoxCoder decode, clip; drop the
//       background column; score > score_thr; remove_small_boxes(1e-2); batched_nms by label;
//       first detections_per_img. Labels come out as 0..nc-1 (torchvision's 1..nc minus 1).
//   rescale_boxes: to the original image: mmdet divides by the float scale factors
//     (scale_boxes(1 / scale_factor) with bboxes /= scale_factor); torchvision multiplies by
//     float(ori) / float(img) per axis (transform.resize_boxes).
//   mask_probabilities: sigmoid of each detection's class channel (maskrcnn_inference / mmdet's
//     mask_preds[range(N), labels]).
//   paste: mmdet _do_paste_mask (grid-sample, binary >= mask_thr_binary) or torchvision
//     paste_masks_in_image (soft; binary where > 0.5, as torchvision's reference evaluation).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gcnet/det/det_types.hpp"
#include "gcnet/det/roi_box_coder.hpp"
#include "gcnet/ops/nms.hpp"
#include "gcnet/ops/paste_masks.hpp"

namespace gcnet {

struct RoIHeadTestOptions {
  double score_thr = 0.05;
  double nms_iou = 0.5;
  index_t max_per_img = 100;
  double min_size = 1e-2;       // torchvision's remove_small_boxes (mmdet keeps small boxes)
  double mask_thr_binary = 0.5;
  bool rescale = true;          // results in the original image's pixels (else the input's)
  bool binary_masks = true;     // fill Detections::masks
  bool soft_masks = false;      // fill Detections::soft_masks (M x M, relative to the boxes)
};

template <Scalar T>
Tensor<T> softmax_rows(const Tensor<T>& x_in) {
  const Tensor<T> x = ops::contiguous(x_in);
  const index_t n = x.size(0), c = x.size(1);
  Tensor<T> p(x.shape());
  for (index_t r = 0; r < n; ++r) {
    const T* a = x.data() + r * c;
    T* o = p.data() + r * c;
    T m = a[0];
    for (index_t k = 1; k < c; ++k) m = std::max(m, a[k]);
    T s = 0;
    for (index_t k = 0; k < c; ++k) s += (o[k] = std::exp(a[k] - m));
    for (index_t k = 0; k < c; ++k) o[k] /= s;
  }
  return p;
}

// One image: rois [k, 4], cls_score [k, nc + 1], bbox_pred [k, 4 groups] -> boxes, scores, labels
// (0..nc-1) in the network input's pixels, descending score.
template <Scalar T>
Detections<T> postprocess_roi_boxes(const Tensor<T>& rois, const Tensor<T>& cls_score, const Tensor<T>& bbox_pred,
                                    const DetImageShape& shape, RoIHeadStyle style, const RoIHeadTestOptions& o) {
  const index_t k = rois.size(0), C = cls_score.size(1), nc = C - 1;
  const Tensor<T> scores = softmax_rows(cls_score);
  const RoIBoxCoder<T> coder(style);
  const ops::ImageSize img{shape.img_h, shape.img_w};
  const Tensor<T> boxes = coder.decode(rois, bbox_pred, img);
  Detections<T> d;
  if (style == RoIHeadStyle::Mmdet) {
    auto r = ops::multiclass_nms(boxes, scores,
                                 ops::MulticlassNmsOptions{.score_thr = o.score_thr, .iou_threshold = o.nms_iou,
                                                           .max_num = o.max_per_img});
    d.boxes = r.boxes, d.scores = r.scores, d.labels = r.labels;
    return d;
  }
  // torchvision: candidates in (roi, class) order, background column dropped.
  const T thr = static_cast<T>(o.score_thr), min_size = static_cast<T>(o.min_size);
  std::vector<T> cb, cs;
  std::vector<std::int64_t> cl;
  for (index_t i = 0; i < k; ++i)
    for (index_t c = 1; c <= nc; ++c) {
      const T s = scores[i * C + c];
      if (!(s > thr)) continue;
      const T* b = boxes.data() + (i * C + c) * 4;
      if (!(b[2] - b[0] >= min_size && b[3] - b[1] >= min_size)) continue;
      cb.insert(cb.end(), b, b + 4);
      cs.push_back(s);
      cl.push_back(c - 1);
    }
  const auto m = static_cast<index_t>(cs.size());
  Tensor<T> bt(Shape{m, 4}), st(Shape{m});
  std::copy(cb.begin(), cb.end(), bt.data());
  std::copy(cs.begin(), cs.end(), st.data());
  const Tensor<std::int64_t> lt = ops::index_tensor(cl);
  const auto keep = ops::batched_nms(bt, st, lt, o.nms_iou, ops::BatchedNmsOptions{.max_num = o.max_per_img});
  d.boxes = ops::select_rows(bt, keep), d.scores = ops::select_rows(st, keep), d.labels = ops::select_rows(lt, keep);
  return d;
}

// Boxes [n, 4] from the network input's pixels to the original image's.
template <Scalar T>
Tensor<T> rescale_boxes(const Tensor<T>& boxes, const DetImageShape& s, RoIHeadStyle style) {
  Tensor<T> out = clone(ops::contiguous(boxes));
  if (style == RoIHeadStyle::Mmdet) {
    const T sw = static_cast<T>(s.scale_w), sh = static_cast<T>(s.scale_h);
    for (index_t i = 0; i < out.size(0); ++i)
      for (int q = 0; q < 4; ++q) out[4 * i + q] = out[4 * i + q] / (q % 2 == 0 ? sw : sh);
  } else {
    const T rw = static_cast<T>(s.ori_w) / static_cast<T>(s.img_w), rh = static_cast<T>(s.ori_h) / static_cast<T>(s.img_h);
    for (index_t i = 0; i < out.size(0); ++i)
      for (int q = 0; q < 4; ++q) out[4 * i + q] = out[4 * i + q] * (q % 2 == 0 ? rw : rh);
  }
  return out;
}

// sigmoid(mask_logits[i, channel[i]]) -> [n, M, M].
template <Scalar T>
Tensor<T> mask_probabilities(const Tensor<T>& logits_in, const Tensor<std::int64_t>& channel) {
  const Tensor<T> logits = ops::contiguous(logits_in);
  const index_t n = logits.size(0), C = logits.size(1), M2 = logits.size(2) * logits.size(3);
  GCNET_CHECK(channel.rank() == 1 && channel.size(0) == n, "mask_probabilities: ", n, " masks but ",
              channel.numel(), " labels");
  Tensor<T> p(Shape{n, logits.size(2), logits.size(3)});
  for (index_t i = 0; i < n; ++i) {
    GCNET_CHECK(channel[i] >= 0 && channel[i] < C, "mask_probabilities: channel ", channel[i], " outside [0, ", C, ")");
    const T* x = logits.data() + (i * C + channel[i]) * M2;
    for (index_t j = 0; j < M2; ++j) p[i * M2 + j] = T(1) / (T(1) + std::exp(-x[j]));
  }
  return p;
}

// Fills d.masks / d.soft_masks from the probabilities of its detections (boxes in the network
// input's pixels) and, with o.rescale, moves d.boxes to the original image.
template <Scalar T>
void finish_detections(Detections<T>& d, const Tensor<T>* probs, const DetImageShape& s, RoIHeadStyle style,
                       const RoIHeadTestOptions& o) {
  const Tensor<T> boxes = o.rescale ? rescale_boxes(d.boxes, s, style) : d.boxes;
  if (probs && o.binary_masks) {
    index_t H = s.ori_h, W = s.ori_w;
    if (!o.rescale) {  // the input's size (mmdet: round(ori * scale))
      H = style == RoIHeadStyle::Mmdet ? static_cast<index_t>(std::lround(s.ori_h * s.scale_h)) : s.img_h;
      W = style == RoIHeadStyle::Mmdet ? static_cast<index_t>(std::lround(s.ori_w * s.scale_w)) : s.img_w;
    }
    if (style == RoIHeadStyle::Mmdet) {
      d.masks = ops::paste_masks(*probs, boxes, H, W, o.mask_thr_binary);
    } else {
      d.masks = ops::paste_masks_torchvision_binary(*probs, boxes, H, W, o.mask_thr_binary);
    }
  }
  if (probs && o.soft_masks) d.soft_masks = *probs;
  d.boxes = boxes;
}

}  // namespace gcnet
