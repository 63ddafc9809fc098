// The float GEMMs (cpu/sgemm_avx512.hpp on AVX-512 processors, cpu/sgemm_avx2.hpp on AVX2 + FMA
// ones, Eigen's elsewhere, all behind blas::gemm): every transpose, alpha and beta, edge tiles,
// padded leading dimensions, several cache blocks and the split over threads, against a
// double-precision product with an elementwise bound, on every ISA this processor runs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <optional>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/kernels/blas.hpp"

using namespace gcnet;

namespace {

struct Problem {
  bool ta, tb;
  index_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  std::vector<float> a, b, c;
};

Problem make_problem(Rng& rng, bool ta, bool tb, index_t m, index_t n, index_t k, float alpha, float beta) {
  Problem p{ta, tb, m, n, k, (ta ? m : k) + 3, (tb ? k : n) + 2, n + 5, alpha, beta, {}, {}, {}};
  p.a.resize(static_cast<std::size_t>((ta ? k : m) * p.lda));
  p.b.resize(static_cast<std::size_t>((tb ? n : k) * p.ldb));
  p.c.resize(static_cast<std::size_t>(m * p.ldc));
  for (auto& v : p.a) v = static_cast<float>(rng.normal());
  for (auto& v : p.b) v = static_cast<float>(rng.normal());
  for (auto& v : p.c) v = static_cast<float>(rng.normal());
  // beta == 0 must not read C: NaN there would show.
  if (beta == 0.0f)
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) p.c[static_cast<std::size_t>(i * p.ldc + j)] = std::numeric_limits<float>::quiet_NaN();
  return p;
}

// Runs `gemm` on p and checks every element of C against the double product, within
// 8 k eps sum_p |a||b| (+ the beta term), and that the padding past n is untouched.
template <class Gemm>
void check_problem(Problem p, Gemm gemm) {
  const std::vector<float> before = p.c;
  gemm(p);
  const double eps = std::numeric_limits<float>::epsilon();
  index_t bad = 0;
  for (index_t i = 0; i < p.m; ++i)
    for (index_t j = 0; j < p.ldc; ++j) {
      const std::size_t at = static_cast<std::size_t>(i * p.ldc + j);
      if (j >= p.n) {
        bad += p.c[at] != before[at];
        continue;
      }
      double s = 0, mag = 0;
      for (index_t q = 0; q < p.k; ++q) {
        const double x = p.ta ? p.a[static_cast<std::size_t>(q * p.lda + i)] : p.a[static_cast<std::size_t>(i * p.lda + q)];
        const double y = p.tb ? p.b[static_cast<std::size_t>(j * p.ldb + q)] : p.b[static_cast<std::size_t>(q * p.ldb + j)];
        s += x * y;
        mag += std::abs(x * y);
      }
      const double old = p.beta == 0.0f ? 0.0 : static_cast<double>(before[at]);
      const double ref = p.alpha * s + p.beta * old;
      const double tol = 8.0 * static_cast<double>(p.k) * eps * (std::abs(p.alpha) * mag + std::abs(p.beta * old)) + 1e-30;
      if (!(std::abs(p.c[at] - ref) <= tol)) ++bad;
    }
  INFO("ta=", p.ta, " tb=", p.tb, " m=", p.m, " n=", p.n, " k=", p.k, " alpha=", p.alpha, " beta=", p.beta);
  CHECK(bad == 0);
}

void run_blas(Problem& p) {
  blas::gemm(Cpu{}, p.ta ? blas::Op::T : blas::Op::N, p.tb ? blas::Op::T : blas::Op::N, p.m, p.n, p.k, p.alpha,
             p.a.data(), p.lda, p.b.data(), p.ldb, p.beta, p.c.data(), p.ldc);
}

// The ISAs this processor runs (blas::gemm takes Eigen's product on Generic).
std::vector<cpu::Isa> runnable_isas() {
  std::vector<cpu::Isa> out;
  for (cpu::Isa isa : {cpu::Isa::Generic, cpu::Isa::Avx2, cpu::Isa::Avx512})
    if (static_cast<int>(isa) <= static_cast<int>(cpu::detected_isa())) out.push_back(isa);
  return out;
}

// Runs f() with blas::gemm on each runnable ISA in turn, then restores the detected one.
template <class F>
void on_each_isa(F f) {
  for (cpu::Isa isa : runnable_isas()) {
    CAPTURE(cpu::isa_name(isa));
    cpu::force_isa(isa);
    f();
  }
  cpu::force_isa(std::nullopt);
}

}  // namespace

TEST_CASE("sgemm: blas::gemm<float> matches a double product for every transpose, alpha and beta") {
  on_each_isa([] {
    Rng rng(11);
    // Sizes around both micro-tiles (12 x 32 and 6 x 16) and their half-width edges (16, 8).
    const index_t sizes[][3] = {{1, 1, 1},     {4, 4, 1},    {12, 32, 16}, {13, 33, 17}, {11, 15, 40}, {25, 17, 3},
                                {37, 70, 300}, {5, 100, 64}, {90, 6, 513}, {6, 16, 9},   {7, 9, 8},    {3, 24, 31}};
    for (const auto& s : sizes)
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (float beta : {0.0f, 1.0f, -0.5f})
            check_problem(make_problem(rng, ta, tb, s[0], s[1], s[2], beta == 1.0f ? 0.75f : 1.0f, beta), run_blas);
  });
}

TEST_CASE("sgemm: products split over threads (outside a parallel region) match") {
  on_each_isa([] {
    Rng rng(12);
    // Tall (split by rows) and wide (split by columns), each above the split threshold.
    check_problem(make_problem(rng, false, true, 301, 45, 160, 1.0f, 0.0f), run_blas);
    check_problem(make_problem(rng, true, false, 40, 397, 150, 1.0f, 0.5f), run_blas);
  });
}

TEST_CASE("sgemm: which ISAs ran" * doctest::skip(cpu::detected_isa() == cpu::Isa::Generic)) {
  // The cases above ran the project's own GEMM, not only Eigen's: this processor has one.
  CHECK(runnable_isas().size() >= 2);
  CHECK(blas::gemm_splits_over_threads<float>());
  CHECK_FALSE(blas::gemm_splits_over_threads<double>());
}

// The thread split itself (blas::detail::split_over_threads, behind blas::gemm's own GEMM and
// gemm_across_threads): which blocks it makes, on which threads, and when it declines. A product
// that only checked the result could not tell whether the split ran.
TEST_CASE("gemm thread split: disjoint aligned blocks on distinct threads, declined when it must be") {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  struct Call {
    index_t rows, cols, c_offset;
    int thread;
  };
  for (const bool tall : {true, false}) {
    CAPTURE(tall);
    Rng rng(21);
    Problem p = make_problem(rng, false, false, tall ? 301 : 40, tall ? 45 : 397, 160, 1.0f, 0.0f);
    std::vector<Call> calls;
    std::mutex mutex;
    auto product = [&](index_t rows, index_t cols, const float* a, const float* b, float* c) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        calls.push_back({rows, cols, c - p.c.data(), omp_get_thread_num()});
      }
      blas::gemm(Cpu{}, blas::Op::N, blas::Op::N, rows, cols, p.k, p.alpha, a, p.lda, b, p.ldb, p.beta, c, p.ldc);
    };
    const bool split = blas::detail::split_over_threads(blas::Op::N, blas::Op::N, p.m, p.n, p.k, p.a.data(), p.lda,
                                                        p.b.data(), p.ldb, p.c.data(), p.ldc, 16, 32, 1e6, product);
    REQUIRE(split);
    REQUIRE(calls.size() == 2);
    CHECK(calls[0].thread != calls[1].thread);
    // The blocks tile C exactly: rows (tall) or columns (wide), the inner edge on an aligned index.
    std::sort(calls.begin(), calls.end(), [](const Call& x, const Call& y) { return x.c_offset < y.c_offset; });
    if (tall) {
      CHECK(calls[0].c_offset == 0);
      CHECK(calls[0].rows % 16 == 0);
      CHECK(calls[1].c_offset == calls[0].rows * p.ldc);
      CHECK(calls[0].rows + calls[1].rows == p.m);
      CHECK((calls[0].cols == p.n && calls[1].cols == p.n));
    } else {
      CHECK(calls[0].c_offset == 0);
      CHECK(calls[0].cols % 32 == 0);
      CHECK(calls[1].c_offset == calls[0].cols);
      CHECK(calls[0].cols + calls[1].cols == p.n);
      CHECK((calls[0].rows == p.m && calls[1].rows == p.m));
    }
    check_problem(p, [](Problem&) {});  // the blocks computed the whole product
    // Declined: below the flop threshold, and inside a parallel region (nested regions are serial).
    calls.clear();
    CHECK_FALSE(blas::detail::split_over_threads(blas::Op::N, blas::Op::N, p.m, p.n, p.k, p.a.data(), p.lda,
                                                 p.b.data(), p.ldb, p.c.data(), p.ldc, 16, 32, 1e12, product));
    bool inside = true;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
      inside = blas::detail::split_over_threads(blas::Op::N, blas::Op::N, p.m, p.n, p.k, p.a.data(), p.lda,
                                                p.b.data(), p.ldb, p.c.data(), p.ldc, 16, 32, 1e6, product);
    }
    CHECK_FALSE(inside);
    CHECK(calls.empty());
  }
  omp_set_num_threads(saved);
}

// The AVX-512 kernel itself, where the processor runs it (elsewhere it is only compiled, and
// blas::gemm above took Eigen's product).
#if GCNET_CPU_AVX512_KERNELS
namespace sgemm = cpu::isa_avx512::sgemm;

TEST_CASE("sgemm: several k, m and n cache blocks, both inner loop orders" *
          doctest::skip(cpu::detected_isa() != cpu::Isa::Avx512)) {
  Rng rng(13);
  for (bool a_in_l1 : {false, true})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const sgemm::Blocking blk{.kc = 7, .mc = 24, .nc = 64, .a_panel_in_l1 = a_in_l1};
        check_problem(make_problem(rng, ta, tb, 53, 150, 23, 1.0f, ta ? 0.0f : 2.0f), [&](Problem& p) {
          sgemm::gemm(p.ta, p.tb, p.m, p.n, p.k, p.alpha, p.a.data(), p.lda, p.b.data(), p.ldb, p.beta, p.c.data(),
                      p.ldc, blk);
        });
      }
}

namespace {
GCNET_CPU_AVX512_BEGIN
void transpose16_of(const float* in, float* out) {
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(in + 16 * i);
  sgemm::transpose16(r);
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(out + 16 * i, r[i]);
}
GCNET_CPU_AVX512_END
}  // namespace

TEST_CASE("sgemm: the 16 x 16 in-register transpose" * doctest::skip(cpu::detected_isa() != cpu::Isa::Avx512)) {
  float in[256], out[256];
  for (int i = 0; i < 256; ++i) in[i] = static_cast<float>(i);
  transpose16_of(in, out);
  int bad = 0;
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) bad += out[16 * i + j] != in[16 * j + i];
  CHECK(bad == 0);
}
#endif

// The AVX2 kernel itself, where the processor runs it.
#if GCNET_CPU_AVX512_KERNELS
namespace sgemm2 = cpu::isa_avx2::sgemm;

TEST_CASE("sgemm avx2: several k, m and n cache blocks, both inner loop orders" *
          doctest::skip(static_cast<int>(cpu::detected_isa()) < static_cast<int>(cpu::Isa::Avx2))) {
  Rng rng(14);
  for (bool a_in_l1 : {false, true})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const sgemm2::Blocking blk{.kc = 7, .mc = 12, .nc = 32, .a_panel_in_l1 = a_in_l1};
        check_problem(make_problem(rng, ta, tb, 53, 150, 23, 1.0f, ta ? 0.0f : 2.0f), [&](Problem& p) {
          sgemm2::gemm(p.ta, p.tb, p.m, p.n, p.k, p.alpha, p.a.data(), p.lda, p.b.data(), p.ldb, p.beta, p.c.data(),
                       p.ldc, blk);
        });
      }
}

TEST_CASE("sgemm avx2: op(A) packed once, then multiplied with several B (blas::gemm_packed_lhs)" *
          doctest::skip(static_cast<int>(cpu::detected_isa()) < static_cast<int>(cpu::Isa::Avx2))) {
  cpu::force_isa(cpu::Isa::Avx2);
  CHECK(blas::packs_lhs<float>());
  CHECK_FALSE(blas::packs_lhs<double>());
  Rng rng(15);
  // m past one mc block (144) and not a multiple of 6; k past one kc block (384); narrow and edge n.
  const index_t shapes[][3] = {{157, 40, 401}, {5, 17, 9}, {12, 3, 1}};
  for (const auto& sh : shapes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const index_t m = sh[0], k = sh[2];
        Problem first = make_problem(rng, ta, tb, m, sh[1], k, 1.0f, 0.0f);
        std::vector<float> packed(static_cast<std::size_t>(blas::packed_lhs_size(m, k)), std::nanf(""));
        blas::pack_lhs(ta ? blas::Op::T : blas::Op::N, first.a.data(), first.lda, m, k, packed.data());
        auto run_packed = [&](Problem& p) {
          blas::gemm_packed_lhs(packed.data(), p.m, p.n, p.k, p.alpha, p.tb ? blas::Op::T : blas::Op::N, p.b.data(),
                                p.ldb, p.beta, p.c.data(), p.ldc);
        };
        check_problem(first, run_packed);
        // The same packed A against another B, accumulating into C.
        Problem second = make_problem(rng, ta, tb, m, sh[1] + 5, k, 0.5f, 1.0f);
        second.a = first.a;
        check_problem(second, run_packed);
      }
  cpu::force_isa(std::nullopt);
}

namespace {
GCNET_CPU_AVX2_BEGIN
void transpose8_of(const float* in, float* out) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(in + 8 * i);
  sgemm2::transpose8(r);
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + 8 * i, r[i]);
}
GCNET_CPU_AVX2_END
}  // namespace

TEST_CASE("sgemm avx2: the 8 x 8 in-register transpose" *
          doctest::skip(static_cast<int>(cpu::detected_isa()) < static_cast<int>(cpu::Isa::Avx2))) {
  float in[64], out[64];
  for (int i = 0; i < 64; ++i) in[i] = static_cast<float>(i);
  transpose8_of(in, out);
  int bad = 0;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) bad += out[8 * i + j] != in[8 * j + i];
  CHECK(bad == 0);
}
#endif
