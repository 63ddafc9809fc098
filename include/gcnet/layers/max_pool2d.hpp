#pragma once
// MaxPool2d: torch.nn.MaxPool2d over NCHW input. Padding counts as -inf; windows of
// `kernel` taps `dilation` apart, `stride` apart (stride defaults to the kernel); ceil
// mode as PyTorch (see pooling::output_extent). Forward computes values only, plane by plane
// with the inner loop over output columns (vectorizes); backward finds each window's argmax
// again, as the first tap equal to y, and routes the gradient there (no argmax kept between
// calls). On ties the first maximum in window order (row-major) wins, and a NaN wins over
// numbers, as in PyTorch.
#include <limits>
#include <optional>
#include <string>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/layers/pooling_geometry.hpp"

namespace gcnet {

struct MaxPool2dOptions {
  Size2 kernel;
  std::optional<Size2> stride = std::nullopt;  // default: the kernel size
  Size2 padding = 0;
  Size2 dilation = 1;
  bool ceil_mode = false;
};

template <Scalar T = float, Backend B = Cpu>
class MaxPool2d {
 public:
  using value_type = T;
  using backend_type = B;

  explicit MaxPool2d(const MaxPool2dOptions& o)
      : kernel_(o.kernel), stride_(o.stride.value_or(o.kernel)), padding_(o.padding), dilation_(o.dilation),
        ceil_mode_(o.ceil_mode) {
    pooling::check_options(describe(), kernel_, stride_, padding_, dilation_);
  }

  Shape setup(const Shape& in) {
    return pooling::output_shape(describe(), in, kernel_, stride_, padding_, dilation_, ceil_mode_);
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    require_contiguous(x, describe(), "input");
    y.resize(setup(x.shape()));
    const index_t H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
    const index_t kh = kernel_.h, kw = kernel_.w, sh = stride_.h, sw = stride_.w;
    const index_t ph = padding_.h, pw = padding_.w, dh = dilation_.h, dw = dilation_.w;
    // Output columns [ow0, ow1) have every horizontal tap inside the row: their loop has no
    // bounds tests and vectorizes; the few border columns take the clipped path.
    index_t ow0 = 0;
    while (ow0 < OW && ow0 * sw - pw < 0) ++ow0;
    index_t ow1 = ow0;
    while (ow1 < OW && ow1 * sw - pw + (kw - 1) * dw < W) ++ow1;
    const T* xp = x.data();
    T* yp = y.data();
    // Values only (the argmax is found again in backward from x): one plane per task, taps
    // combined row by row into the output row, as max with NaN winning (PyTorch's result).
    for_each_index_weighted(B{}, x.size(0) * x.size(1), OH * OW * kh * kw, [=] GCNET_HD(index_t p) {
      const T* in = xp + p * H * W;
      T* out = yp + p * OH * OW;
      for (index_t oh = 0; oh < OH; ++oh) {
        index_t h0 = oh * sh - ph;
        const index_t h1 = h0 + (kh - 1) * dh + 1 < H ? h0 + (kh - 1) * dh + 1 : H;
        while (h0 < 0) h0 += dh;
        T* o = out + oh * OW;
        for (index_t ow = 0; ow < OW; ++ow) o[ow] = -std::numeric_limits<T>::infinity();
        for (index_t ih = h0; ih < h1; ih += dh) {
          const T* row = in + ih * W;
          // The border columns: [0, ow0) and [ow1, OW).
          for (index_t ow = ow0 > 0 ? 0 : ow1; ow < OW; ow = ow + 1 == ow0 ? ow1 : ow + 1) {
            index_t w0 = ow * sw - pw;
            const index_t w1 = w0 + (kw - 1) * dw + 1 < W ? w0 + (kw - 1) * dw + 1 : W;
            while (w0 < 0) w0 += dw;
            T m = o[ow];
            for (index_t iw = w0; iw < w1; iw += dw) m = take_max(m, row[iw]);
            o[ow] = m;
          }
          for (index_t k = 0; k < kw; ++k) {
            const T* r = row + ow0 * sw - pw + k * dw;  // tap k of column ow0
            for (index_t ow = ow0; ow < ow1; ++ow) o[ow] = take_max(o[ow], r[(ow - ow0) * sw]);
          }
        }
      }
    });
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    require_contiguous(x, describe(), "input");
    GCNET_CHECK(y.shape() == setup(x.shape()), describe(), ": output shape ", y.shape().str(),
                " does not match input shape ", x.shape().str());
    const index_t H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
    const index_t kh = kernel_.h, kw = kernel_.w, sh = stride_.h, sw = stride_.w;
    const index_t ph = padding_.h, pw = padding_.w, dh = dilation_.h, dw = dilation_.w;
    const T* xp = x.data();
    const T* yp = y.data();
    const T* g = dy.data();
    T* d = dx.data();
    // Each output's gradient goes to its window's argmax: the first tap in window order
    // (row-major) that equals the output y (a NaN tap if y is NaN), as PyTorch, whose first
    // maximum is that tap. Comparing with y needs no running maximum, and the search stops at
    // the hit. A window wholly in the padding has no tap and gets nothing. One plane per task.
    for_each_index_weighted(B{}, x.size(0) * x.size(1), OH * OW * kh * kw, [=] GCNET_HD(index_t p) {
      const T* in = xp + p * H * W;
      const T* out = yp + p * OH * OW;
      const T* go = g + p * OH * OW;
      T* di = d + p * H * W;
      for (index_t oh = 0; oh < OH; ++oh) {
        index_t h0 = oh * sh - ph;
        const index_t h1 = h0 + (kh - 1) * dh + 1 < H ? h0 + (kh - 1) * dh + 1 : H;
        while (h0 < 0) h0 += dh;
        for (index_t ow = 0; ow < OW; ++ow) {
          index_t w0 = ow * sw - pw;
          const index_t w1 = w0 + (kw - 1) * dw + 1 < W ? w0 + (kw - 1) * dw + 1 : W;
          while (w0 < 0) w0 += dw;
          const T m = out[oh * OW + ow];
          const bool nan = m != m;
          bool routed = false;
          for (index_t ih = h0; ih < h1 && !routed; ih += dh)
            for (index_t iw = w0; iw < w1; iw += dw) {
              const T v = in[ih * W + iw];
              if (v == m || (nan && v != v)) {
                di[ih * W + iw] += go[oh * OW + ow];
                routed = true;
                break;
              }
            }
        }
      }
    });
  }

  std::string describe() const {
    std::string s = "MaxPool2d(kernel=" + kernel_.str(true) + ", stride=" + stride_.str() + ", padding=" + padding_.str();
    if (dilation_ != Size2(1)) s += ", dilation=" + dilation_.str();
    if (ceil_mode_) s += ", ceil_mode=true";
    return s + ")";
  }

 private:
  // max(m, v) with a NaN winning (once m is NaN it stays); written as a select so it vectorizes.
  static GCNET_HD T take_max(T m, T v) { return (v > m || v != v) ? v : m; }

  Size2 kernel_, stride_, padding_, dilation_;
  bool ceil_mode_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(MaxPool2d)
}  // namespace gcnet
