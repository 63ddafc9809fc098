#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/core/rng.hpp"

using namespace gcnet;

TEST_CASE("rng: same seed and stream reproduce, others differ") {
  Rng a(123, 0), b(123, 0), c(123, 1), d(124, 0);
  int same_c = 0, same_d = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto va = a.next_u32();
    CHECK(va == b.next_u32());
    same_c += va == c.next_u32();
    same_d += va == d.next_u32();
  }
  CHECK(same_c < 3);
  CHECK(same_d < 3);
}

TEST_CASE("rng: any position can be computed directly") {
  Rng a(5, 9);
  for (int i = 0; i < 100; ++i) a.next_u32();
  CHECK(a.next_u32() == Philox::at(5, 9, 100));
  Rng b(5, 9);
  b.seek(100);
  CHECK(b.next_u32() == Philox::at(5, 9, 100));
}

TEST_CASE("rng: uniform and normal have the right moments") {
  Rng r(42);
  const int n = 200000;
  double su = 0, su2 = 0, sn = 0, sn2 = 0, mn = 1, mx = 0;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform(), z = r.normal();
    su += u; su2 += u * u; sn += z; sn2 += z * z;
    mn = std::min(mn, u); mx = std::max(mx, u);
  }
  CHECK(std::abs(su / n - 0.5) < 0.005);
  CHECK(std::abs(su2 / n - 1.0 / 3) < 0.005);
  CHECK(std::abs(sn / n) < 0.01);
  CHECK(std::abs(sn2 / n - 1.0) < 0.02);
  CHECK(mn >= 0.0);
  CHECK(mx < 1.0);
}

TEST_CASE("rng: manual_seed makes the global generator reproducible") {
  manual_seed(99);
  const auto first = global_rng().next_u32();
  global_rng().next_u32();
  manual_seed(99);
  CHECK(global_rng().next_u32() == first);
}
