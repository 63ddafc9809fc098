#pragma once
// RoIAlign's sampling geometry (mmcv / torchvision roi_align, avg mode; detection-reference §14.1),
// factored by axis. A sample (y, x) of a bin is dropped when y is outside [-1, H] or x outside
// [-1, W], and its four bilinear weights are products hy*hx, hy*lx, ly*hx, ly*lx, so the mean over
// a bin's gh x gw samples is separable:
//   out[ph, pw] = sum_r WY[ph](r) * sum_c WX[pw](c) * f[r, c]
// where WY[ph](r) sums the y weights that the bin's sample rows give row r (a short run of rows),
// and WX[pw](c) likewise (times 1 / count, the mean's divisor max(gh * gw, 1)). Per channel this
// costs (rows of a bin x RoI width) multiply-adds over contiguous memory plus (bins x taps of a
// bin), instead of 4 scattered taps per sample; the geometry is built once per RoI and shared by
// all channels (torchvision's pre_calc, taken one step further). Every bin of a RoI gets the same
// number of taps per axis (runs are widened with zero weights to the longest, over distinct
// in-bounds pixels), so the inner loops have a trip count fixed per RoI and compiled in for the
// common small ones. Sample positions, grids and bilinear weights use torchvision's CPU
// expressions in T; only the summation order differs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gcnet/core/backend.hpp"
#include "gcnet/core/config.hpp"
#include "gcnet/core/error.hpp"

namespace gcnet::ops {

struct RoIAlignOptions {
  index_t out_h = 7, out_w = 7;
  double spatial_scale = 1.0;  // 1 / stride of the feature map
  int sampling_ratio = 0;      // samples per bin side; <= 0: adaptive, ceil(RoI size / output size)
  bool aligned = true;         // mmdet: shift by half a pixel; false: torchvision's detection models (legacy)
};

namespace detail {

// One RoI's geometry on one feature map. Bin ph reads rows y0[ph] + i (i < ly) with weights
// wy[ph * ly + i]; bin pw reads columns col0 + x0[pw] + j (j < lx) with weights wx[pw * lx + j].
template <Scalar T>
struct RoIGeometry {
  std::int32_t ly = 0, lx = 0;
  std::vector<std::int32_t> y0, x0;  // [out_h], [out_w]; x0 relative to col0
  std::vector<T> wy, wx;             // [out_h * ly], [out_w * lx]; wx includes 1 / count
  std::vector<std::int32_t> segs;    // the columns any bin reads, relative to col0, as [begin, end) pairs
  std::int32_t col0 = 0, cols = 0;   // their span [col0, col0 + cols)
  bool empty = true;                 // no sample at all: the output is 0
};

// torchvision's sample position: start + p * bin + (i + .5) * bin / grid, in T.
template <Scalar T>
inline T roi_sample_position(T start, T bin, int grid, index_t p, int i) {
  return start + static_cast<T>(p) * bin + static_cast<T>(static_cast<float>(i) + .5f) * bin / static_cast<T>(grid);
}

// The two pixels and the weight of the upper one for a sample at `pos` (already known to lie in
// [-1, extent]): clamped to 0 below, to the last pixel at or past it.
template <Scalar T>
inline void roi_bilinear_1d(T pos, index_t extent, std::int32_t& lo, std::int32_t& hi, T& l) {
  if (pos <= T(0)) pos = T(0);
  lo = static_cast<std::int32_t>(pos);
  if (lo >= extent - 1) {
    lo = hi = static_cast<std::int32_t>(extent - 1);
    pos = static_cast<T>(lo);
  } else {
    hi = lo + 1;
  }
  l = pos - static_cast<T>(lo);
}

// The taps of `bins` bins of one axis (bin size `bin` from `start`, `grid` samples per bin) on an
// axis of `extent` pixels, each widened to the longest run: begin[p], taps per bin (returned;
// 0 when no sample is kept) and weights w[p * taps + i] (times `scale`).
template <Scalar T>
std::int32_t roi_axis_taps(T start, T bin, int grid, index_t bins, index_t extent, T scale,
                           std::vector<std::int32_t>& begin, std::vector<T>& w) {
  std::vector<std::int32_t> first(static_cast<std::size_t>(bins), -1), last(static_cast<std::size_t>(bins), -1);
  std::int32_t taps = 0, lo, hi;
  T l;
  // Positions grow with i, and so do the pixels they read: the first and last kept samples bound
  // a bin's run.
  for (index_t p = 0; p < bins; ++p) {
    auto& f = first[static_cast<std::size_t>(p)];
    auto& e = last[static_cast<std::size_t>(p)];
    for (int i = 0; i < grid; ++i) {
      const T pos = roi_sample_position(start, bin, grid, p, i);
      if (pos < T(-1) || pos > static_cast<T>(extent)) continue;
      roi_bilinear_1d(pos, extent, lo, hi, l);
      if (f < 0) f = lo;
      e = hi;
    }
    if (f >= 0) taps = std::max(taps, e - f + 1);
  }
  begin.assign(static_cast<std::size_t>(bins), 0);
  w.assign(static_cast<std::size_t>(bins * taps), T(0));
  if (taps == 0) return 0;
  std::int32_t prev = -1;
  for (index_t p = 0; p < bins; ++p) {
    const std::int32_t f = first[static_cast<std::size_t>(p)];
    // A bin without samples reads its neighbour's pixels with weight 0.
    if (f < 0) {
      begin[static_cast<std::size_t>(p)] = prev >= 0 ? prev : 0;
      continue;
    }
    // Widen to `taps` pixels: to the right, or shifted left at the end of the axis.
    const std::int32_t b = std::min<std::int32_t>(f, static_cast<std::int32_t>(extent) - taps);
    begin[static_cast<std::size_t>(p)] = prev = b;
    T* wr = w.data() + p * taps - b;
    for (int i = 0; i < grid; ++i) {
      const T pos = roi_sample_position(start, bin, grid, p, i);
      if (pos < T(-1) || pos > static_cast<T>(extent)) continue;
      roi_bilinear_1d(pos, extent, lo, hi, l);
      wr[lo] += T(1) - l;
      wr[hi] += l;
    }
  }
  // Empty bins before the first non-empty one.
  for (index_t p = 0; p < bins && first[static_cast<std::size_t>(p)] < 0; ++p) begin[static_cast<std::size_t>(p)] = -1;
  std::int32_t next = 0;
  for (index_t p = bins - 1; p >= 0; --p) {
    if (begin[static_cast<std::size_t>(p)] >= 0) next = begin[static_cast<std::size_t>(p)];
    else begin[static_cast<std::size_t>(p)] = next;
  }
  if (scale != T(1))
    for (auto& v : w) v *= scale;
  return taps;
}

// The geometry of RoI (x1, y1, x2, y2) (input-image pixels) on an H x W map. The caller checked
// that the coordinates are finite.
template <Scalar T>
void roi_geometry(T x1, T y1, T x2, T y2, index_t H, index_t W, const RoIAlignOptions& o, RoIGeometry<T>& g,
                  index_t roi_index) {
  const T scale = static_cast<T>(o.spatial_scale);
  const T off = o.aligned ? T(0.5) : T(0);
  const T sw = x1 * scale - off, sh = y1 * scale - off;
  T rw = x2 * scale - off - sw, rh = y2 * scale - off - sh;
  g = RoIGeometry<T>{};
  if (!o.aligned) {  // legacy: at least one pixel
    rw = std::max(rw, T(1));
    rh = std::max(rh, T(1));
  }
  if (rw < T(0) || rh < T(0)) return;  // inverted (aligned only): defined as 0, as mmcv's CUDA kernel
  const T bin_h = rh / static_cast<T>(o.out_h), bin_w = rw / static_cast<T>(o.out_w);
  const double gh_d = o.sampling_ratio > 0 ? o.sampling_ratio : std::ceil(static_cast<double>(rh / static_cast<T>(o.out_h)));
  const double gw_d = o.sampling_ratio > 0 ? o.sampling_ratio : std::ceil(static_cast<double>(rw / static_cast<T>(o.out_w)));
  constexpr double kMaxGrid = 1 << 24;
  GCNET_CHECK(gh_d <= kMaxGrid && gw_d <= kMaxGrid, "roi_align: RoI ", roi_index, " (", x1, ", ", y1, ", ", x2, ", ",
              y2, ") needs a sampling grid of ", gh_d, " x ", gw_d, " per bin; at most ", kMaxGrid,
              " per side is supported");
  const int gh = static_cast<int>(gh_d), gw = static_cast<int>(gw_d);
  if (gh <= 0 || gw <= 0) return;  // zero-size RoI, adaptive grid: no samples
  const T inv_count = T(1) / static_cast<T>(std::max<double>(gh_d * gw_d, 1.0));
  g.ly = roi_axis_taps(sh, bin_h, gh, o.out_h, H, T(1), g.y0, g.wy);
  g.lx = roi_axis_taps(sw, bin_w, gw, o.out_w, W, inv_count, g.x0, g.wx);
  g.empty = g.ly == 0 || g.lx == 0;
  if (g.empty) return;
  // Merge the column runs (they come in increasing order) into segments.
  for (const std::int32_t b : g.x0) {
    if (!g.segs.empty() && b <= g.segs.back()) g.segs.back() = std::max(g.segs.back(), b + g.lx);
    else g.segs.push_back(b), g.segs.push_back(b + g.lx);
  }
  g.col0 = g.segs.front();
  g.cols = g.segs.back() - g.col0;
  for (auto& v : g.segs) v -= g.col0;
  for (auto& v : g.x0) v -= g.col0;
}

// Pass 1 of the forward, along y: v[ph][c] = sum_i wy[ph][i] * f[y0[ph] + i][col0 + c] over the
// segments' columns. L = ly when it is a compile-time constant (the sum in registers), 0 otherwise.
template <int L, class In, Scalar T>
void roi_forward_rows(const In* GCNET_RESTRICT f, index_t W, const RoIGeometry<T>& g, index_t out_h,
                      T* GCNET_RESTRICT scratch) {
  const std::size_t nseg = g.segs.size() / 2;
  const std::int32_t ly = L > 0 ? L : g.ly;
  for (index_t ph = 0; ph < out_h; ++ph) {
    T* GCNET_RESTRICT v = scratch + ph * g.cols;
    const T* GCNET_RESTRICT wy = g.wy.data() + ph * ly;
    const In* rows = f + static_cast<index_t>(g.y0[static_cast<std::size_t>(ph)]) * W + g.col0;
    for (std::size_t s = 0; s < nseg; ++s) {
      const std::int32_t b = g.segs[2 * s], e = g.segs[2 * s + 1];
      if constexpr (L > 0) {
        GCNET_SIMD
        for (std::int32_t c = b; c < e; ++c) {
          T acc = wy[0] * static_cast<T>(rows[c]);
          for (int i = 1; i < L; ++i) acc += wy[i] * static_cast<T>(rows[i * W + c]);
          v[c] = acc;
        }
      } else {
        GCNET_SIMD
        for (std::int32_t c = b; c < e; ++c) v[c] = wy[0] * static_cast<T>(rows[c]);
        for (std::int32_t i = 1; i < ly; ++i) {
          const T w = wy[i];
          const In* GCNET_RESTRICT row = rows + i * W;
          GCNET_SIMD
          for (std::int32_t c = b; c < e; ++c) v[c] += w * static_cast<T>(row[c]);
        }
      }
    }
  }
}

// Pass 2 of the forward, along x: out[ph][pw] = sum_j wx[pw][j] * v[ph][x0[pw] + j].
template <int L, Scalar T>
void roi_forward_cols(const RoIGeometry<T>& g, index_t out_h, index_t out_w, const T* GCNET_RESTRICT scratch,
                      T* GCNET_RESTRICT out) {
  const std::int32_t lx = L > 0 ? L : g.lx;
  for (index_t ph = 0; ph < out_h; ++ph) {
    const T* GCNET_RESTRICT v = scratch + ph * g.cols;
    for (index_t pw = 0; pw < out_w; ++pw) {
      const T* GCNET_RESTRICT wx = g.wx.data() + pw * lx;
      const T* GCNET_RESTRICT vx = v + g.x0[static_cast<std::size_t>(pw)];
      T acc = wx[0] * vx[0];
      for (std::int32_t j = 1; j < lx; ++j) acc += wx[j] * vx[j];
      out[ph * out_w + pw] = acc;
    }
  }
}

// Forward for one channel plane f (row stride W) and one RoI: out[ph * out_w + pw].
// scratch holds out_h * g.cols values.
template <class In, Scalar T>
void roi_plane_forward(const In* f, index_t W, const RoIGeometry<T>& g, index_t out_h, index_t out_w, T* out,
                       T* scratch) {
  if (g.empty) {
    std::fill(out, out + out_h * out_w, T(0));
    return;
  }
  switch (g.ly) {
    case 1: roi_forward_rows<1>(f, W, g, out_h, scratch); break;
    case 2: roi_forward_rows<2>(f, W, g, out_h, scratch); break;
    case 3: roi_forward_rows<3>(f, W, g, out_h, scratch); break;
    case 4: roi_forward_rows<4>(f, W, g, out_h, scratch); break;
    case 5: roi_forward_rows<5>(f, W, g, out_h, scratch); break;
    case 6: roi_forward_rows<6>(f, W, g, out_h, scratch); break;
    default: roi_forward_rows<0>(f, W, g, out_h, scratch);
  }
  switch (g.lx) {
    case 1: roi_forward_cols<1>(g, out_h, out_w, scratch, out); break;
    case 2: roi_forward_cols<2>(g, out_h, out_w, scratch, out); break;
    case 3: roi_forward_cols<3>(g, out_h, out_w, scratch, out); break;
    case 4: roi_forward_cols<4>(g, out_h, out_w, scratch, out); break;
    case 5: roi_forward_cols<5>(g, out_h, out_w, scratch, out); break;
    case 6: roi_forward_cols<6>(g, out_h, out_w, scratch, out); break;
    default: roi_forward_cols<0>(g, out_h, out_w, scratch, out);
  }
}

// Backward of pass 2: dv[ph][c] = sum_pw wx[pw](c) * dout[ph][pw] over the segments' columns.
template <int L, Scalar T>
void roi_backward_cols(const T* GCNET_RESTRICT dout, const RoIGeometry<T>& g, index_t out_h, index_t out_w,
                       T* GCNET_RESTRICT scratch) {
  const std::size_t nseg = g.segs.size() / 2;
  const std::int32_t lx = L > 0 ? L : g.lx;
  for (index_t ph = 0; ph < out_h; ++ph) {
    T* GCNET_RESTRICT dv = scratch + ph * g.cols;
    for (std::size_t s = 0; s < nseg; ++s) std::fill(dv + g.segs[2 * s], dv + g.segs[2 * s + 1], T(0));
    for (index_t pw = 0; pw < out_w; ++pw) {
      const T d = dout[ph * out_w + pw];
      const T* GCNET_RESTRICT wx = g.wx.data() + pw * lx;
      T* GCNET_RESTRICT dvx = dv + g.x0[static_cast<std::size_t>(pw)];
      for (std::int32_t j = 0; j < lx; ++j) dvx[j] += wx[j] * d;
    }
  }
}

// Backward of pass 1: df[y0[ph] + i][col0 + c] += wy[ph][i] * dv[ph][c]. The rows of one bin are
// distinct pixels, so the updates of one column are independent.
template <int L, Scalar T>
void roi_backward_rows(const RoIGeometry<T>& g, index_t out_h, T* df, index_t W, const T* GCNET_RESTRICT scratch) {
  const std::size_t nseg = g.segs.size() / 2;
  const std::int32_t ly = L > 0 ? L : g.ly;
  for (index_t ph = 0; ph < out_h; ++ph) {
    const T* GCNET_RESTRICT dv = scratch + ph * g.cols;
    const T* GCNET_RESTRICT wy = g.wy.data() + ph * ly;
    T* rows = df + static_cast<index_t>(g.y0[static_cast<std::size_t>(ph)]) * W + g.col0;
    for (std::size_t s = 0; s < nseg; ++s) {
      const std::int32_t b = g.segs[2 * s], e = g.segs[2 * s + 1];
      if constexpr (L > 0) {
        GCNET_SIMD
        for (std::int32_t c = b; c < e; ++c) {
          const T d = dv[c];
          for (int i = 0; i < L; ++i) rows[i * W + c] += wy[i] * d;
        }
      } else {
        for (std::int32_t i = 0; i < ly; ++i) {
          const T w = wy[i];
          T* GCNET_RESTRICT row = rows + i * W;
          GCNET_SIMD
          for (std::int32_t c = b; c < e; ++c) row[c] += w * dv[c];
        }
      }
    }
  }
}

// Backward for one channel plane: df[r, c] += the gradient through every sample of the RoI's
// bins, given dout[ph * out_w + pw]. scratch holds out_h * g.cols values.
template <Scalar T>
void roi_plane_backward(const T* dout, const RoIGeometry<T>& g, index_t out_h, index_t out_w, T* df, index_t W,
                        T* scratch) {
  if (g.empty) return;
  switch (g.lx) {
    case 1: roi_backward_cols<1>(dout, g, out_h, out_w, scratch); break;
    case 2: roi_backward_cols<2>(dout, g, out_h, out_w, scratch); break;
    case 3: roi_backward_cols<3>(dout, g, out_h, out_w, scratch); break;
    case 4: roi_backward_cols<4>(dout, g, out_h, out_w, scratch); break;
    case 5: roi_backward_cols<5>(dout, g, out_h, out_w, scratch); break;
    case 6: roi_backward_cols<6>(dout, g, out_h, out_w, scratch); break;
    default: roi_backward_cols<0>(dout, g, out_h, out_w, scratch);
  }
  switch (g.ly) {
    case 1: roi_backward_rows<1>(g, out_h, df, W, scratch); break;
    case 2: roi_backward_rows<2>(g, out_h, df, W, scratch); break;
    case 3: roi_backward_rows<3>(g, out_h, df, W, scratch); break;
    case 4: roi_backward_rows<4>(g, out_h, df, W, scratch); break;
    case 5: roi_backward_rows<5>(g, out_h, df, W, scratch); break;
    case 6: roi_backward_rows<6>(g, out_h, df, W, scratch); break;
    default: roi_backward_rows<0>(g, out_h, df, W, scratch);
  }
}

}  // namespace detail
}  // namespace gcnet::ops
