#pragma once
// Sums and dot products for the blocks' kernels. Without -ffast-math a compiler keeps a
// floating-point reduction in source order, one dependent add per element (scalar and
// latency-bound); `omp simd reduction` allows the reassociation, so it vectorizes.
#include <bit>
#include <cmath>
#include <concepts>

#include "gcnet/core/config.hpp"

namespace gcnet {
namespace detail {
// exp for softmax rows (NonLocal2d's attention, GC's attention pooling): float uses a
// branch-free Cephes-style polynomial that the compiler vectorizes (std::exp is a scalar
// call, about a third of NL's forward time at 56x56); ~1 ulp on [-87, 0], where a softmax
// evaluates it (below -87 it returns exp(-87) ~ 1.6e-38, not 0). double keeps std::exp.
template <class T>
GCNET_HD inline T softmax_exp(T x) {
  if constexpr (std::same_as<T, float>) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    // n = round(x / ln 2) by the 1.5 * 2^23 trick (no floor call, so the loop vectorizes)
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const float scale = std::bit_cast<float>((static_cast<int>(n) + 127) << 23);
    return p * scale;
  } else {
    return std::exp(x);
  }
}
}  // namespace detail
}  // namespace gcnet

namespace gcnet::blocks {

template <class T>
GCNET_HD inline T dot(const T* a, const T* b, index_t n) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (index_t j = 0; j < n; ++j) acc += a[j] * b[j];
  return acc;
}

// out[r] = rows[r * stride : + n] . v for r < 4: four independent accumulators sharing each
// load of v. A single dot's accumulator is one dependent chain of vector FMAs (latency-bound
// on short rows and on the transforms' weight rows); four chains run about twice as fast.
template <class T>
GCNET_HD inline void dot_rows4(const T* rows, index_t stride, const T* v, index_t n, T* out) {
  const T *r0 = rows, *r1 = rows + stride, *r2 = rows + 2 * stride, *r3 = rows + 3 * stride;
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
  for (index_t j = 0; j < n; ++j) {
    const T x = v[j];
    s0 += r0[j] * x;
    s1 += r1[j] * x;
    s2 += r2[j] * x;
    s3 += r3[j] * x;
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

template <class T>
GCNET_HD inline T sum(const T* a, index_t n) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (index_t j = 0; j < n; ++j) acc += a[j];
  return acc;
}

}  // namespace gcnet::blocks
