#include <doctest/doctest.h>

#include "gcnet/layers/flatten.hpp"
#include "gcnet/testing/gradient_check.hpp"

using namespace gcnet;

TEST_CASE("Flatten: shape, values and gradient") {
  Flatten<double> f;
  CHECK(f.setup(Shape{2, 3, 4, 5}) == Shape{2, 60});
  auto r = testing::check_gradients(f, Shape{2, 3, 2, 2});
  INFO(r.report);
  CHECK(r.ok);
  CHECK_THROWS_WITH_AS(f.setup(Shape{5}), doctest::Contains("Flatten: expected a non-empty input of rank >= 2"), Error);
}
