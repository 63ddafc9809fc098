#pragma once
// RoIAlign, average pooling, forward and backward on the CPU: mmcv.ops.RoIAlign (mmdet's
// setting: aligned = true, sampling_ratio = 0) and torchvision.ops.roi_align (aligned = false,
// sampling_ratio = 2 in torchvision's detection models), detection-reference §14.1-14.2.
//
//   Tensor<T> y = roi_align(x, rois, {.out_h = 7, .out_w = 7, .spatial_scale = 0.25});
//   roi_align_backward(rois, options, dy, dx);   // dx [N, C, H, W] += dL/dx
//
// x is [N, C, H, W]; rois are RoIs (boxes [K, 4] in input-image pixels and the image of each) or
// mmdet's [K, 5] rows (image index, x1, y1, x2, y2); y is [K, C, out_h, out_w]. There is no
// gradient for the RoI coordinates (mmcv and torchvision have none).
// Defined edge cases: a sample outside [-1, H] x [-1, W] counts as 0 (still in the mean's count);
// a zero-size RoI with the adaptive grid gives 0 (no samples); with aligned = true a RoI of
// negative width or height gives 0 (mmcv's CUDA kernel; its CPU kernel asserts; torchvision with
// a fixed sampling ratio samples backwards instead).
//
// Speed: the sampling geometry is built once per RoI and shared by all channels, separated into
// a y pass over contiguous rows and a short x pass (ops/roi_align_geometry.hpp). Threads take
// channel planes, each plane runs its RoIs in order: the backward's accumulation is
// deterministic, and whatever the thread count the result is the same.
#include <algorithm>
#include <cmath>
#include <vector>

#include "gcnet/core/parallel.hpp"
#include "gcnet/core/rois.hpp"
#include "gcnet/core/tensor.hpp"
#include "gcnet/ops/roi_align_geometry.hpp"
#include "gcnet/ops/rois.hpp"

namespace gcnet::ops {

// The geometry of some RoIs on one feature map, for forward and backward (and for running both
// without recomputing it). Made by roi_align_plan.
template <Scalar T>
struct RoIAlignPlan {
  RoIAlignOptions options;
  index_t batch = 0, height = 0, width = 0;  // the feature map's N, H, W
  index_t rois = 0;                          // K, the rows of the output
  std::vector<index_t> row;                  // the output row of each planned RoI
  std::vector<index_t> by_image;             // planned RoIs grouped by image, each group in order
  std::vector<index_t> image_begin;          // [N + 1] bounds of the groups in by_image
  std::vector<detail::RoIGeometry<T>> geometry;
  index_t max_cols = 0;                      // scratch per thread: out_h * max_cols
};

namespace detail {

inline void check_roi_align_options(const RoIAlignOptions& o, const char* who) {
  GCNET_CHECK(o.out_h >= 1 && o.out_w >= 1, who, ": output size must be at least 1x1, got ", o.out_h, "x", o.out_w);
  GCNET_CHECK(std::isfinite(o.spatial_scale) && o.spatial_scale > 0, who,
              ": spatial_scale must be positive and finite, got ", o.spatial_scale);
}

template <Scalar T>
RoIs<T, Cpu> contiguous_rois(const RoIs<T, Cpu>& r) {
  if (r.boxes.is_contiguous() && r.image.is_contiguous()) return r;
  RoIs<T, Cpu> c;
  c.boxes = clone(r.boxes);
  c.image = clone(r.image);
  return c;
}

template <class E>
Tensor<E, Cpu> contiguous(const Tensor<E, Cpu>& t) {
  return t.is_contiguous() ? t : clone(t);
}

}  // namespace detail

// The plan for the RoIs `rows` of `rois` (all of them when rows is null) on an N x H x W feature
// map; checks the options, the RoIs' images and that their coordinates are finite. `who` names the
// caller in errors.
template <Scalar T>
RoIAlignPlan<T> roi_align_plan(const RoIs<T, Cpu>& rois_in, index_t N, index_t H, index_t W, const RoIAlignOptions& o,
                               const std::vector<index_t>* rows = nullptr, const char* who = "roi_align") {
  detail::check_roi_align_options(o, who);
  check_rois(rois_in, N, who);
  const RoIs<T, Cpu> r = detail::contiguous_rois(rois_in);
  RoIAlignPlan<T> p;
  p.options = o;
  p.batch = N, p.height = H, p.width = W;
  p.rois = r.size();
  if (rows) {
    p.row = *rows;
    for (index_t k : p.row)
      GCNET_CHECK(k >= 0 && k < p.rois, who, ": RoI row ", k, " out of range for ", p.rois, " RoIs");
  } else {
    p.row.resize(static_cast<std::size_t>(p.rois));
    for (index_t k = 0; k < p.rois; ++k) p.row[static_cast<std::size_t>(k)] = k;
  }
  const index_t n = static_cast<index_t>(p.row.size());
  GCNET_CHECK(n == 0 || (H >= 1 && W >= 1), who, ": the feature map is ", H, "x", W,
              "; RoIAlign needs at least one pixel");
  for (index_t i = 0; i < n; ++i) {
    const index_t k = p.row[static_cast<std::size_t>(i)];
    const T* b = r.boxes.data() + 4 * k;
    GCNET_CHECK(std::isfinite(b[0]) && std::isfinite(b[1]) && std::isfinite(b[2]) && std::isfinite(b[3]), who,
                ": RoI ", k, " has a non-finite coordinate (", b[0], ", ", b[1], ", ", b[2], ", ", b[3], ")");
  }
  p.geometry.resize(static_cast<std::size_t>(n));
  for_each_index(
      Cpu{}, n,
      [&](index_t i) {
        const index_t k = p.row[static_cast<std::size_t>(i)];
        const T* b = r.boxes.data() + 4 * k;
        detail::roi_geometry(b[0], b[1], b[2], b[3], H, W, o, p.geometry[static_cast<std::size_t>(i)], k);
      },
      64);
  // Group by image, keeping the order within each image.
  p.image_begin.assign(static_cast<std::size_t>(N + 1), 0);
  for (index_t i = 0; i < n; ++i) ++p.image_begin[static_cast<std::size_t>(r.image[p.row[static_cast<std::size_t>(i)]]) + 1];
  for (index_t b = 0; b < N; ++b) p.image_begin[static_cast<std::size_t>(b + 1)] += p.image_begin[static_cast<std::size_t>(b)];
  p.by_image.resize(static_cast<std::size_t>(n));
  std::vector<index_t> at(p.image_begin.begin(), p.image_begin.end() - 1);
  for (index_t i = 0; i < n; ++i)
    p.by_image[static_cast<std::size_t>(at[static_cast<std::size_t>(r.image[p.row[static_cast<std::size_t>(i)]])]++)] = i;
  for (const auto& g : p.geometry) p.max_cols = std::max<index_t>(p.max_cols, g.cols);
  return p;
}

namespace detail {

// Runs f(plane n, channel c) over the N * C planes on the threads, channel-major so that each
// thread's block spans every image (balanced however the RoIs fall on the images).
template <Scalar T, class F>
void for_each_roi_plane(const RoIAlignPlan<T>& p, index_t C, F&& f) {
  const index_t N = p.batch;
  const index_t per_plane = std::max<index_t>(1, static_cast<index_t>(p.row.size()) / std::max<index_t>(N, 1)) *
                            p.options.out_h * p.options.out_w * 8;
  for_each_index_weighted(Cpu{}, N * C, per_plane, [&](index_t i) { f(i % N, i / N); });
}

}  // namespace detail

// Forward with a plan: y[row, c] for the plan's RoIs (other rows untouched). x [N, C, H, W] of
// any element type the plan's T can be made from (uint8 masks too); y [K, C, out_h, out_w].
template <class In, Scalar T>
void roi_align_forward(const RoIAlignPlan<T>& p, const Tensor<In, Cpu>& x_in, Tensor<T, Cpu>& y) {
  GCNET_CHECK(x_in.rank() == 4 && x_in.size(0) == p.batch && x_in.size(2) == p.height && x_in.size(3) == p.width,
              "roi_align: input has shape ", x_in.shape().str(), ", the plan was made for [", p.batch, ", C, ",
              p.height, ", ", p.width, "]");
  const index_t C = x_in.size(1), oh = p.options.out_h, ow = p.options.out_w;
  require_shape(y, Shape{p.rois, C, oh, ow}, "roi_align", "output");
  require_contiguous(y, "roi_align", "output");
  const Tensor<In, Cpu> x = detail::contiguous(x_in);
  const index_t H = p.height, W = p.width;
  const In* xd = x.data();
  T* yd = y.data();
  detail::for_each_roi_plane(p, C, [&](index_t n, index_t c) {
    std::vector<T> scratch(static_cast<std::size_t>(oh * std::max<index_t>(p.max_cols, 1)));
    const In* plane = xd + (n * C + c) * H * W;
    for (index_t j = p.image_begin[static_cast<std::size_t>(n)]; j < p.image_begin[static_cast<std::size_t>(n + 1)]; ++j) {
      const index_t i = p.by_image[static_cast<std::size_t>(j)];
      detail::roi_plane_forward(plane, W, p.geometry[static_cast<std::size_t>(i)], oh, ow,
                                yd + (p.row[static_cast<std::size_t>(i)] * C + c) * oh * ow, scratch.data());
    }
  });
}

// Backward with a plan: dx[n, c] += the gradient of the plan's RoIs (rows of dy [K, C, out_h,
// out_w]); dx is [N, C, H, W] and accumulates.
template <Scalar T>
void roi_align_backward(const RoIAlignPlan<T>& p, const Tensor<T, Cpu>& dy_in, Tensor<T, Cpu>& dx) {
  GCNET_CHECK(dx.rank() == 4 && dx.size(0) == p.batch && dx.size(2) == p.height && dx.size(3) == p.width,
              "roi_align_backward: input gradient has shape ", dx.shape().str(), ", the plan was made for [", p.batch,
              ", C, ", p.height, ", ", p.width, "]");
  require_contiguous(dx, "roi_align_backward", "input gradient");
  const index_t C = dx.size(1), oh = p.options.out_h, ow = p.options.out_w;
  require_shape(dy_in, Shape{p.rois, C, oh, ow}, "roi_align_backward", "output gradient");
  const Tensor<T, Cpu> dy = detail::contiguous(dy_in);
  const index_t H = p.height, W = p.width;
  const T* dyd = dy.data();
  T* dxd = dx.data();
  detail::for_each_roi_plane(p, C, [&](index_t n, index_t c) {
    std::vector<T> scratch(static_cast<std::size_t>(oh * std::max<index_t>(p.max_cols, 1)));
    T* plane = dxd + (n * C + c) * H * W;
    for (index_t j = p.image_begin[static_cast<std::size_t>(n)]; j < p.image_begin[static_cast<std::size_t>(n + 1)]; ++j) {
      const index_t i = p.by_image[static_cast<std::size_t>(j)];
      detail::roi_plane_backward(dyd + (p.row[static_cast<std::size_t>(i)] * C + c) * oh * ow,
                                 p.geometry[static_cast<std::size_t>(i)], oh, ow, plane, W, scratch.data());
    }
  });
}

// y = RoIAlign(x, rois): resized to [K, C, out_h, out_w] and fully written.
template <Scalar T>
void roi_align_forward(const Tensor<T, Cpu>& x, const RoIs<T, Cpu>& rois, const RoIAlignOptions& o, Tensor<T, Cpu>& y) {
  GCNET_CHECK(x.rank() == 4, "roi_align: input must have shape [N, C, H, W], got ", x.shape().str());
  const auto p = roi_align_plan(rois, x.size(0), x.size(2), x.size(3), o);
  y.resize(Shape{p.rois, x.size(1), o.out_h, o.out_w});
  roi_align_forward(p, x, y);
}

template <Scalar T>
Tensor<T, Cpu> roi_align(const Tensor<T, Cpu>& x, const RoIs<T, Cpu>& rois, const RoIAlignOptions& o = {}) {
  Tensor<T, Cpu> y;
  roi_align_forward(x, rois, o, y);
  return y;
}

// mmdet's / torchvision's [K, 5] rois (image index, x1, y1, x2, y2).
template <Scalar T>
Tensor<T, Cpu> roi_align(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& rois, const RoIAlignOptions& o = {}) {
  return roi_align(x, from_mmdet_rois(rois), o);
}

// dx += dL/dx for y = roi_align(x, rois, o); dx has x's shape [N, C, H, W].
template <Scalar T>
void roi_align_backward(const RoIs<T, Cpu>& rois, const RoIAlignOptions& o, const Tensor<T, Cpu>& dy,
                        Tensor<T, Cpu>& dx) {
  GCNET_CHECK(dx.rank() == 4, "roi_align_backward: input gradient must have shape [N, C, H, W], got ",
              dx.shape().str());
  roi_align_backward(roi_align_plan(rois, dx.size(0), dx.size(2), dx.size(3), o, nullptr, "roi_align_backward"), dy, dx);
}

template <Scalar T>
void roi_align_backward(const Tensor<T, Cpu>& rois, const RoIAlignOptions& o, const Tensor<T, Cpu>& dy,
                        Tensor<T, Cpu>& dx) {
  roi_align_backward(from_mmdet_rois(rois), o, dy, dx);
}

}  // namespace gcnet::ops
