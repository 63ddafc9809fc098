#pragma once
// RoIs: regions of interest of a batch, a variable-size value that flows between modules (the
// RPN's proposals into the RoI heads, detections into the mask head). Their count changes from
// call to call, and they are never differentiated (mmdet detaches proposals), so the struct
// opts out of gradients.
//   boxes  [K, 4]  x1, y1, x2, y2 in the pixels of the (resized, padded) input batch
//   image  [K]     int64: the index in the batch of the image each box belongs to
// mmdet's single [K, 5] tensor (image index first) converts with ops/rois.hpp.
#include <cstdint>

#include "gcnet/core/fields.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
struct RoIs {
  static constexpr bool differentiable = false;

  Tensor<T, B> boxes;
  Tensor<std::int64_t, B> image;

  index_t size() const { return boxes.defined() && boxes.rank() == 2 ? boxes.size(0) : 0; }

  GCNET_FIELDS(boxes, image)
};

// Throws naming `who` unless rois are well formed for a batch of `batch` images: boxes [K, 4],
// image [K] with values in [0, batch) (CPU tensors: the values are checked too).
template <class T, class B>
void check_rois(const RoIs<T, B>& r, index_t batch, const std::string& who) {
  GCNET_CHECK(r.boxes.rank() == 2 && r.boxes.size(1) == 4, who, ": RoI boxes must have shape [K, 4], got ",
              r.boxes.shape().str());
  const index_t k = r.boxes.size(0);
  GCNET_CHECK(r.image.rank() == 1 && r.image.size(0) == k, who, ": RoI image indices must have shape [", k,
              "] (one per box), got ", r.image.shape().str());
  if constexpr (std::same_as<B, Cpu>) {
    for (index_t i = 0; i < k; ++i)
      GCNET_CHECK(r.image[i] >= 0 && r.image[i] < batch, who, ": RoI ", i, " belongs to image ", r.image[i],
                  ", but the batch has ", batch, " images");
  }
}

}  // namespace gcnet
