#pragma once
// Proposals from the RPN head's outputs, per image, in the pixels of the network input
// (resized, before padding), descending score:
//   mmdet (RPNHead._predict_by_feat_single + _bbox_post_process, detection-reference §13.7):
//     per level: scores = sigmoid(logits); more than nms_pre -> the nms_pre highest (sort);
//     decode (delta2bbox, clipped to the image); keep w > min_bbox_size and h > min_bbox_size
//     (min_bbox_size >= 0); batched_nms per level (iou_threshold); the first max_per_img.
//   torchvision (RegionProposalNetwork.filter_proposals): per level the top nms_pre logits
//     (topk); decode (BoxCoder, dw, dh clamped from above only) and clip_boxes_to_image;
//     remove_small_boxes (w >= min_size and h >= min_size); sigmoid score >= score_thr;
//     batched_nms per level; the first post_nms_top_n (max_per_img).
// NMS within a level as each source runs it: mmcv's batched_nms shifts each level's boxes by
// level * (max coordinate + 1) and runs one NMS below 10000 boxes (a loop over levels above);
// torchvision does the same up to 1000 boxes. Scores with ties are ordered by index (PyTorch's
// sort is unstable there: parity holds on tie-free scores).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "gcnet/det/det_types.hpp"
#include "gcnet/det/rpn_anchors.hpp"
#include "gcnet/det/rpn_outputs.hpp"
#include "gcnet/ops/nms.hpp"
#include "gcnet/ops/rois.hpp"

namespace gcnet {

// The proposals of one image: boxes [k, 4] (x1, y1, x2, y2), scores [k] (sigmoid, descending).
template <Scalar T = float>
struct RPNProposals {
  static constexpr bool differentiable = false;
  Tensor<T> boxes;
  Tensor<T> scores;
  index_t size() const { return boxes.defined() && boxes.rank() == 2 ? boxes.size(0) : 0; }
  GCNET_FIELDS(boxes, scores)
};

// The proposals of a batch as RoIs (mmdet bbox2roi): image i's boxes tagged with i, in order.
template <Scalar T>
RoIs<T> to_rois(const std::vector<RPNProposals<T>>& proposals) {
  std::vector<Tensor<T, Cpu>> boxes;
  for (const auto& p : proposals) boxes.push_back(p.boxes);
  return ops::rois_from_lists(boxes);
}

namespace detail {
// Positions 0..n-1 of a level ordered by descending value (ties by position), the first k (k <= 0: all, unsorted
// as mmdet when nothing is cut; torchvision's topk with k >= n keeps them all, sorted).
template <class T>
std::vector<index_t> rpn_top(const std::vector<T>& v, index_t k, bool sort_all) {
  const auto n = static_cast<index_t>(v.size());
  std::vector<index_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), index_t{0});
  const bool cut = k > 0 && k < n;
  if (!cut && !sort_all) return idx;
  auto before = [&v](index_t a, index_t b) {
    return v[static_cast<std::size_t>(a)] > v[static_cast<std::size_t>(b)] ||
           (v[static_cast<std::size_t>(a)] == v[static_cast<std::size_t>(b)] && a < b);
  };
  if (cut) {
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), before);
    idx.resize(static_cast<std::size_t>(k));
  } else {
    std::sort(idx.begin(), idx.end(), before);
  }
  return idx;
}

template <class T>
T rpn_sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}
}  // namespace detail

// Proposals of every image of `out`. `anchors` are the batch's (det/rpn_anchors.hpp), `shapes`
// one per image (img_h x img_w: where boxes are clipped).
template <Scalar T>
std::vector<RPNProposals<T>> rpn_proposals(const RPNOutputs<T>& out, const RPNAnchors<T>& anchors,
                                           const std::vector<DetImageShape>& shapes, const RPNProposalOptions& p,
                                           const ops::DeltaXYWHOptions& coder_options, RPNStyle style) {
  const std::string who = "RPNHead::proposals";
  const std::size_t levels = anchors.level_sizes.size();
  GCNET_CHECK(levels > 0 && out.cls_scores.size() == levels, who, ": outputs of ", out.cls_scores.size(),
              " levels for anchors of ", levels);
  const index_t A = out.cls_scores[0].size(1);
  check_rpn_outputs(out, levels, A, who);
  const index_t n = out.cls_scores[0].size(0);
  GCNET_CHECK(static_cast<index_t>(shapes.size()) == n, who, ": ", shapes.size(), " image shapes for a batch of ", n,
              " images");
  GCNET_CHECK(p.iou_threshold >= 0 && p.iou_threshold <= 1, who, ": iou_threshold = ", p.iou_threshold,
              ", expected a value in [0, 1]");
  const bool tv = style == RPNStyle::torchvision;
  const ops::DeltaXYWHBBoxCoder<T> coder(coder_options);
  std::vector<RPNProposals<T>> result;
  for (index_t i = 0; i < n; ++i) {
    const DetImageShape& s = shapes[static_cast<std::size_t>(i)];
    GCNET_CHECK(s.img_h > 0 && s.img_w > 0, who, ": image ", i, " has size ", s.img_h, "x", s.img_w,
                ", expected positive sizes");
    // Per level: the kept anchors' rows in the flat anchors, their scores and deltas.
    std::vector<std::int64_t> rows;
    std::vector<T> scores, deltas;
    std::vector<std::int64_t> level_ids;
    index_t offset = 0;
    for (std::size_t l = 0; l < levels; ++l) {
      const Tensor<T>& cls = out.cls_scores[l];
      const Tensor<T>& reg = out.bbox_preds[l];
      const index_t hw = cls.size(2) * cls.size(3), m = hw * A;
      GCNET_CHECK(anchors.level_sizes[l] == m, who, ": level ", l, " has ", m, " outputs but ", anchors.level_sizes[l],
                  " anchors");
      const T* pc = cls.data() + i * A * hw;
      const T* pr = reg.data() + i * 4 * A * hw;
      std::vector<T> v(static_cast<std::size_t>(m));  // (y, x, a) order
      for (index_t q = 0; q < hw; ++q)
        for (index_t a = 0; a < A; ++a) {
          const T x = pc[a * hw + q];
          GCNET_CHECK(std::isfinite(x), who, ": cls_scores[", l, "] of image ", i, " has a non-finite logit ", x);
          v[static_cast<std::size_t>(q * A + a)] = tv ? x : detail::rpn_sigmoid(x);
        }
      // mmdet ranks the sigmoid scores, torchvision the logits (topk, always sorted).
      for (index_t j : detail::rpn_top(v, p.nms_pre, tv)) {
        const index_t q = j / A, a = j % A;
        rows.push_back(offset + j);
        scores.push_back(tv ? detail::rpn_sigmoid(v[static_cast<std::size_t>(j)]) : v[static_cast<std::size_t>(j)]);
        for (index_t k = 0; k < 4; ++k) deltas.push_back(pr[(4 * a + k) * hw + q]);
        level_ids.push_back(static_cast<std::int64_t>(l));
      }
      offset += m;
    }
    const auto k = static_cast<index_t>(rows.size());
    Tensor<T> d(Shape{k, 4});
    std::copy(deltas.begin(), deltas.end(), d.data());
    const Tensor<T> boxes = coder.decode(ops::select_rows(anchors.flat, ops::index_tensor(rows), who), d,
                                         ops::ImageSize{s.img_h, s.img_w});
    // Size (and torchvision's score) filter.
    std::vector<std::int64_t> keep;
    const T min_size = static_cast<T>(p.min_bbox_size);
    const T score_thr = static_cast<T>(p.score_thr);
    for (index_t j = 0; j < k; ++j) {
      const T w = boxes[4 * j + 2] - boxes[4 * j], h = boxes[4 * j + 3] - boxes[4 * j + 1];
      bool ok;
      if (tv) ok = w >= min_size && h >= min_size && scores[static_cast<std::size_t>(j)] >= score_thr;
      else ok = p.min_bbox_size < 0 || (w > min_size && h > min_size);
      if (ok) keep.push_back(j);
    }
    const Tensor<std::int64_t> kept = ops::index_tensor(keep);
    const Tensor<T> kb = ops::select_rows(boxes, kept, who);
    Tensor<T> ks(Shape{static_cast<index_t>(keep.size())});
    Tensor<std::int64_t> kl(Shape{static_cast<index_t>(keep.size())});
    for (std::size_t j = 0; j < keep.size(); ++j) {
      ks[static_cast<index_t>(j)] = scores[static_cast<std::size_t>(keep[j])];
      kl[static_cast<index_t>(j)] = level_ids[static_cast<std::size_t>(keep[j])];
    }
    const auto m = static_cast<index_t>(keep.size());
    ops::BatchedNmsOptions nms;
    nms.max_num = p.max_per_img;
    nms.method = (tv ? 4 * m <= 4000 : m < 10000) ? ops::BatchedNmsMethod::coordinate_offset
                                                 : ops::BatchedNmsMethod::per_group;
    const Tensor<std::int64_t> order = ops::batched_nms(kb, ks, kl, p.iou_threshold, nms);
    RPNProposals<T> r;
    r.boxes = ops::select_rows(kb, order, who);
    r.scores = ops::select_rows(ks, order, who);
    result.push_back(std::move(r));
  }
  return result;
}

}  // namespace gcnet
