#pragma once
// What the convolutions share: describe() strings, constructor checks, output shapes.
#include <string>

#include "gcnet/core/error.hpp"
#include "gcnet/core/shape.hpp"
#include "gcnet/kernels/im2col.hpp"
#include "gcnet/layers/size2.hpp"

namespace gcnet {

namespace detail {
// "Conv2d(3, 16, kernel=3x3, stride=1, padding=1[, dilation=2][, groups=2][, bias=False])"
inline std::string describe_conv(const char* name, index_t in, index_t out, Size2 kernel, Size2 stride,
                                 Size2 padding, Size2 output_padding, Size2 dilation, index_t groups,
                                 bool bias) {
  std::string s = std::string(name) + "(" + std::to_string(in) + ", " + std::to_string(out) +
                  ", kernel=" + kernel.str(true) + ", stride=" + stride.str() + ", padding=" + padding.str();
  if (output_padding != Size2(0)) s += ", output_padding=" + output_padding.str();
  if (dilation != Size2(1)) s += ", dilation=" + dilation.str();
  if (groups != 1) s += ", groups=" + std::to_string(groups);
  if (!bias) s += ", bias=False";
  return s + ")";
}

// Output shape of a (possibly deformable) convolution of `in`: checks the channel count and that
// the padded input covers the kernel's span, with messages naming the layer `who`.
inline Shape conv_output_shape(const std::string& who, const Shape& in, index_t in_channels, index_t out_channels,
                               Size2 kernel, Size2 stride, Size2 padding, Size2 dilation) {
  require_nchw(in, who);
  GCNET_CHECK(in.c() == in_channels, who, ": expected input with ", in_channels, " channels, got shape ", in.str());
  const index_t span_h = dilation.h * (kernel.h - 1) + 1, span_w = dilation.w * (kernel.w - 1) + 1;
  const index_t padded_h = in.h() + 2 * padding.h, padded_w = in.w() + 2 * padding.w;
  GCNET_CHECK(padded_h >= span_h && padded_w >= span_w, who, ": input of shape ", in.str(),
              " is too small: padded input ", padded_h, "x", padded_w, " is smaller than the kernel's span ", span_h,
              "x", span_w);
  return Shape{in.n(), out_channels, (padded_h - span_h) / stride.h + 1, (padded_w - span_w) / stride.w + 1};
}

// Constructor checks shared by Conv2d and ConvTranspose2d; `who` is the layer's describe().
inline void check_conv_options(const std::string& who, index_t in, index_t out, Size2 kernel, Size2 stride,
                               Size2 padding, Size2 dilation, index_t groups) {
  GCNET_CHECK(in > 0, who, ": in channels must be positive, got ", in);
  GCNET_CHECK(out > 0, who, ": out channels must be positive, got ", out);
  GCNET_CHECK(kernel.h > 0 && kernel.w > 0, who, ": kernel size must be positive, got ", kernel.str(true));
  GCNET_CHECK(stride.h > 0 && stride.w > 0, who, ": stride must be positive, got ", stride.str(true));
  GCNET_CHECK(padding.h >= 0 && padding.w >= 0, who, ": padding must be non-negative, got ", padding.str(true));
  GCNET_CHECK(dilation.h > 0 && dilation.w > 0, who, ": dilation must be positive, got ", dilation.str(true));
  GCNET_CHECK(groups > 0, who, ": groups must be positive, got ", groups);
  GCNET_CHECK(in % groups == 0, who, ": in channels (", in, ") must be divisible by groups (", groups, ")");
  GCNET_CHECK(out % groups == 0, who, ": out channels (", out, ") must be divisible by groups (", groups, ")");
}
// The unfolding geometry of a convolution between an image (channels x image_h x image_w)
// and its grid of window positions (grid_h x grid_w): Conv2d unfolds its input,
// ConvTranspose2d its output.
inline ConvGeometry conv_geometry(index_t channels, index_t image_h, index_t image_w, Size2 kernel, Size2 stride,
                                  Size2 padding, Size2 dilation, index_t grid_h, index_t grid_w) {
  ConvGeometry g;
  g.channels = channels;
  g.height = image_h;
  g.width = image_w;
  g.kernel_h = kernel.h;
  g.kernel_w = kernel.w;
  g.stride_h = stride.h;
  g.stride_w = stride.w;
  g.pad_h = padding.h;
  g.pad_w = padding.w;
  g.dilation_h = dilation.h;
  g.dilation_w = dilation.w;
  g.out_h = grid_h;
  g.out_w = grid_w;
  return g;
}
}  // namespace detail

}  // namespace gcnet
