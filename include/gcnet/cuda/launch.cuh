#pragma once
// for_each_index(Cuda, n, f): runs the same [=] GCNET_HD (index_t i) bodies that the CPU
// runs with OpenMP, as a grid-stride kernel on the current stream. Included by
// core/parallel.hpp when the translation unit is compiled by nvcc.
//
// The grid is capped at a few blocks per SM and each thread strides over the rest: large
// n then costs no more launch overhead than small n, and a body's fixed setup (e.g. a
// ViewGeometry it captured) is amortized over several indices.
// There is no for_each_range(Cuda): handing each GPU thread a contiguous block would break
// coalescing, and the per-thread scratch it exists for is a CPU idiom.
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "gcnet/core/backend.hpp"
#include "gcnet/core/config.hpp"
#include "gcnet/cuda/runtime.hpp"
#include "gcnet/cuda/stream.hpp"

namespace gcnet {

namespace cuda::detail {
inline constexpr int kBlockThreads = 256;
inline constexpr int kBlocksPerSm = 8;  // 8 x 256 = 2048 threads, a full Hopper SM

template <class F>
__global__ void __launch_bounds__(kBlockThreads) for_each_index_kernel(index_t n, F f) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}
}  // namespace cuda::detail

// `grain` is the CPU version's parallel threshold; it has no meaning for a launch.
template <class F>
void for_each_index(Cuda, index_t n, F&& f, index_t /*grain*/ = 0) {
  if (n <= 0) return;
  using Body = std::decay_t<F>;
  const index_t wanted = (n + cuda::detail::kBlockThreads - 1) / cuda::detail::kBlockThreads;
  const index_t cap = static_cast<index_t>(cuda::multiprocessor_count()) * cuda::detail::kBlocksPerSm;
  const auto blocks = static_cast<unsigned>(std::min(wanted, cap));
  cuda::detail::for_each_index_kernel<Body>
      <<<blocks, cuda::detail::kBlockThreads, 0, cuda::current_stream()>>>(n, Body(f));
  GCNET_CUDA_CHECK(cudaGetLastError());  // launch errors; faults in the body surface at the next sync
}

}  // namespace gcnet
