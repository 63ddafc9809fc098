#include <doctest/doctest.h>

#include "gcnet/layers/upsample_nearest.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;

namespace {
template <class T>
Tensor<T> run(UpsampleNearest<T>& l, const Tensor<T>& x) {
  Tensor<T> y;
  l.forward(x, y);
  return y;
}
}  // namespace

TEST_CASE("UpsampleNearest: gradient check for scales and sizes") {
  const UpsampleNearestOptions variants[] = {
      {.scale = 2},
      {.scale = 3},
      {.scale = Size2{2, 3}},
      {.size = Size2{11, 13}},
      {.size = Size2{4, 5}},
      {.size = Size2{14, 9}},
  };
  testing::GradCheckOptions o;
  o.input_probes = 1000;  // every input entry
  for (const auto& v : variants) {
    UpsampleNearest<double> up(v);
    INFO(up.describe());
    auto r = testing::check_gradients(up, Shape{2, 2, 7, 9}, o);
    INFO(r.report);
    CHECK(r.ok);
    CHECK(r.checked == 2 * 2 * 7 * 9);
  }
}

TEST_CASE("UpsampleNearest: parity with F.interpolate(mode='nearest') (float32)") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/upsample_nearest.safetensors");
  const auto cases = test::fixture_cases(f);
  CHECK(cases.size() == 7);
  for (const auto& c : cases) {
    UpsampleNearest<float> up(
        {.size = test::meta_optional_size2(f, c + ".size"), .scale = test::meta_optional_size2(f, c + ".scale")});
    auto r = testing::run_parity(up, f, c);
    INFO(c, ": ", up.describe(), "\n", r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("UpsampleNearest: laws") {
  const auto x = random_tensor<double>(Shape{2, 3, 5, 7}, 5);
  SUBCASE("scale 2 repeats each element in a 2x2 block") {
    UpsampleNearest<double> up({.scale = 2});
    const auto y = run(up, x);
    REQUIRE(y.shape() == Shape{2, 3, 10, 14});
    for (index_t i = 0; i < 10; ++i)
      for (index_t j = 0; j < 14; ++j) CHECK(y.at({1, 2, i, j}) == x.at({1, 2, i / 2, j / 2}));
  }
  SUBCASE("an integer scale factor equals the size it gives, and the own size is the identity") {
    UpsampleNearest<double> by_scale({.scale = 3}), by_size({.size = Size2{15, 21}}), same({.size = Size2{5, 7}});
    CHECK(test::max_abs_diff(run(by_scale, x), run(by_size, x)) == 0.0);
    CHECK(test::max_abs_diff(run(same, x), x) == 0.0);
  }
  SUBCASE("to an odd size: src = floor(dst * in / out)") {
    UpsampleNearest<double> up({.size = Size2{8, 11}});
    const auto y = run(up, x);
    for (index_t i = 0; i < 8; ++i)
      for (index_t j = 0; j < 11; ++j) CHECK(y.at({0, 1, i, j}) == x.at({0, 1, i * 5 / 8, j * 7 / 11}));
  }
  SUBCASE("backward sums the gradient over each source's copies") {
    UpsampleNearest<double> up({.scale = Size2{2, 3}});
    const auto y = run(up, x);
    const auto dy = random_tensor<double>(y.shape(), 6);
    auto dx = zeros<double>(x.shape());
    up.backward(x, y, dy, dx);
    double expected = 0;
    for (index_t i = 2; i < 4; ++i)
      for (index_t j = 3; j < 6; ++j) expected += dy.at({1, 0, i, j});
    CHECK(dx.at({1, 0, 1, 1}) == doctest::Approx(expected));
  }
  SUBCASE("set_output_size switches to size mode") {
    UpsampleNearest<double> up({.scale = 2});
    up.set_output_size(Size2{6, 9});
    CHECK(up.setup(x.shape()) == Shape{2, 3, 6, 9});
    CHECK(up.describe() == "UpsampleNearest(size=6x9)");
  }
}

TEST_CASE("UpsampleNearest: multi-threaded forward and backward equal single-threaded") {
  UpsampleNearest<float> up({.size = Size2{37, 29}});
  const auto x = random_tensor<float>(Shape{4, 16, 20, 15}, 7);
  const auto dy = random_tensor<float>(up.setup(x.shape()), 8);
  auto run_all = [&](int threads) {
    Tensor<float> y, dx = zeros<float>(x.shape());
    test::with_threads(threads, [&] {
      up.forward(x, y);
      up.backward(x, y, dy, dx);
    });
    return std::pair{y, dx};
  };
  const auto [y1, dx1] = run_all(1);
  const auto [y4, dx4] = run_all(4);
  CHECK(test::max_abs_diff(y1, y4) == 0.0);
  CHECK(test::max_abs_diff(dx1, dx4) == 0.0);
}

TEST_CASE("UpsampleNearest: bad options and inputs are errors that say what is wrong") {
  using doctest::Contains;
  CHECK_THROWS_WITH_AS(UpsampleNearest<float>({}),
                       Contains("UpsampleNearest(): give exactly one of an output size and a scale factor"), Error);
  CHECK_THROWS_WITH_AS(UpsampleNearest<float>({.size = 4, .scale = 2}),
                       Contains("give exactly one of an output size and a scale factor"), Error);
  CHECK_THROWS_WITH_AS(UpsampleNearest<float>({.scale = 0}),
                       Contains("UpsampleNearest(scale=0): scale factor must be positive, got 0x0"), Error);
  CHECK_THROWS_WITH_AS(UpsampleNearest<float>({.size = Size2{-2, 3}}),
                       Contains("UpsampleNearest(size=-2x3): output size must be positive, got -2x3"), Error);
  UpsampleNearest<float> up({.scale = 2});
  CHECK_THROWS_WITH_AS(up.setup(Shape{1, 2, 3, 4, 5}),
                       Contains("UpsampleNearest(scale=2): expected a 4-d NCHW input, got shape [1, 2, 3, 4, 5]"),
                       Error);
  CHECK_THROWS_WITH_AS(up.setup(Shape{0, 2, 3, 4}), Contains("input shape [0, 2, 3, 4] has a zero extent"), Error);
}
