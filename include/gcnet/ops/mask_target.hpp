#pragma once
// Mask-head training targets (detection-reference §15.1): mmdet's mask_target_single (the
// default) and torchvision's project_masks_on_boxes (an option).
//
//   Tensor<T> t = mask_target_single(pos_boxes, pos_gt_inds, gt_masks);   // [K, 28, 28] of 0 / 1
//
// mmdet: the positive proposals (boxes [K, 4] in the pixels of the resized, padded image) are
// clipped to the mask's size (x to [0, W], y to [0, H]); proposal k's assigned GT mask
// gt_masks[pos_gt_inds[k]] (binary, [G, H, W] at the same resolution) is RoIAligned to size x size
// with spatial scale 1, aligned = true, sampling_ratio = 0 (mmcv's roi_align; the CUDA kernel in
// training has the same formula), and the result binarized, T >= 0.5 -> 1. Each bin thus averages
// ceil(h / 28) x ceil(w / 28) bilinear samples of the mask before the threshold.
// torchvision: no clipping, aligned = false, adaptive sampling, soft targets (no threshold).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "gcnet/ops/roi_align.hpp"

namespace gcnet::ops {

struct MaskTargetOptions {
  index_t size = 28;
  bool clip = true;        // clip the proposals to the mask's extent first (mmdet)
  bool aligned = true;     // RoIAlign's (mmdet true, torchvision false)
  int sampling_ratio = 0;  // RoIAlign's (both adaptive)
  bool binarize = true;    // mmdet: value >= threshold -> 1, else 0; torchvision: soft targets
  double threshold = 0.5;
};

inline MaskTargetOptions torchvision_mask_target_options(index_t size = 28) {
  MaskTargetOptions o;
  o.size = size;
  o.clip = false;
  o.aligned = false;
  o.binarize = false;
  return o;
}

// Targets [K, size, size] of one image. pos_boxes [K, 4]; pos_gt_inds [K] indices into gt_masks;
// gt_masks [G, H, W] (uint8 0 / 1, or any element type convertible to T).
template <Scalar T, class M>
Tensor<T, Cpu> mask_target_single(const Tensor<T, Cpu>& pos_boxes, const Tensor<std::int64_t, Cpu>& pos_gt_inds,
                                  const Tensor<M, Cpu>& gt_masks, const MaskTargetOptions& o = {}) {
  const char* who = "mask_target_single";
  GCNET_CHECK(pos_boxes.rank() == 2 && pos_boxes.size(1) == 4, who, ": positive boxes must have shape [K, 4], got ",
              pos_boxes.shape().str());
  const index_t K = pos_boxes.size(0);
  GCNET_CHECK(pos_gt_inds.rank() == 1 && pos_gt_inds.size(0) == K, who, ": assigned GT indices must have shape [", K,
              "], got ", pos_gt_inds.shape().str());
  GCNET_CHECK(gt_masks.rank() == 3, who, ": GT masks must have shape [G, H, W], got ", gt_masks.shape().str());
  GCNET_CHECK(o.size >= 1, who, ": target size must be at least 1, got ", o.size);
  const index_t G = gt_masks.size(0), H = gt_masks.size(1), W = gt_masks.size(2);
  Tensor<T, Cpu> out(Shape{K, o.size, o.size});
  if (K == 0) return out;
  RoIs<T, Cpu> r;
  r.boxes = clone(pos_boxes);
  r.image = clone(pos_gt_inds);
  for (index_t k = 0; k < K; ++k)
    GCNET_CHECK(r.image[k] >= 0 && r.image[k] < G, who, ": positive ", k, " is assigned GT ", r.image[k], ", but the image has ",
                G, " GT masks");
  if (o.clip) {
    // mmdet clips in float32 numpy: np.clip(x, 0, W) (a NaN stays NaN and is rejected below).
    for (index_t k = 0; k < K; ++k)
      for (int c = 0; c < 4; ++c) {
        T& v = r.boxes[k * 4 + c];
        const T hi = static_cast<T>(c % 2 == 0 ? W : H);
        if (v < T(0)) v = T(0);
        else if (v > hi) v = hi;
      }
  }
  const RoIAlignOptions ro{.out_h = o.size, .out_w = o.size, .spatial_scale = 1.0, .sampling_ratio = o.sampling_ratio,
                           .aligned = o.aligned};
  const auto plan = roi_align_plan(r, G, H, W, ro, nullptr, who);
  Tensor<T, Cpu> y = out.reshape(Shape{K, 1, o.size, o.size});
  roi_align_forward(plan, detail::contiguous(gt_masks).reshape(Shape{G, 1, H, W}), y);
  if (o.binarize) {
    const T thr = static_cast<T>(o.threshold);
    for (index_t i = 0; i < out.numel(); ++i) out[i] = out[i] >= thr ? T(1) : T(0);
  }
  return out;
}

// mmdet's mask_target: the targets of a batch, images in order, concatenated [sum K_i, size, size].
template <Scalar T, class M>
Tensor<T, Cpu> mask_targets(const std::vector<Tensor<T, Cpu>>& pos_boxes,
                            const std::vector<Tensor<std::int64_t, Cpu>>& pos_gt_inds,
                            const std::vector<Tensor<M, Cpu>>& gt_masks, const MaskTargetOptions& o = {}) {
  GCNET_CHECK(pos_boxes.size() == pos_gt_inds.size() && pos_boxes.size() == gt_masks.size(),
              "mask_targets: ", pos_boxes.size(), " images of positive boxes, ", pos_gt_inds.size(),
              " of assigned GT indices and ", gt_masks.size(), " of GT masks");
  std::vector<Tensor<T, Cpu>> parts;
  index_t K = 0;
  for (std::size_t i = 0; i < pos_boxes.size(); ++i) {
    parts.push_back(mask_target_single(pos_boxes[i], pos_gt_inds[i], gt_masks[i], o));
    K += parts.back().size(0);
  }
  Tensor<T, Cpu> out(Shape{K, o.size, o.size});
  index_t at = 0;
  for (const auto& p : parts) {
    std::copy(p.data(), p.data() + p.numel(), out.data() + at);
    at += p.numel();
  }
  return out;
}

}  // namespace gcnet::ops
