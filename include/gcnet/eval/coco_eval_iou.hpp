#pragma once
// COCOeval's IoU (computeIoU -> maskUtils.iou(dt, gt, iscrowd)), one detection against one GT:
//  - boxes (maskApi.c bbIou), double, [x, y, w, h] with no +1:
//      w = min(xd + wd, xg + wg) - max(xd, xg), 0 if w <= 0 (h likewise);
//      i = w * h; u = crowd ? wd * hd : wd * hd + wg * hg - i; iou = i / u.
//    Areas are the boxes' own products, not the 'area' fields (data::coco_box_iou, each product
//    rounded on its own: the IoU must be bit-exact at the thresholds).
//  - masks (maskApi.c rleIou): the boxes of the two RLEs first (rleToBbox, with the crowd rule);
//    only where that IoU is > 0 the runs are merged for the exact intersection i and union u;
//    then u = 1 if i == 0, u = mask area of the detection if crowd; masks of different sizes
//    give -1.  So a crowd GT scores intersection over detection area in both modes.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "gcnet/data/coco_mask_ops.hpp"
#include "gcnet/data/coco_rle.hpp"
#include "gcnet/eval/coco_eval_params.hpp"

namespace gcnet::eval {

using data::coco_box_iou;  // bbIou, bit-exact (data/coco_mask_ops.hpp)

// A mask as rleIou sees it: the RLE and its rleToBbox box, computed once per cell.
struct MaskView {
  const data::Rle* rle = nullptr;
  std::array<double, 4> box{};
};

inline MaskView mask_view(const data::Rle& r) { return {&r, data::rle_to_bbox(r)}; }

inline double coco_mask_iou(const MaskView& d, const MaskView& g, bool crowd) {
  if (!(coco_box_iou(d.box, g.box, crowd) > 0)) return 0.0;
  if (d.rle->h != g.rle->h || d.rle->w != g.rle->w) return -1.0;
  return data::rle_iou_exact(*d.rle, *g.rle, crowd);
}

}  // namespace gcnet::eval
