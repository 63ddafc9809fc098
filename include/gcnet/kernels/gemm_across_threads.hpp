#pragma once
// gemm_across_threads: blas::gemm, but on the CPU (outside a parallel region) the rows or
// columns of C are split across the threads, each running a single-threaded GEMM on its
// block, with nothing shared until the end. Why not Eigen's own threaded GEMM: it hands
// packed panels between threads with spin-waits, which stall badly when the cores are
// shared with other work. The project's float GEMM (AVX-512 processors) splits this way itself;
// small products and other backends go to blas::gemm directly.
#include <algorithm>

#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/blas.hpp"

namespace gcnet {

// Below this many flops a product is not worth a parallel region.
inline constexpr index_t kGemmSplitMinFlops = 2'000'000;

template <Scalar T, Backend B>
void gemm_across_threads(B, blas::Op op_a, blas::Op op_b, index_t m, index_t n, index_t k, T alpha, const T* a,
                         index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  if constexpr (std::same_as<B, Cpu>) {
    if (!blas::gemm_splits_over_threads<T>()) {
      // Block edges on whole registers of Eigen's micro-kernel (C's columns are its rows).
      auto product = [&](index_t rows, index_t cols, const T* a_block, const T* b_block, T* c_block) {
        blas::gemm(Cpu{}, op_a, op_b, rows, cols, k, alpha, a_block, lda, b_block, ldb, beta, c_block, ldc);
      };
      if (blas::detail::split_over_threads(op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc, 16, 32,
                                           double(kGemmSplitMinFlops), product))
        return;
    }
  }
  blas::gemm(B{}, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace gcnet
