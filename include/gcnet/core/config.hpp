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

#include <cstdint>

namespace gcnet {
using index_t = std::int64_t;
}  // namespace gcnet
