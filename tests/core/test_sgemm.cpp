// The float GEMM (kernels/sgemm_avx512.hpp on AVX-512 builds, behind blas::gemm): every
// transpose, alpha and beta, edge tiles, padded leading dimensions, several cache blocks and
// the split over threads, against a double-precision product with an elementwise bound.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
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

}  // namespace

TEST_CASE("sgemm: blas::gemm<float> matches a double product for every transpose, alpha and beta") {
  Rng rng(11);
  // Sizes around the 12 x 32 micro-tile and its half-width (16) edge.
  const index_t sizes[][3] = {{1, 1, 1},   {4, 4, 1},    {12, 32, 16}, {13, 33, 17}, {11, 15, 40},
                              {25, 17, 3}, {37, 70, 300}, {5, 100, 64}, {90, 6, 513}};
  for (const auto& s : sizes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (float beta : {0.0f, 1.0f, -0.5f})
          check_problem(make_problem(rng, ta, tb, s[0], s[1], s[2], beta == 1.0f ? 0.75f : 1.0f, beta), run_blas);
}

TEST_CASE("sgemm: products split over threads (outside a parallel region) match") {
  Rng rng(12);
  // Tall (split by rows) and wide (split by columns), each above the split threshold.
  check_problem(make_problem(rng, false, true, 301, 45, 160, 1.0f, 0.0f), run_blas);
  check_problem(make_problem(rng, true, false, 40, 397, 150, 1.0f, 0.5f), run_blas);
}

#if defined(GCNET_HAVE_SGEMM_AVX512)
TEST_CASE("sgemm: several k, m and n cache blocks, both inner loop orders") {
  Rng rng(13);
  for (bool a_in_l1 : {false, true})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const blas::sgemm::Blocking blk{.kc = 7, .mc = 24, .nc = 64, .a_panel_in_l1 = a_in_l1};
        check_problem(make_problem(rng, ta, tb, 53, 150, 23, 1.0f, ta ? 0.0f : 2.0f), [&](Problem& p) {
          blas::sgemm::gemm(p.ta, p.tb, p.m, p.n, p.k, p.alpha, p.a.data(), p.lda, p.b.data(), p.ldb, p.beta,
                            p.c.data(), p.ldc, blk);
        });
      }
}

TEST_CASE("sgemm: the 16 x 16 in-register transpose") {
  float in[256], out[256];
  for (int i = 0; i < 256; ++i) in[i] = static_cast<float>(i);
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(in + 16 * i);
  blas::sgemm::transpose16(r);
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(out + 16 * i, r[i]);
  int bad = 0;
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) bad += out[16 * i + j] != in[16 * j + i];
  CHECK(bad == 0);
}
#else
TEST_CASE("sgemm: AVX-512 kernel" * doctest::skip()) {}
#endif
