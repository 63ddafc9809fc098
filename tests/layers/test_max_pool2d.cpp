#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "gcnet/layers/max_pool2d.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;

TEST_CASE("MaxPool2d: gradient check over the option variants") {
  const MaxPool2dOptions variants[] = {
      {.kernel = 2},
      {.kernel = 2, .ceil_mode = true},
      {.kernel = 3, .stride = 2, .padding = 1},
      {.kernel = 3, .stride = 1, .padding = 1},
      {.kernel = 3, .stride = 2, .padding = 1, .ceil_mode = true},
      {.kernel = 3, .stride = 1, .padding = 1, .dilation = 2},
      {.kernel = Size2{3, 2}, .stride = Size2{2, 1}, .padding = Size2{1, 0}},
  };
  testing::GradCheckOptions o;
  o.input_probes = 1000;  // every input entry: most have a zero gradient, a few the sum of several
  for (const auto& v : variants) {
    MaxPool2d<double> pool(v);
    INFO(pool.describe());
    auto r = testing::check_gradients(pool, Shape{2, 2, 7, 9}, o);
    INFO(r.report);
    CHECK(r.ok);
    CHECK(r.checked == 2 * 2 * 7 * 9);
  }
}

TEST_CASE("MaxPool2d: parity with torch.nn.MaxPool2d (float32)") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/max_pool2d.safetensors");
  const auto cases = test::fixture_cases(f);
  CHECK(cases.size() == 9);
  for (const auto& c : cases) {
    MaxPool2d<float> pool({.kernel = test::meta_size2(f, c + ".kernel"),
                           .stride = test::meta_size2(f, c + ".stride"),
                           .padding = test::meta_size2(f, c + ".padding"),
                           .dilation = test::meta_size2(f, c + ".dilation"),
                           .ceil_mode = test::meta_flag(f, c + ".ceil_mode")});
    auto r = testing::run_parity(pool, f, c);
    INFO(c, ": ", pool.describe(), "\n", r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("MaxPool2d: output sizes follow PyTorch's floor and ceil rules") {
  auto out = [](MaxPool2dOptions o, Shape in) { return MaxPool2d<float>(o).setup(in); };
  CHECK(out({.kernel = 2}, Shape{1, 1, 7, 9}) == Shape{1, 1, 3, 4});
  CHECK(out({.kernel = 2, .ceil_mode = true}, Shape{1, 1, 7, 9}) == Shape{1, 1, 4, 5});
  CHECK(out({.kernel = 3, .stride = 2, .padding = 1}, Shape{1, 1, 224, 224}) == Shape{1, 1, 112, 112});
  // Ceil mode never starts a window in the right padding: 4 + 2*1 with kernel 2, stride 3
  // would give a third window at 6 >= 4 + 1, so it is dropped.
  CHECK(out({.kernel = 2, .stride = 3, .padding = 1, .ceil_mode = true}, Shape{1, 1, 4, 4}) == Shape{1, 1, 2, 2});
  CHECK(out({.kernel = 3, .stride = 1, .padding = 1, .dilation = 2}, Shape{1, 1, 7, 9}) == Shape{1, 1, 5, 7});
}

TEST_CASE("MaxPool2d: ties go to the first maximum in window order, NaN propagates") {
  MaxPool2d<float> pool({.kernel = 2});
  Tensor<float> x = full<float>(Shape{1, 1, 2, 4}, 1.5f);
  x[6] = 2.0f;  // second window: row 1, col 2 is its strict maximum
  Tensor<float> y, dx = zeros<float>(x.shape());
  pool.forward(x, y);
  CHECK(y[0] == 1.5f);
  CHECK(y[1] == 2.0f);
  Tensor<float> dy(y.shape());
  dy[0] = 3.0f;
  dy[1] = -5.0f;
  pool.backward(x, y, dy, dx);
  const float expected[8] = {3, 0, 0, 0, 0, 0, -5, 0};
  for (index_t i = 0; i < 8; ++i) CHECK(dx[i] == expected[i]);

  x[7] = std::numeric_limits<float>::quiet_NaN();  // in the second window
  pool.forward(x, y);
  CHECK(y[0] == 1.5f);
  CHECK(std::isnan(y[1]));
  // The gradient goes to the NaN (PyTorch's argmax), also when a larger number comes before it.
  x[2] = 9.0f;
  pool.forward(x, y);
  CHECK(std::isnan(y[1]));
  dx = zeros<float>(x.shape());
  pool.backward(x, y, dy, dx);
  const float expected_nan[8] = {3, 0, 0, 0, 0, 0, 0, -5};
  for (index_t i = 0; i < 8; ++i) CHECK(dx[i] == expected_nan[i]);
}

TEST_CASE("MaxPool2d: multi-threaded forward and backward equal single-threaded") {
  MaxPool2d<float> pool({.kernel = 3, .stride = 1, .padding = 1});
  const auto x = random_tensor<float>(Shape{4, 16, 20, 20}, 7);
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

TEST_CASE("MaxPool2d: bad options and inputs are errors that say what is wrong") {
  using doctest::Contains;
  CHECK_THROWS_WITH_AS(MaxPool2d<float>({.kernel = 0}),
                       Contains("MaxPool2d(kernel=0x0, stride=0, padding=0): kernel size must be positive, got 0x0"),
                       Error);
  CHECK_THROWS_WITH_AS(MaxPool2d<float>({.kernel = Size2{3, -1}}), Contains("kernel size must be positive, got 3x-1"),
                       Error);
  CHECK_THROWS_WITH_AS(MaxPool2d<float>({.kernel = 3, .stride = 0}), Contains("stride must be positive, got 0x0"),
                       Error);
  CHECK_THROWS_WITH_AS(MaxPool2d<float>({.kernel = 3, .dilation = Size2{1, 0}}),
                       Contains("dilation must be positive, got 1x0"), Error);
  CHECK_THROWS_WITH_AS(MaxPool2d<float>({.kernel = 3, .padding = -1}),
                       Contains("padding must not be negative, got -1x-1"), Error);
  CHECK_THROWS_WITH_AS(
      MaxPool2d<float>({.kernel = 3, .stride = 2, .padding = 2}),
      Contains("MaxPool2d(kernel=3x3, stride=2, padding=2): padding must be at most half the kernel size, "
               "got padding 2x2 for kernel 3x3"),
      Error);
  CHECK_THROWS_WITH_AS(MaxPool2d<float>({.kernel = Size2{4, 2}, .padding = Size2{2, 2}}),
                       Contains("got padding 2x2 for kernel 4x2"), Error);

  MaxPool2d<float> pool({.kernel = 3, .stride = 2, .padding = 1});
  CHECK_THROWS_WITH_AS(pool.setup(Shape{2, 3, 8}),
                       Contains("MaxPool2d(kernel=3x3, stride=2, padding=1): expected a 4-d NCHW input, got "
                                "shape [2, 3, 8]"),
                       Error);
  CHECK_THROWS_WITH_AS(pool.setup(Shape{2, 0, 8, 8}), Contains("input shape [2, 0, 8, 8] has a zero extent"), Error);
  MaxPool2d<float> big({.kernel = 5});
  CHECK_THROWS_WITH_AS(big.setup(Shape{1, 2, 4, 9}),
                       Contains("MaxPool2d(kernel=5x5, stride=5, padding=0): input of shape [1, 2, 4, 9] is too "
                                "small: the output would be 0x1"),
                       Error);
  Tensor<float> y;
  CHECK_THROWS_WITH_AS(big.forward(random_tensor<float>(Shape{1, 2, 9, 3}, 1), y),
                       Contains("is too small: the output would be 1x0"), Error);

  const auto x = random_tensor<float>(Shape{1, 2, 6, 6}, 2);
  pool.forward(x, y);
  Tensor<float> dx = zeros<float>(x.shape());
  CHECK_THROWS_WITH_AS(pool.backward(x, y, random_tensor<float>(Shape{1, 2, 4, 4}, 3), dx),
                       Contains("MaxPool2d(kernel=3x3, stride=2, padding=1): output gradient dy has shape "
                                "[1, 2, 4, 4], expected [1, 2, 3, 3]"),
                       Error);
}
