// The CPU reduction kernels (cpu/reductions.hpp) that the GC block's single-region forward runs
// on: the weighted sum of rows (attention logits; the AVX-512 form keeps 1-16 vectors of sums in
// registers, 256 positions per chunk) and the batched short dot products (the context's weighted
// sums and the transforms), against double sums, for every register count, chunked lengths,
// padded rows and ranges of zero rows, with each ISA this processor runs (the portable form
// always, the AVX-512 one where the processor has it; cpu::force_isa). Every output element
// starts as NaN, and the element past the end is a sentinel that must stay untouched.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gcnet/cpu/reductions.hpp"
#include "gcnet/core/rng.hpp"

using namespace gcnet;

namespace {

constexpr float kSentinel = 12345.0f;

std::vector<float> random_vector(Rng& rng, index_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& e : v) e = static_cast<float>(rng.normal());
  return v;
}

// Output of `len` NaNs and one sentinel.
std::vector<float> fresh_output(index_t len) {
  std::vector<float> out(static_cast<std::size_t>(len), std::numeric_limits<float>::quiet_NaN());
  out.push_back(kSentinel);
  return out;
}

// |got - exact| <= 4 * count * eps * sum |terms| (+ a tiny absolute floor for empty sums).
void check_sum(float got, double exact, double magnitude, index_t count) {
  const double bound = 4.0 * static_cast<double>(count + 1) * 1.2e-7 * magnitude + 1e-30;
  CHECK(std::isfinite(got));
  CHECK(std::abs(static_cast<double>(got) - exact) <= bound);
}

// The ISAs this processor runs: the kernels are checked with each (cpu::force_isa), and the
// detected one is restored after.
std::vector<cpu::Isa> runnable_isas() {
  std::vector<cpu::Isa> out{cpu::Isa::Generic};
  if (cpu::detected_isa() == cpu::Isa::Avx512) out.push_back(cpu::Isa::Avx512);
  return out;
}
template <class F>
void with_each_isa(F&& f) {
  for (cpu::Isa isa : runnable_isas()) {
    cpu::force_isa(isa);
    INFO("ISA " << cpu::isa_name(isa));
    f();
  }
  cpu::force_isa(std::nullopt);
}

}  // namespace

TEST_CASE("weighted_row_sum: e[j] = sum_r w[r] x[r, j] for every register count, chunk and tail") {
  with_each_isa([] {
  Rng rng(31);
  // 1..16 vectors of sums (lengths 16 (L-1) + 1 .. 16 L), several 256-position chunks, and a
  // padded row stride; 0, 1, odd and even row counts (the kernel pairs rows when it can).
  for (index_t len : {1, 5, 16, 17, 49, 64, 100, 128, 129, 196, 255, 256, 257, 300, 784}) {
    for (index_t rows : {0, 1, 2, 7, 64}) {
      const index_t ldx = len + 3;
      const auto x = random_vector(rng, rows * ldx), w = random_vector(rng, rows);
      auto e = fresh_output(len);
      cpu::weighted_row_sum(x.data(), ldx, w.data(), rows, len, e.data());
      INFO("len " << len << ", rows " << rows);
      for (index_t j = 0; j < len; ++j) {
        double exact = 0, magnitude = 0;
        for (index_t r = 0; r < rows; ++r) {
          const double t = static_cast<double>(w[r]) * x[static_cast<std::size_t>(r * ldx + j)];
          exact += t;
          magnitude += std::abs(t);
        }
        check_sum(e[static_cast<std::size_t>(j)], exact, magnitude, rows);
      }
      CHECK(e.back() == kSentinel);
    }
  }
  });
}

TEST_CASE("weighted_row_sum: double takes the portable loop") {
  Rng rng(32);
  const index_t rows = 9, len = 23;
  std::vector<double> x(rows * len), w(rows), e(len + 1, std::numeric_limits<double>::quiet_NaN());
  for (auto& v : x) v = rng.normal();
  for (auto& v : w) v = rng.normal();
  e.back() = kSentinel;
  cpu::weighted_row_sum(x.data(), len, w.data(), rows, len, e.data());
  for (index_t j = 0; j < len; ++j) {
    double exact = 0;
    for (index_t r = 0; r < rows; ++r) exact += w[r] * x[r * len + j];
    CHECK(e[j] == doctest::Approx(exact).epsilon(1e-13));
  }
  CHECK(e.back() == kSentinel);
}

TEST_CASE("dot_rows_batch: y[k, r] = bias[r] + w[r, :] . x[k, :] for blocks of 16, 8, 4 and single rows") {
  with_each_isa([] {
  Rng rng(33);
  for (index_t rows : {1, 3, 4, 8, 13, 16, 21, 40}) {
    for (index_t n : {1, 2, 3}) {
      for (index_t len : {1, 15, 16, 33, 196}) {
        for (bool with_bias : {false, true}) {
          const index_t ldw = len + 2, ldx = len + 5, ldy = rows + 4;
          const auto w = random_vector(rng, rows * ldw), x = random_vector(rng, n * ldx), bias = random_vector(rng, rows);
          std::vector<float> y(static_cast<std::size_t>(n * ldy), kSentinel);
          for (index_t k = 0; k < n; ++k)
            for (index_t r = 0; r < rows; ++r) y[static_cast<std::size_t>(k * ldy + r)] = std::numeric_limits<float>::quiet_NaN();
          cpu::dot_rows_batch(w.data(), ldw, rows, x.data(), ldx, n, len, with_bias ? bias.data() : nullptr, y.data(),
                                 ldy);
          INFO("rows " << rows << ", n " << n << ", len " << len << ", bias " << with_bias);
          for (index_t k = 0; k < n; ++k) {
            for (index_t r = 0; r < rows; ++r) {
              double exact = with_bias ? bias[static_cast<std::size_t>(r)] : 0.0, magnitude = std::abs(exact);
              for (index_t j = 0; j < len; ++j) {
                const double t = static_cast<double>(w[static_cast<std::size_t>(r * ldw + j)]) *
                                 x[static_cast<std::size_t>(k * ldx + j)];
                exact += t;
                magnitude += std::abs(t);
              }
              check_sum(y[static_cast<std::size_t>(k * ldy + r)], exact, magnitude, len + 1);
            }
            for (index_t r = rows; r < ldy; ++r) CHECK(y[static_cast<std::size_t>(k * ldy + r)] == kSentinel);
          }
        }
      }
    }
  }
  });
}

TEST_CASE("cpu::isa: detected once, forced by tests, and AVX-512 refused where the processor lacks it") {
  const cpu::Isa detected = cpu::detected_isa();
  CHECK(cpu::isa() == detected);
  cpu::force_isa(cpu::Isa::Generic);
  CHECK(cpu::isa() == cpu::Isa::Generic);
  if (detected != cpu::Isa::Avx512)
    CHECK_THROWS_WITH_AS(cpu::force_isa(cpu::Isa::Avx512),
                         doctest::Contains("cpu::force_isa: this processor cannot run avx512 kernels"), gcnet::Error);
  cpu::force_isa(std::nullopt);
  CHECK(cpu::isa() == detected);
}

// Where the processor has AVX-512, both forms run above; here they must agree closely too.
TEST_CASE("cpu reductions: the AVX-512 and portable forms agree" *
          doctest::skip(cpu::detected_isa() != cpu::Isa::Avx512)) {
  Rng rng(34);
  const index_t rows = 37, len = 300, n = 2;
  const auto x = random_vector(rng, rows * len), w = random_vector(rng, rows), v = random_vector(rng, n * len);
  std::vector<float> e[2], y[2];
  for (int i = 0; i < 2; ++i) {
    cpu::force_isa(i == 0 ? cpu::Isa::Generic : cpu::Isa::Avx512);
    e[i] = fresh_output(len);
    cpu::weighted_row_sum(x.data(), len, w.data(), rows, len, e[i].data());
    y[i] = fresh_output(n * rows);
    cpu::dot_rows_batch(x.data(), len, rows, v.data(), len, n, len, w.data(), y[i].data(), rows);
  }
  cpu::force_isa(std::nullopt);
  for (std::size_t j = 0; j < e[0].size(); ++j) CHECK(e[1][j] == doctest::Approx(e[0][j]).epsilon(1e-5));
  for (std::size_t j = 0; j < y[0].size(); ++j) CHECK(y[1][j] == doctest::Approx(y[0][j]).epsilon(1e-5));
}
