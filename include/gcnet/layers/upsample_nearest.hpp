#pragma once
// UpsampleNearest: F.interpolate(x, size or integer scale_factor, mode='nearest') over
// NCHW input. Source index as PyTorch's nearest_idx: the same index when out == in,
// dst / 2 when out == 2 * in, else min(floor(dst * r), in - 1) computed in float, with
// r = 1 / scale_factor when a scale factor was given and in / out when a size was
// (float, like torch, so the rare index that float rounding moves moves here too).
// Backward sums each output's gradient into its source element.
#include <cmath>
#include <optional>
#include <string>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/layers/size2.hpp"

namespace gcnet {

struct UpsampleNearestOptions {
  std::optional<Size2> size = std::nullopt;   // output size, or
  std::optional<Size2> scale = std::nullopt;  // integer scale factor (output = in * scale)
};

namespace detail {
// `ratio` is torch's compute_scales_value<float>; the rest is nearest_idx.
GCNET_HD inline index_t nearest_source(index_t dst, index_t in, index_t out, float ratio) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const index_t src = static_cast<index_t>(floorf(static_cast<float>(dst) * ratio));
  return src < in - 1 ? src : in - 1;
}
}  // namespace detail

template <Scalar T = float, Backend B = Cpu>
class UpsampleNearest {
 public:
  using value_type = T;
  using backend_type = B;
  // backward reads of y only its shape (callers may pass another tensor of that shape).
  static constexpr bool backward_ignores_output = true;

  explicit UpsampleNearest(const UpsampleNearestOptions& o) : size_(o.size), scale_(o.scale) {
    GCNET_CHECK(size_.has_value() != scale_.has_value(), describe(),
                ": give exactly one of an output size and a scale factor");
    GCNET_CHECK(!size_ || (size_->h > 0 && size_->w > 0), describe(), ": output size must be positive, got ",
                size_->str(true));
    GCNET_CHECK(!scale_ || (scale_->h > 0 && scale_->w > 0), describe(), ": scale factor must be positive, got ",
                scale_->str(true));
  }

  // Resize to `size` from now on (e.g. FPN's upsampling to the next level's size).
  void set_output_size(Size2 size) {
    GCNET_CHECK(size.h > 0 && size.w > 0, describe(), ": output size must be positive, got ", size.str(true));
    size_ = size;
    scale_.reset();
  }

  Shape setup(const Shape& in) {
    require_nchw(in, describe());
    const index_t oh = size_ ? size_->h : in.h() * scale_->h;
    const index_t ow = size_ ? size_->w : in.w() * scale_->w;
    return Shape{in.n(), in.c(), oh, ow};
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    require_contiguous(x, describe(), "input");
    y.resize(setup(x.shape()));
    const index_t H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
    const float rh = ratio(H, OH, scale_ ? scale_->h : 0), rw = ratio(W, OW, scale_ ? scale_->w : 0);
    const T* xp = x.data();
    T* yp = y.data();
    for_each_index_weighted(B{}, x.size(0) * x.size(1), OH * OW, [=] GCNET_HD(index_t p) {
      const T* in = xp + p * H * W;
      T* out = yp + p * OH * OW;
      for (index_t oh = 0; oh < OH; ++oh) {
        const T* row = in + detail::nearest_source(oh, H, OH, rh) * W;
        for (index_t ow = 0; ow < OW; ++ow) out[oh * OW + ow] = row[detail::nearest_source(ow, W, OW, rw)];
      }
    });
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    const index_t H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
    const float rh = ratio(H, OH, scale_ ? scale_->h : 0), rw = ratio(W, OW, scale_ ? scale_->w : 0);
    const T* g = dy.data();
    T* d = dx.data();
    for_each_index_weighted(B{}, x.size(0) * x.size(1), OH * OW, [=] GCNET_HD(index_t p) {
      const T* go = g + p * OH * OW;
      T* gi = d + p * H * W;
      for (index_t oh = 0; oh < OH; ++oh) {
        T* row = gi + detail::nearest_source(oh, H, OH, rh) * W;
        for (index_t ow = 0; ow < OW; ++ow) row[detail::nearest_source(ow, W, OW, rw)] += go[oh * OW + ow];
      }
    });
  }

  std::string describe() const {
    if (size_) return "UpsampleNearest(size=" + size_->str(true) + ")";
    if (scale_) return "UpsampleNearest(scale=" + scale_->str() + ")";
    return "UpsampleNearest()";
  }

 private:
  // torch's compute_scales_value<float>: 1 / scale_factor when one was given, else in / out.
  static float ratio(index_t in, index_t out, index_t factor) {
    return factor > 0 ? static_cast<float>(1.0 / static_cast<double>(factor))
                      : static_cast<float>(in) / static_cast<float>(out);
  }

  std::optional<Size2> size_;
  std::optional<Size2> scale_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(UpsampleNearest)
}  // namespace gcnet
