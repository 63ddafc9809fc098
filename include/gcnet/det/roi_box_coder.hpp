#pragma once
// The RoI head's box coder in both styles:
//   mmdet        DeltaXYWHBBoxCoder(means 0, stds (0.1, 0.1, 0.2, 0.2)): dw, dh clamped on both sides
//                at log(1000 / 16), centres (x1 + x2) / 2, deltas multiplied by the stds
//                (ops/delta_xywh_coder.hpp).
//   torchvision  BoxCoder(weights (10, 10, 5, 5), bbox_xform_clip log(1000 / 16)): dw, dh clamped only
//                from above, centres x1 + 0.5 w, deltas divided by the weights; written out here
//                in its own order of operations (encode_boxes / decode_single), so float32 results
//                round as torchvision's do.
// decode(rois [N, 4], deltas [N, 4C]) -> [N, 4C]; clipped to the image when one is given
// (mmdet clips inside delta2bbox; torchvision's clip_boxes_to_image does the same clamp).
#include <cmath>
#include <optional>

#include "gcnet/det/bbox_head.hpp"
#include "gcnet/ops/delta_xywh_coder.hpp"

namespace gcnet {

GCNET_FP_EXACT_BEGIN

template <Scalar T = float>
class RoIBoxCoder {
 public:
  explicit RoIBoxCoder(RoIHeadStyle style = RoIHeadStyle::Mmdet)
      : style_(style), mmdet_(ops::DeltaXYWHOptions{.stds = {0.1, 0.1, 0.2, 0.2}}) {}

  RoIHeadStyle style() const { return style_; }

  Tensor<T> encode(const Tensor<T>& proposals, const Tensor<T>& gt) const {
    if (style_ == RoIHeadStyle::Mmdet) return mmdet_.encode(proposals, gt);
    const std::string who = "RoIBoxCoder(torchvision)::encode";
    ops::check_boxes(proposals, who, "proposals");
    ops::check_boxes(gt, who, "gt boxes");
    GCNET_CHECK(proposals.size(0) == gt.size(0), who, ": ", proposals.size(0), " proposals but ", gt.size(0),
                " gt boxes");
    const Tensor<T> p = ops::contiguous(proposals), g = ops::contiguous(gt);
    Tensor<T> out(Shape{p.size(0), 4});
    for (index_t i = 0; i < p.size(0); ++i) {
      const T* a = p.data() + 4 * i;
      const T* b = g.data() + 4 * i;
      const T ew = a[2] - a[0], eh = a[3] - a[1];
      GCNET_CHECK(ew > 0 && eh > 0, who, ": proposal ", i, " is empty; the deltas would not be finite");
      const T ex = a[0] + T(0.5) * ew, ey = a[1] + T(0.5) * eh;
      const T gw = b[2] - b[0], gh = b[3] - b[1];
      GCNET_CHECK(gw > 0 && gh > 0, who, ": gt box ", i, " is empty; the deltas would not be finite");
      const T gx = b[0] + T(0.5) * gw, gy = b[1] + T(0.5) * gh;
      out[4 * i + 0] = T(10) * (gx - ex) / ew;
      out[4 * i + 1] = T(10) * (gy - ey) / eh;
      out[4 * i + 2] = T(5) * std::log(gw / ew);
      out[4 * i + 3] = T(5) * std::log(gh / eh);
    }
    return out;
  }

  Tensor<T> decode(const Tensor<T>& rois, const Tensor<T>& deltas, std::optional<ops::ImageSize> clip) const {
    if (style_ == RoIHeadStyle::Mmdet) return mmdet_.decode(rois, deltas, clip);
    const std::string who = "RoIBoxCoder(torchvision)::decode";
    ops::check_boxes(rois, who, "rois", ops::BoxCheck::finite);
    GCNET_CHECK(deltas.rank() == 2 && deltas.size(1) > 0 && deltas.size(1) % 4 == 0 && deltas.size(0) == rois.size(0),
                who, ": deltas must have shape [", rois.size(0), ", 4C], got ", deltas.shape().str());
    const Tensor<T> r = ops::contiguous(rois), d = ops::contiguous(deltas);
    const index_t n = d.size(0), per = d.size(1) / 4;
    const T clamp = static_cast<T>(std::log(1000.0 / 16));
    Tensor<T> out(d.shape());
    for (index_t i = 0; i < n; ++i) {
      const T* a = r.data() + 4 * i;
      const T w = a[2] - a[0], h = a[3] - a[1];
      const T cx = a[0] + T(0.5) * w, cy = a[1] + T(0.5) * h;
      for (index_t c = 0; c < per; ++c) {
        const T* e = d.data() + 4 * (i * per + c);
        const T dx = e[0] / T(10), dy = e[1] / T(10);
        const T dw = std::min(e[2] / T(5), clamp), dh = std::min(e[3] / T(5), clamp);
        const T px = dx * w + cx, py = dy * h + cy;
        const T pw = std::exp(dw) * w, ph = std::exp(dh) * h;
        const T hw = T(0.5) * pw, hh = T(0.5) * ph;
        T b[4] = {px - hw, py - hh, px + hw, py + hh};
        if (clip)
          for (int k = 0; k < 4; ++k) {
            const T hi = static_cast<T>(k % 2 == 0 ? clip->width : clip->height);
            b[k] = std::min(std::max(b[k], T(0)), hi);
          }
        std::copy_n(b, 4, out.data() + 4 * (i * per + c));
      }
    }
    return out;
  }

 private:
  RoIHeadStyle style_;
  ops::DeltaXYWHBBoxCoder<T> mmdet_;
};

GCNET_FP_EXACT_END

}  // namespace gcnet
