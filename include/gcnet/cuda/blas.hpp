#pragma once
// blas::gemm(Cuda, ...): the row-major GEMM of kernels/blas.hpp on cuBLAS.
// cuBLAS is column-major; a row-major M x N matrix with leading dimension ld is the same
// memory as its column-major transpose, so C = op(A) op(B) is computed as
// C^T = op(B)^T op(A)^T: swap the operands and m/n, keep the ops.
// Each thread has one cuBLAS handle per device, bound to its current stream before a call.
// The default math mode is kept (no TF32), so results match the CPU GEMM to float rounding.
#include <cublas_v2.h>

#include <array>

#include "gcnet/core/backend.hpp"
#include "gcnet/core/config.hpp"
#include "gcnet/cuda/runtime.hpp"
#include "gcnet/cuda/stream.hpp"
#include "gcnet/kernels/blas.hpp"

namespace gcnet::cuda {

namespace detail {
[[noreturn]] inline void fail_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  gcnet::detail::fail("cuBLAS error ", cublasGetStatusName(s), " (", cublasGetStatusString(s), ") in ",
                      call, " at ", file, ":", line);
}
}  // namespace detail

}  // namespace gcnet::cuda

#define GCNET_CUBLAS_CHECK(expr)                                                    \
  do {                                                                              \
    const cublasStatus_t gcnet_cublas_st_ = (expr);                                 \
    if (gcnet_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                  \
      ::gcnet::cuda::detail::fail_cublas(gcnet_cublas_st_, #expr, __FILE__, __LINE__); \
  } while (0)

namespace gcnet::cuda {

// This thread's cuBLAS handle for the current device, set to the current stream.
// The stream is set on every call (cheap): a cached "already set" could be fooled by a new
// stream that reuses a destroyed one's handle value.
inline cublasHandle_t blas_handle() {
  struct Handles {
    std::array<cublasHandle_t, kMaxDevices> handle{};
    ~Handles() {
      for (cublasHandle_t h : handle)
        if (h) (void)cublasDestroy(h);
    }
  };
  thread_local Handles handles;
  const int d = current_device();
  GCNET_CHECK(d < kMaxDevices, "cuda: device index ", d, " exceeds gcnet's limit of ", kMaxDevices);
  cublasHandle_t& h = handles.handle[static_cast<std::size_t>(d)];
  if (!h) GCNET_CUBLAS_CHECK(cublasCreate(&h));
  GCNET_CUBLAS_CHECK(cublasSetStream(h, current_stream()));
  return h;
}

}  // namespace gcnet::cuda

namespace gcnet::blas {

namespace detail {
inline cublasOperation_t cublas_op(Op op) { return op == Op::N ? CUBLAS_OP_N : CUBLAS_OP_T; }
}  // namespace detail

// Row-major C = alpha * op(A) * op(B) + beta * C on the device; the pointers are device
// memory. With beta == 0, C is not read. Asynchronous on the current stream.
template <Scalar T>
void gemm(Cuda, Op op_a, Op op_b, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
          const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  if (m == 0 || n == 0) return;
  const cublasHandle_t h = cuda::blas_handle();
  const cublasOperation_t ob = detail::cublas_op(op_b), oa = detail::cublas_op(op_a);
  if constexpr (std::same_as<T, float>)
    GCNET_CUBLAS_CHECK(cublasSgemm_64(h, ob, oa, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
  else
    GCNET_CUBLAS_CHECK(cublasDgemm_64(h, ob, oa, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
}

}  // namespace gcnet::blas
