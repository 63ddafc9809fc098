#pragma once
// DetSample: one detection example as the detection transforms (det_transforms.hpp) see it,
// mmdet's results dict in C++: the image (float HWC, 0..255 until normalized, RGB), the GT
// boxes [n, 4] (x1, y1, x2, y2 in pixels of the current image), labels [n] (contiguous,
// 0..num_classes-1), per-instance binary masks [n, H, W] (0/1, or undefined when masks were
// not loaded), crowd/ignored boxes [m, 4], and DetMeta: what a detector needs to map its
// results back to the original image.
#include <array>
#include <cstdint>
#include <string>

#include "gcnet/core/tensor.hpp"

namespace gcnet::data {

struct DetMeta {
  std::int64_t image_id = -1;
  std::string file;                // image path
  index_t ori_h = 0, ori_w = 0;    // ori_shape: the image as loaded
  index_t img_h = 0, img_w = 0;    // img_shape: after resize (and flip), before padding
  index_t pad_h = 0, pad_w = 0;    // pad_shape: after padding (= img_shape without padding)
  double scale_w = 1, scale_h = 1; // scale_factor (w_scale, h_scale) = new / old size, as mmdet's Resize
  bool flip = false;               // flipped horizontally (odd number of flips)
};

struct DetSample {
  Tensor<float> image;               // [H, W, C]
  Tensor<float> boxes;               // [n, 4] xyxy
  Tensor<std::int64_t> labels;       // [n]
  Tensor<std::uint8_t> masks;        // [n, H, W] 0/1, or undefined
  Tensor<float> ignore_boxes;        // [m, 4] xyxy (crowd and otherwise ignored instances)
  DetMeta meta;

  index_t height() const { return image.size(0); }
  index_t width() const { return image.size(1); }
  index_t channels() const { return image.size(2); }
  index_t num_instances() const { return boxes.size(0); }
  bool has_masks() const { return masks.defined(); }
};

// Shapes agree: image [H, W, C], boxes [n, 4], labels [n], masks [n, H, W] if present,
// ignore_boxes [m, 4]. Transforms check this before touching anything.
inline void require_consistent(const DetSample& s, const char* who) {
  GCNET_CHECK(s.image.rank() == 3 && s.image.numel() > 0 && s.image.is_contiguous(), who,
              ": expected a non-empty contiguous HWC image, got shape ", s.image.shape().str());
  GCNET_CHECK(s.boxes.rank() == 2 && s.boxes.size(1) == 4, who, ": boxes must be [n, 4], got ", s.boxes.shape().str());
  GCNET_CHECK(s.labels.rank() == 1 && s.labels.size(0) == s.boxes.size(0), who, ": labels of shape ",
              s.labels.shape().str(), " for ", s.boxes.size(0), " boxes");
  GCNET_CHECK(s.ignore_boxes.rank() == 2 && s.ignore_boxes.size(1) == 4, who, ": ignore_boxes must be [m, 4], got ",
              s.ignore_boxes.shape().str());
  if (s.masks.defined())
    GCNET_CHECK(s.masks.rank() == 3 && s.masks.size(0) == s.boxes.size(0) && s.masks.size(1) == s.height() &&
                    s.masks.size(2) == s.width(),
                who, ": masks of shape ", s.masks.shape().str(), " for ", s.boxes.size(0), " boxes on a ",
                s.height(), "x", s.width(), " image");
}

}  // namespace gcnet::data
