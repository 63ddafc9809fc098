#pragma once
// One GEMM interface for both backends: row-major C = alpha * op(A) * op(B) + beta * C.
// The CPU version maps the buffers as Eigen matrices (Eigen's blocked, vectorized product,
// parallel over OpenMP threads); the CUDA version (gcnet/cuda/blas.hpp) calls cuBLAS.
// With beta == 0, C is never read (it may hold NaN).
#include <Eigen/Core>

#include "gcnet/core/backend.hpp"
#include "gcnet/core/config.hpp"

namespace gcnet::blas {

enum class Op { N, T };

template <Scalar T>
void gemm(Cpu, Op op_a, Op op_b, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
          const T* b, index_t ldb, T beta, T* c, index_t ldc) {
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
