// Kernels on the device: for_each_index(Cuda) with the shared element-wise bodies, the
// ReLU / Sigmoid layers instantiated with Cuda against their CPU instantiation (the bodies
// are written once), and cuBLAS gemm against the CPU gemm.
// Each test skips visibly (ctest "Skipped") without a GPU.
#include <limits>

#include "cuda_test_support.hpp"
#include "gcnet/layers/relu.hpp"
#include "gcnet/layers/sigmoid.hpp"

using namespace gcnet;
using test::max_abs_diff;
using test::random_tensor;
using test::relative_error;

TEST_CASE("for_each_index(Cuda): fill, copy, add and a custom body") {
  GCNET_REQUIRE_CUDA_DEVICE();
  // More indices than the capped grid has threads, so the grid-stride loop goes round.
  for (index_t n : {index_t{1}, index_t{1000}, index_t{(1 << 22) + 37}}) {
    CAPTURE(n);
    Tensor<float, Cuda> d({n});
    fill(d, 3.5f);
    const auto filled = to_backend<Cpu>(d);
    index_t wrong = 0;
    for (index_t i = 0; i < n; ++i) wrong += filled[i] != 3.5f;
    CHECK(wrong == 0);

    const auto a = random_tensor<float>({n}, 21), b = random_tensor<float>({n}, 22);
    const auto da = to_backend<Cuda>(a), db = to_backend<Cuda>(b);
    Tensor<float, Cuda> dc;
    copy(da, dc);
    CHECK(max_abs_diff(to_backend<Cpu>(dc), a) == 0);

    Tensor<float, Cpu> sum;
    add(a, b, sum);
    Tensor<float, Cuda> dsum;
    add(da, db, dsum);
    CHECK(max_abs_diff(to_backend<Cpu>(dsum), sum) == 0);

    // alpha a power of two: alpha * b is exact, so a device FMA rounds as the host does.
    auto acc = clone(a);
    add_scaled(acc, b, -0.25f);
    add_scaled(dc, db, -0.25f);
    CHECK(max_abs_diff(to_backend<Cpu>(dc), acc) == 0);

    float* p = d.data();
    for_each_index(Cuda{}, n, [=] GCNET_HD(index_t i) { p[i] = static_cast<float>(i % 1021) * 0.5f; });
    const auto custom = to_backend<Cpu>(d);
    wrong = 0;
    for (index_t i = 0; i < n; ++i) wrong += custom[i] != static_cast<float>(i % 1021) * 0.5f;
    CHECK(wrong == 0);
  }
  CHECK_NOTHROW(for_each_index(Cuda{}, 0, [] GCNET_HD(index_t) {}));
}

TEST_CASE("for_each_index(Cuda): strided copy matches the CPU") {
  GCNET_REQUIRE_CUDA_DEVICE();
  const auto h = random_tensor<double>({3, 7, 4, 5}, 23);
  const auto d = to_backend<Cuda>(h);
  const auto h_view = h.narrow(1, 2, 4).narrow(3, 1, 3);
  const auto d_view = d.narrow(1, 2, 4).narrow(3, 1, 3);
  Tensor<double, Cuda> dense;
  copy(d_view, dense);
  CHECK(max_abs_diff(to_backend<Cpu>(dense), clone(h_view)) == 0);
}

namespace {
// Runs forward and backward of a layer on both backends with the same inputs and compares:
// bit for bit when tolerance is 0, else normwise relative (device exp and FMA contraction
// round differently from the host). The device output is pre-filled with NaN: forward must
// write every element.
template <template <Scalar, Backend> class L>
void check_layer_matches_cpu(const Shape& s, double tolerance) {
  const auto x = random_tensor<float>(s, 31), dy = random_tensor<float>(s, 32);
  const auto dx0 = random_tensor<float>(s, 33);

  L<float, Cpu> cpu;
  Tensor<float, Cpu> y;
  cpu.forward(x, y);
  auto dx = clone(dx0);
  cpu.backward(x, y, dy, dx);

  L<float, Cuda> gpu;
  const auto dev_x = to_backend<Cuda>(x), dev_dy = to_backend<Cuda>(dy);
  Tensor<float, Cuda> dev_y(s);
  fill(dev_y, std::numeric_limits<float>::quiet_NaN());
  gpu.forward(dev_x, dev_y);
  auto dev_dx = to_backend<Cuda>(dx0);
  gpu.backward(dev_x, dev_y, dev_dy, dev_dx);

  CHECK(gpu.describe() == cpu.describe());
  const auto got_y = to_backend<Cpu>(dev_y), got_dx = to_backend<Cpu>(dev_dx);
  if (tolerance == 0) {
    CHECK(max_abs_diff(got_y, y) == 0);
    CHECK(max_abs_diff(got_dx, dx) == 0);  // accumulated onto dx0
  } else {
    CHECK(max_abs_diff(got_y, y) < 1e-5);  // also catches NaN (unwritten) elements
    CHECK(relative_error(got_y, y) <= tolerance);
    CHECK(relative_error(got_dx, dx) <= tolerance);
  }
}
}  // namespace

TEST_CASE("ReLU<float, Cuda> equals ReLU<float, Cpu>") {
  GCNET_REQUIRE_CUDA_DEVICE();
  check_layer_matches_cpu<ReLU>({2, 3, 17, 19}, 0.0);
}

TEST_CASE("Sigmoid<float, Cuda> equals Sigmoid<float, Cpu> up to float rounding") {
  GCNET_REQUIRE_CUDA_DEVICE();
  check_layer_matches_cpu<Sigmoid>({2, 3, 17, 19}, 1e-6);
}

TEST_CASE("layer errors are the same on the device") {
  GCNET_REQUIRE_CUDA_DEVICE();
  ReLU<float, Cuda> relu;
  const auto x = to_backend<Cuda>(random_tensor<float>({2, 3}, 34));
  Tensor<float, Cuda> y;
  relu.forward(x, y);
  Tensor<float, Cuda> dy(Shape{2, 3}), dx(Shape{3, 2});
  CHECK_THROWS_WITH_AS(relu.backward(x, y, dy, dx), doctest::Contains("ReLU: input gradient dx has shape [3, 2]"),
                       gcnet::Error);
}

namespace {
template <class T>
void check_gemm_matches_cpu(blas::Op oa, blas::Op ob, index_t m, index_t n, index_t k, T beta, double tol) {
  using blas::Op;
  CAPTURE(oa == Op::N ? "N" : "T");
  CAPTURE(ob == Op::N ? "N" : "T");
  CAPTURE(m);
  CAPTURE(n);
  CAPTURE(k);
  CAPTURE(beta);
  const index_t pad = 3;  // leading dimensions larger than the rows
  const index_t a_rows = oa == Op::N ? m : k, a_ld = (oa == Op::N ? k : m) + pad;
  const index_t b_rows = ob == Op::N ? k : n, b_ld = (ob == Op::N ? n : k) + pad;
  const index_t c_ld = n + pad;
  const auto a = random_tensor<T>({a_rows, a_ld}, 41), b = random_tensor<T>({b_rows, b_ld}, 42);
  auto c = random_tensor<T>({m, c_ld}, 43);
  if (beta == T(0)) fill(c, std::numeric_limits<T>::quiet_NaN());  // must not be read
  const auto da = to_backend<Cuda>(a), db = to_backend<Cuda>(b);
  auto dc = to_backend<Cuda>(c);
  const T alpha = T(1.25);

  blas::gemm(Cpu{}, oa, ob, m, n, k, alpha, a.data(), a_ld, b.data(), b_ld, beta, c.data(), c_ld);
  blas::gemm(Cuda{}, oa, ob, m, n, k, alpha, da.data(), a_ld, db.data(), b_ld, beta, dc.data(), c_ld);
  const auto got = to_backend<Cpu>(dc);
  // Only the m x n block is defined (the padding holds NaN when beta == 0).
  const auto block = clone(got.narrow(1, 0, n)), expected = clone(c.narrow(1, 0, n));
  CHECK(relative_error(block, expected) <= tol);
  if (beta == T(0)) return;
  CHECK(max_abs_diff(clone(got.narrow(1, n, pad)), clone(c.narrow(1, n, pad))) == 0);  // padding untouched
}
}  // namespace

TEST_CASE("cuBLAS gemm equals the CPU gemm: every transpose, beta zero and not") {
  GCNET_REQUIRE_CUDA_DEVICE();
  using blas::Op;
  for (Op oa : {Op::N, Op::T})
    for (Op ob : {Op::N, Op::T}) {
      for (float beta : {0.0f, 0.75f}) check_gemm_matches_cpu<float>(oa, ob, 37, 29, 53, beta, 1e-5);
      for (double beta : {0.0, 0.75}) check_gemm_matches_cpu<double>(oa, ob, 37, 29, 53, beta, 1e-12);
    }
  check_gemm_matches_cpu<float>(Op::N, Op::T, 256, 192, 320, 0.5f, 1e-5);  // tiles of real size
  check_gemm_matches_cpu<float>(Op::N, Op::N, 1, 1, 1, 0.0f, 1e-6);
}

TEST_CASE("cuBLAS gemm with k == 0 scales C by beta") {
  GCNET_REQUIRE_CUDA_DEVICE();
  check_gemm_matches_cpu<double>(blas::Op::N, blas::Op::N, 4, 5, 0, 0.5, 1e-15);
  check_gemm_matches_cpu<double>(blas::Op::T, blas::Op::N, 4, 5, 0, 0.0, 1e-15);
}

TEST_CASE("cuBLAS gemm runs on the current stream") {
  GCNET_REQUIRE_CUDA_DEVICE();
  cuda::Stream stream;
  cuda::StreamGuard guard(stream);
  check_gemm_matches_cpu<float>(blas::Op::T, blas::Op::T, 33, 65, 17, 0.25f, 1e-5);
}
