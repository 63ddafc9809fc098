#pragma once
// The CUDA backend: include this (before using Tensor<T, Cuda>) and link gcnet::cuda.
// Everything but kernel launches is host code and works from .cpp files; layers and
// kernels instantiated with Cuda need a .cu file compiled by nvcc (docs/cuda.md).
#include "gcnet/core/parallel.hpp"
#include "gcnet/cuda/allocator.hpp"
#include "gcnet/cuda/blas.hpp"
#include "gcnet/cuda/copy.hpp"
#include "gcnet/cuda/runtime.hpp"
#include "gcnet/cuda/stream.hpp"

#if defined(__CUDACC__)
#include "gcnet/cuda/launch.cuh"
#else
namespace gcnet {
// Host compilers cannot launch kernels: say so instead of "no matching function".
template <class F>
void for_each_index(Cuda, index_t, F&&, index_t = 0) {
  static_assert(sizeof(F) == 0,
                "for_each_index(Cuda, ...) launches a kernel: compile this code with nvcc (a .cu file)");
}
}  // namespace gcnet
#endif
