#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/layers/dropout2d.hpp"
#include "gcnet/testing/gradient_check.hpp"

using namespace gcnet;

namespace {
// Random values bounded away from zero, so a zero output can only mean "dropped".
template <class T>
Tensor<T> random_nonzero(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<T> t(s);
  for (index_t i = 0; i < t.numel(); ++i) {
    const double u = rng.uniform(0.1, 2.0);
    t[i] = static_cast<T>(rng.uniform() < 0.5 ? -u : u);
  }
  return t;
}

// Per (n, c) channel: 1 if kept (every value scaled exactly by 1/(1-p)), 0 if dropped (all
// zero); fails the test for a channel that is neither.
template <class T>
std::vector<int> channel_mask(const Tensor<T>& x, const Tensor<T>& y, double p) {
  const index_t nc = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  std::vector<int> kept(static_cast<std::size_t>(nc));
  for (index_t k = 0; k < nc; ++k) {
    int zeros = 0, scaled = 0;
    for (index_t j = 0; j < hw; ++j) {
      zeros += y[k * hw + j] == T(0);
      scaled += y[k * hw + j] == x[k * hw + j] * scale;
    }
    CHECK((zeros == hw || scaled == hw));
    kept[static_cast<std::size_t>(k)] = scaled == hw;
  }
  return kept;
}

template <class T>
bool equal(const Tensor<T>& a, const Tensor<T>& b) {
  if (!(a.shape() == b.shape())) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}
}  // namespace

TEST_CASE("Dropout2d: drops whole channels with probability p, scales kept ones by 1/(1-p)") {
  for (double p : {0.3, 0.5, 0.8}) {
    Dropout2d<float> d(p, 1234);
    const auto x = random_nonzero<float>(Shape{100, 100, 2, 2}, 1);
    Tensor<float> y;
    d.forward(x, y);
    const auto kept = channel_mask(x, y, p);
    double dropped = 0;
    for (int k : kept) dropped += k == 0;
    dropped /= static_cast<double>(kept.size());
    INFO("p = ", p, ", fraction dropped = ", dropped);
    CHECK(std::abs(dropped - p) < 0.025);  // 10000 channels: sd <= 0.005
    // The stored mask says the same.
    for (std::size_t k = 0; k < kept.size(); k += 17)
      CHECK(d.mask()[static_cast<index_t>(k)] == (kept[k] ? static_cast<float>(1 / (1 - p)) : 0.0f));
  }
}

TEST_CASE("Dropout2d: identity in eval and for p = 0, backward passes dy through") {
  const auto x = random_nonzero<float>(Shape{3, 4, 2, 5}, 2);
  const auto dy = random_nonzero<float>(x.shape(), 3);
  Tensor<float> y;
  Dropout2d<float> d(0.5, 1);
  d.set_training(false);
  d.forward(x, y);
  CHECK(equal(x, y));
  auto dx = random_nonzero<float>(x.shape(), 4);
  const auto dx0 = clone(dx);
  d.backward(x, y, dy, dx);
  for (index_t i = 0; i < x.numel(); ++i) CHECK(dx[i] == dx0[i] + dy[i]);

  Dropout2d<float> zero(0.0, 1);
  zero.forward(x, y);
  CHECK(equal(x, y));
  CHECK(zero.describe() == "Dropout2d(p=0)");
}

TEST_CASE("Dropout2d: masks are reproducible from the seed and change from one forward to the next") {
  const auto x = random_nonzero<double>(Shape{4, 16, 3, 3}, 5);
  Tensor<double> y1, y2, y3, y4;
  Dropout2d<double> a(0.5, 99), b(0.5, 99), c(0.5, 100);
  a.forward(x, y1);
  b.forward(x, y2);
  CHECK(equal(y1, y2));
  c.forward(x, y3);
  CHECK_FALSE(equal(y1, y3));
  a.forward(x, y4);  // next counter, next mask
  CHECK(a.counter() == 2);
  CHECK_FALSE(equal(y1, y4));
  a.reseed(99);
  a.forward(x, y4);
  CHECK(equal(y1, y4));
  // Without an explicit seed, the seed comes from the global generator.
  manual_seed(7);
  Dropout2d<double> e(0.5);
  manual_seed(7);
  Dropout2d<double> f(0.5);
  CHECK(e.seed() == f.seed());
  Dropout2d<double> g(0.5);
  CHECK(g.seed() != f.seed());
}

TEST_CASE("Dropout2d: gradient check with a fixed mask") {
  Dropout2d<double> d(0.4, 5);
  testing::GradCheckOptions o;
  o.input_probes = 200;  // every entry
  o.before_forward = [&] { d.reseed(5); };
  auto r = testing::check_gradients(d, Shape{3, 5, 2, 3}, o);
  INFO(r.report);
  CHECK(r.ok);
  CHECK(r.checked == 90);
  // The mask really drops some channels and keeps others.
  int dropped = 0;
  for (index_t k = 0; k < 15; ++k) dropped += d.mask()[k] == 0.0;
  CHECK(dropped > 0);
  CHECK(dropped < 15);
}

TEST_CASE("Dropout2d: p outside the half-open unit interval and non-4-d inputs are rejected") {
  CHECK_THROWS_WITH_AS(Dropout2d<float>(-0.1), doctest::Contains("Dropout2d: dropout probability p must be in [0, 1), got -0.1"),
                       Error);
  CHECK_THROWS_WITH_AS(Dropout2d<float>(1.0), doctest::Contains("must be in [0, 1), got 1"), Error);
  CHECK_THROWS_WITH_AS(Dropout2d<float>(std::nan("")), doctest::Contains("must be in [0, 1)"), Error);
  Dropout2d<float> d(0.1);
  CHECK(d.describe() == "Dropout2d(p=0.1)");
  CHECK_THROWS_WITH_AS(d.setup(Shape{4, 3}), doctest::Contains("Dropout2d(p=0.1): expected a 4-d NCHW input, got shape [4, 3]"),
                       Error);
}
