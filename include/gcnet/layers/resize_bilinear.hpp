#pragma once
// ResizeBilinear: F.interpolate(x, size or scale_factor, mode='bilinear', align_corners)
// over NCHW input, with PyTorch's source coordinates:
//  - align_corners: src = dst * (in - 1) / (out - 1) (0 when out == 1);
//  - otherwise src = max(0, (dst + 0.5) * r - 0.5), where r is 1 / scale_factor when a
//    scale factor was given (and recompute_scale_factor is off), else in / out. The two
//    differ whenever in * scale_factor is not an integer.
// The output size is the given size, or floor(in * scale_factor). Backward scatters dy
// with the forward's weights.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/layers/size2.hpp"

namespace gcnet {

// A (height, width) pair of scale factors; one number converts to both.
struct Scale2 {
  double h, w;
  constexpr Scale2(double both) : h(both), w(both) {}  // NOLINT: implicit on purpose
  constexpr Scale2(double height, double width) : h(height), w(width) {}

  bool positive_finite() const { return std::isfinite(h) && std::isfinite(w) && h > 0 && w > 0; }
  std::string str() const {
    std::ostringstream os;
    os << h;
    if (w != h) os << "x" << w;
    return os.str();
  }
};

struct ResizeBilinearOptions {
  std::optional<Size2> size = std::nullopt;    // output size, or
  std::optional<Scale2> scale = std::nullopt;  // scale_factor
  bool align_corners = false;
  bool recompute_scale_factor = false;  // map coordinates with in / out even when scaling
};

namespace detail {
// The two source taps of one output coordinate along an axis: i0 and i0 + step (step is
// 0 at the last input row/column), and the weight w1 of the second tap.
template <class T>
struct LinearTaps {
  index_t i0, step;
  T w1;
};
// `ratio` is torch's area_pixel_compute_scale; the rest is area_pixel_compute_source_index.
template <class T>
GCNET_HD inline LinearTaps<T> linear_taps(T ratio, index_t dst, index_t in, bool align_corners) {
  T src = align_corners ? ratio * T(dst) : ratio * (T(dst) + T(0.5)) - T(0.5);
  if (src < T(0)) src = T(0);
  index_t i0 = static_cast<index_t>(src);
  if (i0 > in - 1) i0 = in - 1;  // only reachable through rounding; keeps reads in bounds
  return {i0, i0 < in - 1 ? index_t{1} : index_t{0}, src - T(i0)};
}
// The taps of every output coordinate along one axis (the CPU path computes them once per call).
template <class T>
struct AxisTaps {
  std::vector<index_t> i0, step;
  std::vector<T> w1;
  AxisTaps(T ratio, index_t out, index_t in, bool align_corners)
      : i0(static_cast<std::size_t>(out)), step(i0.size()), w1(i0.size()) {
    for (index_t o = 0; o < out; ++o) {
      const LinearTaps<T> t = linear_taps(ratio, o, in, align_corners);
      i0[o] = t.i0;
      step[o] = t.step;
      w1[o] = t.w1;
    }
  }
  // out[o] = the input row interpolated at output coordinate o (this axis is the width).
  void blend_row(const T* in, T* out) const {
    for (std::size_t o = 0; o < w1.size(); ++o)
      out[o] = (T(1) - w1[o]) * in[i0[o]] + w1[o] * in[i0[o] + step[o]];
  }
  // The transpose of blend_row: in[...] += the weights times out[o].
  void scatter_row(const T* out, T* in) const {
    for (std::size_t o = 0; o < w1.size(); ++o) {
      in[i0[o]] += (T(1) - w1[o]) * out[o];
      in[i0[o] + step[o]] += w1[o] * out[o];
    }
  }
};
}  // namespace detail

template <Scalar T = float, Backend B = Cpu>
class ResizeBilinear {
 public:
  using value_type = T;
  using backend_type = B;

  explicit ResizeBilinear(const ResizeBilinearOptions& o)
      : size_(o.size), scale_(o.scale), align_corners_(o.align_corners),
        recompute_scale_factor_(o.recompute_scale_factor) {
    GCNET_CHECK(size_.has_value() != scale_.has_value(), describe(),
                ": give exactly one of an output size and a scale factor");
    GCNET_CHECK(!size_ || (size_->h > 0 && size_->w > 0), describe(), ": output size must be positive, got ",
                size_->str(true));
    GCNET_CHECK(!scale_ || scale_->positive_finite(), describe(), ": scale factor must be positive, got ",
                scale_->str());
    GCNET_CHECK(!(recompute_scale_factor_ && size_), describe(),
                ": recompute_scale_factor is meaningless with an explicit output size");
  }

  // Resize to `size` from now on (e.g. to match another feature map, as mmseg's resize).
  void set_output_size(Size2 size) {
    GCNET_CHECK(size.h > 0 && size.w > 0, describe(), ": output size must be positive, got ", size.str(true));
    size_ = size;
    scale_.reset();
    recompute_scale_factor_ = false;
  }

  Shape setup(const Shape& in) {
    require_nchw(in, describe());
    index_t oh, ow;
    if (size_) {
      oh = size_->h;
      ow = size_->w;
    } else {  // Python's math.floor(float(in) * scale_factor)
      oh = static_cast<index_t>(std::floor(static_cast<double>(in.h()) * scale_->h));
      ow = static_cast<index_t>(std::floor(static_cast<double>(in.w()) * scale_->w));
    }
    GCNET_CHECK(oh >= 1 && ow >= 1, describe(), ": input of shape ", in.str(), " is too small: the output would be ",
                oh, "x", ow);
    return Shape{in.n(), in.c(), oh, ow};
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    require_contiguous(x, describe(), "input");
    y.resize(setup(x.shape()));
    const index_t H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
    const T rh = ratio(H, OH, scale_ ? scale_->h : 0.0), rw = ratio(W, OW, scale_ ? scale_->w : 0.0);
    const bool ac = align_corners_;
    const T* xp = x.data();
    T* yp = y.data();
    if constexpr (std::same_as<B, Cpu>) {
      const detail::AxisTaps<T> rows(rh, OH, H, ac), cols(rw, OW, W, ac);
      // Each input row is interpolated along the width once (rows x OW), then every output row
      // blends two of those: an 8x upsampling reads each input row once, not eight times.
      for_each_range(Cpu{}, x.size(0) * x.size(1), [&](index_t p0, index_t p1) {
        std::vector<T> across(static_cast<std::size_t>(H * OW));
        for (index_t p = p0; p < p1; ++p) {
          const T* in = xp + p * H * W;
          T* out = yp + p * OH * OW;
          for (index_t h = 0; h < H; ++h) cols.blend_row(in + h * W, across.data() + h * OW);
          for (index_t oh = 0; oh < OH; ++oh) {
            const T* a = across.data() + rows.i0[oh] * OW;
            const T* b = a + rows.step[oh] * OW;
            const T w1 = rows.w1[oh], w0 = T(1) - w1;
            T* o = out + oh * OW;
            for (index_t ow = 0; ow < OW; ++ow) o[ow] = w0 * a[ow] + w1 * b[ow];
          }
        }
      }, std::max<index_t>(1, kParallelGrain / std::max<index_t>(1, OH * OW * 4)));
      return;
    }
    for_each_index_weighted(B{}, x.size(0) * x.size(1), OH * OW * 4, [=] GCNET_HD(index_t p) {
      const T* in = xp + p * H * W;
      T* out = yp + p * OH * OW;
      for (index_t oh = 0; oh < OH; ++oh) {
        const detail::LinearTaps<T> th = detail::linear_taps(rh, oh, H, ac);
        const T* r0 = in + th.i0 * W;
        const T* r1 = r0 + th.step * W;
        for (index_t ow = 0; ow < OW; ++ow) {
          const detail::LinearTaps<T> tw = detail::linear_taps(rw, ow, W, ac);
          const index_t c0 = tw.i0, c1 = tw.i0 + tw.step;
          out[oh * OW + ow] = (T(1) - th.w1) * ((T(1) - tw.w1) * r0[c0] + tw.w1 * r0[c1]) +
                              th.w1 * ((T(1) - tw.w1) * r1[c0] + tw.w1 * r1[c1]);
        }
      }
    });
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    const index_t H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
    const T rh = ratio(H, OH, scale_ ? scale_->h : 0.0), rw = ratio(W, OW, scale_ ? scale_->w : 0.0);
    const bool ac = align_corners_;
    const T* g = dy.data();
    T* d = dx.data();
    if constexpr (std::same_as<B, Cpu>) {
      const detail::AxisTaps<T> rows(rh, OH, H, ac), cols(rw, OW, W, ac);
      // The forward's transpose: dy's rows are first summed into the input rows they came from
      // (rows x OW, contiguous), then each such row is scattered along the width once.
      for_each_range(Cpu{}, x.size(0) * x.size(1), [&](index_t p0, index_t p1) {
        std::vector<T> across(static_cast<std::size_t>(H * OW));
        for (index_t p = p0; p < p1; ++p) {
          const T* go = g + p * OH * OW;
          T* gi = d + p * H * W;
          std::fill(across.begin(), across.end(), T(0));
          for (index_t oh = 0; oh < OH; ++oh) {
            T* a = across.data() + rows.i0[oh] * OW;
            T* b = a + rows.step[oh] * OW;
            const T w1 = rows.w1[oh], w0 = T(1) - w1;
            const T* v = go + oh * OW;
            for (index_t ow = 0; ow < OW; ++ow) a[ow] += w0 * v[ow];
            for (index_t ow = 0; ow < OW; ++ow) b[ow] += w1 * v[ow];
          }
          for (index_t h = 0; h < H; ++h) cols.scatter_row(across.data() + h * OW, gi + h * W);
        }
      }, std::max<index_t>(1, kParallelGrain / std::max<index_t>(1, OH * OW * 4)));
      return;
    }
    for_each_index_weighted(B{}, x.size(0) * x.size(1), OH * OW * 4, [=] GCNET_HD(index_t p) {
      const T* go = g + p * OH * OW;
      T* gi = d + p * H * W;
      for (index_t oh = 0; oh < OH; ++oh) {
        const detail::LinearTaps<T> th = detail::linear_taps(rh, oh, H, ac);
        T* r0 = gi + th.i0 * W;
        T* r1 = r0 + th.step * W;
        for (index_t ow = 0; ow < OW; ++ow) {
          const detail::LinearTaps<T> tw = detail::linear_taps(rw, ow, W, ac);
          const index_t c0 = tw.i0, c1 = tw.i0 + tw.step;
          const T v = go[oh * OW + ow];
          r0[c0] += (T(1) - th.w1) * (T(1) - tw.w1) * v;
          r0[c1] += (T(1) - th.w1) * tw.w1 * v;
          r1[c0] += th.w1 * (T(1) - tw.w1) * v;
          r1[c1] += th.w1 * tw.w1 * v;
        }
      }
    });
  }

  std::string describe() const {
    std::string s = "ResizeBilinear(";
    if (size_) s += "size=" + size_->str(true) + ", ";
    if (scale_) s += "scale=" + scale_->str() + ", ";
    s += align_corners_ ? "align_corners=true" : "align_corners=false";
    if (recompute_scale_factor_) s += ", recompute_scale_factor=true";
    return s + ")";
  }

 private:
  // torch's area_pixel_compute_scale: source step per output step along one axis.
  // `factor` is the scale factor along the axis, 0 when an output size was given.
  T ratio(index_t in, index_t out, double factor) const {
    if (align_corners_) return out > 1 ? T(in - 1) / T(out - 1) : T(0);
    if (factor > 0 && !recompute_scale_factor_) return static_cast<T>(1.0 / factor);
    return T(in) / T(out);
  }

  std::optional<Size2> size_;
  std::optional<Scale2> scale_;
  bool align_corners_, recompute_scale_factor_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(ResizeBilinear)
}  // namespace gcnet
