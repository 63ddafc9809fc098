#pragma once
// AvgPool2d: torch.nn.AvgPool2d over NCHW input (stride defaults to the kernel).
// The divisor follows PyTorch: with count_include_pad it is the window clipped to the
// padded input (so in ceil mode a window hanging past the right/bottom padding counts
// only up to the padding's edge), otherwise the number of real input elements in the
// window; divisor_override replaces both.
#include <optional>
#include <string>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/layers/pooling_geometry.hpp"

namespace gcnet {

struct AvgPool2dOptions {
  Size2 kernel;
  std::optional<Size2> stride = std::nullopt;  // default: the kernel size
  Size2 padding = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;
  std::optional<index_t> divisor_override = std::nullopt;
};

namespace detail {
// One pooling window along an axis: the real input range [begin, end) and the count
// PyTorch divides by when padding is included.
struct AvgWindow {
  index_t begin, end, padded_count;
};
GCNET_HD inline AvgWindow avg_window(index_t o, index_t in, index_t kernel, index_t stride, index_t pad) {
  const index_t start = o * stride - pad;
  const index_t stop = start + kernel < in + pad ? start + kernel : in + pad;
  return {start > 0 ? start : 0, stop < in ? stop : in, stop - start};
}
// What a window's sum is divided by (override > 0 replaces the count).
GCNET_HD inline index_t avg_divisor(const AvgWindow& h, const AvgWindow& w, index_t override_divisor,
                                    bool count_include_pad) {
  if (override_divisor > 0) return override_divisor;
  return count_include_pad ? h.padded_count * w.padded_count : (h.end - h.begin) * (w.end - w.begin);
}
}  // namespace detail

template <Scalar T = float, Backend B = Cpu>
class AvgPool2d {
 public:
  using value_type = T;
  using backend_type = B;

  explicit AvgPool2d(const AvgPool2dOptions& o)
      : kernel_(o.kernel), stride_(o.stride.value_or(o.kernel)), padding_(o.padding), ceil_mode_(o.ceil_mode),
        count_include_pad_(o.count_include_pad), divisor_override_(o.divisor_override.value_or(0)) {
    pooling::check_options(describe(), kernel_, stride_, padding_, Size2(1));
    GCNET_CHECK(!o.divisor_override || *o.divisor_override > 0, describe(),
                ": divisor_override must be positive, got ", o.divisor_override.value_or(0));
  }

  Shape setup(const Shape& in) {
    return pooling::output_shape(describe(), in, kernel_, stride_, padding_, Size2(1), ceil_mode_);
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    require_contiguous(x, describe(), "input");
    y.resize(setup(x.shape()));
    const index_t H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
    const index_t kh = kernel_.h, kw = kernel_.w, sh = stride_.h, sw = stride_.w, ph = padding_.h, pw = padding_.w;
    const index_t divisor = divisor_override_;
    const bool include_pad = count_include_pad_;
    const T* xp = x.data();
    T* yp = y.data();
    for_each_index_weighted(B{}, x.size(0) * x.size(1), OH * OW * kh * kw, [=] GCNET_HD(index_t p) {
      const T* in = xp + p * H * W;
      T* out = yp + p * OH * OW;
      for (index_t oh = 0; oh < OH; ++oh) {
        const detail::AvgWindow wh = detail::avg_window(oh, H, kh, sh, ph);
        for (index_t ow = 0; ow < OW; ++ow) {
          const detail::AvgWindow ww = detail::avg_window(ow, W, kw, sw, pw);
          T sum = 0;
          for (index_t ih = wh.begin; ih < wh.end; ++ih)
            for (index_t iw = ww.begin; iw < ww.end; ++iw) sum += in[ih * W + iw];
          const index_t count = detail::avg_divisor(wh, ww, divisor, include_pad);
          // An empty window (impossible with PyTorch's padding rule) gives 0, as in torch.
          out[oh * OW + ow] = count > 0 && wh.begin < wh.end && ww.begin < ww.end ? sum / T(count) : T(0);
        }
      }
    });
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    const index_t H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
    const index_t kh = kernel_.h, kw = kernel_.w, sh = stride_.h, sw = stride_.w, ph = padding_.h, pw = padding_.w;
    const index_t divisor = divisor_override_;
    const bool include_pad = count_include_pad_;
    const T* g = dy.data();
    T* d = dx.data();
    for_each_index_weighted(B{}, x.size(0) * x.size(1), OH * OW * kh * kw, [=] GCNET_HD(index_t p) {
      const T* go = g + p * OH * OW;
      T* gi = d + p * H * W;
      for (index_t oh = 0; oh < OH; ++oh) {
        const detail::AvgWindow wh = detail::avg_window(oh, H, kh, sh, ph);
        for (index_t ow = 0; ow < OW; ++ow) {
          const detail::AvgWindow ww = detail::avg_window(ow, W, kw, sw, pw);
          const index_t count = detail::avg_divisor(wh, ww, divisor, include_pad);
          if (count <= 0) continue;
          const T share = go[oh * OW + ow] / T(count);
          for (index_t ih = wh.begin; ih < wh.end; ++ih)
            for (index_t iw = ww.begin; iw < ww.end; ++iw) gi[ih * W + iw] += share;
        }
      }
    });
  }

  std::string describe() const {
    std::string s = "AvgPool2d(kernel=" + kernel_.str(true) + ", stride=" + stride_.str() + ", padding=" + padding_.str();
    if (ceil_mode_) s += ", ceil_mode=true";
    if (!count_include_pad_) s += ", count_include_pad=false";
    if (divisor_override_ > 0) s += ", divisor_override=" + std::to_string(divisor_override_);
    return s + ")";
  }

 private:
  Size2 kernel_, stride_, padding_;
  bool ceil_mode_, count_include_pad_;
  index_t divisor_override_;  // 0: none
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(AvgPool2d)
}  // namespace gcnet
