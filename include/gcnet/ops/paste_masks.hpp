#pragma once
// Pasting the mask head's probabilities into the image (detection-reference §15.2): mmdet's
// _do_paste_mask (the default) and torchvision's paste_masks_in_image (an option).
//
//   Tensor<std::uint8_t> m = paste_masks(probs, boxes, H, W);        // [N, H, W], probs >= 0.5
//   Tensor<T> soft = paste_masks_soft(probs, boxes, H, W);           // mmdet's values before the threshold
//   Tensor<T> tv = paste_masks_torchvision(probs, boxes, H, W);      // torchvision's (soft) masks
//   Tensor<std::uint8_t> b = paste_masks_torchvision_binary(probs, boxes, H, W, 0.5);  // tv's, > 0.5
//
// probs [N, Mh, Mw] (sigmoid of each instance's class channel), boxes [N, 4] in the pixels of the
// H x W canvas (mmdet rescales them to the original image first).
// mmdet: F.grid_sample(align_corners=False, zeros padding) of the probabilities at the pixel
// centres mapped into the box, closed form: with u = (j + .5 - x1) / (x2 - x1) * Mw - .5 and
// v = (i + .5 - y1) / (y2 - y1) * Mh - .5, pixel (i, j) is the bilinear interpolation of the map
// at (v, u) where taps outside the map read 0 (so values fade to 0 over half a mask cell at the
// box border). A zero-width box divides by 0: mmdet maps the infinite coordinate to 0 (the
// map's centre), here too; a pixel centre exactly on such a box (0 / 0, NaN in PyTorch, which
// the threshold turns to 0) is 0 here. mmdet's CPU path pastes each instance over the window
// [floor(x1) - 1, ceil(x2) + 1) x [floor(y1) - 1, ceil(y2) + 1) clipped to the canvas and leaves
// the rest 0: the same binary masks as its GPU path, which samples every pixel.
// torchvision: pad the M x M map by one zero cell, scale the box about its centre by (M + 2) / M,
// truncate it to integers, resize the padded map bilinearly (align_corners=False) to
// (y2 - y1 + 1) x (x2 - x1 + 1) and copy it into the canvas; the caller thresholds the soft masks.
// A box wholly outside the canvas pastes nothing (torchvision may fail on it).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gcnet/core/parallel.hpp"
#include "gcnet/core/tensor.hpp"

namespace gcnet::ops {

namespace detail {

template <Scalar T>
void check_paste_args(const Tensor<T, Cpu>& probs, const Tensor<T, Cpu>& boxes, index_t H, index_t W, const char* who) {
  GCNET_CHECK(probs.rank() == 3, who, ": mask probabilities must have shape [N, Mh, Mw], got ", probs.shape().str());
  GCNET_CHECK(probs.size(1) >= 1 && probs.size(2) >= 1, who, ": masks of shape ", probs.shape().str(), " are empty");
  GCNET_CHECK(boxes.rank() == 2 && boxes.size(1) == 4 && boxes.size(0) == probs.size(0), who,
              ": boxes must have shape [", probs.size(0), ", 4], got ", boxes.shape().str());
  GCNET_CHECK(H >= 0 && W >= 0, who, ": canvas size must not be negative, got ", H, "x", W);
  for (index_t k = 0; k < boxes.size(0); ++k)
    for (int c = 0; c < 4; ++c)
      GCNET_CHECK(std::isfinite(boxes.at({k, c})), who, ": box ", k, " has a non-finite coordinate");
}

// One axis of mmdet's sampling: pixel p of the window samples map cells lo and lo + 1 with
// weights w0 and w1 (a tap outside the map has weight 0).
template <Scalar T>
struct PasteTap {
  index_t lo = 0;
  T w0 = 0, w1 = 0;
};

// grid = (p + .5 - a) / (b - a) * 2 - 1 (±inf -> 0, NaN -> no taps), then grid_sample's
// unnormalize ((grid + 1) * M - 1) / 2 and its bilinear taps, each step in T as PyTorch does.
template <Scalar T>
PasteTap<T> paste_tap(index_t p, T a, T b, index_t M) {
  T g = (static_cast<T>(p) + T(0.5) - a) / (b - a) * T(2) - T(1);
  if (std::isinf(g)) g = T(0);
  PasteTap<T> t;
  if (std::isnan(g)) return t;
  const T pos = ((g + T(1)) * static_cast<T>(M) - T(1)) / T(2);
  const T fl = std::floor(pos);
  const T w1 = pos - fl, w0 = (fl + T(1)) - pos;
  if (!(fl >= T(-1) && fl <= static_cast<T>(M - 1))) return t;  // both taps outside (checked before the cast)
  t.lo = static_cast<index_t>(fl);
  t.w0 = (t.lo >= 0 && t.lo < M) ? w0 : T(0);
  t.w1 = (t.lo + 1 >= 0 && t.lo + 1 < M) ? w1 : T(0);
  return t;
}

}  // namespace detail

namespace detail {
// mmdet's pasting into out [N, H, W] of U, each pasted value v stored as put(v) (0 elsewhere):
// the soft masks (U = T) or the binary ones thresholded on the fly (U = uint8: no [N, H, W]
// float canvas, 4 bytes a pixel, for 100 masks at 800 x 1216 390 MB).
template <Scalar T, class U, class Put>
void paste_masks_mmdet_into(const Tensor<T, Cpu>& probs_in, const Tensor<T, Cpu>& boxes, index_t H, index_t W,
                            Tensor<U, Cpu>& out, Put put) {
  check_paste_args(probs_in, boxes, H, W, "paste_masks");
  const Tensor<T, Cpu> probs = probs_in.is_contiguous() ? probs_in : clone(probs_in);
  const index_t N = probs.size(0), Mh = probs.size(1), Mw = probs.size(2);
  out = Tensor<U, Cpu>(Shape{N, H, W});
  for_each_index_weighted(Cpu{}, N, H * W, [&](index_t n) {
    U* o = out.data() + n * H * W;
    std::fill(o, o + H * W, put(T(0)));
    const T x1 = boxes.at({n, 0}), y1 = boxes.at({n, 1}), x2 = boxes.at({n, 2}), y2 = boxes.at({n, 3});
    // mmdet's window, computed in double so that a far-away box cannot overflow an integer.
    const auto lo = [](T v, index_t size) {
      return static_cast<index_t>(std::min<double>(std::max<double>(std::floor(static_cast<double>(v)) - 1, 0), size));
    };
    const auto hi = [](T v, index_t begin, index_t size) {
      return std::max(begin, static_cast<index_t>(std::min<double>(std::ceil(static_cast<double>(v)) + 1, size)));
    };
    const index_t c0 = lo(x1, W), c1 = hi(x2, c0, W), r0 = lo(y1, H), r1 = hi(y2, r0, H);
    std::vector<PasteTap<T>> tx(static_cast<std::size_t>(c1 - c0));
    for (index_t j = c0; j < c1; ++j) tx[static_cast<std::size_t>(j - c0)] = paste_tap(j, x1, x2, Mw);
    const T* m = probs.data() + n * Mh * Mw;
    for (index_t i = r0; i < r1; ++i) {
      const auto ty = paste_tap(i, y1, y2, Mh);
      if (ty.w0 == T(0) && ty.w1 == T(0)) continue;
      const T* row0 = ty.w0 != T(0) ? m + ty.lo * Mw : nullptr;
      const T* row1 = ty.w1 != T(0) ? m + (ty.lo + 1) * Mw : nullptr;
      for (index_t j = c0; j < c1; ++j) {
        const auto& t = tx[static_cast<std::size_t>(j - c0)];
        T v = 0;
        if (row0) {
          if (t.w0 != T(0)) v += row0[t.lo] * (t.w0 * ty.w0);
          if (t.w1 != T(0)) v += row0[t.lo + 1] * (t.w1 * ty.w0);
        }
        if (row1) {
          if (t.w0 != T(0)) v += row1[t.lo] * (t.w0 * ty.w1);
          if (t.w1 != T(0)) v += row1[t.lo + 1] * (t.w1 * ty.w1);
        }
        o[i * W + j] = put(v);
      }
    }
  });
}

// torchvision's pasting into out [N, H, W] of U, as paste_masks_mmdet_into.
template <Scalar T, class U, class Put>
void paste_masks_torchvision_into(const Tensor<T, Cpu>& probs_in, const Tensor<T, Cpu>& boxes, index_t H, index_t W,
                                  index_t padding, Tensor<U, Cpu>& out, Put put) {
  check_paste_args(probs_in, boxes, H, W, "paste_masks_torchvision");
  GCNET_CHECK(padding >= 0, "paste_masks_torchvision: padding must not be negative, got ", padding);
  GCNET_CHECK(probs_in.size(1) == probs_in.size(2), "paste_masks_torchvision: masks must be square, got ",
              probs_in.shape().str());
  const Tensor<T, Cpu> probs = probs_in.is_contiguous() ? probs_in : clone(probs_in);
  const index_t N = probs.size(0), M = probs.size(1), P = M + 2 * padding;
  const T scale = static_cast<T>(static_cast<double>(P) / static_cast<double>(M));  // a Python float, used in T
  out = Tensor<U, Cpu>(Shape{N, H, W});
  for_each_index_weighted(Cpu{}, N, H * W, [&](index_t n) {
    U* o = out.data() + n * H * W;
    std::fill(o, o + H * W, put(T(0)));
    // expand_boxes, then .to(int64) (truncation toward 0).
    const T x1 = boxes.at({n, 0}), y1 = boxes.at({n, 1}), x2 = boxes.at({n, 2}), y2 = boxes.at({n, 3});
    T w_half = (x2 - x1) * T(0.5), h_half = (y2 - y1) * T(0.5);
    const T xc = (x2 + x1) * T(0.5), yc = (y2 + y1) * T(0.5);
    w_half *= scale;
    h_half *= scale;
    const auto to_int = [](T v) {
      return static_cast<index_t>(std::trunc(std::clamp<double>(static_cast<double>(v), -4e18, 4e18)));
    };
    const index_t b0 = to_int(xc - w_half), b1 = to_int(yc - h_half), b2 = to_int(xc + w_half), b3 = to_int(yc + h_half);
    const index_t x_0 = std::max<index_t>(b0, 0), x_1 = std::min<index_t>(b2 + 1, W);
    const index_t y_0 = std::max<index_t>(b1, 0), y_1 = std::min<index_t>(b3 + 1, H);
    if (x_1 <= x_0 || y_1 <= y_0) return;
    const index_t w = std::max<index_t>(b2 - b0 + 1, 1), h = std::max<index_t>(b3 - b1 + 1, 1);
    // F.interpolate(bilinear, align_corners=False) of the padded P x P map to h x w, at the rows
    // and columns that land on the canvas: source = (dst + .5) * P / size - .5, clamped at 0.
    const auto taps = [&](index_t dst, index_t size, index_t& i0, index_t& i1, T& l1) {
      const T s = static_cast<T>(P) / static_cast<T>(size);
      T src = s * (static_cast<T>(dst) + T(0.5)) - T(0.5);
      if (src < T(0)) src = T(0);
      i0 = std::min<index_t>(static_cast<index_t>(src), P - 1);
      i1 = i0 + (i0 < P - 1 ? 1 : 0);
      l1 = src - static_cast<T>(i0);
    };
    // The padded map's cell (r, c): the mask's (r - padding, c - padding), 0 in the border.
    const T* m = probs.data() + n * M * M;
    const auto cell = [&](index_t r, index_t c) {
      r -= padding, c -= padding;
      return (r >= 0 && r < M && c >= 0 && c < M) ? m[r * M + c] : T(0);
    };
    std::vector<index_t> cx0(static_cast<std::size_t>(x_1 - x_0)), cx1(cx0.size());
    std::vector<T> lx(cx0.size());
    for (index_t x = x_0; x < x_1; ++x) {
      const auto k = static_cast<std::size_t>(x - x_0);
      taps(x - b0, w, cx0[k], cx1[k], lx[k]);
    }
    for (index_t y = y_0; y < y_1; ++y) {
      index_t r0, r1;
      T ly;
      taps(y - b1, h, r0, r1, ly);
      for (index_t x = x_0; x < x_1; ++x) {
        const auto k = static_cast<std::size_t>(x - x_0);
        const T l1 = lx[k], l0 = T(1) - l1;
        o[y * W + x] = put((T(1) - ly) * (l0 * cell(r0, cx0[k]) + l1 * cell(r0, cx1[k])) +
                           ly * (l0 * cell(r1, cx0[k]) + l1 * cell(r1, cx1[k])));
      }
    }
  });
}
}  // namespace detail

// mmdet's pasted probabilities [N, H, W] (0 outside each instance's window).
template <Scalar T>
Tensor<T, Cpu> paste_masks_soft(const Tensor<T, Cpu>& probs, const Tensor<T, Cpu>& boxes, index_t H, index_t W) {
  Tensor<T, Cpu> out;
  detail::paste_masks_mmdet_into(probs, boxes, H, W, out, [](T v) { return v; });
  return out;
}

// mmdet's binary masks: pasted probability >= threshold (mask_thr_binary, 0.5).
template <Scalar T>
Tensor<std::uint8_t, Cpu> paste_masks(const Tensor<T, Cpu>& probs, const Tensor<T, Cpu>& boxes, index_t H, index_t W,
                                      double threshold = 0.5) {
  const T thr = static_cast<T>(threshold);
  Tensor<std::uint8_t, Cpu> out;
  detail::paste_masks_mmdet_into(probs, boxes, H, W, out, [thr](T v) { return std::uint8_t(v >= thr ? 1 : 0); });
  return out;
}

// torchvision's paste_masks_in_image (padding 1): soft masks [N, H, W].
template <Scalar T>
Tensor<T, Cpu> paste_masks_torchvision(const Tensor<T, Cpu>& probs, const Tensor<T, Cpu>& boxes, index_t H, index_t W,
                                       index_t padding = 1) {
  Tensor<T, Cpu> out;
  detail::paste_masks_torchvision_into(probs, boxes, H, W, padding, out, [](T v) { return v; });
  return out;
}

// torchvision's soft masks thresholded as its users do (soft > threshold), without the soft
// canvas: binary masks [N, H, W].
template <Scalar T>
Tensor<std::uint8_t, Cpu> paste_masks_torchvision_binary(const Tensor<T, Cpu>& probs, const Tensor<T, Cpu>& boxes,
                                                         index_t H, index_t W, double threshold,
                                                         index_t padding = 1) {
  const T thr = static_cast<T>(threshold);
  Tensor<std::uint8_t, Cpu> out;
  detail::paste_masks_torchvision_into(probs, boxes, H, W, padding, out,
                                       [thr](T v) { return std::uint8_t(v > thr ? 1 : 0); });
  return out;
}

}  // namespace gcnet::ops
