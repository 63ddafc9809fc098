#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/loss/cross_entropy.hpp"
#include "gcnet/testing/parity.hpp"

using namespace gcnet;

namespace {
Tensor<std::int64_t> labels(const Tensor<double>& t) {
  Tensor<std::int64_t> out(t.shape());
  for (index_t i = 0; i < t.numel(); ++i) out[i] = static_cast<std::int64_t>(t[i]);
  return out;
}
}  // namespace

TEST_CASE("CrossEntropyLoss: PyTorch parity with ignore_index, 2-d and 4-d logits") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/train.safetensors");
  for (const char* c : {"ce2d", "ce4d"}) {
    CAPTURE(c);
    const std::string n = c;
    auto logits = f.tensor<float>(n + ".logits");
    auto target = labels(f.tensor<double>(n + ".target"));
    CrossEntropyLoss<float> ce({.ignore_index = 255});
    const double loss = ce.forward(logits, target);
    const double ref = f.tensor<double>(n + ".loss")[0];
    CHECK(std::abs(loss - ref) <= 1e-5 * std::abs(ref));
    auto d = full<float>(logits.shape(), 0.25f);  // accumulates
    ce.backward(d);
    for (index_t i = 0; i < d.numel(); ++i) d[i] -= 0.25f;
    CHECK(testing::relative_error(d, f.tensor<double>(n + ".dlogits")) <= 1e-4);
  }
}

TEST_CASE("CrossEntropyLoss: gradient matches finite differences (double)") {
  Rng rng(4);
  Tensor<double> x(Shape{3, 4, 2, 2});
  for (index_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
  Tensor<std::int64_t> t(Shape{3, 2, 2});
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<std::int64_t>(rng.below(4));
  t[5] = -100;
  CrossEntropyLoss<double> ce;
  ce.forward(x, t);
  auto d = zeros<double>(x.shape());
  ce.backward(d);
  for (index_t i = 0; i < x.numel(); ++i) {
    auto xp = clone(x), xm = clone(x);
    xp[i] += 1e-6;
    xm[i] -= 1e-6;
    CrossEntropyLoss<double> a, b;
    const double num = (a.forward(xp, t) - b.forward(xm, t)) / 2e-6;
    CHECK(d[i] == doctest::Approx(num).epsilon(1e-6));
  }
}

TEST_CASE("CrossEntropyLoss: bad targets and shapes are clear errors") {
  Tensor<float> x = full<float>(Shape{2, 3}, 0.5f);
  Tensor<std::int64_t> t(Shape{2});
  t[0] = 1;
  t[1] = 3;
  CrossEntropyLoss<float> ce;
  CHECK_THROWS_WITH_AS(ce.forward(x, t), doctest::Contains("target 3 at element 1 is outside [0, 3)"), Error);
  Tensor<std::int64_t> t3(Shape{3});
  CHECK_THROWS_WITH_AS(ce.forward(x, t3), doctest::Contains("target has shape [3], expected [2]"), Error);
}
