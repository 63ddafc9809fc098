#pragma once
// Explicit instantiations of the CPU GEMM; include in exactly one translation unit of a
// program built with GCNET_EXTERN_BLAS (see kernels/blas.hpp).
#include "gcnet/kernels/blas.hpp"

namespace gcnet::blas {
template void gemm<float>(Cpu, Op, Op, index_t, index_t, index_t, float, const float*, index_t, const float*, index_t,
                          float, float*, index_t);
template void gemm<double>(Cpu, Op, Op, index_t, index_t, index_t, double, const double*, index_t, const double*,
                           index_t, double, double*, index_t);
}  // namespace gcnet::blas
