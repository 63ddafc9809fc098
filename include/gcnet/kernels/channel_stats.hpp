#pragma once
// Per-channel sums over the N images and H*W positions of an NCHW tensor, in double, shared by
// BatchNorm2d and SyncBatchNorm2d. Called from a per-channel kernel body (GCNET_HD).
#include "gcnet/core/config.hpp"

namespace gcnet::detail {

struct MeanVar {
  double mean, var;  // biased variance
};

// Two passes (mean, then squared deviations): no cancellation when |mean| >> std.
template <class T>
GCNET_HD inline MeanVar channel_mean_var(const T* x, index_t n_images, index_t channels, index_t c, index_t hw) {
  double s = 0;
  for (index_t n = 0; n < n_images; ++n) {
    const T* p = x + (n * channels + c) * hw;
    GCNET_SIMD_REDUCE(+ : s)
    for (index_t j = 0; j < hw; ++j) s += p[j];
  }
  const double count = static_cast<double>(n_images * hw), m = s / count;
  double v = 0;
  for (index_t n = 0; n < n_images; ++n) {
    const T* p = x + (n * channels + c) * hw;
    GCNET_SIMD_REDUCE(+ : v)
    for (index_t j = 0; j < hw; ++j) {
      const double d = p[j] - m;
      v += d * d;
    }
  }
  return {m, v / count};
}

struct GradSums {
  double dy, dy_xmu;  // sum(dy), sum(dy * (x - mean))
};

template <class T>
GCNET_HD inline GradSums channel_grad_sums(const T* dy, const T* x, double mean, index_t n_images, index_t channels,
                                           index_t c, index_t hw) {
  double sdy = 0, sdyx = 0;
  for (index_t n = 0; n < n_images; ++n) {
    const T* gp = dy + (n * channels + c) * hw;
    const T* p = x + (n * channels + c) * hw;
    GCNET_SIMD_REDUCE(+ : sdy, sdyx)
    for (index_t j = 0; j < hw; ++j) {
      sdy += gp[j];
      sdyx += gp[j] * (p[j] - mean);
    }
  }
  return {sdy, sdyx};
}

}  // namespace gcnet::detail
