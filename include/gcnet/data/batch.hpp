#pragma once
// Batch and collate: samples (HWC) stacked into the network's NCHW layout, padded to the
// largest sample in the batch (bottom/right; image with 0, label map with 255 = ignore).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "gcnet/core/tensor.hpp"
#include "gcnet/data/sample.hpp"

namespace gcnet::data {

struct Batch {
  Tensor<float> images;          // [N, C, H, W], normalized
  Tensor<std::int64_t> labels;   // [N, H, W] for segmentation or [N] for classification
  std::vector<index_t> indices;  // dataset index of each sample (for logs and tests)
};

// An HWC image [h, w, C] into the top-left corner of a C x H x W plane set at dst (H >= h, W >= w):
// the layout change of every collation, padding left as the caller filled it.
inline void copy_hwc_into_chw(const Tensor<float>& image, float* dst, index_t H, index_t W) {
  const index_t h = image.size(0), w = image.size(1), C = image.size(2);
  const float* src = image.data();
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x)
      for (index_t c = 0; c < C; ++c) dst[(c * H + y) * W + x] = src[(y * w + x) * C + c];
}

inline Batch collate(const std::vector<Sample>& samples) {
  GCNET_CHECK(!samples.empty(), "collate: empty batch");
  const index_t N = static_cast<index_t>(samples.size()), C = samples[0].channels();
  const bool seg = samples[0].has_label_map();
  index_t H = 0, W = 0;
  for (const Sample& s : samples) {
    require_consistent(s, "collate");
    GCNET_CHECK(s.channels() == C, "collate: samples have ", C, " and ", s.channels(), " channels");
    GCNET_CHECK(s.has_label_map() == seg, "collate: a batch mixes label maps and class labels");
    H = std::max(H, s.height());
    W = std::max(W, s.width());
  }
  Batch b;
  b.images = Tensor<float>(Shape{N, C, H, W});
  std::fill_n(b.images.data(), b.images.numel(), 0.f);
  b.labels = seg ? Tensor<std::int64_t>(Shape{N, H, W}) : Tensor<std::int64_t>(Shape{N});
  if (seg) std::fill_n(b.labels.data(), b.labels.numel(), ignore_label);
  for (index_t n = 0; n < N; ++n) {
    const Sample& s = samples[static_cast<std::size_t>(n)];
    const index_t h = s.height(), w = s.width();
    copy_hwc_into_chw(s.image, b.images.data() + n * C * H * W, H, W);
    if (seg) {
      for (index_t y = 0; y < h; ++y)
        std::copy_n(s.label.data() + y * w, w, b.labels.data() + (n * H + y) * W);
    } else {
      GCNET_CHECK(s.class_id >= 0, "collate: sample ", n, " has neither a label map nor a class_id");
      b.labels[n] = s.class_id;
    }
  }
  return b;
}

}  // namespace gcnet::data
