// Host-side tests of the CUDA backend that run everywhere, GPU or not: error reporting,
// device queries, the allocator's size classes, the current-stream bookkeeping, and the
// GCNET_HD kernel bodies of the shared headers compiled by nvcc and run on the CPU.
#include <cmath>
#include <thread>

#include "cuda_test_support.hpp"
#include "gcnet/layers/relu.hpp"
#include "gcnet/layers/sigmoid.hpp"
#include "gcnet/testing/gradient_check.hpp"

using namespace gcnet;
using test::random_tensor;

TEST_CASE("GCNET_CUDA_CHECK names the call, the place and the CUDA error") {
  auto failing = [] { GCNET_CUDA_CHECK(cudaErrorInvalidValue); };
  CHECK_THROWS_WITH_AS(failing(), doctest::Contains("cudaErrorInvalidValue"), gcnet::Error);
  CHECK_THROWS_WITH_AS(failing(), doctest::Contains("in cudaErrorInvalidValue at "), gcnet::Error);
  CHECK_THROWS_WITH_AS(failing(), doctest::Contains("test_cuda_host.cu:"), gcnet::Error);
  CHECK_THROWS_WITH_AS(failing(), doctest::Contains(cudaGetErrorString(cudaErrorInvalidValue)),
                       gcnet::Error);
  CHECK_NOTHROW(GCNET_CUDA_CHECK(cudaSuccess));
}

TEST_CASE("GCNET_CUBLAS_CHECK names the call and the cuBLAS status") {
  auto failing = [] { GCNET_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE); };
  CHECK_THROWS_WITH_AS(failing(), doctest::Contains("cuBLAS error CUBLAS_STATUS_INVALID_VALUE"), gcnet::Error);
  CHECK_THROWS_WITH_AS(failing(), doctest::Contains("test_cuda_host.cu:"), gcnet::Error);
}

TEST_CASE("device work without a device is a gcnet::Error, not a crash") {
  auto make_device_tensor = [] { Tensor<float, Cuda> t(Shape{4}); };
  if (cuda::available()) {
    CHECK_NOTHROW(make_device_tensor());
    return;
  }
  CHECK_THROWS_WITH_AS(make_device_tensor(), doctest::Contains("CUDA error"), gcnet::Error);
  CHECK_THROWS_WITH_AS(cuda::set_device(0), doctest::Contains("cuda::set_device: device 0 out of range (0 devices)"),
                       gcnet::Error);
}

TEST_CASE("device queries answer without throwing") {
  int n = -1;
  CHECK_NOTHROW(n = cuda::device_count());
  CHECK(n >= 0);
  CHECK(cuda::available() == (n > 0));
  CHECK(cuda::unavailable_reason().empty() == cuda::available());
  CHECK(cuda::device_count() == n);  // cached, stable
}

TEST_CASE("allocator size classes round up by at most a quarter") {
  CHECK(cuda::round_size(1) == 512);
  CHECK(cuda::round_size(512) == 512);
  CHECK(cuda::round_size(513) == 640);
  CHECK(cuda::round_size(1024) == 1024);
  CHECK(cuda::round_size(1025) == 1280);
  std::size_t previous = 0;
  for (std::size_t b = 1; b < (std::size_t{1} << 22); b = b * 5 / 4 + 1) {
    const std::size_t r = cuda::round_size(b);
    CHECK(r >= b);
    CHECK(r >= previous);  // monotonic
    if (b > 512) CHECK(r - b < b / 4 + 1);
    CHECK(cuda::round_size(r) == r);  // a class rounds to itself
    previous = r;
  }
}

TEST_CASE("the current stream is per thread, default unless a guard sets one") {
  // cudaStreamPerThread is a special handle value: no driver call is needed to use it here.
  CHECK(cuda::current_stream() == nullptr);
  {
    cuda::StreamGuard guard(cudaStreamPerThread);
    CHECK(cuda::current_stream() == cudaStreamPerThread);
    cudaStream_t seen_by_other = cudaStreamPerThread;
    std::thread([&] { seen_by_other = cuda::current_stream(); }).join();
    CHECK(seen_by_other == nullptr);
    {
      cuda::StreamGuard inner(nullptr);
      CHECK(cuda::current_stream() == nullptr);
    }
    CHECK(cuda::current_stream() == cudaStreamPerThread);
  }
  CHECK(cuda::current_stream() == nullptr);
}

TEST_CASE("element-wise GCNET_HD bodies compiled by nvcc run on the CPU") {
  const index_t n = 40000;  // above the OpenMP grain
  const auto a = random_tensor<float>({n}, 1), b = random_tensor<float>({n}, 2);
  Tensor<float, Cpu> out;
  add(a, b, out);
  for (index_t i = 0; i < n; i += 997) CHECK(out[i] == a[i] + b[i]);

  auto acc = clone(a);
  add_scaled(acc, b, 0.5f);
  for (index_t i = 0; i < n; i += 997) CHECK(acc[i] == a[i] + 0.5f * b[i]);

  Tensor<float, Cpu> filled({7, 3});
  fill(filled, 2.5f);
  for (index_t i = 0; i < filled.numel(); ++i) CHECK(filled[i] == 2.5f);

  const auto m = random_tensor<double>({4, 6, 5}, 3);
  const auto view = m.narrow(1, 2, 3);  // strided
  REQUIRE_FALSE(view.is_contiguous());
  const auto dense = clone(view);
  for (index_t i = 0; i < 4; ++i)
    for (index_t j = 0; j < 3; ++j)
      for (index_t k = 0; k < 5; ++k) CHECK(dense.at({i, j, k}) == m.at({i, j + 2, k}));
}

TEST_CASE("ReLU and Sigmoid compiled by nvcc: CPU forward/backward match the formulas") {
  const Shape s{2, 3, 5, 7};
  const auto x = random_tensor<float>(s, 4), dy = random_tensor<float>(s, 5);
  const auto dx0 = random_tensor<float>(s, 6);

  ReLU<float, Cpu> relu;
  Tensor<float, Cpu> y;
  relu.forward(x, y);
  auto dx = clone(dx0);
  relu.backward(x, y, dy, dx);
  for (index_t i = 0; i < x.numel(); ++i) {
    CHECK(y[i] == (x[i] > 0 ? x[i] : 0.0f));
    CHECK(dx[i] == dx0[i] + (x[i] > 0 ? dy[i] : 0.0f));
  }

  Sigmoid<float, Cpu> sigmoid;
  sigmoid.forward(x, y);
  dx = clone(dx0);
  sigmoid.backward(x, y, dy, dx);
  for (index_t i = 0; i < x.numel(); ++i) {
    const double ref = 1.0 / (1.0 + std::exp(-static_cast<double>(x[i])));
    CHECK(std::abs(y[i] - ref) <= 1e-6);
    CHECK(std::abs(dx[i] - (dx0[i] + dy[i] * y[i] * (1 - y[i]))) <= 1e-6);
  }
  CHECK(stable_sigmoid(-200.0f) >= 0.0f);
  CHECK(stable_sigmoid(200.0f) == 1.0f);
}

TEST_CASE("ReLU and Sigmoid compiled by nvcc pass the gradient check") {
  ReLU<double, Cpu> relu;
  const auto r1 = testing::check_gradients(relu, {2, 3, 4, 4});
  CHECK_MESSAGE(r1.ok, r1.report);
  Sigmoid<double, Cpu> sigmoid;
  const auto r2 = testing::check_gradients(sigmoid, {2, 3, 4, 4});
  CHECK_MESSAGE(r2.ok, r2.report);
}

TEST_CASE("CPU gemm compiled by nvcc matches a naive product") {
  using blas::Op;
  const index_t m = 5, n = 4, k = 6, pad = 2;
  for (Op oa : {Op::N, Op::T})
    for (Op ob : {Op::N, Op::T})
      for (double beta : {0.0, 0.5}) {
        CAPTURE(static_cast<int>(oa));
        CAPTURE(static_cast<int>(ob));
        CAPTURE(beta);
        const index_t a_rows = oa == Op::N ? m : k, a_cols = oa == Op::N ? k : m;
        const index_t b_rows = ob == Op::N ? k : n, b_cols = ob == Op::N ? n : k;
        const auto a = random_tensor<double>({a_rows, a_cols + pad}, 7);
        const auto b = random_tensor<double>({b_rows, b_cols + pad}, 8);
        const auto c0 = random_tensor<double>({m, n + pad}, 9);
        auto c = clone(c0);
        blas::gemm(Cpu{}, oa, ob, m, n, k, 1.5, a.data(), a_cols + pad, b.data(), b_cols + pad, beta,
                   c.data(), n + pad);
        for (index_t i = 0; i < m; ++i)
          for (index_t j = 0; j < n; ++j) {
            double acc = 0;
            for (index_t p = 0; p < k; ++p)
              acc += (oa == Op::N ? a.at({i, p}) : a.at({p, i})) * (ob == Op::N ? b.at({p, j}) : b.at({j, p}));
            CHECK(c.at({i, j}) == doctest::Approx(1.5 * acc + beta * c0.at({i, j})).epsilon(1e-12));
          }
      }
}
