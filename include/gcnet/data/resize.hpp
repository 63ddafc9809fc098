#pragma once
// Resampling kernels for HWC images and HW label maps, and mmcv's keep-ratio size rule.
#include <algorithm>
#include <cmath>
#include <utility>

#include "gcnet/core/tensor.hpp"

namespace gcnet::data {

// mmcv.rescale_size: scale = (long edge, short edge) in either order; the factor is the largest
// that fits both, and each side rounds as Python's int(side * factor + 0.5).
// Returns {new_h, new_w}.
inline std::pair<index_t, index_t> rescale_size(index_t h, index_t w, index_t edge_a, index_t edge_b) {
  GCNET_CHECK(h > 0 && w > 0, "rescale_size: empty image ", h, "x", w);
  GCNET_CHECK(edge_a > 0 && edge_b > 0, "rescale_size: scale edges must be positive, got (", edge_a, ", ",
              edge_b, ")");
  const double long_edge = static_cast<double>(std::max(edge_a, edge_b));
  const double short_edge = static_cast<double>(std::min(edge_a, edge_b));
  const double f = std::min(long_edge / static_cast<double>(std::max(h, w)),
                            short_edge / static_cast<double>(std::min(h, w)));
  const auto round_side = [f](index_t s) { return static_cast<index_t>(static_cast<double>(s) * f + 0.5); };
  return {std::max<index_t>(round_side(h), 1), std::max<index_t>(round_side(w), 1)};
}

// Bilinear with half-pixel centers (cv2.INTER_LINEAR, torch align_corners=False), no antialias.
inline Tensor<float> resize_bilinear_hwc(const Tensor<float>& src, index_t out_h, index_t out_w) {
  const index_t H = src.size(0), W = src.size(1), C = src.size(2);
  Tensor<float> dst(Shape{out_h, out_w, C});
  const double sy = static_cast<double>(H) / static_cast<double>(out_h);
  const double sx = static_cast<double>(W) / static_cast<double>(out_w);
  const float* s = src.data();
  float* d = dst.data();
  for (index_t y = 0; y < out_h; ++y) {
    const double fy = std::max((static_cast<double>(y) + 0.5) * sy - 0.5, 0.0);
    const index_t y0 = std::min(static_cast<index_t>(fy), H - 1), y1 = std::min(y0 + 1, H - 1);
    const double ly = fy - static_cast<double>(y0);
    for (index_t x = 0; x < out_w; ++x) {
      const double fx = std::max((static_cast<double>(x) + 0.5) * sx - 0.5, 0.0);
      const index_t x0 = std::min(static_cast<index_t>(fx), W - 1), x1 = std::min(x0 + 1, W - 1);
      const double lx = fx - static_cast<double>(x0);
      for (index_t c = 0; c < C; ++c) {
        const double top = (1 - lx) * s[(y0 * W + x0) * C + c] + lx * s[(y0 * W + x1) * C + c];
        const double bot = (1 - lx) * s[(y1 * W + x0) * C + c] + lx * s[(y1 * W + x1) * C + c];
        d[(y * out_w + x) * C + c] = static_cast<float>((1 - ly) * top + ly * bot);
      }
    }
  }
  return dst;
}

// Nearest neighbour as cv2.INTER_NEAREST: source index floor(dst * in / out), clamped.
template <class T>
Tensor<T> resize_nearest_hw(const Tensor<T>& src, index_t out_h, index_t out_w) {
  const index_t H = src.size(0), W = src.size(1);
  Tensor<T> dst(Shape{out_h, out_w});
  const double iy = 1.0 / (static_cast<double>(out_h) / static_cast<double>(H));
  const double ix = 1.0 / (static_cast<double>(out_w) / static_cast<double>(W));
  for (index_t y = 0; y < out_h; ++y) {
    const index_t sy = std::min(static_cast<index_t>(std::floor(static_cast<double>(y) * iy)), H - 1);
    for (index_t x = 0; x < out_w; ++x) {
      const index_t sx = std::min(static_cast<index_t>(std::floor(static_cast<double>(x) * ix)), W - 1);
      dst[y * out_w + x] = src[sy * W + sx];
    }
  }
  return dst;
}

}  // namespace gcnet::data
