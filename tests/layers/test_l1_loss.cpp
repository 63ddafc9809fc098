#include <doctest/doctest.h>

#include "gcnet/loss/l1.hpp"
#include "gcnet/loss/smooth_l1.hpp"
#include "support/loss_testing.hpp"

using namespace gcnet;
using namespace loss_testing;

TEST_CASE("L1Loss and SmoothL1Loss: PyTorch parity (reductions, weights, beta 1, 1/9, 0)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/losses.safetensors");
  auto run = [&](auto& loss, const std::string& n) {
    const auto x = f.tensor<float>(n + ".input"), t = f.tensor<float>(n + ".target");
    const float value = f.contains(n + ".weight") ? loss.forward(x, t, f.tensor<float>(n + ".weight")) : loss.forward(x, t);
    check_parity(loss, value, f, n);
  };
  for (const char* c : {"l1_mean", "l1_sum_weighted", "l1_none"}) {
    const std::string n = c;
    L1Loss<float> l1({.reduction = parse_reduction(f.meta(n + ".reduction")), .loss_weight = f.meta_double(n + ".loss_weight")});
    run(l1, n);
  }
  for (const char* c : {"sl1_mean", "sl1_sum_ninth", "sl1_beta0", "sl1_none_weighted"}) {
    const std::string n = c;
    SmoothL1Loss<float> sl1({.beta = f.meta_double(n + ".beta"), .reduction = parse_reduction(f.meta(n + ".reduction")),
                             .loss_weight = f.meta_double(n + ".loss_weight")});
    run(sl1, n);
  }
}

TEST_CASE("L1Loss and SmoothL1Loss: gradients match finite differences (double)") {
  Rng rng(12);
  const Shape s{4, 5};
  const Tensor<double> x = random_normal(s, rng), t = random_normal(s, rng), probe = random_normal(s, rng);
  Tensor<double> w(s);
  for (index_t i = 0; i < w.numel(); ++i) w[i] = 0.5 + rng.uniform();
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    for (double beta : {-1.0, 0.0, 0.3, 1.0}) {  // -1: L1Loss
      CAPTURE(reduction_name(r));
      CAPTURE(beta);
      auto check = [&](auto a, auto b) {
        a.forward(x, t, w);
        auto d = zeros<double>(s);
        if (r == Reduction::none)
          a.backward(d, probe);
        else
          a.backward(d, 0.5);
        check_gradient(x, [&](const Tensor<double>& xx) {
          const double v = b.forward(xx, t, w);
          return r == Reduction::none ? probed_sum(b, probe) : 0.5 * v;
        }, d);
      };
      if (beta < 0)
        check(L1Loss<double>({.reduction = r, .loss_weight = 2.0}), L1Loss<double>({.reduction = r, .loss_weight = 2.0}));
      else
        check(SmoothL1Loss<double>({.beta = beta, .reduction = r}), SmoothL1Loss<double>({.beta = beta, .reduction = r}));
    }
  }
}

TEST_CASE("SmoothL1Loss: beta 0 is L1, quadratic inside beta, linear outside") {
  Tensor<float> x(Shape{3}), t = zeros<float>(Shape{3});
  x[0] = 0.05f, x[1] = -0.5f, x[2] = 2.0f;
  SmoothL1Loss<float> zero({.beta = 0, .reduction = Reduction::none});
  L1Loss<float> l1({.reduction = Reduction::none});
  zero.forward(x, t);
  l1.forward(x, t);
  for (index_t i = 0; i < 3; ++i) CHECK(zero.losses()[i] == l1.losses()[i]);
  SmoothL1Loss<float> one({.beta = 1, .reduction = Reduction::none});
  one.forward(x, t);
  CHECK(one.losses()[0] == doctest::Approx(0.5 * 0.05 * 0.05));
  CHECK(one.losses()[1] == doctest::Approx(0.125));
  CHECK(one.losses()[2] == doctest::Approx(1.5));
}

TEST_CASE("L1Loss and SmoothL1Loss: bad options and shapes are clear errors") {
  CHECK_THROWS_WITH_AS(SmoothL1Loss<float>({.beta = -1}), doctest::Contains("SmoothL1Loss: beta must be >= 0, got -1"), Error);
  Tensor<float> x = full<float>(Shape{2, 3}, 0.5f);
  SmoothL1Loss<float> sl1;
  CHECK_THROWS_WITH_AS(sl1.forward(x, full<float>(Shape{6}, 1.0f)),
                       doctest::Contains("SmoothL1Loss(beta=1, reduction=mean): target has shape [6], expected [2, 3]"), Error);
  L1Loss<float> l1;
  CHECK_THROWS_WITH_AS(l1.forward(Tensor<float>(Shape{0, 3}), Tensor<float>(Shape{0, 3})),
                       doctest::Contains("L1Loss(reduction=mean): input must be non-empty, got shape [0, 3]"), Error);
  l1.forward(x, x);
  Tensor<float> d(Shape{3});
  CHECK_THROWS_WITH_AS(l1.backward(d), doctest::Contains("dinput has shape [3], expected [2, 3]"), Error);
}
