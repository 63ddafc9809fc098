#pragma once
// Sums and dot products for the blocks' kernels. Without -ffast-math a compiler keeps a
// floating-point reduction in source order, one dependent add per element (scalar and
// latency-bound); `omp simd reduction` allows the reassociation, so it vectorizes.
#include "gcnet/core/config.hpp"

namespace gcnet::blocks {

template <class T>
GCNET_HD inline T dot(const T* a, const T* b, index_t n) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (index_t j = 0; j < n; ++j) acc += a[j] * b[j];
  return acc;
}

template <class T>
GCNET_HD inline T sum(const T* a, index_t n) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (index_t j = 0; j < n; ++j) acc += a[j];
  return acc;
}

}  // namespace gcnet::blocks
