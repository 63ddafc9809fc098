#pragma once
// Build-wide macros shared by the CPU and CUDA backends.

#if defined(__CUDACC__)
#define GCNET_HD __host__ __device__
#define GCNET_DEVICE_CODE 1
#else
#define GCNET_HD
#endif

#if defined(__GNUC__) || defined(__clang__)
#define GCNET_RESTRICT __restrict__
#else
#define GCNET_RESTRICT
#endif

// `omp simd reduction` lets a host loop reassociate a floating-point sum so it vectorizes;
// device code (and builds without OpenMP) get a plain loop.
#define GCNET_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP) && !defined(__CUDA_ARCH__)
#define GCNET_SIMD_REDUCE(...) GCNET_PRAGMA(omp simd reduction(__VA_ARGS__))
#define GCNET_SIMD GCNET_PRAGMA(omp simd)
#else
#define GCNET_SIMD_REDUCE(...)
#define GCNET_SIMD
#endif

#include <cstdint>

namespace gcnet {
using index_t = std::int64_t;
}  // namespace gcnet
