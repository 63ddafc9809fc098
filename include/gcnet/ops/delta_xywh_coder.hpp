#pragma once
// DeltaXYWHBBoxCoder: mmdet's box coder (detection-reference.md §13.1; mmdet
// models/task_modules/coders/delta_xywh_bbox_coder.py, bbox2delta / delta2bbox).
//   encode(proposals, gt)   d = ((gx - px) / pw, (gy - py) / ph, log(gw / pw), log(gh / ph)),
//                           then (d - means) / stds                                  [N, 4]
//   decode(rois, deltas)    deltas [N, 4C] (C boxes per roi, e.g. one per class) -> boxes [N, 4C]:
//                           d = deltas * stds + means; dw, dh clamped to +-log(1000 / 16);
//                           centre + size -> corners; clipped to the (resized) image if given.
// Where torchvision differs: its BoxCoder clamps dw, dh only from above (`wh_clamp =
// WhClamp::upper_only`; its weights (10, 10, 5, 5) are stds (0.1, 0.1, 0.2, 0.2), applied as a
// division there, a multiplication here, which can differ in the last bit). YOLOF's
// add_ctr_clamp (centre shift clamped to +-ctr_clamp pixels, dw, dh only from above) is an option.
// Every operation rounds as PyTorch's float32 does (ops/fp_exact.hpp); exp may differ from
// PyTorch's vectorized exp in the last bit.
#include <array>
#include <cmath>
#include <optional>
#include <string>

#include "gcnet/ops/boxes.hpp"

namespace gcnet::ops {

enum class WhClamp {
  both_sides,  // mmdet: dw, dh in [-max_ratio, max_ratio]
  upper_only,  // torchvision BoxCoder: dw, dh <= max_ratio
};

struct DeltaXYWHOptions {
  std::array<double, 4> means{0, 0, 0, 0};  // target_means
  std::array<double, 4> stds{1, 1, 1, 1};   // target_stds (RCNN: 0.1, 0.1, 0.2, 0.2)
  bool clip_border = true;                  // clip decoded boxes to the image when one is given
  WhClamp wh_clamp = WhClamp::both_sides;
  double wh_ratio_clip = 16.0 / 1000;       // max_ratio = |log(wh_ratio_clip)|
  bool add_ctr_clamp = false;               // YOLOF: clamp pw * dx to +-ctr_clamp, dw only from above
  double ctr_clamp = 32;
};

GCNET_FP_EXACT_BEGIN

template <Scalar T = float>
class DeltaXYWHBBoxCoder {
 public:
  explicit DeltaXYWHBBoxCoder(DeltaXYWHOptions o = {}) : o_(o) {
    for (int k = 0; k < 4; ++k) {
      GCNET_CHECK(std::isfinite(o_.means[k]), describe(), ": means[", k, "] = ", o_.means[k], " is not finite");
      GCNET_CHECK(std::isfinite(o_.stds[k]) && o_.stds[k] > 0, describe(), ": stds[", k, "] = ", o_.stds[k],
                  ", expected a finite value > 0");
    }
    GCNET_CHECK(o_.wh_ratio_clip > 0 && o_.wh_ratio_clip < 1, describe(), ": wh_ratio_clip = ", o_.wh_ratio_clip,
                ", expected a value in (0, 1)");
    GCNET_CHECK(!o_.add_ctr_clamp || (std::isfinite(o_.ctr_clamp) && o_.ctr_clamp >= 0), describe(),
                ": ctr_clamp = ", o_.ctr_clamp, ", expected a finite value >= 0");
  }

  const DeltaXYWHOptions& options() const { return o_; }
  std::string describe() const { return "DeltaXYWHBBoxCoder"; }

  // mmdet bbox2delta: proposals [N, 4] against their GT boxes [N, 4] -> deltas [N, 4]. Both must be
  // finite with positive widths and heights (mmdet would return inf / NaN; positives never have
  // empty boxes: GT boxes under 1 px are dropped at loading, proposals are filtered to w, h > 0).
  Tensor<T, Cpu> encode(const Tensor<T, Cpu>& proposals, const Tensor<T, Cpu>& gt) const {
    const std::string who = describe() + "::encode";
    check_boxes(proposals, who, "proposals");
    check_boxes(gt, who, "gt boxes");
    GCNET_CHECK(proposals.size(0) == gt.size(0), who, ": ", proposals.size(0), " proposals but ", gt.size(0),
                " gt boxes; expected one gt box per proposal");
    const Tensor<T, Cpu> p = contiguous(proposals), g = contiguous(gt);
    const index_t n = p.size(0);
    Tensor<T, Cpu> out(Shape{n, 4});
    const T m[4] = {T(o_.means[0]), T(o_.means[1]), T(o_.means[2]), T(o_.means[3])};
    const T s[4] = {T(o_.stds[0]), T(o_.stds[1]), T(o_.stds[2]), T(o_.stds[3])};
    for (index_t i = 0; i < n; ++i) {
      const T* a = p.data() + 4 * i;
      const T* b = g.data() + 4 * i;
      const T pw = a[2] - a[0], ph = a[3] - a[1], gw = b[2] - b[0], gh = b[3] - b[1];
      GCNET_CHECK(pw > 0 && ph > 0, who, ": proposal ", i, " = (", a[0], ", ", a[1], ", ", a[2], ", ", a[3],
                  ") is empty; the deltas would not be finite");
      GCNET_CHECK(gw > 0 && gh > 0, who, ": gt box ", i, " = (", b[0], ", ", b[1], ", ", b[2], ", ", b[3],
                  ") is empty; the deltas would not be finite");
      const T sx = a[0] + a[2], sy = a[1] + a[3], tx = b[0] + b[2], ty = b[1] + b[3];
      const T px = sx * T(0.5), py = sy * T(0.5), gx = tx * T(0.5), gy = ty * T(0.5);
      const T ddx = gx - px, ddy = gy - py, rw = gw / pw, rh = gh / ph;
      const T d[4] = {ddx / pw, ddy / ph, std::log(rw), std::log(rh)};
      for (int k = 0; k < 4; ++k) {
        const T c = d[k] - m[k];
        out[4 * i + k] = c / s[k];
      }
    }
    return out;
  }

  // mmdet delta2bbox: rois [N, 4], deltas [N, 4C] -> boxes [N, 4C] (box c of roi i from deltas
  // columns 4c..4c+3). With an image size and clip_border, x is clipped to [0, W], y to [0, H]
  // (W, H of the resized image: mmdet's img_shape).
  Tensor<T, Cpu> decode(const Tensor<T, Cpu>& rois, const Tensor<T, Cpu>& deltas,
                        std::optional<ImageSize> max_shape = std::nullopt) const {
    const std::string who = describe() + "::decode";
    check_boxes(rois, who, "rois");
    GCNET_CHECK(deltas.rank() == 2 && deltas.size(1) > 0 && deltas.size(1) % 4 == 0, who,
                ": deltas must have shape [N, 4C] with C >= 1, got ", deltas.shape().str());
    GCNET_CHECK(deltas.size(0) == rois.size(0), who, ": ", rois.size(0), " rois but ", deltas.size(0),
                " rows of deltas; expected one row per roi");
    if (max_shape) detail::check_image_size(*max_shape, who.c_str());
    const Tensor<T, Cpu> r = contiguous(rois), d = contiguous(deltas);
    const index_t n = d.size(0), per = d.size(1) / 4;
    for (index_t i = 0; i < d.numel(); ++i)
      GCNET_CHECK(std::isfinite(d[i]), who, ": delta (", i / d.size(1), ", ", i % d.size(1), ") = ", d[i],
                  " is not finite");
    Tensor<T, Cpu> out(d.shape());
    const T m[4] = {T(o_.means[0]), T(o_.means[1]), T(o_.means[2]), T(o_.means[3])};
    const T s[4] = {T(o_.stds[0]), T(o_.stds[1]), T(o_.stds[2]), T(o_.stds[3])};
    // numpy computes |log(16 / 1000)| in double; the clamp compares in T.
    const T max_ratio = static_cast<T>(std::abs(std::log(o_.wh_ratio_clip)));
    const T ctr = static_cast<T>(o_.ctr_clamp);
    const bool both = o_.wh_clamp == WhClamp::both_sides && !o_.add_ctr_clamp;
    const bool clip = o_.clip_border && max_shape.has_value();
    const T W = clip ? static_cast<T>(max_shape->width) : T(0), H = clip ? static_cast<T>(max_shape->height) : T(0);
    const T* pr = r.data();
    const T* pd = d.data();
    T* po = out.data();
    const bool ctr_clamp = o_.add_ctr_clamp;
    for_each_index(Cpu{}, n, [=](index_t i) {
      const T* a = pr + 4 * i;
      const T sx = a[0] + a[2], sy = a[1] + a[3];
      const T px = sx * T(0.5), py = sy * T(0.5), pw = a[2] - a[0], ph = a[3] - a[1];
      for (index_t c = 0; c < per; ++c) {
        const T* e = pd + 4 * (i * per + c);
        T dn[4];
        for (int k = 0; k < 4; ++k) {
          const T scaled = e[k] * s[k];
          dn[k] = scaled + m[k];
        }
        T dxw = pw * dn[0], dyh = ph * dn[1], dw = dn[2], dh = dn[3];
        if (ctr_clamp) {
          dxw = std::min(std::max(dxw, -ctr), ctr);
          dyh = std::min(std::max(dyh, -ctr), ctr);
        }
        if (both) {
          dw = std::max(dw, -max_ratio);
          dh = std::max(dh, -max_ratio);
        }
        dw = std::min(dw, max_ratio);
        dh = std::min(dh, max_ratio);
        const T gx = px + dxw, gy = py + dyh;
        const T ew = std::exp(dw), eh = std::exp(dh);
        const T gw = pw * ew, gh = ph * eh;
        const T hw = gw * T(0.5), hh = gh * T(0.5);
        T b[4] = {gx - hw, gy - hh, gx + hw, gy + hh};
        if (clip) {
          for (int k = 0; k < 4; ++k) {
            const T hi = (k % 2 == 0) ? W : H;
            b[k] = b[k] < T(0) ? T(0) : (b[k] > hi ? hi : b[k]);
          }
        }
        T* o = po + 4 * (i * per + c);
        for (int k = 0; k < 4; ++k) o[k] = b[k];
      }
    }, std::max<index_t>(1, kParallelGrain / (8 * per)));
    return out;
  }

 private:
  DeltaXYWHOptions o_;
};

GCNET_FP_EXACT_END

}  // namespace gcnet::ops
