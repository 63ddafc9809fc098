#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "gcnet/kernels/softmax_exp.hpp"

using namespace gcnet;

TEST_CASE("softmax_exp: float within 2 ulp of std::exp on [-87, 88], clamped outside, NaN stays NaN") {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.01234f) {
    const double ref = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(detail::softmax_exp(x) - ref) / ref);
  }
  CHECK(worst < 2.5e-7);
  CHECK(detail::softmax_exp(-1e30f) == detail::softmax_exp(-87.0f));
  CHECK(detail::softmax_exp(-std::numeric_limits<float>::infinity()) == detail::softmax_exp(-87.0f));
  CHECK(detail::softmax_exp(1e30f) == detail::softmax_exp(88.0f));
  CHECK(detail::softmax_exp(0.0f) == 1.0f);
  CHECK(detail::clamp_by_mask(-3.0f, -1.0f, 2.0f) == -1.0f);
  CHECK(detail::clamp_by_mask(5.0f, -1.0f, 2.0f) == 2.0f);
  CHECK(detail::clamp_by_mask(0.5f, -1.0f, 2.0f) == 0.5f);
  CHECK(std::isnan(detail::clamp_by_mask(std::nanf(""), -1.0f, 2.0f)));
  CHECK(detail::softmax_exp(-3.5) == std::exp(-3.5));  // double keeps std::exp
}
