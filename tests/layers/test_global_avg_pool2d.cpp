#include <doctest/doctest.h>

#include "gcnet/layers/avg_pool2d.hpp"
#include "gcnet/layers/global_avg_pool2d.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;

TEST_CASE("GlobalAvgPool2d: gradient check") {
  testing::GradCheckOptions o;
  o.input_probes = 1000;  // every input entry
  for (const Shape& s : {Shape{2, 3, 7, 9}, Shape{1, 2, 1, 1}, Shape{2, 2, 5, 1}}) {
    GlobalAvgPool2d<double> pool;
    INFO(s.str());
    auto r = testing::check_gradients(pool, s, o);
    INFO(r.report);
    CHECK(r.ok);
    CHECK(r.checked == s.numel());
  }
}

TEST_CASE("GlobalAvgPool2d: parity with torch.nn.AdaptiveAvgPool2d(1) (float32)") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/global_avg_pool2d.safetensors");
  const auto cases = test::fixture_cases(f);
  CHECK(cases.size() == 3);
  for (const auto& c : cases) {
    GlobalAvgPool2d<float> pool;
    auto r = testing::run_parity(pool, f, c);
    INFO(c, "\n", r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("GlobalAvgPool2d equals AvgPool2d with the whole plane as kernel") {
  const auto x = random_tensor<double>(Shape{3, 4, 6, 5}, 4);
  GlobalAvgPool2d<double> global;
  AvgPool2d<double> avg({.kernel = Size2{6, 5}});
  Tensor<double> a, b;
  global.forward(x, a);
  avg.forward(x, b);
  CHECK(a.shape() == Shape{3, 4, 1, 1});
  CHECK(test::max_abs_diff(a, b) < 1e-14);
}

TEST_CASE("GlobalAvgPool2d: multi-threaded forward and backward equal single-threaded") {
  GlobalAvgPool2d<float> pool;
  const auto x = random_tensor<float>(Shape{4, 32, 24, 24}, 7);
  const auto dy = random_tensor<float>(pool.setup(x.shape()), 8);
  auto run = [&](int threads) {
    Tensor<float> y, dx = zeros<float>(x.shape());
    test::with_threads(threads, [&] {
      pool.forward(x, y);
      pool.backward(x, y, dy, dx);
    });
    return std::pair{y, dx};
  };
  const auto [y1, dx1] = run(1);
  const auto [y4, dx4] = run(4);
  CHECK(test::max_abs_diff(y1, y4) == 0.0);
  CHECK(test::max_abs_diff(dx1, dx4) == 0.0);
}

TEST_CASE("GlobalAvgPool2d: bad inputs are errors that say what is wrong") {
  using doctest::Contains;
  GlobalAvgPool2d<float> pool;
  CHECK_THROWS_WITH_AS(pool.setup(Shape{2, 3}), Contains("GlobalAvgPool2d: expected a 4-d NCHW input, got shape [2, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(pool.setup(Shape{2, 3, 0, 4}),
                       Contains("GlobalAvgPool2d: input shape [2, 3, 0, 4] has a zero extent"), Error);
  const auto x = random_tensor<float>(Shape{2, 3, 4, 4}, 1);
  Tensor<float> y;
  pool.forward(x, y);
  Tensor<float> dx = zeros<float>(x.shape());
  CHECK_THROWS_WITH_AS(pool.backward(x, y, random_tensor<float>(Shape{2, 3}, 2), dx),
                       Contains("GlobalAvgPool2d: output gradient dy has shape [2, 3], expected [2, 3, 1, 1]"), Error);
}
