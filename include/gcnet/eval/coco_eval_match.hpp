#pragma once
// pycocotools' computeIoU + evaluateImg for one (image, category) cell, every area range at once.
//  - Detections: stable sort by descending score (np.argsort(-score, kind='mergesort'); ties keep
//    results-file order, NaN scores last), the first maxDets[-1] kept (per image PER CATEGORY).
//  - GTs (file order): ignored when crowd or area outside [lo, hi]; stable-sorted non-ignored first.
//  - Per IoU threshold t, each detection in score order takes the GT with the highest IoU >= t
//    (cap 1 - 1e-10) among those not yet matched at t (crowd GTs stay matchable); once it holds a
//    non-ignored GT it stops at the first ignored one; on equal IoU the later GT wins.
//  - A detection matched to an ignored GT is ignored; an unmatched one outside the area range
//    is ignored; "matched" means matched to a GT with a nonzero id (quirk: GT id 0 never counts).
// The cell's outcome per (area, threshold, detection) is one status byte (fp / tp / ignored).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "gcnet/eval/coco_eval_data.hpp"
#include "gcnet/eval/coco_eval_iou.hpp"
#include "gcnet/eval/coco_eval_params.hpp"

namespace gcnet::eval {

enum DetStatus : std::uint8_t { kFalsePositive = 0, kTruePositive = 1, kIgnored = 2 };

// numpy's order for argsort(-score): ascending -score, NaN last.
inline bool score_before(double a, double b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return a > b;
}

// Per-thread buffers, reused from cell to cell (no allocation per pair or per cell once warm).
struct CellScratch {
  std::vector<std::pair<double, index_t>> by_score;  // (score, input index)
  std::vector<index_t> dets;                         // the cell's kept detections, score order
  std::vector<double> det_area;
  std::vector<double> iou, iou_sorted;               // D x G: GTs in file order / in gt_order
  std::vector<MaskView> dmask, gmask;
  std::vector<std::uint8_t> crowd, hit, ignore;      // per GT, file order (ignore: this area range)
  std::vector<index_t> gt_order;                     // file positions, non-ignored first
  std::vector<std::uint8_t> crowd_s, ignore_s, hit_s, matched;  // per GT, in gt_order
};

// Where one cell writes: status[(a * T + t) * stride + d] for its D kept detections, the kept
// detections' input indices to dets_out[d], and the number of non-ignored GTs per area range.
struct CellOutput {
  std::uint8_t* status = nullptr;
  std::size_t stride = 0;
  index_t* dets_out = nullptr;
  index_t* npig = nullptr;  // [A]
};

// gts / dets: the cell's input indices, in file order. Returns the number of kept detections.
inline index_t evaluate_cell(const CocoEvalInput& in, IouType type, const CocoEvalParams& p,
                             const index_t* gts, index_t G, const index_t* dets, index_t Dall,
                             const CellOutput& out, CellScratch& s) {
  // Stable descending score order: ties by input index, which is file order within the cell.
  s.by_score.resize(static_cast<std::size_t>(Dall));
  for (index_t d = 0; d < Dall; ++d) s.by_score[d] = {in.dets[dets[d]].score, dets[d]};
  std::sort(s.by_score.begin(), s.by_score.end(), [](const auto& x, const auto& y) {
    if (score_before(x.first, y.first)) return true;
    if (score_before(y.first, x.first)) return false;
    return x.second < y.second;
  });
  const index_t D = std::min(Dall, p.max_dets.back());
  s.dets.resize(static_cast<std::size_t>(D));
  s.det_area.resize(static_cast<std::size_t>(D));
  for (index_t d = 0; d < D; ++d) {
    s.dets[d] = out.dets_out[d] = s.by_score[d].second;
    s.det_area[d] = in.dets[s.dets[d]].area;
  }
  s.crowd.resize(static_cast<std::size_t>(G));
  s.hit.resize(static_cast<std::size_t>(G));
  for (index_t g = 0; g < G; ++g) {
    s.crowd[g] = in.gts[gts[g]].iscrowd ? 1 : 0;
    s.hit[g] = in.gts[gts[g]].id != 0 ? 1 : 0;
  }

  // IoU of every kept detection with every GT (maskUtils.iou gives [] when either is empty).
  s.iou.resize(static_cast<std::size_t>(D * G));
  if (D > 0 && G > 0) {
    if (type == IouType::bbox) {
      for (index_t d = 0; d < D; ++d) {
        const auto& db = in.dets[s.dets[d]].bbox;
        for (index_t g = 0; g < G; ++g) s.iou[d * G + g] = coco_box_iou(db, in.gts[gts[g]].bbox, s.crowd[g]);
      }
    } else {
      s.dmask.resize(static_cast<std::size_t>(D));
      s.gmask.resize(static_cast<std::size_t>(G));
      for (index_t d = 0; d < D; ++d) s.dmask[d] = mask_view(in.dets[s.dets[d]].segmentation);
      for (index_t g = 0; g < G; ++g) s.gmask[g] = mask_view(in.gts[gts[g]].segmentation);
      for (index_t d = 0; d < D; ++d)
        for (index_t g = 0; g < G; ++g) s.iou[d * G + g] = coco_mask_iou(s.dmask[d], s.gmask[g], s.crowd[g]);
    }
  }

  const index_t T = static_cast<index_t>(p.iou_thresholds.size());
  s.ignore.resize(static_cast<std::size_t>(G));
  s.gt_order.resize(static_cast<std::size_t>(G));
  s.crowd_s.resize(static_cast<std::size_t>(G));
  s.ignore_s.resize(static_cast<std::size_t>(G));
  s.hit_s.resize(static_cast<std::size_t>(G));
  s.matched.resize(static_cast<std::size_t>(G));
  s.iou_sorted.resize(static_cast<std::size_t>(D * G));
  for (std::size_t a = 0; a < p.area_ranges.size(); ++a) {
    const double lo = p.area_ranges[a].lo, hi = p.area_ranges[a].hi;
    index_t npig = 0;
    for (index_t g = 0; g < G; ++g) {
      const double area = in.gts[gts[g]].area;
      s.ignore[g] = (s.crowd[g] || area < lo || area > hi) ? 1 : 0;
      if (!s.ignore[g]) s.gt_order[npig++] = g;
    }
    for (index_t g = 0, n = npig; g < G; ++g)
      if (s.ignore[g]) s.gt_order[n++] = g;
    out.npig[a] = npig;
    // The GTs' flags and IoU columns in matching order.
    for (index_t k = 0; k < G; ++k) {
      const index_t g = s.gt_order[k];
      s.crowd_s[k] = s.crowd[g];
      s.ignore_s[k] = s.ignore[g];
      s.hit_s[k] = s.hit[g];
      for (index_t d = 0; d < D; ++d) s.iou_sorted[d * G + k] = s.iou[d * G + g];
    }

    for (index_t t = 0; t < T; ++t) {
      std::uint8_t* st = out.status + (a * static_cast<std::size_t>(T) + t) * out.stride;
      const double cap = std::min(p.iou_thresholds[t], 1 - 1e-10);
      std::fill(s.matched.begin(), s.matched.end(), std::uint8_t{0});
      for (index_t d = 0; d < D; ++d) {
        const double* row = s.iou_sorted.data() + d * G;
        double best = cap;
        index_t m = -1;  // position in gt_order
        for (index_t k = 0; k < G; ++k) {
          if (s.matched[k] && !s.crowd_s[k]) continue;
          if (m > -1 && !s.ignore_s[m] && s.ignore_s[k]) break;  // prefer real GTs
          if (row[k] < best) continue;
          best = row[k];
          m = k;
        }
        bool ignored = false, hit = false;
        if (m > -1) {
          s.matched[m] = 1;
          ignored = s.ignore_s[m] != 0;
          hit = s.hit_s[m] != 0;
        }
        if (!hit && (s.det_area[d] < lo || s.det_area[d] > hi)) ignored = true;
        st[d] = ignored ? kIgnored : (hit ? kTruePositive : kFalsePositive);
      }
    }
  }
  return D;
}

}  // namespace gcnet::eval
