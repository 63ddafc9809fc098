// Initializers: PyTorch's defaults and mmcv's module helpers have the right distributions.
#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/core/module_init.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/linear.hpp"

using namespace gcnet;

namespace {
struct Moments {
  double mean, std, min, max;
};
Moments moments(const Tensor<float>& t) {
  double s = 0, s2 = 0, mn = 1e30, mx = -1e30;
  for (index_t i = 0; i < t.numel(); ++i) {
    s += t[i];
    s2 += double(t[i]) * t[i];
    mn = std::min(mn, double(t[i]));
    mx = std::max(mx, double(t[i]));
  }
  const double n = double(t.numel()), m = s / n;
  return {m, std::sqrt(s2 / n - m * m), mn, mx};
}
}  // namespace

TEST_CASE("PyTorch default init of Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias") {
  manual_seed(1);
  Conv2d<> conv({.in = 64, .out = 128, .kernel = 3});
  const double bound = 1 / std::sqrt(64.0 * 9);
  auto w = moments(conv.weight().value);
  CHECK(w.max <= bound);
  CHECK(w.min >= -bound);
  CHECK(w.std == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.02));
  auto b = moments(conv.bias()->value);
  CHECK(b.max <= bound);
  CHECK(b.min >= -bound);
  CHECK(b.max - b.min > bound);  // really spread, not constant
}

TEST_CASE("mmcv kaiming_init: normal, fan_out, relu gain, constant bias") {
  manual_seed(2);
  Conv2d<> conv({.in = 32, .out = 256, .kernel = 3});
  init::kaiming_init(conv);  // mmcv defaults: a=0, mode=fan_out, relu, bias=0, normal
  auto w = moments(conv.weight().value);
  CHECK(std::abs(w.mean) < 0.002);
  CHECK(w.std == doctest::Approx(std::sqrt(2.0 / (256 * 9))).epsilon(0.02));
  auto b = moments(conv.bias()->value);
  CHECK(b.min == 0.0);
  CHECK(b.max == 0.0);

  init::kaiming_init(conv, 0, init::FanMode::FanIn, "relu", 0.5);  // GC's conv_mask uses fan_in
  CHECK(moments(conv.weight().value).std == doctest::Approx(std::sqrt(2.0 / (32 * 9))).epsilon(0.02));
  CHECK(moments(conv.bias()->value).min == 0.5);
}

TEST_CASE("mmcv normal_init, constant_init, xavier_init, uniform_init") {
  manual_seed(3);
  Linear<> fc(512, 1024);
  init::normal_init(fc, 0, 0.01);
  CHECK(moments(fc.weight().value).std == doctest::Approx(0.01).epsilon(0.02));
  init::constant_init(fc, 0.0, 0.0);  // last_zero_init of GC blocks
  CHECK(moments(fc.weight().value).max == 0.0);
  CHECK(moments(fc.weight().value).min == 0.0);
  init::xavier_init(fc, 1.0, 0, init::Distribution::Uniform);
  const double bound = std::sqrt(6.0 / (512 + 1024));
  CHECK(moments(fc.weight().value).max <= bound);
  CHECK(moments(fc.weight().value).std == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.02));
  init::uniform_init(fc, -2, 3, 0.25);
  CHECK(moments(fc.weight().value).mean == doctest::Approx(0.5).epsilon(0.02));
  CHECK(moments(fc.bias()->value).max == 0.25);
  CHECK_THROWS_WITH_AS(init::gain("swish"), doctest::Contains("unknown nonlinearity 'swish'"), Error);
}
