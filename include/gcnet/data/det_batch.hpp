#pragma once
// Detection batches: a list of transformed DetSamples (det_sample.hpp; resized, flipped and
// normalized by det_transforms.hpp) -> one NCHW image tensor padded bottom/right with 0 to the
// batch's largest image, rounded up to a multiple of `divisor` (mmdet's DetDataPreprocessor with
// pad_size_divisor = 32), plus per image the ground truth in input pixels (det/det_types.hpp:
// masks cut to the image before padding, as the detector expects) and the DetImageShape that maps
// results back to the original image. Images of one batch may differ in size.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/data/batch.hpp"
#include "gcnet/data/det_sample.hpp"
#include "gcnet/det/det_types.hpp"

namespace gcnet::data {

struct DetBatchData {
  Tensor<float> images;                        // [N, C, H, W], H and W multiples of the divisor
  std::vector<DetGroundTruth<float>> gt;       // per image, input pixels
  std::vector<DetImageShape> shapes;           // per image
  std::vector<DetMeta> metas;                  // per image: image id, file, sizes
  std::vector<index_t> indices;                // per image: the dataset index it came from
  index_t size() const { return static_cast<index_t>(shapes.size()); }
};

// What the detector needs to map its results back: img (before padding) and ori sizes, scale, flip.
inline DetImageShape det_image_shape(const DetMeta& m) {
  return {.img_h = m.img_h, .img_w = m.img_w, .ori_h = m.ori_h, .ori_w = m.ori_w,
          .scale_w = m.scale_w, .scale_h = m.scale_h, .flip = m.flip};
}

// Masks [n, H, W] cut to their top-left h x w (a sample padded by DetPad keeps its padding in them).
inline Tensor<std::uint8_t> crop_masks(const Tensor<std::uint8_t>& m, index_t h, index_t w) {
  if (!m.defined() || (m.size(1) == h && m.size(2) == w)) return m;
  const index_t n = m.size(0), H = m.size(1), W = m.size(2);
  Tensor<std::uint8_t> out(Shape{n, h, w});
  for (index_t k = 0; k < n; ++k)
    for (index_t y = 0; y < h; ++y) std::copy_n(m.data() + (k * H + y) * W, w, out.data() + (k * h + y) * w);
  return out;
}

// Collates `samples` (each image HWC, already normalized; all with the same channel count).
// The meta's img size is where the image is valid (it must fit in the sample's image); pad_h /
// pad_w of every meta become the batch's padded size, as mmdet's batch_input_shape.
inline DetBatchData collate_det(const std::vector<DetSample>& samples, index_t divisor = 32) {
  GCNET_CHECK(!samples.empty(), "collate_det: no samples");
  GCNET_CHECK(divisor > 0, "collate_det: divisor must be positive, got ", divisor);
  const index_t C = samples.front().channels();
  index_t H = 0, W = 0;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const DetSample& s = samples[i];
    require_consistent(s, "collate_det");
    GCNET_CHECK(s.channels() == C, "collate_det: sample ", i, " has ", s.channels(), " channels, sample 0 has ", C);
    const index_t ih = s.meta.img_h > 0 ? s.meta.img_h : s.height(), iw = s.meta.img_w > 0 ? s.meta.img_w : s.width();
    GCNET_CHECK(ih <= s.height() && iw <= s.width(), "collate_det: sample ", i, " (", s.meta.file, ") says img_shape ",
                ih, "x", iw, " but its image is ", s.height(), "x", s.width());
    H = std::max(H, s.height());
    W = std::max(W, s.width());
  }
  H = (H + divisor - 1) / divisor * divisor;
  W = (W + divisor - 1) / divisor * divisor;
  const index_t N = static_cast<index_t>(samples.size());
  DetBatchData b;
  b.images = Tensor<float>(Shape{N, C, H, W});
  std::fill_n(b.images.data(), b.images.numel(), 0.0f);  // padding: 0, the normalized mean
  for (index_t n = 0; n < N; ++n) {
    const DetSample& s = samples[static_cast<std::size_t>(n)];
    const index_t h = s.height(), w = s.width();
    copy_hwc_into_chw(s.image, b.images.data() + n * C * H * W, H, W);
    DetMeta meta = s.meta;
    if (meta.img_h <= 0 || meta.img_w <= 0) {
      meta.img_h = h;
      meta.img_w = w;
    }
    if (meta.ori_h <= 0 || meta.ori_w <= 0) {
      meta.ori_h = meta.img_h;
      meta.ori_w = meta.img_w;
    }
    meta.pad_h = H;
    meta.pad_w = W;
    DetGroundTruth<float> g;
    g.boxes = s.boxes;
    g.labels = s.labels;
    g.masks = crop_masks(s.masks, meta.img_h, meta.img_w);
    g.ignore_boxes = s.ignore_boxes;
    b.gt.push_back(std::move(g));
    b.shapes.push_back(det_image_shape(meta));
    b.metas.push_back(std::move(meta));
  }
  return b;
}

}  // namespace gcnet::data
