#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/layers/linear.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;

namespace {
}  // namespace

TEST_CASE("Linear: names, shapes, accessors and PyTorch's default init") {
  manual_seed(1);
  Linear<float> fc(50, 20);
  CHECK(fc.describe() == "Linear(in_features=50, out_features=20, bias=True)");
  std::vector<std::string> p;
  for (auto& [n, t] : named_parameters(fc)) p.push_back(n);
  CHECK(p == std::vector<std::string>{"weight", "bias"});
  CHECK(fc.weight().shape() == Shape{20, 50});
  REQUIRE(fc.bias() != nullptr);
  CHECK(fc.bias()->shape() == Shape{20});
  // U(-1/sqrt(in), 1/sqrt(in)) for weight and bias: in range and spread over it.
  const double bound = 1 / std::sqrt(50.0);
  double lo = 1, hi = -1;
  for (index_t i = 0; i < 1000; ++i) {
    lo = std::min(lo, double(fc.weight().value[i]));
    hi = std::max(hi, double(fc.weight().value[i]));
  }
  CHECK(lo >= -bound);
  CHECK(hi <= bound);
  CHECK(lo < -0.9 * bound);
  CHECK(hi > 0.9 * bound);
  for (index_t i = 0; i < 20; ++i) CHECK(std::abs(fc.bias()->value[i]) <= bound);
  // Reproducible from the seed.
  manual_seed(1);
  Linear<float> again(50, 20);
  CHECK(again.weight().value[17] == fc.weight().value[17]);

  Linear<float> nb(3, 2, false);
  CHECK(nb.describe() == "Linear(in_features=3, out_features=2, bias=False)");
  CHECK(nb.bias() == nullptr);
  CHECK(named_parameters(nb).size() == 1);
  CHECK(nb.setup(Shape{4, 3}) == Shape{4, 2});
  CHECK(nb.setup(Shape{5, 4, 3}) == Shape{5, 4, 2});
}

TEST_CASE("Linear: PyTorch parity with and without bias, on rank 2 and rank 3 inputs") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/norm.safetensors");
  for (const char* c : {"linear_bias", "linear_nobias", "linear_3d"}) {
    const std::string k = c;
    Linear<float> fc(f.meta_int(k + ".in_features"), f.meta_int(k + ".out_features"), f.meta_int(k + ".bias") != 0);
    auto r = testing::run_parity(fc, f, c);
    INFO(r.report);
    CHECK(r.ok);
    CHECK(r.report.find(k + ".grad.weight") != std::string::npos);
  }
}

TEST_CASE("Linear: a larger product (parallel GEMM) equals the naive sum") {
  manual_seed(2);
  Linear<double> fc(300, 70);
  const auto x = random_tensor<double>(Shape{64, 300}, 3);
  Tensor<double> y;
  fc.forward(x, y);
  for (index_t n = 0; n < 64; n += 9)
    for (index_t o = 0; o < 70; o += 7) {
      double s = fc.bias()->value[o];
      for (index_t i = 0; i < 300; ++i) s += x[n * 300 + i] * fc.weight().value[o * 300 + i];
      CHECK(y[n * 70 + o] == doctest::Approx(s).epsilon(1e-12));
    }
}

TEST_CASE("Linear: gradient check with and without bias, rank 2 and 3 inputs") {
  manual_seed(4);
  for (bool bias : {true, false})
    for (const Shape& s : {Shape{5, 7}, Shape{2, 3, 7}}) {
      Linear<double> fc(7, 4, bias);
      auto r = testing::check_gradients(fc, s);
      INFO(r.report);
      CHECK(r.ok);
      CHECK(r.checked >= 35);
    }
}

TEST_CASE("Linear: bad inputs and sizes") {
  Linear<float> fc(8, 4);
  CHECK_THROWS_WITH_AS(fc.setup(Shape{2, 5}),
                       doctest::Contains("Linear(in_features=8, out_features=4, bias=True): expected input with last "
                                         "dimension 8 (in_features), got shape [2, 5]"),
                       Error);
  CHECK_THROWS_WITH_AS(fc.setup(Shape{2, 8, 1, 1}), doctest::Contains("got shape [2, 8, 1, 1]"), Error);
  CHECK_THROWS_WITH_AS(Linear<float>(0, 4), doctest::Contains("Linear: in_features and out_features must be positive, got 0 and 4"),
                       Error);
  CHECK_THROWS_WITH_AS(Linear<float>(3, -1), doctest::Contains("got 3 and -1"), Error);
}
