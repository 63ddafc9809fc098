#pragma once
// The values that flow between a two-stage detector's parts (det/): the ground truth of one image
// in the pixels of the network input, the shape of each image of a padded batch, and the
// detections of one image. None is differentiated (boxes and labels are targets; detections are
// results), so each struct opts out of gradients (core/fields.hpp).
#include <cstdint>
#include <vector>

#include "gcnet/core/fields.hpp"
#include "gcnet/core/tensor.hpp"

namespace gcnet {

// Ground truth of one image, in the pixels of the network input (after resize and flip, before
// padding): boxes [n, 4] x1, y1, x2, y2; labels [n] in 0..num_classes-1; masks [n, H, W] 0/1 at
// the input size before padding (img_h x img_w), or undefined when the model has no mask head;
// ignore_boxes [m, 4] (crowd), may be empty.
template <Scalar T = float>
struct DetGroundTruth {
  static constexpr bool differentiable = false;
  Tensor<T> boxes;
  Tensor<std::int64_t> labels;
  Tensor<std::uint8_t> masks;
  Tensor<T> ignore_boxes;
  index_t size() const { return boxes.defined() && boxes.rank() == 2 ? boxes.size(0) : 0; }
  GCNET_FIELDS(boxes, labels, masks, ignore_boxes)
};

// Size of one image of a padded batch: img (after resize, before padding: where anchors are
// valid and boxes are clipped) and ori (as loaded: where results are pasted), with the resize's
// scale factors (new / old) and whether it was flipped.
struct DetImageShape {
  index_t img_h = 0, img_w = 0;
  index_t ori_h = 0, ori_w = 0;
  double scale_w = 1, scale_h = 1;
  bool flip = false;
};

// Detections of one image, in the pixels of the original image (ori_h x ori_w): boxes [n, 4],
// scores [n] (descending), labels [n] (0..num_classes-1); masks [n, ori_h, ori_w] 0/1 when the
// detector has a mask head and binary masks were asked for; soft_masks [n, M, M] the mask head's
// probabilities of the detected class, relative to boxes, when asked for.
template <Scalar T = float>
struct Detections {
  static constexpr bool differentiable = false;
  Tensor<T> boxes;
  Tensor<T> scores;
  Tensor<std::int64_t> labels;
  Tensor<std::uint8_t> masks;
  Tensor<T> soft_masks;
  index_t size() const { return boxes.defined() && boxes.rank() == 2 ? boxes.size(0) : 0; }
  GCNET_FIELDS(boxes, scores, labels, masks, soft_masks)
};

}  // namespace gcnet
