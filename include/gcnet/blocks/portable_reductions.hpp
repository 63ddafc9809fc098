#pragma once
// Sums and dot products in the blocks' backend-generic kernels (GCNET_HD: the CPU and CUDA run
// the same bodies). Without -ffast-math a compiler keeps a floating-point reduction in source
// order, one dependent add per element (scalar and latency-bound); `omp simd reduction` allows
// the reassociation, so it vectorizes.
// The CPU-only kernels of the fast paths (AVX-512 forms included) are in gcnet/cpu/reductions.hpp.
#include <cmath>
#include <concepts>

#include "gcnet/core/config.hpp"


namespace gcnet::blocks {

// Long sums (a row of H*W positions, a column of C channels) go in chunks: each chunk is
// vectorized, and the chunk sums are added in double. One vector chain per lane over the whole
// row would add eps * n / lanes of error (about 100 ulps at 28x28), where PyTorch's cascade sums
// add about eps * log2(n); the chunks bring ours to eps * (kSumChunk / lanes) at the cost of one
// horizontal add per chunk.
inline constexpr index_t kSumChunk = 128;

template <class T>
GCNET_HD inline T dot(const T* a, const T* b, index_t n) {
  double total = 0;
  for (index_t j0 = 0; j0 < n; j0 += kSumChunk) {
    const index_t j1 = n - j0 < kSumChunk ? n : j0 + kSumChunk;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (index_t j = j0; j < j1; ++j) acc += a[j] * b[j];
    total += acc;
  }
  return static_cast<T>(total);
}

// out[r] = rows[r * stride : + n] . v for r < 4: four independent accumulators sharing each
// load of v. A single dot's accumulator is one dependent chain of vector FMAs (latency-bound
// on short rows and on the transforms' weight rows); four chains run about twice as fast.
template <class T>
GCNET_HD inline void dot_rows4(const T* rows, index_t stride, const T* v, index_t n, T* out) {
  // One chain per lane, not chunks (as dot and sum): these feed the transforms' rows and the
  // context's tiles, where a horizontal sum per chunk of four accumulators cost 10-25% of the
  // CPU forward (measured at 2048@7), and the fidelity tests pass without it.
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
  double total = 0;
  for (index_t j0 = 0; j0 < n; j0 += kSumChunk) {
    const index_t j1 = n - j0 < kSumChunk ? n : j0 + kSumChunk;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (index_t j = j0; j < j1; ++j) acc += a[j];
    total += acc;
  }
  return static_cast<T>(total);
}

}  // namespace gcnet::blocks
