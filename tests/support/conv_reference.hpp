#pragma once
// Direct (loop-nest) convolution and transposed convolution in double precision, with
// their gradients: the independent reference that the im2col/GEMM paths of Conv2d and
// ConvTranspose2d (banded, per-thread, stacked, pointwise) are compared against.
#include "gcnet/core/tensor.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/size2.hpp"

namespace gcnet::test {

struct ConvSpec {
  index_t in = 0, out = 0;
  Size2 kernel = 1, stride = 1, padding = 0, dilation = 1, output_padding = 0;
  index_t groups = 1;
};

struct ConvResult {
  Tensor<double> y, dx, dw, db;
};

// For every (n, c_in, o, i, j, ih, iw, oh, ow) tap of a convolution with weight layout
// [out, in/groups, kh, kw]: f(x index, weight index, y index).
template <class F>
void for_each_conv_tap(const ConvSpec& s, const Shape& xs, const Shape& ys, F&& f) {
  const index_t cg = s.in / s.groups, og = s.out / s.groups;
  for (index_t n = 0; n < xs.n(); ++n)
    for (index_t o = 0; o < s.out; ++o)
      for (index_t cc = 0; cc < cg; ++cc) {
        const index_t c = (o / og) * cg + cc;
        for (index_t i = 0; i < s.kernel.h; ++i)
          for (index_t j = 0; j < s.kernel.w; ++j)
            for (index_t oh = 0; oh < ys.h(); ++oh)
              for (index_t ow = 0; ow < ys.w(); ++ow) {
                const index_t ih = oh * s.stride.h - s.padding.h + i * s.dilation.h;
                const index_t iw = ow * s.stride.w - s.padding.w + j * s.dilation.w;
                if (ih < 0 || ih >= xs.h() || iw < 0 || iw >= xs.w()) continue;
                f(((n * s.in + c) * xs.h() + ih) * xs.w() + iw, ((o * cg + cc) * s.kernel.h + i) * s.kernel.w + j,
                  ((n * s.out + o) * ys.h() + oh) * ys.w() + ow);
              }
      }
}

// Conv2d: y = conv(x, w) + b; gradients for the output gradient dy.
inline ConvResult conv2d_reference(const ConvSpec& s, const Tensor<double>& x, const Tensor<double>& w,
                                   const Tensor<double>* b, const Tensor<double>& dy) {
  const Shape& xs = x.shape();
  const index_t oh = (xs.h() + 2 * s.padding.h - s.dilation.h * (s.kernel.h - 1) - 1) / s.stride.h + 1;
  const index_t ow = (xs.w() + 2 * s.padding.w - s.dilation.w * (s.kernel.w - 1) - 1) / s.stride.w + 1;
  const Shape ys{xs.n(), s.out, oh, ow};
  ConvResult r{zeros<double>(ys), zeros<double>(xs), zeros<double>(w.shape()), zeros<double>(Shape{s.out})};
  for_each_conv_tap(s, xs, ys, [&](index_t xi, index_t wi, index_t yi) {
    r.y[yi] += w[wi] * x[xi];
    r.dx[xi] += w[wi] * dy[yi];
    r.dw[wi] += x[xi] * dy[yi];
  });
  const index_t area = oh * ow;
  for (index_t i = 0; i < r.y.numel(); ++i) {
    const index_t o = (i / area) % s.out;
    if (b) r.y[i] += (*b)[o];
    r.db[o] += dy[i];
  }
  return r;
}

// ConvTranspose2d (weight [in, out/groups, kh, kw]): the adjoint of a convolution from
// the output back to the input, so the same taps with x and y swapped.
inline ConvResult conv_transpose2d_reference(const ConvSpec& s, const Tensor<double>& x, const Tensor<double>& w,
                                             const Tensor<double>* b, const Tensor<double>& dy) {
  const Shape& xs = x.shape();
  const index_t oh = (xs.h() - 1) * s.stride.h - 2 * s.padding.h + s.dilation.h * (s.kernel.h - 1) + s.output_padding.h + 1;
  const index_t ow = (xs.w() - 1) * s.stride.w - 2 * s.padding.w + s.dilation.w * (s.kernel.w - 1) + s.output_padding.w + 1;
  const Shape ys{xs.n(), s.out, oh, ow};
  ConvResult r{zeros<double>(ys), zeros<double>(xs), zeros<double>(w.shape()), zeros<double>(Shape{s.out})};
  // The "convolution" runs from y (s.out channels) to x (s.in channels).
  ConvSpec adj = s;
  adj.in = s.out;
  adj.out = s.in;
  for_each_conv_tap(adj, ys, xs, [&](index_t yi, index_t wi, index_t xi) {
    r.y[yi] += w[wi] * x[xi];
    r.dx[xi] += w[wi] * dy[yi];
    r.dw[wi] += x[xi] * dy[yi];
  });
  const index_t area = oh * ow;
  for (index_t i = 0; i < r.y.numel(); ++i) {
    const index_t o = (i / area) % s.out;
    if (b) r.y[i] += (*b)[o];
    r.db[o] += dy[i];
  }
  return r;
}

}  // namespace gcnet::test
