#include <doctest/doctest.h>

#include "gcnet/layers/resize_bilinear.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;

namespace {
std::optional<Scale2> meta_scale(const io::SafetensorsReader& f, const std::string& key) {
  if (test::meta_is_none(f, key)) return std::nullopt;
  const std::string v = f.meta(key);
  const auto comma = v.find(',');
  if (comma == std::string::npos) return Scale2(std::stod(v));
  return Scale2(std::stod(v.substr(0, comma)), std::stod(v.substr(comma + 1)));
}
template <class T>
Tensor<T> run(ResizeBilinear<T>& l, const Tensor<T>& x) {
  Tensor<T> y;
  l.forward(x, y);
  return y;
}
}  // namespace

TEST_CASE("ResizeBilinear: gradient check, up and down, sizes and scales, both corner modes") {
  const ResizeBilinearOptions variants[] = {
      {.size = Size2{11, 13}},
      {.size = Size2{11, 13}, .align_corners = true},
      {.size = Size2{4, 5}},
      {.size = Size2{4, 5}, .align_corners = true},
      {.size = 1, .align_corners = true},
      {.scale = 2.0},
      {.scale = 0.5},
      {.scale = 1.7, .align_corners = true},
      {.scale = Scale2{0.6, 1.5}, .recompute_scale_factor = true},
  };
  testing::GradCheckOptions o;
  o.input_probes = 1000;  // every input entry
  for (const auto& v : variants) {
    ResizeBilinear<double> resize(v);
    INFO(resize.describe());
    auto r = testing::check_gradients(resize, Shape{2, 2, 7, 9}, o);
    INFO(r.report);
    CHECK(r.ok);
    CHECK(r.checked == 2 * 2 * 7 * 9);
  }
}

TEST_CASE("ResizeBilinear: parity with F.interpolate(mode='bilinear') (float32)") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/resize_bilinear.safetensors");
  const auto cases = test::fixture_cases(f);
  CHECK(cases.size() == 13);
  for (const auto& c : cases) {
    ResizeBilinear<float> resize({.size = test::meta_optional_size2(f, c + ".size"),
                                  .scale = meta_scale(f, c + ".scale"),
                                  .align_corners = test::meta_flag(f, c + ".align_corners"),
                                  .recompute_scale_factor = test::meta_flag(f, c + ".recompute_scale_factor")});
    auto r = testing::run_parity(resize, f, c);
    INFO(c, ": ", resize.describe(), "\n", r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("ResizeBilinear: laws") {
  const auto x = random_tensor<double>(Shape{2, 3, 7, 9}, 5);
  SUBCASE("to the input's own size is the identity") {
    for (bool ac : {false, true}) {
      ResizeBilinear<double> same({.size = Size2{7, 9}, .align_corners = ac});
      CHECK(test::max_abs_diff(run(same, x), x) < 1e-14);
    }
  }
  SUBCASE("an integer scale factor equals the size it gives") {
    for (bool ac : {false, true}) {
      ResizeBilinear<double> by_scale({.scale = 2, .align_corners = ac});
      ResizeBilinear<double> by_size({.size = Size2{14, 18}, .align_corners = ac});
      CHECK(test::max_abs_diff(run(by_scale, x), run(by_size, x)) < 1e-14);
    }
  }
  SUBCASE("a non-integer scale maps coordinates with 1/scale, not in/out (unless recomputed)") {
    ResizeBilinear<double> by_scale({.scale = 0.5});  // output 3x4, coordinates step 2
    ResizeBilinear<double> by_size({.size = Size2{3, 4}});  // coordinates step 7/3 and 9/4
    ResizeBilinear<double> recomputed({.scale = 0.5, .recompute_scale_factor = true});
    const auto a = run(by_scale, x), b = run(by_size, x), c = run(recomputed, x);
    REQUIRE(a.shape() == Shape{2, 3, 3, 4});
    CHECK(test::max_abs_diff(a, b) > 1e-3);
    CHECK(test::max_abs_diff(b, c) < 1e-14);
    // With step 2 and offset 0.5, output (i, j) is the mean of input rows/cols 2i+0.5 +- 0.5.
    CHECK(a.at({1, 2, 1, 1}) == doctest::Approx((x.at({1, 2, 2, 2}) + x.at({1, 2, 2, 3}) + x.at({1, 2, 3, 2}) +
                                                  x.at({1, 2, 3, 3})) / 4));
  }
  SUBCASE("align_corners keeps the corners") {
    ResizeBilinear<double> up({.size = Size2{11, 4}, .align_corners = true});
    const auto y = run(up, x);
    for (index_t n = 0; n < 2; ++n)
      for (index_t c = 0; c < 3; ++c) {
        CHECK(y.at({n, c, 0, 0}) == doctest::Approx(x.at({n, c, 0, 0})));
        CHECK(y.at({n, c, 10, 3}) == doctest::Approx(x.at({n, c, 6, 8})));
        CHECK(y.at({n, c, 0, 3}) == doctest::Approx(x.at({n, c, 0, 8})));
      }
  }
  SUBCASE("set_output_size switches to size mode") {
    ResizeBilinear<double> l({.scale = 0.5});
    l.set_output_size(Size2{5, 6});
    CHECK(l.setup(x.shape()) == Shape{2, 3, 5, 6});
    CHECK(l.describe() == "ResizeBilinear(size=5x6, align_corners=false)");
  }
}

TEST_CASE("ResizeBilinear: multi-threaded forward and backward equal single-threaded") {
  ResizeBilinear<float> resize({.size = Size2{37, 29}});
  const auto x = random_tensor<float>(Shape{4, 16, 20, 15}, 7);
  const auto dy = random_tensor<float>(resize.setup(x.shape()), 8);
  auto run_all = [&](int threads) {
    Tensor<float> y, dx = zeros<float>(x.shape());
    test::with_threads(threads, [&] {
      resize.forward(x, y);
      resize.backward(x, y, dy, dx);
    });
    return std::pair{y, dx};
  };
  const auto [y1, dx1] = run_all(1);
  const auto [y4, dx4] = run_all(4);
  CHECK(test::max_abs_diff(y1, y4) == 0.0);
  CHECK(test::max_abs_diff(dx1, dx4) == 0.0);
}

TEST_CASE("ResizeBilinear: bad options and inputs are errors that say what is wrong") {
  using doctest::Contains;
  CHECK_THROWS_WITH_AS(ResizeBilinear<float>({}),
                       Contains("ResizeBilinear(align_corners=false): give exactly one of an output size and a scale "
                                "factor"),
                       Error);
  CHECK_THROWS_WITH_AS(ResizeBilinear<float>({.size = 4, .scale = 2.0}),
                       Contains("give exactly one of an output size and a scale factor"), Error);
  CHECK_THROWS_WITH_AS(ResizeBilinear<float>({.size = Size2{0, 4}}),
                       Contains("ResizeBilinear(size=0x4, align_corners=false): output size must be positive, got 0x4"),
                       Error);
  CHECK_THROWS_WITH_AS(ResizeBilinear<float>({.scale = Scale2{2.0, -1.0}}),
                       Contains("scale factor must be positive, got 2x-1"), Error);
  CHECK_THROWS_WITH_AS(ResizeBilinear<float>({.size = 4, .recompute_scale_factor = true}),
                       Contains("recompute_scale_factor is meaningless with an explicit output size"), Error);
  ResizeBilinear<float> l({.scale = 0.1, .align_corners = true});
  CHECK_THROWS_WITH_AS(l.setup(Shape{1, 2, 7, 12}),
                       Contains("ResizeBilinear(scale=0.1, align_corners=true): input of shape [1, 2, 7, 12] is too "
                                "small: the output would be 0x1"),
                       Error);
  CHECK_THROWS_WITH_AS(l.setup(Shape{2, 7, 12}),
                       Contains("ResizeBilinear(scale=0.1, align_corners=true): expected a 4-d NCHW input, got shape "
                                "[2, 7, 12]"),
                       Error);
  CHECK_THROWS_WITH_AS(l.set_output_size(Size2{3, 0}), Contains("output size must be positive, got 3x0"), Error);
}
