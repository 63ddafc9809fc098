#pragma once
// The multi-level RoI extractor of FPN detectors: mmdet's SingleRoIExtractor (the default) and
// torchvision's MultiScaleRoIAlign (an option), detection-reference §14.4-14.5.
//
//   Tensor<T> f = roi_extract(feats, rois);           // [K, C, 7, 7], rows in the RoIs' order
//   roi_extract_backward(rois, options, df, dfeats);  // dfeats[l] += dL/dfeats[l]
//
// Each RoI is pooled from one level: mmdet's map_roi_levels, s = sqrt((x2 - x1) * (y2 - y1)),
// level = clamp(floor(log2(s / 56 + 1e-6)), 0, L - 1), so s < 112 -> P2, [112, 224) -> P3,
// [224, 448) -> P4, >= 448 -> P5; torchvision's LevelMapper instead floor(4 + log2(s / 224) + 1e-6)
// clamped to the levels of the strides (the two differ only within ~1e-6 of a boundary). Level l
// is RoIAligned with spatial scale 1 / strides[l]. feats may hold more levels than strides (an
// FPN's P6): mmdet's RoI heads pass only the first strides.size(). A RoI of negative area (one of
// its sides inverted) has no level in mmdet (its log is NaN) and gets zeros, here too.
#include <cmath>
#include <vector>

#include "gcnet/ops/roi_align.hpp"

namespace gcnet::ops {

enum class RoILevelMapping {
  Mmdet,       // floor(log2(s / finest_scale + 1e-6)), clamped to [0, L - 1]
  Torchvision  // floor(4 + log2(s / 224) + 1e-6), clamped to [log2 strides[0], log2 strides[L - 1]]
};

struct RoIExtractorOptions {
  index_t out_size = 7;                         // 7 for boxes, 14 for masks
  std::vector<double> strides = {4, 8, 16, 32};  // of the levels used, finest first
  double finest_scale = 56;                     // mmdet
  int sampling_ratio = 0;                       // RoIAlign's (mmdet 0, torchvision 2)
  bool aligned = true;                          // RoIAlign's (mmdet true, torchvision false)
  RoILevelMapping mapping = RoILevelMapping::Mmdet;

  RoIAlignOptions level_options(std::size_t level) const {
    return {.out_h = out_size, .out_w = out_size, .spatial_scale = 1.0 / strides[level],
            .sampling_ratio = sampling_ratio, .aligned = aligned};
  }
};

// torchvision's MultiScaleRoIAlign(['0', '1', '2', '3'], out_size, sampling_ratio=2) on an FPN
// of strides 4..32: non-aligned RoIAlign, 2x2 samples per bin, its LevelMapper.
inline RoIExtractorOptions torchvision_roi_extractor_options(index_t out_size = 7) {
  RoIExtractorOptions o;
  o.out_size = out_size;
  o.sampling_ratio = 2;
  o.aligned = false;
  o.mapping = RoILevelMapping::Torchvision;
  return o;
}

namespace detail {
inline void check_extractor_options(const RoIExtractorOptions& o, const char* who) {
  GCNET_CHECK(!o.strides.empty(), who, ": no feature strides given");
  for (std::size_t l = 0; l < o.strides.size(); ++l)
    GCNET_CHECK(std::isfinite(o.strides[l]) && o.strides[l] > 0, who, ": stride of level ", l,
                " must be positive, got ", o.strides[l]);
  GCNET_CHECK(std::isfinite(o.finest_scale) && o.finest_scale > 0, who, ": finest_scale must be positive, got ",
              o.finest_scale);
  GCNET_CHECK(o.out_size >= 1, who, ": out_size must be at least 1, got ", o.out_size);
}
}  // namespace detail

// The level of each RoI (index into strides), or -1 for a RoI of negative area (NaN in mmdet).
// Computed in T as mmdet / torchvision compute it in the boxes' dtype.
template <Scalar T>
std::vector<int> map_roi_levels(const RoIs<T, Cpu>& rois_in, const RoIExtractorOptions& o = {}) {
  detail::check_extractor_options(o, "map_roi_levels");
  const RoIs<T, Cpu> r = detail::contiguous_rois(rois_in);
  GCNET_CHECK(r.boxes.rank() == 2 && r.boxes.size(1) == 4, "map_roi_levels: RoI boxes must have shape [K, 4], got ",
              r.boxes.shape().str());
  const int L = static_cast<int>(o.strides.size());
  int k_min = 0, k_max = L - 1;
  if (o.mapping == RoILevelMapping::Torchvision) {
    k_min = static_cast<int>(std::lround(std::log2(o.strides.front())));
    k_max = static_cast<int>(std::lround(std::log2(o.strides.back())));
    GCNET_CHECK(k_max - k_min == L - 1, "map_roi_levels: torchvision's level mapping needs strides that double from "
                "level to level, got ", L, " levels from stride ", o.strides.front(), " to ", o.strides.back());
  }
  std::vector<int> level(static_cast<std::size_t>(r.size()));
  for (index_t k = 0; k < r.size(); ++k) {
    const T* b = r.boxes.data() + 4 * k;
    const T s = std::sqrt((b[2] - b[0]) * (b[3] - b[1]));
    if (std::isnan(s)) {
      level[static_cast<std::size_t>(k)] = -1;
      continue;
    }
    T v;
    if (o.mapping == RoILevelMapping::Mmdet) v = std::floor(std::log2(s / static_cast<T>(o.finest_scale) + T(1e-6)));
    else v = std::floor(T(4) + std::log2(s / T(224)) + T(1e-6));
    v = std::clamp(v, static_cast<T>(k_min), static_cast<T>(k_max));
    level[static_cast<std::size_t>(k)] = static_cast<int>(v) - k_min;
  }
  return level;
}

namespace detail {
// Checks the levels (count, shapes) and returns the RoIs of each level, in order.
template <Scalar T>
std::vector<std::vector<index_t>> rois_by_level(const std::vector<Tensor<T, Cpu>>& maps, const RoIs<T, Cpu>& rois,
                                                const RoIExtractorOptions& o, const char* who, const char* what) {
  check_extractor_options(o, who);
  const std::size_t L = o.strides.size();
  GCNET_CHECK(maps.size() >= L, who, ": ", L, " strides but only ", maps.size(), " ", what);
  for (std::size_t l = 0; l < L; ++l) {
    GCNET_CHECK(maps[l].rank() == 4, who, ": ", what, "[", l, "] must have shape [N, C, H, W], got ",
                maps[l].shape().str());
    GCNET_CHECK(maps[l].size(0) == maps[0].size(0) && maps[l].size(1) == maps[0].size(1), who, ": ", what, "[", l,
                "] has shape ", maps[l].shape().str(), ", ", what, "[0] ", maps[0].shape().str(),
                " (batch and channels must agree)");
  }
  const auto level = map_roi_levels(rois, o);
  std::vector<std::vector<index_t>> by_level(L);
  for (index_t k = 0; k < static_cast<index_t>(level.size()); ++k)
    if (level[static_cast<std::size_t>(k)] >= 0) by_level[static_cast<std::size_t>(level[static_cast<std::size_t>(k)])].push_back(k);
  return by_level;
}
}  // namespace detail

// y [K, C, out, out]: each RoI pooled from its level, rows in the RoIs' order.
template <Scalar T>
void roi_extract_forward(const std::vector<Tensor<T, Cpu>>& feats, const RoIs<T, Cpu>& rois,
                         const RoIExtractorOptions& o, Tensor<T, Cpu>& y) {
  const auto by_level = detail::rois_by_level(feats, rois, o, "roi_extract", "feature levels");
  const index_t N = feats[0].size(0), C = feats[0].size(1), K = rois.size(), S = o.out_size;
  y.resize(Shape{K, C, S, S});
  index_t assigned = 0;
  for (std::size_t l = 0; l < by_level.size(); ++l) {
    assigned += static_cast<index_t>(by_level[l].size());
    if (by_level[l].empty()) continue;
    const auto p = roi_align_plan(rois, N, feats[l].size(2), feats[l].size(3), o.level_options(l), &by_level[l],
                                  "roi_extract");
    roi_align_forward(p, feats[l], y);
  }
  if (assigned < K) {  // RoIs without a level: zeros
    const auto level = map_roi_levels(rois, o);
    for (index_t k = 0; k < K; ++k)
      if (level[static_cast<std::size_t>(k)] < 0) std::fill(y.data() + k * C * S * S, y.data() + (k + 1) * C * S * S, T(0));
  }
}

template <Scalar T>
Tensor<T, Cpu> roi_extract(const std::vector<Tensor<T, Cpu>>& feats, const RoIs<T, Cpu>& rois,
                           const RoIExtractorOptions& o = {}) {
  Tensor<T, Cpu> y;
  roi_extract_forward(feats, rois, o, y);
  return y;
}

// dfeats[l] += dL/dfeats[l] for y = roi_extract(feats, rois, o); dfeats[l] has feats[l]'s shape.
template <Scalar T>
void roi_extract_backward(const RoIs<T, Cpu>& rois, const RoIExtractorOptions& o, const Tensor<T, Cpu>& dy,
                          std::vector<Tensor<T, Cpu>>& dfeats) {
  const auto by_level = detail::rois_by_level(dfeats, rois, o, "roi_extract_backward", "level gradients");
  const index_t N = dfeats[0].size(0);
  require_shape(dy, Shape{rois.size(), dfeats[0].size(1), o.out_size, o.out_size}, "roi_extract_backward",
                "output gradient");
  for (std::size_t l = 0; l < by_level.size(); ++l) {
    if (by_level[l].empty()) continue;
    const auto p = roi_align_plan(rois, N, dfeats[l].size(2), dfeats[l].size(3), o.level_options(l), &by_level[l],
                                  "roi_extract_backward");
    roi_align_backward(p, dy, dfeats[l]);
  }
}

}  // namespace gcnet::ops
