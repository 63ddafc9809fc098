#pragma once
// gemm_across_threads: blas::gemm, but on the CPU (outside a parallel region) the rows or
// columns of C are split across the threads, each running a single-threaded GEMM on its
// block, with nothing shared until the end. Why not Eigen's own threaded GEMM: it hands
// packed panels between threads with spin-waits, which stall badly when the cores are
// shared with other work. Small products and other backends go to blas::gemm directly.
#include <algorithm>

#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/blas.hpp"

namespace gcnet {

// Below this many flops a product is not worth a parallel region.
inline constexpr index_t kGemmSplitMinFlops = 2'000'000;

template <Scalar T, Backend B>
void gemm_across_threads(B, blas::Op op_a, blas::Op op_b, index_t m, index_t n, index_t k, T alpha, const T* a,
                         index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  using blas::Op;
  if constexpr (std::same_as<B, Cpu>) {
#if defined(_OPENMP)
    const index_t threads = omp_in_parallel() ? 1 : num_threads();
#else
    const index_t threads = 1;
#endif
    const bool by_rows = m >= n;
    const index_t extent = by_rows ? m : n;
    // Block edges on whole registers of Eigen's micro-kernel (C's columns are its rows).
    const index_t align = by_rows ? 8 : 16;
    const index_t blocks = std::min<index_t>(threads, extent / (2 * align));
    if (blocks >= 2 && 2 * m * n * k >= kGemmSplitMinFlops) {
      auto edge = [=](index_t blk) {
        return blk >= blocks ? extent : std::min(extent, (blk * extent / blocks + align / 2) / align * align);
      };
      for_each_range(Cpu{}, blocks, [&](index_t b0, index_t b1) {
        for (index_t blk = b0; blk < b1; ++blk) {
          const index_t lo = edge(blk), hi = edge(blk + 1);
          if (hi <= lo) continue;
          if (by_rows)
            blas::gemm(Cpu{}, op_a, op_b, hi - lo, n, k, alpha, op_a == Op::N ? a + lo * lda : a + lo, lda, b, ldb,
                       beta, c + lo * ldc, ldc);
          else
            blas::gemm(Cpu{}, op_a, op_b, m, hi - lo, k, alpha, a, lda, op_b == Op::N ? b + lo : b + lo * ldb, ldb,
                       beta, c + lo, ldc);
        }
      }, 2);
      return;
    }
  }
  blas::gemm(B{}, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace gcnet
