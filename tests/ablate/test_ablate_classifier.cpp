// AblationClassifier's wiring (ablate/classifier.hpp): shapes, where the blocks go, its backward
// against central differences (with the NL inserted between blocks and with GC plugins), and
// the NL analysis (ablate/nl_analysis.hpp) reconstructing the block's own output.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "data/fashion_mnist_required.hpp"
#include "gcnet/ablate/attention_analysis.hpp"
#include "gcnet/ablate/classification.hpp"
#include "support/files.hpp"

using namespace gcnet;
using namespace gcnet::ablate;

namespace {

ClassifierOptions small() {
  ClassifierOptions o;
  o.stem_channels = 4;
  o.base_channels = 4;
  o.blocks = {1, 1, 2, 1};
  return o;
}

Tensor<float> random_tensor(const Shape& s, std::uint64_t seed, double scale = 1.0) {
  Tensor<float> t(s);
  Rng rng(seed);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(scale * rng.normal());
  return t;
}

// sum(y * r) in double.
double objective(AblationClassifier& net, const Tensor<float>& x, const Tensor<float>& r) {
  Tensor<float> y;
  net.forward(x, y);
  double s = 0;
  for (index_t i = 0; i < y.numel(); ++i) s += double(y[i]) * double(r[i]);
  return s;
}

// Directional derivative along a random direction of unit norm over all parameters and the
// input against the analytic gradient (float32, central differences, h = 1e-2: each value moves
// by about 1e-4, small next to the ReLU and BatchNorm kinks of a batch of 3).
void check_gradients(const Variant& v, const ClassifierOptions& o = small()) {
  auto net = build_classifier(o, v, 5);
  // Non-zero block outputs (the zero-initialised last convs would hide the block's gradient).
  index_t k = 0;
  net->visit_parameters("", [&](const std::string& n, Param<float, Cpu>& p) {
    if (n.find("context_block") == std::string::npos && n.find("nonlocal_block") == std::string::npos) return;
    p.value = random_tensor(p.value.shape(), 100 + k++, 0.3);
  });
  const Tensor<float> x = random_tensor(Shape{3, 1, 28, 28}, 1);
  Tensor<float> y;
  net->forward(x, y);
  const Tensor<float> r = random_tensor(y.shape(), 2);
  Tensor<float> dx(x.shape());
  fill(dx, 0.0f);
  net->backward(x, y, r, dx);
  std::vector<std::pair<Param<float, Cpu>*, Tensor<float>>> dirs;
  double analytic = 0;
  index_t seed = 300, total = x.numel();
  net->visit_parameters("", [&](const std::string&, Param<float, Cpu>& p) { total += p.value.numel(); });
  const double unit = 1.0 / std::sqrt(double(total));
  net->visit_parameters("", [&](const std::string&, Param<float, Cpu>& p) {
    Tensor<float> d = random_tensor(p.value.shape(), seed++, unit);
    for (index_t i = 0; i < d.numel(); ++i) analytic += double(p.grad[i]) * double(d[i]);
    dirs.emplace_back(&p, d);
  });
  const Tensor<float> dxdir = random_tensor(x.shape(), 9, unit);
  for (index_t i = 0; i < x.numel(); ++i) analytic += double(dx[i]) * double(dxdir[i]);
  auto shifted = [&](double h) {
    Tensor<float> xs(x.shape());
    for (index_t i = 0; i < x.numel(); ++i) xs[i] = x[i] + float(h) * dxdir[i];
    std::vector<Tensor<float>> saved;
    for (auto& [p, d] : dirs) {
      saved.push_back(p->value);
      Tensor<float> nv(p->value.shape());
      for (index_t i = 0; i < nv.numel(); ++i) nv[i] = p->value[i] + float(h) * d[i];
      p->value = nv;
    }
    const double f = objective(*net, xs, r);
    for (std::size_t i = 0; i < dirs.size(); ++i) dirs[i].first->value = saved[i];
    return f;
  };
  const double h = 1e-2;
  const double numeric = (shifted(h) - shifted(-h)) / (2 * h);
  CAPTURE(v.name);
  CHECK(numeric == doctest::Approx(analytic).epsilon(0.02));
}

}  // namespace

TEST_CASE("AblationClassifier: logits shape, block placement and names") {
  auto none = build_classifier(small(), find_variant("none"), 0);
  Tensor<float> y;
  none->forward(random_tensor(Shape{2, 1, 28, 28}, 3), y);
  CHECK(y.shape() == Shape{2, 10});
  CHECK(none->num_blocks() == 5);
  CHECK(none->last_block_of_layer3() == 3);
  CHECK(none->block_name(3) == "layer3.1");
  CHECK(none->non_local() == nullptr);
  auto gc = build_classifier(small(), find_variant("gc4"), 0);
  CHECK(gc->context_block(0) == nullptr);  // layer1 (c2) has none by default: c3-c5
  for (std::size_t i = 1; i < gc->num_blocks(); ++i) REQUIRE(gc->context_block(i) != nullptr);
  CHECK(gc->context_block(4)->channels() == 32);
  auto nl = build_classifier(small(), find_variant("nl"), 0);
  REQUIRE(nl->non_local() != nullptr);
  CHECK(nl->non_local()->options().in_channels == 16);
  CHECK(nl->context_block(3) == nullptr);
  nl->forward(random_tensor(Shape{2, 1, 28, 28}, 3), y);
  CHECK(nl->non_local_input().shape() == Shape{2, 16, 7, 7});  // layer3.0's output
  bool named = false;
  nl->visit_parameters("", [&](const std::string& n, Param<float, Cpu>&) {
    named = named || n == "layer3.nonlocal_block.theta.conv.weight";
  });
  CHECK(named);
  ClassifierOptions all = small();
  all.stages = {true, false, false, false};
  // SE r16 on layer1's 4 channels: planes int(4 / 16) = 0, refused by the block.
  CHECK_THROWS_WITH_AS(build_classifier(all, find_variant("se16"), 0), test::has("planes"), Error);
  all.base_channels = 16;
  auto c2 = build_classifier(all, find_variant("se16"), 0);
  CHECK(c2->context_block(0) != nullptr);
  CHECK(c2->context_block(1) == nullptr);
}

TEST_CASE("AblationClassifier: backward against central differences") {
  check_gradients(find_variant("none"));
  check_gradients(find_variant("nl"));
  check_gradients(find_variant("gc4"));
  ClassifierOptions wide = small();
  wide.base_channels = 16;
  check_gradients(find_variant("gc16_mul"), wide);
  check_gradients(find_variant("se16"), wide);
  check_gradients(find_variant("snl"), wide);
}

TEST_CASE("NL analysis: x + the reconstructed output is NonLocal2d's forward; attention rows sum to 1") {
  NonLocal2d<float, Cpu> nl({.in_channels = 6});
  index_t k = 0;
  nl.visit_parameters("", [&](const std::string&, Param<float, Cpu>& p) {
    p.value = random_tensor(p.value.shape(), 40 + k++, 0.4);
  });
  const Tensor<float> x = random_tensor(Shape{2, 6, 3, 4}, 7);
  Tensor<float> y;
  nl.forward(x, y);
  for (index_t n = 0; n < 2; ++n) {
    const NonLocalMaps m = non_local_maps(nl, x, n);
    REQUIRE(m.positions == 12);
    for (index_t i = 0; i < 12; ++i) {
      double s = 0;
      for (index_t j = 0; j < 12; ++j) s += m.attention[static_cast<std::size_t>(i * 12 + j)];
      CHECK(s == doctest::Approx(1.0).epsilon(1e-12));
    }
    for (index_t i = 0; i < 6 * 12; ++i)
      CHECK(double(y[n * 72 + i]) == doctest::Approx(m.input[static_cast<std::size_t>(i)] + m.output[static_cast<std::size_t>(i)]).epsilon(1e-4));
  }
  const NonLocalStatistics st = non_local_statistics(nl, x);
  CHECK(st.images == 2);
  CHECK(st.input > 0);
  CHECK(st.attention > 0);
  CHECK(st.output > 0);
  // An untrained NL (mmcv's zero-init conv_out) adds nothing: no direction, NaN.
  NonLocal2d<float, Cpu> fresh({.in_channels = 6});
  CHECK(std::isnan(non_local_statistics(fresh, x).output));
}

TEST_CASE("attention picture: one row per image, input + queries + GC panel") {
  test::require_fashion_mnist();
  ClassifierOptions o = small();
  o.base_channels = 16;
  auto nl = build_classifier(o, find_variant("nl"), 0);
  auto gc = build_classifier(o, find_variant("gc16"), 0);
  const FashionSubset d = load_fashion_subset(8, 8);
  const data::Image im = attention_picture(*nl, gc.get(), d, 3, {{1, 1}, {3, 3}}, 2);
  CHECK(im.width == 4 * 56 + 3 * 4);  // input, 2 queries, GC: 56 px each, 4-px gaps
  CHECK(im.height == 3 * 56 + 2 * 4);
  const data::Image no_gc = attention_picture(*nl, nullptr, d, 1, {{0, 0}}, 1);
  CHECK(no_gc.width == 2 * 28 + 4);
  CHECK_THROWS_AS(attention_picture(*nl, nullptr, d, 1, {{7, 0}}, 1), Error);
}
