#pragma once
// MaxPool2d: torch.nn.MaxPool2d over NCHW input. Padding counts as -inf; windows of
// `kernel` taps `dilation` apart, `stride` apart (stride defaults to the kernel); ceil
// mode as PyTorch (see pooling::output_extent). Forward caches each output's argmax (an
// offset inside its plane); backward routes the gradient there. On ties the first
// maximum in window order (row-major) wins, and a NaN wins over numbers, as in PyTorch.
#include <limits>
#include <optional>
#include <string>

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
    argmax_.resize(y.shape());
    const index_t H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
    const index_t kh = kernel_.h, kw = kernel_.w, sh = stride_.h, sw = stride_.w;
    const index_t ph = padding_.h, pw = padding_.w, dh = dilation_.h, dw = dilation_.w;
    const T* xp = x.data();
    T* yp = y.data();
    index_t* ap = argmax_.data();
    for_each_index_weighted(B{}, x.size(0) * x.size(1), OH * OW * kh * kw, [=] GCNET_HD(index_t p) {
      const T* in = xp + p * H * W;
      T* out = yp + p * OH * OW;
      index_t* arg = ap + p * OH * OW;
      for (index_t oh = 0; oh < OH; ++oh) {
        // First tap inside the input and one past the last tap (torch's clipping).
        index_t h0 = oh * sh - ph;
        const index_t h1 = h0 + (kh - 1) * dh + 1 < H ? h0 + (kh - 1) * dh + 1 : H;
        while (h0 < 0) h0 += dh;
        for (index_t ow = 0; ow < OW; ++ow) {
          index_t w0 = ow * sw - pw;
          const index_t w1 = w0 + (kw - 1) * dw + 1 < W ? w0 + (kw - 1) * dw + 1 : W;
          while (w0 < 0) w0 += dw;
          T best = -std::numeric_limits<T>::infinity();
          index_t best_at = -1;  // stays -1 only if every tap lies in the padding
          for (index_t ih = h0; ih < h1; ih += dh)
            for (index_t iw = w0; iw < w1; iw += dw) {
              const T v = in[ih * W + iw];
              if (v > best || v != v || best_at < 0) {
                best = v;
                best_at = ih * W + iw;
              }
            }
          out[oh * OW + ow] = best;
          arg[oh * OW + ow] = best_at;
        }
      }
    });
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    GCNET_CHECK(argmax_.shape() == y.shape(), describe(), ": backward needs the argmax of a forward on this input (",
                "cached for output shape ", argmax_.shape().str(), ", got output shape ", y.shape().str(), ")");
    const index_t HW = x.size(2) * x.size(3), OHW = y.size(2) * y.size(3);
    const T* g = dy.data();
    const index_t* ap = argmax_.data();
    T* d = dx.data();
    for_each_index_weighted(B{}, x.size(0) * x.size(1), OHW, [=] GCNET_HD(index_t p) {
      for (index_t o = p * OHW; o < (p + 1) * OHW; ++o)
        if (ap[o] >= 0) d[p * HW + ap[o]] += g[o];
    });
  }

  std::string describe() const {
    std::string s = "MaxPool2d(kernel=" + kernel_.str(true) + ", stride=" + stride_.str() + ", padding=" + padding_.str();
    if (dilation_ != Size2(1)) s += ", dilation=" + dilation_.str();
    if (ceil_mode_) s += ", ceil_mode=true";
    return s + ")";
  }

 private:
  Size2 kernel_, stride_, padding_, dilation_;
  bool ceil_mode_;
  Tensor<index_t, B> argmax_;  // per output: offset of the maximum inside its input plane
};

}  // namespace gcnet
