#pragma once
// PyTorch's pooling arithmetic, shared by MaxPool2d and AvgPool2d: the number of windows
// along an axis (floor or ceil mode) and the option checks of torch's pool2d_shape_check.
#include <string>

#include "gcnet/core/shape.hpp"
#include "gcnet/layers/size2.hpp"

namespace gcnet::pooling {

// a / b rounded toward negative infinity (b > 0); the numerator may be negative.
constexpr index_t floor_div(index_t a, index_t b) {
  const index_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

// torch's pooling_output_shape: windows of `kernel` taps `dilation` apart, `stride` apart,
// over the input padded by `pad` on both sides. Ceil mode counts a partial last window,
// but only when it starts inside the input or the left padding (never in the right padding).
constexpr index_t output_extent(index_t in, index_t kernel, index_t pad, index_t stride, index_t dilation,
                                bool ceil_mode) {
  const index_t span = dilation * (kernel - 1) + 1;
  index_t out = floor_div(in + 2 * pad - span + (ceil_mode ? stride - 1 : 0), stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// Throws unless kernel, stride and dilation are positive and the padding is non-negative
// and at most half the kernel (PyTorch's rule: no window may lie wholly in the padding).
inline void check_options(const std::string& who, Size2 kernel, Size2 stride, Size2 padding, Size2 dilation) {
  GCNET_CHECK(kernel.h > 0 && kernel.w > 0, who, ": kernel size must be positive, got ", kernel.str(true));
  GCNET_CHECK(stride.h > 0 && stride.w > 0, who, ": stride must be positive, got ", stride.str(true));
  GCNET_CHECK(dilation.h > 0 && dilation.w > 0, who, ": dilation must be positive, got ", dilation.str(true));
  GCNET_CHECK(padding.h >= 0 && padding.w >= 0, who, ": padding must not be negative, got ", padding.str(true));
  GCNET_CHECK(padding.h <= kernel.h / 2 && padding.w <= kernel.w / 2, who,
              ": padding must be at most half the kernel size, got padding ", padding.str(true), " for kernel ",
              kernel.str(true));
}

// The pooled NCHW shape; throws naming `who` unless `in` is a non-empty 4-d shape that
// leaves at least one window along each axis.
inline Shape output_shape(const std::string& who, const Shape& in, Size2 kernel, Size2 stride, Size2 padding,
                          Size2 dilation, bool ceil_mode) {
  require_nchw(in, who);
  const index_t oh = output_extent(in.h(), kernel.h, padding.h, stride.h, dilation.h, ceil_mode);
  const index_t ow = output_extent(in.w(), kernel.w, padding.w, stride.w, dilation.w, ceil_mode);
  GCNET_CHECK(oh >= 1 && ow >= 1, who, ": input of shape ", in.str(), " is too small: the output would be ", oh,
              "x", ow);
  return Shape{in.n(), in.c(), oh, ow};
}

}  // namespace gcnet::pooling
