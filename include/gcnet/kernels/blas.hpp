#pragma once
// One GEMM interface for both backends: row-major C = alpha * op(A) * op(B) + beta * C.
// The CPU version runs float products through the project's own packed GEMM
// (cpu/sgemm_avx512.hpp on AVX-512 processors, cpu/sgemm_avx2.hpp on AVX2 + FMA ones: cpu::isa(),
// decided at run time, so every translation unit has the same body), split over the OpenMP
// threads when called outside a parallel region; other products map the buffers as Eigen matrices (Eigen's blocked,
// vectorized product, parallel over OpenMP threads). The CUDA version (gcnet/cuda/blas.hpp)
// calls cuBLAS. With beta == 0, C is never read (it may hold NaN).
#include <Eigen/Core>
#include <algorithm>
#include <type_traits>

#include "gcnet/core/backend.hpp"
#include "gcnet/core/config.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/cpu/isa.hpp"
#include "gcnet/cpu/sgemm_avx2.hpp"
#include "gcnet/cpu/sgemm_avx512.hpp"

namespace gcnet::blas {

enum class Op { N, T };

// Whether blas::gemm(Cpu, ...) runs T's products on the project's own GEMM here (float on an
// AVX2 or AVX-512 processor), which splits a product over the threads itself (Eigen's own threading is
// avoided, see gemm_across_threads.hpp).
template <class T>
inline bool gemm_splits_over_threads() {
#if GCNET_CPU_AVX512_KERNELS
  return std::is_same_v<T, float> && cpu::isa() != cpu::Isa::Generic;
#else
  return false;
#endif
}

namespace detail {
// Splits C's rows (or columns, when it is wider than tall) into one block per thread, edges on
// multiples of row_align (col_align), and calls product(rows, cols, a, b, c) on each block with
// the operands offset to it: each thread packs its own panels, nothing is shared until the end.
// Returns false, doing nothing, inside a parallel region, on one thread or below min_flops.
template <class T, class Product>
bool split_over_threads(Op op_a, Op op_b, index_t m, index_t n, index_t k, const T* a, index_t lda, const T* b,
                        index_t ldb, T* c, index_t ldc, index_t row_align, index_t col_align, double min_flops,
                        Product&& product) {
#if defined(_OPENMP)
  const index_t threads = omp_in_parallel() ? 1 : num_threads();
#else
  const index_t threads = 1;
#endif
  const bool by_rows = m >= n;
  const index_t extent = by_rows ? m : n, align = by_rows ? row_align : col_align;
  const index_t blocks = std::min<index_t>(threads, extent / align);
  if (blocks < 2 || 2.0 * double(m) * double(n) * double(k) < min_flops) return false;
  const index_t tiles = (extent + align - 1) / align;
  for_each_range(Cpu{}, blocks, [&](index_t b0, index_t b1) {
    for (index_t blk = b0; blk < b1; ++blk) {
      const index_t lo = std::min(extent, tiles * blk / blocks * align);
      const index_t hi = std::min(extent, tiles * (blk + 1) / blocks * align);
      if (hi <= lo) continue;
      if (by_rows) product(hi - lo, n, op_a == Op::N ? a + lo * lda : a + lo, b, c + lo * ldc);
      else product(m, hi - lo, a, op_b == Op::N ? b + lo : b + lo * ldb, c + lo);
    }
  }, 2);
  return true;
}

// One of the project's serial float GEMMs (cpu/sgemm_*.hpp, micro-tile mr x nr), split over the
// threads when it pays.
template <class SerialGemm>
void own_sgemm(SerialGemm serial, index_t mr, index_t nr, Op op_a, Op op_b, index_t m, index_t n, index_t k,
               float alpha, const float* a, index_t lda, const float* b, index_t ldb, float beta, float* c,
               index_t ldc) {
  const bool ta = op_a == Op::T, tb = op_b == Op::T;
  auto product = [&](index_t rows, index_t cols, const float* a_block, const float* b_block, float* c_block) {
    serial(ta, tb, rows, cols, k, alpha, a_block, lda, b_block, ldb, beta, c_block, ldc, {});
  };
  if (!split_over_threads(op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc, mr, nr, 4e6, product))
    product(m, n, a, b, c);
}
}  // namespace detail

template <Scalar T>
void gemm(Cpu, Op op_a, Op op_b, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
          const T* b, index_t ldb, T beta, T* c, index_t ldc) {
#if GCNET_CPU_AVX512_KERNELS
  // Vector-shaped products (a row or column of C) stay with Eigen's GEMV.
  if constexpr (std::is_same_v<T, float>) {
    if (m >= 4 && n >= 4 && k > 0 && cpu::isa() != cpu::Isa::Generic) {
      if (cpu::isa() == cpu::Isa::Avx512) {
        namespace sgemm = cpu::isa_avx512::sgemm;
        detail::own_sgemm(sgemm::gemm, sgemm::kMR, sgemm::kNR, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      } else {
        namespace sgemm = cpu::isa_avx2::sgemm;
        detail::own_sgemm(sgemm::gemm, sgemm::kMR, sgemm::kNR, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      }
      return;
    }
  }
#endif
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CMap = Eigen::Map<const Mat, Eigen::Unaligned, Eigen::OuterStride<>>;
  using MMap = Eigen::Map<Mat, Eigen::Unaligned, Eigen::OuterStride<>>;
  MMap cm(c, m, n, Eigen::OuterStride<>(ldc));
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == T(0)) cm.setZero(); else cm *= beta;
    return;
  }
  // Stored shapes of A and B (before op).
  const CMap am(a, op_a == Op::N ? m : k, op_a == Op::N ? k : m, Eigen::OuterStride<>(lda));
  const CMap bm(b, op_b == Op::N ? k : n, op_b == Op::N ? n : k, Eigen::OuterStride<>(ldb));
  auto run = [&](const auto& lhs, const auto& rhs) {
    if (beta == T(0)) {
      cm.noalias() = alpha * (lhs * rhs);
    } else {
      if (beta != T(1)) cm *= beta;
      cm.noalias() += alpha * (lhs * rhs);
    }
  };
  if (op_a == Op::N && op_b == Op::N) run(am, bm);
  else if (op_a == Op::N) run(am, bm.transpose());
  else if (op_b == Op::N) run(am.transpose(), bm);
  else run(am.transpose(), bm.transpose());
}

// ---- a left operand packed once, for many serial products against it ----
// A convolution's forward multiplies its weight with every band of its unfolded columns; the
// project's AVX2 GEMM packs op(A) anew in each product, which for a deep layer's weight (512 x
// 4608 floats, 9 MB) is a tenth of the band's time. Where packs_lhs<T>() (float on an AVX2
// processor) the caller packs it once with pack_lhs into packed_lhs_size floats and runs
// gemm_packed_lhs per band (serial: it is meant for the threads' own tasks). Elsewhere the caller
// keeps calling gemm.
template <class T>
inline bool packs_lhs() {
#if GCNET_CPU_AVX512_KERNELS
  return std::is_same_v<T, float> && cpu::isa() == cpu::Isa::Avx2;
#else
  return false;
#endif
}

#if GCNET_CPU_AVX512_KERNELS
inline index_t packed_lhs_size(index_t m, index_t k) { return cpu::isa_avx2::sgemm::packed_a_size(m, k); }

// op(A) [m x k] -> out (packed_lhs_size(m, k) floats). Only where packs_lhs<float>().
inline void pack_lhs(Op op_a, const float* a, index_t lda, index_t m, index_t k, float* out) {
  cpu::isa_avx2::sgemm::pack_a_whole(op_a == Op::T, a, lda, m, k, out);
}

// C = alpha * op(A) op(B) + beta * C on the calling thread, op(A) [m x k] from pack_lhs.
inline void gemm_packed_lhs(const float* packed_a, index_t m, index_t n, index_t k, float alpha, Op op_b,
                            const float* b, index_t ldb, float beta, float* c, index_t ldc) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  cpu::isa_avx2::sgemm::gemm_packed_a(packed_a, m, n, k, alpha, op_b == Op::T, b, ldb, beta, c, ldc);
}
#endif

}  // namespace gcnet::blas

// Programs with many translation units may define GCNET_EXTERN_BLAS and compile
// gcnet/kernels/blas_instances.hpp in one of them: Eigen's product is then compiled once
// instead of in every unit (the project's own tests and examples do this).
#if defined(GCNET_EXTERN_BLAS)
namespace gcnet::blas {
extern template void gemm<float>(Cpu, Op, Op, index_t, index_t, index_t, float, const float*, index_t, const float*,
                                 index_t, float, float*, index_t);
extern template void gemm<double>(Cpu, Op, Op, index_t, index_t, index_t, double, const double*, index_t,
                                  const double*, index_t, double, double*, index_t);
}  // namespace gcnet::blas
#endif
