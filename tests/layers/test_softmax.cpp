#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/layers/softmax.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;

namespace {
}  // namespace

TEST_CASE("Softmax: PyTorch parity over dim 1 and dim -1") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/norm.safetensors");
  for (const char* c : {"softmax_dim1", "softmax_last", "softmax_last3d"}) {
    Softmax<float> sm(static_cast<int>(f.meta_int(std::string(c) + ".dim")));
    auto r = testing::run_parity(sm, f, c);
    INFO(r.report);
    CHECK(r.ok);
    CHECK(r.report.find(std::string(c) + ".dx") != std::string::npos);
  }
}

TEST_CASE("Softmax: sums to one along dim, other dims independent, stable for huge logits") {
  const Shape s{2, 3, 4, 5};
  const auto x = random_tensor<float>(s, 1, 3.0, 500.0);  // exp(500) overflows float
  for (int dim : {0, 1, 2, 3, -1, -3}) {
    Softmax<float> sm(dim);
    Tensor<float> y;
    sm.forward(x, y);
    const int d = dim < 0 ? dim + 4 : dim;
    index_t inner = 1;
    for (int k = d + 1; k < 4; ++k) inner *= s[k];
    const index_t n = s[d];
    for (index_t r = 0; r < x.numel() / n; ++r) {
      const index_t base = (r / inner) * n * inner + r % inner;
      double sum = 0, mx = -1e30;
      for (index_t k = 0; k < n; ++k) mx = std::max(mx, double(x[base + k * inner]));
      double ref_sum = 0;
      for (index_t k = 0; k < n; ++k) ref_sum += std::exp(double(x[base + k * inner]) - mx);
      for (index_t k = 0; k < n; ++k) {
        const float v = y[base + k * inner];
        REQUIRE(std::isfinite(v));
        sum += v;
        CHECK(v == doctest::Approx(std::exp(double(x[base + k * inner]) - mx) / ref_sum).epsilon(1e-5));
      }
      CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
    }
  }
}

TEST_CASE("Softmax: a large input (parallel rows) matches a double-precision reference") {
  Softmax<float> sm(1);
  const Shape s{8, 64, 32, 32};
  const auto x = random_tensor<float>(s, 2, 2.0);
  Tensor<float> y;
  sm.forward(x, y);
  const index_t hw = 32 * 32;
  for (index_t r = 0; r < 8 * hw; r += 61) {
    const index_t base = (r / hw) * 64 * hw + r % hw;
    double mx = -1e30, sum = 0;
    for (index_t k = 0; k < 64; ++k) mx = std::max(mx, double(x[base + k * hw]));
    for (index_t k = 0; k < 64; ++k) sum += std::exp(double(x[base + k * hw]) - mx);
    for (index_t k = 0; k < 64; k += 5)
      CHECK(y[base + k * hw] == doctest::Approx(std::exp(double(x[base + k * hw]) - mx) / sum).epsilon(1e-5));
  }
}

TEST_CASE("Softmax: gradient check over every dim") {
  for (int dim : {0, 1, 2, 3, -1, -2}) {
    Softmax<double> sm(dim);
    testing::GradCheckOptions o;
    o.input_probes = 50;
    o.input_scale = 2.0;
    auto r = testing::check_gradients(sm, Shape{2, 3, 4, 5}, o);
    const std::string what = sm.describe() + "\n" + r.report;
    INFO(what);
    CHECK(r.ok);
    CHECK(r.checked == 50);
  }
  Softmax<double> vec(0);
  auto r = testing::check_gradients(vec, Shape{9});
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("Softmax: a dim out of range names the layer, the dim and the shape") {
  Softmax<float> sm(2);
  CHECK(sm.describe() == "Softmax(dim=2)");
  CHECK_THROWS_WITH_AS(sm.setup(Shape{4, 3}),
                       doctest::Contains("Softmax(dim=2): dim 2 is out of range for input of shape [4, 3] (rank 2)"),
                       Error);
  Softmax<float> neg(-3);
  CHECK_THROWS_WITH_AS(neg.setup(Shape{4, 3}),
                       doctest::Contains("Softmax(dim=-3): dim -3 is out of range for input of shape [4, 3]"), Error);
  CHECK(neg.setup(Shape{2, 4, 3}) == Shape{2, 4, 3});
  CHECK_THROWS_WITH_AS(sm.setup(Shape{2, 0, 3}), doctest::Contains("input shape [2, 0, 3] has a zero extent"), Error);
}
