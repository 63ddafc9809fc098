#include <doctest/doctest.h>

#include "gcnet/layers/avg_pool2d.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;

TEST_CASE("AvgPool2d: gradient check over the option variants") {
  const AvgPool2dOptions variants[] = {
      {.kernel = 2},
      {.kernel = 3, .stride = 1},
      {.kernel = 3, .stride = 2, .padding = 1},
      {.kernel = 3, .stride = 2, .padding = 1, .count_include_pad = false},
      {.kernel = 3, .stride = 2, .padding = 1, .ceil_mode = true},
      {.kernel = 3, .stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = false},
      {.kernel = 3, .stride = 2, .padding = 1, .divisor_override = 5},
      {.kernel = Size2{3, 2}, .stride = Size2{2, 1}, .padding = Size2{1, 1}, .ceil_mode = true},
  };
  testing::GradCheckOptions o;
  o.input_probes = 1000;  // every input entry
  for (const auto& v : variants) {
    AvgPool2d<double> pool(v);
    INFO(pool.describe());
    auto r = testing::check_gradients(pool, Shape{2, 2, 8, 9}, o);
    INFO(r.report);
    CHECK(r.ok);
    CHECK(r.checked == 2 * 2 * 8 * 9);
  }
}

TEST_CASE("AvgPool2d: parity with torch.nn.AvgPool2d (float32)") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/avg_pool2d.safetensors");
  const auto cases = test::fixture_cases(f);
  CHECK(cases.size() == 9);
  for (const auto& c : cases) {
    std::optional<index_t> divisor;
    if (!test::meta_is_none(f, c + ".divisor_override")) divisor = f.meta_int(c + ".divisor_override");
    AvgPool2d<float> pool({.kernel = test::meta_size2(f, c + ".kernel"),
                           .stride = test::meta_size2(f, c + ".stride"),
                           .padding = test::meta_size2(f, c + ".padding"),
                           .ceil_mode = test::meta_flag(f, c + ".ceil_mode"),
                           .count_include_pad = test::meta_flag(f, c + ".count_include_pad"),
                           .divisor_override = divisor});
    auto r = testing::run_parity(pool, f, c);
    INFO(c, ": ", pool.describe(), "\n", r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("AvgPool2d: the divisor at the right edge in ceil mode, with and without padding counted") {
  // One row of 5 values, kernel 1x3, stride 2, padding 0x1, ceil mode: windows start at
  // -1, 1, 3 (4 would start in the right padding: dropped). The last covers 3, 4 and the
  // right padding at 5: PyTorch counts 3 with padding, 2 without.
  const float v[5] = {1, 2, 4, 8, 16};
  Tensor<float> x(Shape{1, 1, 1, 5});
  for (index_t i = 0; i < 5; ++i) x[i] = v[i];
  auto pool_row = [&](bool include_pad) {
    AvgPool2d<float> pool(
        {.kernel = Size2{1, 3}, .stride = 2, .padding = Size2{0, 1}, .ceil_mode = true, .count_include_pad = include_pad});
    Tensor<float> y;
    pool.forward(x, y);
    return y;
  };
  const auto with_pad = pool_row(true), without_pad = pool_row(false);
  REQUIRE(with_pad.shape() == Shape{1, 1, 1, 3});
  CHECK(with_pad[0] == doctest::Approx(3.0 / 3));
  CHECK(with_pad[1] == doctest::Approx(14.0 / 3));
  CHECK(with_pad[2] == doctest::Approx(24.0 / 3));
  CHECK(without_pad[0] == doctest::Approx(3.0 / 2));
  CHECK(without_pad[1] == doctest::Approx(14.0 / 3));
  CHECK(without_pad[2] == doctest::Approx(24.0 / 2));

  // Without padding, a ceil-mode window hanging past the edge is divided by what it covers.
  AvgPool2d<float> ceil2({.kernel = 2, .ceil_mode = true});
  Tensor<float> y;
  ceil2.forward(x, y);
  REQUIRE(y.shape() == Shape{1, 1, 1, 3});
  CHECK(y[2] == doctest::Approx(16.0));
}

TEST_CASE("AvgPool2d: multi-threaded forward and backward equal single-threaded") {
  AvgPool2d<float> pool({.kernel = 3, .stride = 1, .padding = 1});
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

TEST_CASE("AvgPool2d: bad options and inputs are errors that say what is wrong") {
  using doctest::Contains;
  CHECK_THROWS_WITH_AS(AvgPool2d<float>({.kernel = 0}),
                       Contains("AvgPool2d(kernel=0x0, stride=0, padding=0): kernel size must be positive, got 0x0"),
                       Error);
  CHECK_THROWS_WITH_AS(AvgPool2d<float>({.kernel = 2, .stride = Size2{1, -2}}),
                       Contains("stride must be positive, got 1x-2"), Error);
  CHECK_THROWS_WITH_AS(AvgPool2d<float>({.kernel = 3, .padding = Size2{0, -1}}),
                       Contains("padding must not be negative, got 0x-1"), Error);
  CHECK_THROWS_WITH_AS(AvgPool2d<float>({.kernel = 2, .padding = 2}),
                       Contains("AvgPool2d(kernel=2x2, stride=2, padding=2): padding must be at most half the "
                                "kernel size, got padding 2x2 for kernel 2x2"),
                       Error);
  CHECK_THROWS_WITH_AS(AvgPool2d<float>({.kernel = 2, .divisor_override = 0}),
                       Contains("divisor_override must be positive, got 0"), Error);

  AvgPool2d<float> pool({.kernel = 3, .stride = 2, .padding = 1, .count_include_pad = false});
  CHECK_THROWS_WITH_AS(pool.setup(Shape{8, 8}),
                       Contains("AvgPool2d(kernel=3x3, stride=2, padding=1, count_include_pad=false): expected a "
                                "4-d NCHW input, got shape [8, 8]"),
                       Error);
  AvgPool2d<float> big({.kernel = 4});
  CHECK_THROWS_WITH_AS(big.setup(Shape{1, 1, 3, 3}),
                       Contains("AvgPool2d(kernel=4x4, stride=4, padding=0): input of shape [1, 1, 3, 3] is too "
                                "small: the output would be 0x0"),
                       Error);
  const auto x = random_tensor<float>(Shape{1, 2, 6, 6}, 2);
  Tensor<float> y;
  pool.forward(x, y);
  Tensor<float> dx = zeros<float>(Shape{1, 2, 6, 5});
  CHECK_THROWS_WITH_AS(pool.backward(x, y, random_tensor<float>(y.shape(), 3), dx),
                       Contains("input gradient dx has shape [1, 2, 6, 5], expected [1, 2, 6, 6]"), Error);
}
