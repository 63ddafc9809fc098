#pragma once
// Transforms on a DetSample (image, boxes, masks and meta together), as mmdet v3's detection
// pipeline: Resize (keep_ratio) -> RandomFlip -> normalize -> pad to a multiple of 32 (mmdet does
// the last two in DetDataPreprocessor, per batch; here per image). Each is a value type with
// `void operator()(DetSample&, Rng&) const`; DetCompose chains them. Every transform updates
// DetMeta so the detector can map its boxes and masks back to the original image:
//   box_in_original = box_in_input / (scale_w, scale_h), after undoing a flip in img_w.
//
// Images stay float (mmdet's are uint8 until the data preprocessor, so mmcv's bilinear resize
// rounds to integers there; here it does not, as the segmentation pipeline).
#include <algorithm>
#include <cmath>
#include <functional>
#include <tuple>
#include <utility>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/data/det_sample.hpp"
#include "gcnet/data/resize.hpp"

namespace gcnet::data {

using DetTransform = std::function<void(DetSample&, Rng&)>;

class DetCompose {
 public:
  DetCompose() = default;
  DetCompose(std::initializer_list<DetTransform> ts) : ts_(ts) {}
  void push_back(DetTransform t) { ts_.push_back(std::move(t)); }
  void operator()(DetSample& s, Rng& rng) const {
    for (const auto& t : ts_) t(s, rng);
  }
  std::size_t size() const { return ts_.size(); }

 private:
  std::vector<DetTransform> ts_;
};

namespace det_detail {
// Source index of each output index for cv2.INTER_NEAREST (as resize_nearest_hw).
inline std::vector<index_t> nearest_index(index_t in, index_t out) {
  std::vector<index_t> idx(static_cast<std::size_t>(out));
  const double inv = 1.0 / (static_cast<double>(out) / static_cast<double>(in));
  for (index_t o = 0; o < out; ++o)
    idx[static_cast<std::size_t>(o)] = std::min(static_cast<index_t>(std::floor(static_cast<double>(o) * inv)), in - 1);
  return idx;
}

// Boxes [n, 4] times (sw, sh, sw, sh) in float32 (mmdet rescales float32 boxes by
// new_tensor(scale_factor)), then clipped to [0, w] x [0, h] if `clip`.
inline void rescale_boxes(Tensor<float>& boxes, double sw, double sh, index_t w, index_t h, bool clip) {
  const float fw = static_cast<float>(sw), fh = static_cast<float>(sh);
  float* b = boxes.data();
  for (index_t i = 0; i < boxes.size(0); ++i) {
    b[4 * i + 0] *= fw;
    b[4 * i + 1] *= fh;
    b[4 * i + 2] *= fw;
    b[4 * i + 3] *= fh;
    if (clip)
      for (int k = 0; k < 4; ++k)
        b[4 * i + k] = std::clamp(b[4 * i + k], 0.0f, static_cast<float>(k % 2 == 0 ? w : h));
  }
}

inline void flip_boxes(Tensor<float>& boxes, index_t w) {
  float* b = boxes.data();
  const float fw = static_cast<float>(w);
  for (index_t i = 0; i < boxes.size(0); ++i) {
    const float x1 = b[4 * i], x2 = b[4 * i + 2];
    b[4 * i] = fw - x2;
    b[4 * i + 2] = fw - x1;
  }
}
}  // namespace det_detail

// mmdet Resize(scale=(scale_w, scale_h), keep_ratio): with keep_ratio the size follows
// mmcv.imrescale (the largest factor that fits the long edge into max(scale) and the short
// edge into min(scale); each side int(side * f + 0.5)); without it the image becomes exactly
// scale_w x scale_h. scale_factor = (new_w / w, new_h / h); boxes scaled and clipped to the new
// image (clip_object_border); image bilinear, masks nearest.
struct DetResize {
  index_t scale_w = 1333, scale_h = 800;
  bool keep_ratio = true;
  bool clip_boxes = true;
  void operator()(DetSample& s, Rng&) const {
    require_consistent(s, "DetResize");
    GCNET_CHECK(scale_w > 0 && scale_h > 0, "DetResize: scale (", scale_w, ", ", scale_h, ") must be positive");
    const index_t H = s.height(), W = s.width();
    index_t nh = scale_h, nw = scale_w;
    if (keep_ratio) std::tie(nh, nw) = rescale_size(H, W, scale_w, scale_h);
    const double sw = static_cast<double>(nw) / static_cast<double>(W);
    const double sh = static_cast<double>(nh) / static_cast<double>(H);
    if (nh != H || nw != W) s.image = resize_bilinear_hwc(s.image, nh, nw);
    det_detail::rescale_boxes(s.boxes, sw, sh, nw, nh, clip_boxes);
    det_detail::rescale_boxes(s.ignore_boxes, sw, sh, nw, nh, clip_boxes);
    if (s.masks.defined() && (nh != H || nw != W)) {
      const index_t n = s.masks.size(0);
      const std::vector<index_t> ys = det_detail::nearest_index(H, nh), xs = det_detail::nearest_index(W, nw);
      Tensor<std::uint8_t> out(Shape{n, nh, nw});
      const std::uint8_t* src = s.masks.data();
      std::uint8_t* dst = out.data();
      for (index_t k = 0; k < n; ++k)
        for (index_t y = 0; y < nh; ++y) {
          const std::uint8_t* row = src + (k * H + ys[static_cast<std::size_t>(y)]) * W;
          std::uint8_t* o = dst + (k * nh + y) * nw;
          for (index_t x = 0; x < nw; ++x) o[x] = row[xs[static_cast<std::size_t>(x)]];
        }
      s.masks = out;
    }
    s.meta.scale_w *= sw;
    s.meta.scale_h *= sh;
    s.meta.img_h = s.meta.pad_h = nh;
    s.meta.img_w = s.meta.pad_w = nw;
  }
};

// mmdet RandomFlip(prob, direction='horizontal'): with probability `prob` flips the image and
// masks left-right and the boxes as x1' = W - x2, x2' = W - x1 (W = image width; no -1, as
// mmdet v3). Flip before padding (after it, W would include the padding): an Error otherwise.
struct DetRandomFlip {
  double prob = 0.5;
  void operator()(DetSample& s, Rng& rng) const {
    require_consistent(s, "DetRandomFlip");
    GCNET_CHECK(prob >= 0 && prob <= 1, "DetRandomFlip: prob must be in [0, 1], got ", prob);
    if (!(rng.uniform() < prob)) return;
    const index_t H = s.height(), W = s.width(), C = s.channels();
    GCNET_CHECK(s.meta.pad_h == s.meta.img_h && s.meta.pad_w == s.meta.img_w, "DetRandomFlip: the image is padded (",
                s.meta.img_h, "x", s.meta.img_w, " padded to ", s.meta.pad_h, "x", s.meta.pad_w,
                "); flip before DetPad");
    float* im = s.image.data();
    for (index_t y = 0; y < H; ++y)
      for (index_t x = 0; x < W / 2; ++x)
        for (index_t c = 0; c < C; ++c) std::swap(im[(y * W + x) * C + c], im[(y * W + W - 1 - x) * C + c]);
    if (s.masks.defined()) {
      std::uint8_t* m = s.masks.data();
      for (index_t r = 0; r < s.masks.size(0) * H; ++r) std::reverse(m + r * W, m + (r + 1) * W);
    }
    det_detail::flip_boxes(s.boxes, W);
    det_detail::flip_boxes(s.ignore_boxes, W);
    s.meta.flip = !s.meta.flip;
  }
};

// mmcv imnormalize: (x - mean[c]) / std[c]. Images here are RGB; to_rgb = true (mmdet's default,
// for BGR-loaded images) keeps RGB, to_rgb = false gives BGR (for caffe-style weights), and
// mean/std are in the OUTPUT channel order, as in mmdet's configs.
struct DetNormalize {
  std::vector<float> mean{123.675f, 116.28f, 103.53f};
  std::vector<float> std{58.395f, 57.12f, 57.375f};
  bool to_rgb = true;
  void operator()(DetSample& s, Rng&) const {
    require_consistent(s, "DetNormalize");
    const index_t C = s.channels();
    GCNET_CHECK(static_cast<index_t>(mean.size()) == C && static_cast<index_t>(std.size()) == C,
                "DetNormalize: mean/std have ", mean.size(), "/", std.size(), " entries for an image with ", C,
                " channels");
    GCNET_CHECK(to_rgb || C == 3, "DetNormalize: to_rgb = false swaps R and B, which needs 3 channels, got ", C);
    for (float v : std) GCNET_CHECK(v > 0, "DetNormalize: std entries must be positive, got ", v);
    float* im = s.image.data();
    const index_t pixels = s.height() * s.width();
    for (index_t p = 0; p < pixels; ++p) {
      float* px = im + p * C;
      if (!to_rgb) std::swap(px[0], px[2]);
      for (index_t c = 0; c < C; ++c) px[c] = (px[c] - mean[static_cast<std::size_t>(c)]) / std[static_cast<std::size_t>(c)];
    }
  }
};

// Pad bottom/right to multiples of `divisor` (mmdet's size_divisor=32): image with pad_value
// (0 after normalizing), masks with 0; boxes unchanged; meta.pad_h/pad_w record the result.
struct DetPad {
  index_t divisor = 32;
  float pad_value = 0;
  void operator()(DetSample& s, Rng&) const {
    require_consistent(s, "DetPad");
    GCNET_CHECK(divisor > 0, "DetPad: divisor must be positive, got ", divisor);
    const index_t H = s.height(), W = s.width(), C = s.channels();
    const index_t ph = (H + divisor - 1) / divisor * divisor, pw = (W + divisor - 1) / divisor * divisor;
    s.meta.pad_h = ph;
    s.meta.pad_w = pw;
    if (ph == H && pw == W) return;
    Tensor<float> img(Shape{ph, pw, C});
    std::fill_n(img.data(), img.numel(), pad_value);
    for (index_t y = 0; y < H; ++y) std::copy_n(s.image.data() + y * W * C, W * C, img.data() + y * pw * C);
    s.image = img;
    if (s.masks.defined()) {
      const index_t n = s.masks.size(0);
      Tensor<std::uint8_t> m(Shape{n, ph, pw});
      std::fill_n(m.data(), m.numel(), std::uint8_t{0});
      for (index_t k = 0; k < n; ++k)
        for (index_t y = 0; y < H; ++y)
          std::copy_n(s.masks.data() + (k * H + y) * W, W, m.data() + (k * ph + y) * pw);
      s.masks = m;
    }
  }
};

}  // namespace gcnet::data
