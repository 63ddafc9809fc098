#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include "gcnet/layers/conv_transpose2d.hpp"
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
ConvTranspose2dOptions spec_options(const test::ConvSpec& s, bool bias) {
  return {.in = s.in, .out = s.out, .kernel = s.kernel, .stride = s.stride, .padding = s.padding,
          .output_padding = s.output_padding, .dilation = s.dilation, .groups = s.groups, .bias = bias};
}
}  // namespace

static_assert(Layer<ConvTranspose2d<float>> && Layer<ConvTranspose2d<double>>);

TEST_CASE("ConvTranspose2d: parity with torch.nn.ConvTranspose2d (float32) on every fixture case") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/conv_transpose2d.safetensors");
  const auto cases = split_csv(f.meta("all.cases"));
  CHECK(cases.size() >= 10);
  for (const auto& c : cases) {
    ConvTranspose2d<float> deconv({.in = f.meta_int(c + ".in_channels"),
                                   .out = f.meta_int(c + ".out_channels"),
                                   .kernel = meta_size2(f, c + ".kernel"),
                                   .stride = meta_size2(f, c + ".stride"),
                                   .padding = meta_size2(f, c + ".padding"),
                                   .output_padding = meta_size2(f, c + ".output_padding"),
                                   .dilation = meta_size2(f, c + ".dilation"),
                                   .groups = f.meta_int(c + ".groups"),
                                   .bias = f.meta(c + ".bias") == "1"});
    auto r = testing::run_parity(deconv, f, c);
    INFO(c << ": " << deconv.describe() << "\n" << r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("ConvTranspose2d: gradient check (double) for every option variant") {
  struct Variant {
    ConvTranspose2dOptions o;
    Shape in;
  };
  const Variant variants[] = {
      {{.in = 3, .out = 2, .kernel = 2, .stride = 2}, Shape{2, 3, 3, 4}},
      {{.in = 3, .out = 4, .kernel = 3, .padding = 1}, Shape{2, 3, 4, 4}},
      {{.in = 2, .out = 3, .kernel = 3, .stride = 2, .padding = 1, .output_padding = 1}, Shape{2, 2, 3, 4}},
      {{.in = 2, .out = 3, .kernel = 3, .padding = 1, .dilation = 2}, Shape{2, 2, 4, 4}},
      {{.in = 2, .out = 2, .kernel = 3, .output_padding = 1, .dilation = 2}, Shape{2, 2, 3, 3}},
      {{.in = 4, .out = 6, .kernel = 3, .stride = 2, .groups = 2}, Shape{2, 4, 3, 3}},
      {{.in = 4, .out = 4, .kernel = 3, .padding = 1, .groups = 4}, Shape{2, 4, 4, 3}},
      {{.in = 3, .out = 2, .kernel = 1, .bias = false}, Shape{2, 3, 4, 4}},
      {{.in = 2, .out = 3, .kernel = {2, 3}, .stride = {2, 1}, .padding = {0, 1}, .output_padding = {1, 0}},
       Shape{2, 2, 3, 4}},
      // 16x17 input: the per-image banded path, one image per thread.
      {{.in = 2, .out = 2, .kernel = 2, .stride = 2}, Shape{2, 2, 16, 17}},
  };
  for (const auto& v : variants) {
    manual_seed(7);
    ConvTranspose2d<double> deconv(v.o);
    auto r = testing::check_gradients(deconv, v.in);
    INFO(deconv.describe() << " on " << v.in.str() << "\n" << r.report);
    CHECK(r.ok);
    CHECK(r.checked > 40);
  }
}

TEST_CASE("ConvTranspose2d: every scheduling path matches a direct transposed convolution") {
  struct Variant {
    test::ConvSpec s;
    Shape in;
  };
  const Variant variants[] = {
      {{.in = 16, .out = 8, .kernel = 2, .stride = 2}, Shape{1, 16, 20, 18}},        // bands, 1 image
      {{.in = 16, .out = 8, .kernel = 3, .stride = 2, .padding = 1, .output_padding = 1}, Shape{3, 16, 20, 18}},
      {{.in = 6, .out = 4, .kernel = 3, .padding = 1, .groups = 2}, Shape{2, 6, 18, 17}},
      {{.in = 8, .out = 6, .kernel = 1}, Shape{3, 8, 17, 16}},                        // pointwise, per image
      {{.in = 8, .out = 6, .kernel = 1}, Shape{5, 8, 5, 5}},                          // pointwise, stacked
      {{.in = 4, .out = 6, .kernel = 2, .stride = 2}, Shape{23, 4, 10, 10}},          // stacked, two stacks
      {{.in = 3, .out = 5, .kernel = {5, 3}, .stride = {1, 2}, .padding = {2, 0}, .dilation = {1, 2},
        .output_padding = {0, 1}},
       Shape{2, 3, 21, 16}},
  };
  for (const auto& v : variants) {
    for (bool bias : {true, false}) {
      manual_seed(11);
      ConvTranspose2d<double> deconv(spec_options(v.s, bias));
      const auto x = random_tensor<double>(v.in, 1);
      Tensor<double> y;
      deconv.forward(x, y);
      const auto dy = random_tensor<double>(y.shape(), 2);
      auto dx = random_tensor<double>(v.in, 3);
      const auto dx0 = clone(dx);
      deconv.backward(x, y, dy, dx);
      const auto ref = test::conv_transpose2d_reference(v.s, x, deconv.weight().value,
                                                        bias ? &deconv.bias()->value : nullptr, dy);
      INFO(deconv.describe() << " on " << v.in.str());
      CHECK(max_abs_diff(y, ref.y) < 1e-10);
      add_scaled(dx, dx0, -1.0);  // what backward added
      CHECK(max_abs_diff(dx, ref.dx) < 1e-10);
      CHECK(max_abs_diff(deconv.weight().grad, ref.dw) < 1e-9);
      if (bias) CHECK(max_abs_diff(deconv.bias()->grad, ref.db) < 1e-9);
    }
  }
}

TEST_CASE("ConvTranspose2d: parameters, names, initialization and describe()") {
  manual_seed(1);
  ConvTranspose2d<float> up({.in = 256, .out = 256, .kernel = 2, .stride = 2});
  CHECK(up.describe() == "ConvTranspose2d(256, 256, kernel=2x2, stride=2, padding=0)");
  CHECK(up.setup(Shape{2, 256, 14, 14}) == Shape{2, 256, 28, 28});
  auto params = named_parameters(up);
  REQUIRE(params.size() == 2);
  CHECK(params[0].first == "weight");
  CHECK(params[0].second->shape() == Shape{256, 256, 2, 2});
  CHECK(params[1].first == "bias");
  CHECK(up.bias() == params[1].second);

  ConvTranspose2d<float> g({.in = 4, .out = 6, .kernel = 3, .stride = 2, .padding = 1, .output_padding = 1,
                            .groups = 2, .bias = false});
  CHECK(g.describe() == "ConvTranspose2d(4, 6, kernel=3x3, stride=2, padding=1, output_padding=1, groups=2, bias=False)");
  CHECK(g.weight().shape() == Shape{4, 3, 3, 3});
  CHECK(g.bias() == nullptr);
  CHECK(g.setup(Shape{1, 4, 5, 7}) == Shape{1, 6, 10, 14});
  // PyTorch's fan_in for ConvTranspose2d is weight.size(1) * kh * kw = 3 * 9.
  const double bound = 1.0 / std::sqrt(27.0);
  double lo = 1, hi = -1;
  for (index_t i = 0; i < g.weight().value.numel(); ++i) {
    lo = std::min<double>(lo, g.weight().value[i]);
    hi = std::max<double>(hi, g.weight().value[i]);
  }
  CHECK(lo >= -bound);
  CHECK(hi <= bound);
  CHECK(hi - lo > bound);
}

TEST_CASE("ConvTranspose2d: bad inputs and options are rejected with clear messages") {
  ConvTranspose2d<float> up({.in = 8, .out = 4, .kernel = 2, .stride = 2});
  CHECK_THROWS_WITH_AS(up.setup(Shape{2, 4, 8, 8}),
                       doctest::Contains("ConvTranspose2d(8, 4, kernel=2x2, stride=2, padding=0): expected input with "
                                         "8 channels, got shape [2, 4, 8, 8]"),
                       Error);
  CHECK_THROWS_WITH_AS(up.setup(Shape{8, 8}), doctest::Contains("expected a 4-d NCHW input, got shape [8, 8]"), Error);
  ConvTranspose2d<float> shrink({.in = 1, .out = 1, .kernel = 1, .padding = 2});
  CHECK_THROWS_WITH_AS(shrink.setup(Shape{1, 1, 3, 6}),
                       doctest::Contains("ConvTranspose2d(1, 1, kernel=1x1, stride=1, padding=2): input of shape "
                                         "[1, 1, 3, 6] gives an empty output (-1x2)"),
                       Error);

  CHECK_THROWS_WITH_AS(ConvTranspose2d<float>({.in = 0, .out = 4, .kernel = 3}),
                       doctest::Contains("in channels must be positive, got 0"), Error);
  CHECK_THROWS_WITH_AS(ConvTranspose2d<float>({.in = 4, .out = 4, .kernel = -3}),
                       doctest::Contains("kernel size must be positive, got -3x-3"), Error);
  CHECK_THROWS_WITH_AS(ConvTranspose2d<float>({.in = 4, .out = 4, .kernel = 3, .stride = {1, 0}}),
                       doctest::Contains("stride must be positive, got 1x0"), Error);
  CHECK_THROWS_WITH_AS(ConvTranspose2d<float>({.in = 4, .out = 4, .kernel = 3, .output_padding = -1}),
                       doctest::Contains("output_padding must be non-negative, got -1x-1"), Error);
  CHECK_THROWS_WITH_AS(ConvTranspose2d<float>({.in = 4, .out = 4, .kernel = 3, .stride = 2, .output_padding = 2}),
                       doctest::Contains("output_padding (2x2) must be smaller than either stride (2x2) or dilation (1x1)"),
                       Error);
  CHECK_THROWS_WITH_AS(ConvTranspose2d<float>({.in = 6, .out = 4, .kernel = 3, .groups = 4}),
                       doctest::Contains("in channels (6) must be divisible by groups (4)"), Error);
  CHECK_THROWS_WITH_AS(ConvTranspose2d<float>({.in = 4, .out = 6, .kernel = 3, .groups = 4}),
                       doctest::Contains("ConvTranspose2d(4, 6, kernel=3x3, stride=1, padding=0, groups=4): out "
                                         "channels (6) must be divisible by groups (4)"),
                       Error);
}
