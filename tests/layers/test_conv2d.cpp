#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include "gcnet/layers/conv2d.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/conv_reference.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;
using test::meta_size2;
using test::max_abs_diff;
using test::split_csv;

namespace {
Conv2dOptions spec_options(const test::ConvSpec& s, bool bias) {
  return {.in = s.in, .out = s.out, .kernel = s.kernel, .stride = s.stride, .padding = s.padding,
          .dilation = s.dilation, .groups = s.groups, .bias = bias};
}
}  // namespace

static_assert(Layer<Conv2d<float>> && Layer<Conv2d<double>>);

TEST_CASE("Conv2d: parity with torch.nn.Conv2d (float32) on every fixture case") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/conv2d.safetensors");
  const auto cases = split_csv(f.meta("all.cases"));
  CHECK(cases.size() >= 10);
  for (const auto& c : cases) {
    Conv2d<float> conv({.in = f.meta_int(c + ".in_channels"),
                        .out = f.meta_int(c + ".out_channels"),
                        .kernel = meta_size2(f, c + ".kernel"),
                        .stride = meta_size2(f, c + ".stride"),
                        .padding = meta_size2(f, c + ".padding"),
                        .dilation = meta_size2(f, c + ".dilation"),
                        .groups = f.meta_int(c + ".groups"),
                        .bias = f.meta(c + ".bias") == "1"});
    auto r = testing::run_parity(conv, f, c);
    INFO(c << ": " << conv.describe() << "\n" << r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("Conv2d: gradient check (double) for every option variant") {
  struct Variant {
    Conv2dOptions o;
    Shape in;
  };
  const Variant variants[] = {
      {{.in = 3, .out = 4, .kernel = 1}, Shape{2, 3, 4, 5}},
      {{.in = 3, .out = 4, .kernel = 3, .padding = 1}, Shape{2, 3, 5, 5}},
      {{.in = 2, .out = 3, .kernel = 7, .stride = 2, .padding = 3}, Shape{2, 2, 9, 8}},
      {{.in = 2, .out = 3, .kernel = 3, .padding = 2, .dilation = 2}, Shape{2, 2, 6, 6}},
      {{.in = 4, .out = 6, .kernel = 3, .padding = 1, .groups = 2}, Shape{2, 4, 4, 4}},
      {{.in = 4, .out = 4, .kernel = 3, .padding = 1, .groups = 4}, Shape{2, 4, 5, 4}},
      {{.in = 3, .out = 2, .kernel = 3, .stride = 2, .bias = false}, Shape{2, 3, 7, 6}},
      {{.in = 2, .out = 3, .kernel = {3, 5}, .stride = {2, 1}, .padding = {1, 2}}, Shape{2, 2, 6, 7}},
      {{.in = 4, .out = 3, .kernel = 1, .stride = 2, .bias = false}, Shape{2, 4, 5, 5}},
      // 17x17 windows: the per-image banded path, one image per thread.
      {{.in = 2, .out = 2, .kernel = 3, .padding = 1}, Shape{2, 2, 17, 17}},
  };
  for (const auto& v : variants) {
    manual_seed(7);
    Conv2d<double> conv(v.o);
    auto r = testing::check_gradients(conv, v.in);
    INFO(conv.describe() << " on " << v.in.str() << "\n" << r.report);
    CHECK(r.ok);
    CHECK(r.checked > 40);
  }
}

// The GEMM engine's scheduling paths (banded per-image across threads, leftover images,
// stacked small grids in several stacks, pointwise without im2col) against direct loops.
TEST_CASE("Conv2d: every scheduling path matches a direct convolution") {
  struct Variant {
    test::ConvSpec s;
    Shape in;
  };
  const Variant variants[] = {
      {{.in = 16, .out = 8, .kernel = 3, .padding = 1}, Shape{1, 16, 40, 36}},   // several bands, 1 image
      {{.in = 16, .out = 8, .kernel = 3, .padding = 1}, Shape{3, 16, 40, 36}},   // threads + leftover image
      // a deep layer: one window row exceeds band_elements, bands of min_band_columns (8 rows)
      {{.in = 512, .out = 8, .kernel = 3, .padding = 1}, Shape{1, 512, 20, 48}},
      {{.in = 6, .out = 4, .kernel = 3, .stride = 2, .padding = 1, .groups = 2}, Shape{2, 6, 34, 33}},
      {{.in = 8, .out = 6, .kernel = 1}, Shape{3, 8, 17, 16}},                   // pointwise, per image
      {{.in = 8, .out = 6, .kernel = 1}, Shape{5, 8, 5, 5}},                     // pointwise, stacked
      {{.in = 4, .out = 6, .kernel = 3, .padding = 1}, Shape{23, 4, 10, 10}},    // stacked, two stacks
      {{.in = 4, .out = 4, .kernel = 3, .padding = 1, .groups = 4}, Shape{23, 4, 10, 10}},
      {{.in = 3, .out = 5, .kernel = {5, 3}, .stride = {1, 2}, .padding = {2, 0}, .dilation = {1, 2}},
       Shape{2, 3, 21, 30}},
  };
  for (const auto& v : variants) {
    for (bool bias : {true, false}) {
      manual_seed(11);
      Conv2d<double> conv(spec_options(v.s, bias));
      const auto x = random_tensor<double>(v.in, 1);
      Tensor<double> y;
      conv.forward(x, y);
      const auto dy = random_tensor<double>(y.shape(), 2);
      auto dx = random_tensor<double>(v.in, 3);
      const auto dx0 = clone(dx);
      conv.backward(x, y, dy, dx);
      const auto ref = test::conv2d_reference(v.s, x, conv.weight().value, bias ? &conv.bias()->value : nullptr, dy);
      INFO(conv.describe() << " on " << v.in.str());
      CHECK(max_abs_diff(y, ref.y) < 1e-10);
      add_scaled(dx, dx0, -1.0);  // what backward added
      CHECK(max_abs_diff(dx, ref.dx) < 1e-10);
      CHECK(max_abs_diff(conv.weight().grad, ref.dw) < 1e-9);
      if (bias) CHECK(max_abs_diff(conv.bias()->grad, ref.db) < 1e-9);
    }
  }
}

// Float convolutions over several bands and images (on AVX2 processors the weight is packed
// once for all band products: blas::pack_lhs), grouped and not, against double.
TEST_CASE("Conv2d: float32 matches double over several bands, images and groups") {
  for (index_t groups : {1, 2}) {
    manual_seed(4);
    const Conv2dOptions o{.in = 64, .out = 14, .kernel = 3, .padding = 2, .dilation = 2, .groups = groups};
    Conv2d<double> cd(o);
    Conv2d<float> cf(o);
    for (index_t i = 0; i < cd.weight().value.numel(); ++i) cf.weight().value[i] = static_cast<float>(cd.weight().value[i]);
    for (index_t i = 0; i < cd.bias()->value.numel(); ++i) cf.bias()->value[i] = static_cast<float>(cd.bias()->value[i]);
    const auto xd = random_tensor<double>(Shape{3, 64, 41, 37}, 6);
    Tensor<float> xf(xd.shape());
    for (index_t i = 0; i < xd.numel(); ++i) xf[i] = static_cast<float>(xd[i]);
    Tensor<double> yd;
    Tensor<float> yf(Shape{3, 14, 41, 37});
    for (index_t i = 0; i < yf.numel(); ++i) yf[i] = std::nanf("");  // every element must be written
    cd.forward(xd, yd);
    cf.forward(xf, yf);
    CAPTURE(groups);
    CHECK(testing::relative_error(yf, yd) < 1e-5);
  }
}

TEST_CASE("Conv2d: float32 matches double on a ResNet-like shape") {
  manual_seed(3);
  Conv2d<double> cd({.in = 32, .out = 16, .kernel = 3, .padding = 1, .bias = false});
  Conv2d<float> cf({.in = 32, .out = 16, .kernel = 3, .padding = 1, .bias = false});
  for (index_t i = 0; i < cd.weight().value.numel(); ++i) cf.weight().value[i] = static_cast<float>(cd.weight().value[i]);
  const auto xd = random_tensor<double>(Shape{2, 32, 24, 24}, 5);
  Tensor<float> xf(xd.shape());
  for (index_t i = 0; i < xd.numel(); ++i) xf[i] = static_cast<float>(xd[i]);
  Tensor<double> yd;
  Tensor<float> yf;
  cd.forward(xd, yd);
  cf.forward(xf, yf);
  CHECK(testing::relative_error(yf, yd) < 1e-5);
}

TEST_CASE("Conv2d: parameters, names, initialization and describe()") {
  manual_seed(1);
  Conv2d<float> conv({.in = 4, .out = 8, .kernel = 3, .padding = 1, .groups = 2});
  CHECK(conv.describe() == "Conv2d(4, 8, kernel=3x3, stride=1, padding=1, groups=2)");
  auto params = named_parameters(conv);
  REQUIRE(params.size() == 2);
  CHECK(params[0].first == "weight");
  CHECK(params[0].second->shape() == Shape{8, 2, 3, 3});
  CHECK(params[1].first == "bias");
  CHECK(params[1].second->shape() == Shape{8});
  CHECK(&conv.weight() == params[0].second);
  CHECK(conv.bias() == params[1].second);
  // PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 2 * 3 * 3.
  const double bound = 1.0 / std::sqrt(18.0);
  double lo = 1, hi = -1;
  for (index_t i = 0; i < conv.weight().value.numel(); ++i) {
    lo = std::min<double>(lo, conv.weight().value[i]);
    hi = std::max<double>(hi, conv.weight().value[i]);
  }
  CHECK(lo >= -bound);
  CHECK(hi <= bound);
  CHECK(hi - lo > bound);  // spread over the range, not constant
  for (index_t i = 0; i < 8; ++i) CHECK(std::abs(conv.bias()->value[i]) <= bound);

  Conv2d<float> plain({.in = 3, .out = 2, .kernel = {1, 3}, .stride = {2, 1}, .dilation = 2, .bias = false});
  CHECK(plain.bias() == nullptr);
  CHECK(named_parameters(plain).size() == 1);
  CHECK(plain.describe() == "Conv2d(3, 2, kernel=1x3, stride=2x1, padding=0, dilation=2, bias=False)");
  CHECK(plain.setup(Shape{2, 3, 9, 9}) == Shape{2, 2, 5, 5});

  // The same seed gives the same parameters.
  manual_seed(1);
  Conv2d<float> again({.in = 4, .out = 8, .kernel = 3, .padding = 1, .groups = 2});
  for (index_t i = 0; i < again.weight().value.numel(); ++i) CHECK(again.weight().value[i] == conv.weight().value[i]);
}

TEST_CASE("Conv2d: bad inputs and options are rejected with clear messages") {
  Conv2d<float> conv({.in = 3, .out = 16, .kernel = 3, .padding = 1});
  CHECK_THROWS_WITH_AS(conv.setup(Shape{2, 4, 8, 8}),
                       doctest::Contains("Conv2d(3, 16, kernel=3x3, stride=1, padding=1): expected input with 3 "
                                         "channels, got shape [2, 4, 8, 8]"),
                       Error);
  Tensor<float> y;
  CHECK_THROWS_WITH_AS(conv.forward(random_tensor<float>(Shape{1, 2, 5, 5}, 1), y),
                       doctest::Contains("expected input with 3 channels, got shape [1, 2, 5, 5]"), Error);
  CHECK_THROWS_WITH_AS(conv.setup(Shape{3, 8, 8}), doctest::Contains("expected a 4-d NCHW input, got shape [3, 8, 8]"),
                       Error);

  Conv2d<float> big({.in = 3, .out = 4, .kernel = 7, .padding = 1});
  CHECK_THROWS_WITH_AS(big.setup(Shape{1, 3, 4, 9}),
                       doctest::Contains("Conv2d(3, 4, kernel=7x7, stride=1, padding=1): input of shape [1, 3, 4, 9] "
                                         "is too small: padded input 6x11 is smaller than the kernel's span 7x7"),
                       Error);
  Conv2d<float> dilated({.in = 1, .out = 1, .kernel = 3, .dilation = 3});
  CHECK_THROWS_WITH_AS(dilated.setup(Shape{1, 1, 6, 6}), doctest::Contains("kernel's span 7x7"), Error);

  CHECK_THROWS_WITH_AS(Conv2d<float>({.in = 0, .out = 4, .kernel = 3}),
                       doctest::Contains("in channels must be positive, got 0"), Error);
  CHECK_THROWS_WITH_AS(Conv2d<float>({.in = 3, .out = -2, .kernel = 3}),
                       doctest::Contains("out channels must be positive, got -2"), Error);
  CHECK_THROWS_WITH_AS(Conv2d<float>({.in = 3, .out = 4}), doctest::Contains("kernel size must be positive, got 0x0"),
                       Error);
  CHECK_THROWS_WITH_AS(Conv2d<float>({.in = 3, .out = 4, .kernel = {3, 0}}),
                       doctest::Contains("kernel size must be positive, got 3x0"), Error);
  CHECK_THROWS_WITH_AS(Conv2d<float>({.in = 3, .out = 4, .kernel = 3, .stride = 0}),
                       doctest::Contains("stride must be positive, got 0x0"), Error);
  CHECK_THROWS_WITH_AS(Conv2d<float>({.in = 3, .out = 4, .kernel = 3, .padding = {-1, 0}}),
                       doctest::Contains("padding must be non-negative, got -1x0"), Error);
  CHECK_THROWS_WITH_AS(Conv2d<float>({.in = 3, .out = 4, .kernel = 3, .dilation = 0}),
                       doctest::Contains("dilation must be positive, got 0x0"), Error);
  CHECK_THROWS_WITH_AS(Conv2d<float>({.in = 3, .out = 4, .kernel = 3, .groups = 0}),
                       doctest::Contains("groups must be positive, got 0"), Error);
  CHECK_THROWS_WITH_AS(Conv2d<float>({.in = 3, .out = 4, .kernel = 3, .groups = 2}),
                       doctest::Contains("Conv2d(3, 4, kernel=3x3, stride=1, padding=0, groups=2): in channels (3) "
                                         "must be divisible by groups (2)"),
                       Error);
  CHECK_THROWS_WITH_AS(Conv2d<float>({.in = 4, .out = 6, .kernel = 3, .groups = 4}),
                       doctest::Contains("out channels (6) must be divisible by groups (4)"), Error);

  // backward checks its arguments.
  Tensor<float> x = random_tensor<float>(Shape{1, 3, 5, 5}, 2), out;
  conv.forward(x, out);
  Tensor<float> dx = zeros<float>(x.shape()), wrong_dy = zeros<float>(Shape{1, 16, 4, 4});
  CHECK_THROWS_WITH_AS(conv.backward(x, out, wrong_dy, dx),
                       doctest::Contains("Conv2d(3, 16, kernel=3x3, stride=1, padding=1): output gradient dy has "
                                         "shape [1, 16, 4, 4], expected [1, 16, 5, 5]"),
                       Error);
}
