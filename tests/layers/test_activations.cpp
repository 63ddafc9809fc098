// ReLU and Sigmoid: PyTorch parity, gradient checks, and empty-input errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gcnet/layers/relu.hpp"
#include "gcnet/layers/sigmoid.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"

using namespace gcnet;

TEST_CASE("ReLU and Sigmoid: parity with PyTorch (float32)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/activations.safetensors");
  for (const char* c : {"relu", "relu_2d"}) {
    ReLU<float> relu;
    auto r = testing::run_parity(relu, f, c);
    INFO(r.report);
    CHECK(r.ok);
  }
  for (const char* c : {"sigmoid", "sigmoid_large"}) {
    Sigmoid<float> sig;
    auto r = testing::run_parity(sig, f, c);
    INFO(r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("ReLU and Sigmoid: gradient checks (double)") {
  testing::GradCheckOptions o;
  o.input_probes = 1000;
  ReLU<double> relu;
  auto r1 = testing::check_gradients(relu, Shape{2, 3, 4, 5}, o);
  INFO(r1.report);
  CHECK(r1.ok);
  Sigmoid<double> sig;
  o.input_scale = 3;
  auto r2 = testing::check_gradients(sig, Shape{2, 3, 4, 5}, o);
  INFO(r2.report);
  CHECK(r2.ok);
}

TEST_CASE("Sigmoid stays finite and exact at large magnitudes") {
  Tensor<float> x(Shape{4}), y;
  x[0] = -200.0f;
  x[1] = 200.0f;
  x[2] = -30.0f;
  x[3] = 0.0f;
  Sigmoid<float> sig;
  sig.forward(x, y);
  CHECK(y[0] == 0.0f);
  CHECK(y[1] == 1.0f);
  CHECK(y[2] == doctest::Approx(9.357622968840175e-14));
  CHECK(y[3] == 0.5f);
}

TEST_CASE("ReLU and Sigmoid: empty inputs are clear errors") {
  ReLU<float> relu;
  Sigmoid<float> sig;
  CHECK_THROWS_WITH_AS(relu.setup(Shape{2, 0, 3}), doctest::Contains("ReLU: input shape [2, 0, 3] is empty"), Error);
  CHECK_THROWS_WITH_AS(sig.setup(Shape{0}), doctest::Contains("Sigmoid: input shape [0] is empty"), Error);
}

// Issue 14, finding 5: ReLU(NaN) was 0, so a NaN input never reached the loss (which stops
// training) while backward wrote NaN into the weights. PyTorch: relu(NaN) = NaN, and
// threshold_backward zeroes the gradient only where the output is <= 0.
TEST_CASE("ReLU propagates NaN as PyTorch does, forward and backward") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> in = {nan, -1.0f, 2.0f, -0.0f, 0.0f, inf, -inf};
  Tensor<float> x(Shape{1, 7}), y, dy = full<float>(Shape{1, 7}, 1.0f), dx = zeros<float>(Shape{1, 7});
  for (index_t i = 0; i < 7; ++i) x[i] = in[static_cast<std::size_t>(i)];
  ReLU<float> relu;
  relu.forward(x, y);
  CHECK(std::isnan(y[0]));
  const std::vector<float> want = {0.0f, 2.0f, 0.0f, 0.0f, inf, 0.0f};
  for (index_t i = 1; i < 7; ++i) CHECK(y[i] == want[static_cast<std::size_t>(i - 1)]);
  relu.backward(x, y, dy, dx);
  const std::vector<float> grad = {1, 0, 1, 0, 0, 1, 0};
  for (index_t i = 0; i < 7; ++i) CHECK(dx[i] == grad[static_cast<std::size_t>(i)]);
  // Large tensors take the multi-threaded path: the same there.
  Tensor<float> big = full<float>(Shape{1 << 18}, -1.0f), ybig;
  big[12345] = nan;
  relu.forward(big, ybig);
  CHECK(std::isnan(ybig[12345]));
  CHECK(ybig[12344] == 0.0f);
}
