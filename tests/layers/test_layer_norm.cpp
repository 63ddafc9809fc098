#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include "gcnet/layers/layer_norm.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;

namespace {

// "8,1,1" -> Shape{8, 1, 1}
Shape parse_shape(const std::string& s) {
  Shape out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, ',');) out.push_back(std::stoll(part));
  return out;
}

void randomize(LayerNorm<double>& ln, std::uint64_t seed) {
  if (!ln.weight()) return;
  Rng rng(seed);
  for (index_t i = 0; i < ln.weight()->value.numel(); ++i) {
    ln.weight()->value[i] = rng.normal();
    ln.bias()->value[i] = rng.normal();
  }
}
}  // namespace

TEST_CASE("LayerNorm: describe and parameter names") {
  LayerNorm<float> ln({8, 1, 1});
  CHECK(ln.describe() == "LayerNorm([8, 1, 1], eps=1e-05, elementwise_affine=True)");
  std::vector<std::string> p;
  for (auto& [n, t] : named_parameters(ln)) {
    p.push_back(n);
    CHECK(t->shape() == Shape{8, 1, 1});
  }
  CHECK(p == std::vector<std::string>{"weight", "bias"});
  CHECK(ln.weight()->value[3] == 1.0f);
  CHECK(ln.bias()->value[3] == 0.0f);
  LayerNorm<float> bare(Shape{4}, 1e-3, false);
  CHECK(bare.describe() == "LayerNorm([4], eps=0.001, elementwise_affine=False)");
  CHECK(named_parameters(bare).empty());
}

TEST_CASE("LayerNorm: PyTorch parity over 1, 2 and 3 trailing dims") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/norm.safetensors");
  for (const char* c : {"ln_1d", "ln_2d", "ln_p11", "ln_3d_noaffine"}) {
    const std::string k = c;
    LayerNorm<float> ln(parse_shape(f.meta(k + ".normalized_shape")), f.meta_double(k + ".eps"),
                        f.meta_int(k + ".elementwise_affine") != 0);
    auto r = testing::run_parity(ln, f, c);
    INFO(r.report);
    CHECK(r.ok);
    CHECK(r.report.find(k + ".dx") != std::string::npos);
  }
}

TEST_CASE("LayerNorm: each row is normalized (many rows: parallel path)") {
  LayerNorm<float> ln(Shape{3, 4});
  const auto x = random_tensor<float>(Shape{512, 16, 3, 4}, 7, 4.0, 10.0);
  Tensor<float> y;
  ln.forward(x, y);
  for (index_t r = 0; r < 512 * 16; r += 97) {
    double s = 0, sq = 0;
    for (index_t j = 0; j < 12; ++j) {
      s += y[r * 12 + j];
      sq += double(y[r * 12 + j]) * y[r * 12 + j];
    }
    CHECK(std::abs(s / 12) < 1e-5);
    CHECK(sq / 12 == doctest::Approx(1.0).epsilon(1e-4));
  }
}

TEST_CASE("LayerNorm: gradient check over 1, 2 and 3 trailing dims, with and without affine") {
  struct Case {
    Shape normalized, input;
    bool affine;
  };
  for (const Case& c : {Case{{6}, {2, 3, 6}, true}, Case{{4, 5}, {2, 3, 4, 5}, true},
                        Case{{8, 1, 1}, {3, 8, 1, 1}, true}, Case{{3, 4, 5}, {2, 3, 4, 5}, false},
                        Case{{7}, {7}, true}}) {
    LayerNorm<double> ln(c.normalized, 1e-5, c.affine);
    randomize(ln, 3);
    testing::GradCheckOptions o;
    o.input_probes = 60;
    o.input_scale = 2.0;
    auto r = testing::check_gradients(ln, c.input, o);
    const std::string what = ln.describe() + " on " + c.input.str() + "\n" + r.report;
    INFO(what);
    CHECK(r.ok);
    CHECK(r.checked >= std::min<index_t>(60, c.input.numel()));
  }
}

TEST_CASE("LayerNorm: a mismatched input names LayerNorm, the normalized shape and the input shape") {
  LayerNorm<float> ln({8, 1, 1});
  CHECK_THROWS_WITH_AS(ln.setup(Shape{2, 4, 1, 1}),
                       doctest::Contains("LayerNorm([8, 1, 1], eps=1e-05, elementwise_affine=True): given "
                                         "normalized_shape=[8, 1, 1], expected input with shape [*, 8, 1, 1], got "
                                         "shape [2, 4, 1, 1]"),
                       Error);
  Tensor<float> y;
  CHECK_THROWS_WITH_AS(ln.forward(random_tensor<float>(Shape{2, 8, 2, 2}, 1), y),
                       doctest::Contains("expected input with shape [*, 8, 1, 1], got shape [2, 8, 2, 2]"), Error);
  LayerNorm<float> ln2(Shape{4, 5});
  CHECK_THROWS_WITH_AS(ln2.setup(Shape{5}), doctest::Contains("expected input with shape [*, 4, 5], got shape [5]"),
                       Error);
  CHECK_THROWS_WITH_AS(LayerNorm<float>(Shape{}), doctest::Contains("LayerNorm: normalized_shape must be non-empty"),
                       Error);
  CHECK_THROWS_WITH_AS(LayerNorm<float>(Shape{4, 0}),
                       doctest::Contains("normalized_shape must be non-empty with positive extents, got [4, 0]"), Error);
}
