#pragma once
// im2col / col2im: the windows of a sliding kernel over an image [C, H, W] laid out as
// the columns of a matrix [C * kh * kw, out_h * out_w], so that a convolution is one
// GEMM. Both work on a band of window rows [oh0, oh1) so callers can keep the column
// buffer small enough to stay in cache. Bodies are GCNET_HD and index-parallel.
#include <algorithm>

#include "gcnet/core/parallel.hpp"

namespace gcnet {

// An image and the sliding window over it: the window at (oh, ow) reads pixels
// (oh * stride_h - pad_h + i * dilation_h, ow * stride_w - pad_w + j * dilation_w).
struct ConvGeometry {
  index_t channels = 0, height = 0, width = 0;
  index_t kernel_h = 1, kernel_w = 1;
  index_t stride_h = 1, stride_w = 1;
  index_t pad_h = 0, pad_w = 0;
  index_t dilation_h = 1, dilation_w = 1;
  index_t out_h = 0, out_w = 0;  // the grid of window positions

  GCNET_HD index_t kernel_area() const { return kernel_h * kernel_w; }
  GCNET_HD index_t rows() const { return channels * kernel_h * kernel_w; }  // of the column matrix
  GCNET_HD index_t positions() const { return out_h * out_w; }
  GCNET_HD index_t image_size() const { return height * width; }
  // A 1x1 window at stride 1 without padding: the image already is its column matrix.
  bool is_pointwise() const {
    return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
  }

  // The window columns ow whose tap at kernel column j lands inside the image: [lo, hi).
  GCNET_HD void valid_columns(index_t j, index_t& lo, index_t& hi) const {
    const index_t off = j * dilation_w - pad_w;  // image column of window 0's tap
    lo = off >= 0 ? 0 : (-off + stride_w - 1) / stride_w;
    hi = width - 1 - off >= 0 ? (width - 1 - off) / stride_w + 1 : 0;
    hi = hi < out_w ? hi : out_w;
    lo = lo < hi ? lo : hi;
  }
};

// col[r * ld + (oh - oh0) * out_w + ow] = image[c][ih][iw] (0 in the padding), for window
// rows oh in [oh0, oh1), r = (c * kernel_h + i) * kernel_w + j. With images > 1, `image`
// holds that many consecutive images and image k's band sits k * (oh1 - oh0) * out_w
// columns further right (ld covers them all): a batch-wide column matrix.
// One task per image plane: the index arithmetic (divisions) is paid once per plane, not
// once per copied row.
template <class T, class B>
void im2col(B, const ConvGeometry& geometry, const T* image, index_t oh0, index_t oh1, T* col, index_t ld,
            index_t images = 1) {
  const ConvGeometry g = geometry;
  const index_t band = oh1 - oh0;
  for_each_index_weighted(B{}, images * g.channels, g.kernel_area() * band * g.out_w, [=] GCNET_HD(index_t plane) {
    const index_t k = plane / g.channels, c = plane % g.channels;
    const T* src = image + plane * g.height * g.width;
    // Stride 1 with the output as wide as the image ("same" padding): consecutive window
    // rows read consecutive image rows, so a band row of col is one shifted copy of the
    // image, fixed up at the row edges where the window hangs over the padding.
    const bool contiguous = g.stride_h == 1 && g.stride_w == 1 && g.out_w == g.width;
    for (index_t i = 0; i < g.kernel_h; ++i)
      for (index_t j = 0; j < g.kernel_w; ++j) {
        index_t lo, hi;
        g.valid_columns(j, lo, hi);
        const index_t off = j * g.dilation_w - g.pad_w;  // image column of window 0's tap
        T* dst = col + ((c * g.kernel_h + i) * g.kernel_w + j) * ld + k * band * g.out_w;
        if (contiguous) {
          const index_t shift = i * g.dilation_h - g.pad_h;  // ih = oh + shift
          const index_t a = std::clamp<index_t>(-shift, oh0, oh1), b = std::clamp<index_t>(g.height - shift, a, oh1);
          for (index_t e = 0; e < (a - oh0) * g.out_w; ++e) dst[e] = T(0);  // rows above the image
          // Flat copy of rows [a, b), clipped to the plane; the clipped ends are edge columns.
          const index_t base = (a + shift) * g.width + off, len = (b - a) * g.width;
          const index_t e0 = std::max<index_t>(0, -base), e1 = std::min(len, g.height * g.width - base);
          T* d = dst + (a - oh0) * g.out_w;
          for (index_t e = e0; e < e1; ++e) d[e] = src[base + e];
          for (index_t oh = a; oh < b; ++oh, d += g.out_w) {
            for (index_t ow = 0; ow < lo; ++ow) d[ow] = T(0);
            for (index_t ow = hi; ow < g.out_w; ++ow) d[ow] = T(0);
          }
          for (index_t e = (b - oh0) * g.out_w; e < band * g.out_w; ++e) dst[e] = T(0);  // rows below
          continue;
        }
        for (index_t oh = oh0; oh < oh1; ++oh, dst += g.out_w) {
          const index_t ih = oh * g.stride_h - g.pad_h + i * g.dilation_h;
          if (ih < 0 || ih >= g.height) {
            for (index_t ow = 0; ow < g.out_w; ++ow) dst[ow] = T(0);
            continue;
          }
          // Indexing from the row start (not a shifted pointer, which could leave the array).
          const T* row = src + ih * g.width;
          for (index_t ow = 0; ow < lo; ++ow) dst[ow] = T(0);
          if (g.stride_w == 1) {
            for (index_t ow = lo; ow < hi; ++ow) dst[ow] = row[ow + off];
          } else {
            for (index_t ow = lo; ow < hi; ++ow) dst[ow] = row[ow * g.stride_w + off];
          }
          for (index_t ow = hi; ow < g.out_w; ++ow) dst[ow] = T(0);
        }
      }
  });
}

// The adjoint of im2col: image[c][ih][iw] += every col entry that im2col read from it,
// for the window rows [oh0, oh1) that col holds (laid out as im2col writes them, for
// `images` consecutive images). One task per image plane, so no two tasks write the same
// pixel.
template <class T, class B>
void col2im_add(B, const ConvGeometry& geometry, const T* col, index_t oh0, index_t oh1, T* image, index_t ld,
                index_t images = 1) {
  const ConvGeometry g = geometry;
  const index_t band = oh1 - oh0;
  for_each_index_weighted(B{}, images * g.channels, g.kernel_area() * band * g.out_w, [=] GCNET_HD(index_t plane) {
    const index_t k = plane / g.channels, c = plane % g.channels;
    T* dst = image + plane * g.height * g.width;
    for (index_t i = 0; i < g.kernel_h; ++i)
      for (index_t j = 0; j < g.kernel_w; ++j) {
        index_t lo, hi;
        g.valid_columns(j, lo, hi);
        const index_t off = j * g.dilation_w - g.pad_w;
        const T* src = col + ((c * g.kernel_h + i) * g.kernel_w + j) * ld + k * band * g.out_w;
        for (index_t oh = oh0; oh < oh1; ++oh, src += g.out_w) {
          const index_t ih = oh * g.stride_h - g.pad_h + i * g.dilation_h;
          if (ih < 0 || ih >= g.height) continue;
          T* row = dst + ih * g.width;
          if (g.stride_w == 1) {
            for (index_t ow = lo; ow < hi; ++ow) row[ow + off] += src[ow];
          } else {
            for (index_t ow = lo; ow < hi; ++ow) row[ow * g.stride_w + off] += src[ow];
          }
        }
      }
  });
}

}  // namespace gcnet
