#pragma once
// Merge and IoU of COCO RLEs and boxes, as pycocotools.mask.merge / .iou (maskApi.c's
// rleMerge, rleIou, bbIou).
//
// IoU with iscrowd (per ground truth): for a crowd GT the "union" is the detection's own area,
// so the value is intersection / area(dt) (IoF), which lets one crowd region absorb many
// detections in COCOeval. Results are double, as in pycocotools; matrices are returned
// row-major [num_dt x num_gt] (pycocotools' array shape (m, n)).
//
// rle_iou reproduces rleIou's order of work: the RLEs' bounding boxes (rle_to_bbox) are
// compared first with bbIou, and the exact run-length intersection is computed only where that
// is > 0; RLEs of different sizes give -1 there; an empty intersection gives 0.
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "gcnet/core/rounded.hpp"
#include "gcnet/data/coco_rle.hpp"

namespace gcnet::data {

// pycocotools.mask.merge(rles, intersect): union (or intersection) of RLEs of one size. One RLE
// is returned as it is. Unlike maskApi.c (which returns an empty 0x0 RLE), different sizes and
// an empty list are Errors.
inline Rle rle_merge(const std::vector<Rle>& rles, bool intersect = false) {
  GCNET_CHECK(!rles.empty(), "rle_merge: no RLEs to merge");
  Rle acc = rles[0];
  for (std::size_t i = 1; i < rles.size(); ++i) {
    const Rle& b = rles[i];
    GCNET_CHECK(b.h == acc.h && b.w == acc.w, "rle_merge: RLE ", i, " is ", b.h, "x", b.w, " but RLE 0 is ", acc.h,
                "x", acc.w);
    GCNET_CHECK(!b.counts.empty() && !acc.counts.empty(), "rle_merge: RLE ", acc.counts.empty() ? 0 : i,
                " has no counts");
    // Walk both run lists at once. ra/rb: what is left of the current run of each; va/vb: the
    // value of the run that follows it. A run of the output ends where its value changes, and
    // at the very end.
    std::vector<std::uint32_t> out;
    out.reserve(acc.counts.size() + b.counts.size());
    std::uint32_t ra = acc.counts[0], rb = b.counts[0], len = 0;
    std::size_t ia = 1, ib = 1;
    bool va = false, vb = false, v = false;
    for (bool left = true; left;) {
      const std::uint32_t step = std::min(ra, rb);
      len += step;
      ra -= step;
      rb -= step;
      if (ra == 0 && ia < acc.counts.size()) {
        ra = acc.counts[ia++];
        va = !va;
      }
      if (rb == 0 && ib < b.counts.size()) {
        rb = b.counts[ib++];
        vb = !vb;
      }
      left = ra + static_cast<std::uint64_t>(rb) > 0;
      const bool before = v;
      v = intersect ? (va && vb) : (va || vb);
      if (v != before || !left) {
        out.push_back(len);
        len = 0;
      }
    }
    acc.counts = std::move(out);
  }
  return acc;
}

// bbIou of one pair of [x, y, w, h] boxes (double): 0 when they do not overlap (w or h of the
// intersection <= 0); the union is area(dt) for a crowd GT, else area(dt) + area(gt) - inter.
inline double coco_box_iou(const std::array<double, 4>& dt, const std::array<double, 4>& gt, bool gt_crowd) {
  const double iw = std::min(dt[2] + dt[0], gt[2] + gt[0]) - std::max(dt[0], gt[0]);
  if (iw <= 0) return 0;
  const double ih = std::min(dt[3] + dt[1], gt[3] + gt[1]) - std::max(dt[1], gt[1]);
  if (ih <= 0) return 0;
  // Each product rounded on its own, as maskApi.c computes them: COCOeval compares this IoU with
  // its thresholds, so it must be bit-exact (core/rounded.hpp).
  const double inter = rounded(iw * ih), da = rounded(dt[2] * dt[3]);
  return inter / (gt_crowd ? da : da + rounded(gt[2] * gt[3]) - inter);
}

// pycocotools.mask.iou on boxes: [num_dt x num_gt], row-major. `gt_crowd` has one flag per GT
// (empty = none crowd).
inline std::vector<double> coco_box_iou(const std::vector<std::array<double, 4>>& dt,
                                        const std::vector<std::array<double, 4>>& gt,
                                        const std::vector<std::uint8_t>& gt_crowd = {}) {
  GCNET_CHECK(gt_crowd.empty() || gt_crowd.size() == gt.size(), "coco_box_iou: ", gt_crowd.size(),
              " iscrowd flags for ", gt.size(), " ground truths");
  std::vector<double> o(dt.size() * gt.size());
  for (std::size_t d = 0; d < dt.size(); ++d)
    for (std::size_t g = 0; g < gt.size(); ++g)
      o[d * gt.size() + g] = coco_box_iou(dt[d], gt[g], !gt_crowd.empty() && gt_crowd[g]);
  return o;
}

// The exact IoU of two RLEs of the same size (no box pre-test): intersection / union, or
// intersection / area(dt) for a crowd GT; 0 when they do not intersect.
inline double rle_iou_exact(const Rle& dt, const Rle& gt, bool gt_crowd) {
  GCNET_CHECK(dt.h == gt.h && dt.w == gt.w, "rle_iou_exact: RLE sizes ", dt.h, "x", dt.w, " and ", gt.h, "x", gt.w,
              " differ");
  if (dt.counts.empty() || gt.counts.empty()) return 0;
  std::uint32_t ra = dt.counts[0], rb = gt.counts[0];
  std::size_t ia = 1, ib = 1;
  bool va = false, vb = false;
  std::uint64_t inter = 0, uni = 0;
  for (bool left = true; left;) {
    const std::uint32_t step = std::min(ra, rb);
    if (va || vb) {
      uni += step;
      if (va && vb) inter += step;
    }
    ra -= step;
    rb -= step;
    if (ra == 0 && ia < dt.counts.size()) {
      ra = dt.counts[ia++];
      va = !va;
    }
    if (rb == 0 && ib < gt.counts.size()) {
      rb = gt.counts[ib++];
      vb = !vb;
    }
    left = ra + static_cast<std::uint64_t>(rb) > 0;
  }
  if (inter == 0) return 0;
  if (gt_crowd) uni = rle_area(dt);
  return static_cast<double>(inter) / static_cast<double>(uni);
}

namespace detail {
// rleIou for one pair whose boxes (rle_to_bbox) are known.
inline double rle_iou_boxed(const Rle& dt, const std::array<double, 4>& dt_box, const Rle& gt,
                            const std::array<double, 4>& gt_box, bool gt_crowd) {
  const double box_iou = coco_box_iou(dt_box, gt_box, gt_crowd);
  if (!(box_iou > 0)) return box_iou;
  if (dt.h != gt.h || dt.w != gt.w) return -1.0;
  return rle_iou_exact(dt, gt, gt_crowd);
}
}  // namespace detail

// pycocotools.mask.iou(dt, gt, iscrowd) on RLEs: [num_dt x num_gt], row-major; -1 where the
// sizes differ (and the boxes overlap), as rleIou. Boxes are computed once per RLE.
inline std::vector<double> rle_iou(const std::vector<Rle>& dt, const std::vector<Rle>& gt,
                                   const std::vector<std::uint8_t>& gt_crowd = {}) {
  GCNET_CHECK(gt_crowd.empty() || gt_crowd.size() == gt.size(), "rle_iou: ", gt_crowd.size(), " iscrowd flags for ",
              gt.size(), " ground truths");
  std::vector<std::array<double, 4>> db(dt.size()), gb(gt.size());
  for (std::size_t d = 0; d < dt.size(); ++d) db[d] = rle_to_bbox(dt[d]);
  for (std::size_t g = 0; g < gt.size(); ++g) gb[g] = rle_to_bbox(gt[g]);
  std::vector<double> o(dt.size() * gt.size());
  for (std::size_t d = 0; d < dt.size(); ++d)
    for (std::size_t g = 0; g < gt.size(); ++g)
      o[d * gt.size() + g] = detail::rle_iou_boxed(dt[d], db[d], gt[g], gb[g], !gt_crowd.empty() && gt_crowd[g]);
  return o;
}

// One pair, same semantics as the matrix form.
inline double rle_iou(const Rle& dt, const Rle& gt, bool gt_crowd) {
  return detail::rle_iou_boxed(dt, rle_to_bbox(dt), gt, rle_to_bbox(gt), gt_crowd);
}

}  // namespace gcnet::data
