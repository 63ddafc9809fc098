#pragma once
// Conversions between RoIs (core/rois.hpp) and the layouts detectors use: per-image box lists
// (what a dataset or a detector's output holds) and mmdet's [K, 5] rois (image index first, as
// bbox2roi / roi2bbox). Non-differentiable, CPU. The detection operations (box coding, anchors,
// NMS, assigners, samplers, RoIAlign) join this folder.
#include <cstdint>
#include <limits>
#include <vector>

#include "gcnet/core/rois.hpp"

namespace gcnet::ops {

// mmdet bbox2roi: the boxes of image i (each [k_i, 4]) tagged with i, concatenated in image order.
template <Scalar T>
RoIs<T, Cpu> rois_from_lists(const std::vector<Tensor<T, Cpu>>& per_image) {
  index_t k = 0;
  for (std::size_t i = 0; i < per_image.size(); ++i) {
    const auto& b = per_image[i];
    GCNET_CHECK(b.rank() == 2 && b.size(1) == 4, "rois_from_lists: boxes of image ", i,
                " must have shape [k, 4], got ", b.shape().str());
    k += b.size(0);
  }
  RoIs<T, Cpu> r;
  r.boxes = Tensor<T, Cpu>(Shape{k, 4});
  r.image = Tensor<std::int64_t, Cpu>(Shape{k});
  index_t at = 0;
  for (std::size_t i = 0; i < per_image.size(); ++i) {
    const Tensor<T, Cpu> b = per_image[i].is_contiguous() ? per_image[i] : clone(per_image[i]);
    for (index_t j = 0; j < b.size(0); ++j, ++at) {
      for (int c = 0; c < 4; ++c) r.boxes[at * 4 + c] = b[j * 4 + c];
      r.image[at] = static_cast<std::int64_t>(i);
    }
  }
  return r;
}

// mmdet roi2bbox: the boxes of each of `batch` images, in their order within the RoIs.
template <Scalar T>
std::vector<Tensor<T, Cpu>> rois_to_lists(const RoIs<T, Cpu>& r, index_t batch) {
  check_rois(r, batch, "rois_to_lists");
  std::vector<index_t> count(static_cast<std::size_t>(batch), 0);
  for (index_t i = 0; i < r.size(); ++i) ++count[static_cast<std::size_t>(r.image[i])];
  std::vector<Tensor<T, Cpu>> out;
  for (index_t b = 0; b < batch; ++b) out.emplace_back(Shape{count[static_cast<std::size_t>(b)], 4});
  std::vector<index_t> fill_at(static_cast<std::size_t>(batch), 0);
  for (index_t i = 0; i < r.size(); ++i) {
    const auto b = static_cast<std::size_t>(r.image[i]);
    for (int c = 0; c < 4; ++c) out[b][fill_at[b] * 4 + c] = r.boxes[i * 4 + c];
    ++fill_at[b];
  }
  return out;
}

// mmdet's [K, 5] layout: (image index, x1, y1, x2, y2) per row.
template <Scalar T>
Tensor<T, Cpu> to_mmdet_rois(const RoIs<T, Cpu>& r) {
  check_rois(r, std::numeric_limits<index_t>::max(), "to_mmdet_rois");
  Tensor<T, Cpu> out(Shape{r.size(), 5});
  for (index_t i = 0; i < r.size(); ++i) {
    out[i * 5] = static_cast<T>(r.image[i]);
    for (int c = 0; c < 4; ++c) out[i * 5 + 1 + c] = r.boxes[i * 4 + c];
  }
  return out;
}
template <Scalar T>
RoIs<T, Cpu> from_mmdet_rois(const Tensor<T, Cpu>& rois) {
  GCNET_CHECK(rois.rank() == 2 && rois.size(1) == 5, "from_mmdet_rois: expected rois of shape [K, 5], got ",
              rois.shape().str());
  const Tensor<T, Cpu> m = rois.is_contiguous() ? rois : clone(rois);
  RoIs<T, Cpu> r;
  r.boxes = Tensor<T, Cpu>(Shape{m.size(0), 4});
  r.image = Tensor<std::int64_t, Cpu>(Shape{m.size(0)});
  for (index_t i = 0; i < m.size(0); ++i) {
    const T idx = m[i * 5];
    GCNET_CHECK(idx >= 0 && idx == static_cast<T>(static_cast<std::int64_t>(idx)), "from_mmdet_rois: row ", i,
                " has image index ", idx, ", expected a non-negative integer");
    r.image[i] = static_cast<std::int64_t>(idx);
    for (int c = 0; c < 4; ++c) r.boxes[i * 4 + c] = m[i * 5 + 1 + c];
  }
  return r;
}

}  // namespace gcnet::ops
