#include <doctest/doctest.h>

#include "gcnet/loss/bce_with_logits.hpp"
#include "support/loss_testing.hpp"

using namespace gcnet;
using namespace loss_testing;

TEST_CASE("BCEWithLogitsLoss: PyTorch parity (weight, pos_weight, reductions, loss_weight)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/losses.safetensors");
  for (const char* c : {"bce_mean_posw", "bce_sum", "bce_none", "bce_mean_lw"}) {
    const std::string n = c;
    BCEWithLogitsLoss<float> bce({.reduction = parse_reduction(f.meta(n + ".reduction")),
                                  .pos_weight = parse_list(f.meta(n + ".pos_weight")),
                                  .loss_weight = f.meta_double(n + ".loss_weight")});
    const auto x = f.tensor<float>(n + ".input"), t = f.tensor<float>(n + ".target");
    const float value = f.contains(n + ".weight") ? bce.forward(x, t, f.tensor<float>(n + ".weight")) : bce.forward(x, t);
    check_parity(bce, value, f, n);
  }
}

TEST_CASE("BCEWithLogitsLoss: gradient matches finite differences (double)") {
  Rng rng(11);
  const Shape s{3, 4};
  const Tensor<double> x = random_normal(s, rng, 2.0), w = random_normal(s, rng), probe = random_normal(s, rng);
  Tensor<double> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = i % 3 == 0 ? 0.0 : (i % 3 == 1 ? 1.0 : rng.uniform());
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    for (bool extras : {false, true}) {
      CAPTURE(reduction_name(r));
      CAPTURE(extras);
      const typename BCEWithLogitsLoss<double>::Options o{
          .reduction = r, .pos_weight = extras ? std::vector<double>{0.5, 2.0, 1.0, 3.0} : std::vector<double>{},
          .loss_weight = extras ? 0.7 : 1.0};
      BCEWithLogitsLoss<double> bce(o), other(o);
      auto fwd = [&](BCEWithLogitsLoss<double>& l, const Tensor<double>& xx) {
        return extras ? l.forward(xx, t, w) : l.forward(xx, t);
      };
      fwd(bce, x);
      auto d = zeros<double>(s);
      if (r == Reduction::none)
        bce.backward(d, probe);
      else
        bce.backward(d, 2.0);
      check_gradient(x, [&](const Tensor<double>& xx) {
        const double v = fwd(other, xx);
        return r == Reduction::none ? probed_sum(other, probe) : 2.0 * v;
      }, d);
    }
  }
}

TEST_CASE("BCEWithLogitsLoss: huge logits stay finite") {
  Tensor<float> x(Shape{4}), t(Shape{4});
  x[0] = 200.f, x[1] = -200.f, x[2] = 200.f, x[3] = -200.f;
  t[0] = 1.f, t[1] = 0.f, t[2] = 0.f, t[3] = 1.f;
  BCEWithLogitsLoss<float> bce({.reduction = Reduction::none});
  bce.forward(x, t);
  CHECK(bce.losses()[0] == doctest::Approx(0.0));
  CHECK(bce.losses()[1] == doctest::Approx(0.0));
  CHECK(bce.losses()[2] == doctest::Approx(200.0));
  CHECK(bce.losses()[3] == doctest::Approx(200.0));
}

TEST_CASE("BCEWithLogitsLoss: bad shapes, targets and pos_weight are clear errors") {
  Tensor<float> x = full<float>(Shape{2, 3}, 0.5f), t = full<float>(Shape{2, 3}, 1.0f);
  BCEWithLogitsLoss<float> bce;
  CHECK_THROWS_WITH_AS(bce.forward(x, full<float>(Shape{3, 2}, 1.0f)),
                       doctest::Contains("BCEWithLogitsLoss(reduction=mean): target has shape [3, 2], expected [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(bce.forward(x, t, full<float>(Shape{2}, 1.0f)), doctest::Contains("weight has shape [2], expected [2, 3]"), Error);
  t[4] = 1.5f;
  CHECK_THROWS_WITH_AS(bce.forward(x, t), doctest::Contains("target 1.5 at element 4 is outside [0, 1]"), Error);
  t[4] = 1.0f;
  BCEWithLogitsLoss<float> pw({.pos_weight = {1.0, 2.0}});
  CHECK_THROWS_WITH_AS(pw.forward(x, t), doctest::Contains("pos_weight has 2 entries, expected 1 or 3"), Error);
  CHECK_THROWS_WITH_AS(BCEWithLogitsLoss<float>({.pos_weight = {-1.0}}), doctest::Contains("pos_weight entries must be finite and >= 0"), Error);
  bce.forward(x, t);
  auto d = zeros<float>(Shape{2, 3});
  CHECK_THROWS_WITH_AS(bce.backward(d, d), doctest::Contains("needs reduction none, not mean"), Error);
}
