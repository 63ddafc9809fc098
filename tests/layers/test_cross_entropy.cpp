#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/loss/cross_entropy.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"
#include "support/loss_testing.hpp"

using namespace gcnet;
using namespace loss_testing;

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

TEST_CASE("CrossEntropyLoss: PyTorch parity with class weights, every reduction, mmseg's mean and loss_weight") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/losses.safetensors");
  for (const char* c : {"ce_mean_weighted", "ce_mean_2d", "ce_sum", "ce_none", "ce_mmseg", "ce_mmseg_weighted"}) {
    const std::string n = c;
    CrossEntropyLoss<float> ce({.ignore_index = f.meta_int(n + ".ignore_index"),
                                .reduction = parse_reduction(f.meta(n + ".reduction")),
                                .class_weight = parse_list(f.meta(n + ".class_weight")),
                                .loss_weight = f.meta_double(n + ".loss_weight")});
    const float value = ce.forward(f.tensor<float>(n + ".input"), labels(f.tensor<double>(n + ".target")));
    check_parity(ce, value, f, n);
  }
}

TEST_CASE("CrossEntropyLoss: mmseg's mean counts ignored elements, PyTorch's does not") {
  Tensor<float> x(Shape{4, 3});
  Rng rng(9);
  for (index_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(rng.normal());
  Tensor<std::int64_t> t(Shape{4});
  t[0] = 0, t[1] = 255, t[2] = 2, t[3] = 255;
  CrossEntropyLoss<float> torch_mean({.ignore_index = 255}), mmseg({.ignore_index = 255, .reduction = Reduction::mean_all}),
      sum({.ignore_index = 255, .reduction = Reduction::sum});
  const float s = sum.forward(x, t);
  CHECK(torch_mean.forward(x, t) == doctest::Approx(s / 2));
  CHECK(mmseg.forward(x, t) == doctest::Approx(s / 4));
  CHECK(torch_mean.count() == 2);
  // All ignored: 0 (PyTorch: NaN) and no gradient.
  fill(t, std::int64_t{255});
  CHECK(torch_mean.forward(x, t) == 0.0f);
  auto d = full<float>(x.shape(), 1.0f);
  torch_mean.backward(d);
  for (index_t i = 0; i < d.numel(); ++i) CHECK(d[i] == 1.0f);
}

TEST_CASE("CrossEntropyLoss: gradient matches finite differences (double), every reduction") {
  Rng rng(4);
  const Tensor<double> x = random_normal(Shape{3, 4, 2, 2}, rng);
  Tensor<std::int64_t> t(Shape{3, 2, 2});
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<std::int64_t>(rng.below(4));
  t[5] = -100;
  t[7] = -100;
  const Tensor<double> probe = random_normal(t.shape(), rng);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none, Reduction::mean_all}) {
    for (bool weighted : {false, true}) {
      CAPTURE(reduction_name(r));
      CAPTURE(weighted);
      const typename CrossEntropyLoss<double>::Options o{
          .reduction = r, .class_weight = weighted ? std::vector<double>{0.4, 1.3, 2.0, 0.7} : std::vector<double>{},
          .loss_weight = weighted ? 0.4 : 1.0};
      CrossEntropyLoss<double> ce(o);
      ce.forward(x, t);
      auto d = zeros<double>(x.shape());
      if (r == Reduction::none)
        ce.backward(d, probe);
      else
        ce.backward(d, 1.5);
      CrossEntropyLoss<double> other(o);
      check_gradient(x, [&](const Tensor<double>& xx) {
        const double v = other.forward(xx, t);
        return r == Reduction::none ? probed_sum(other, probe) : 1.5 * v;
      }, d);
    }
  }
}

TEST_CASE("CrossEntropyLoss: float over many pixel tiles equals double, on one thread and two") {
  // 2 x 11 x 23 x 29: 667 pixels per sample, so two full tiles of 256 and a partial one.
  Rng rng(21);
  const Tensor<double> xd = random_normal(Shape{2, 11, 23, 29}, rng, 4.0);
  Tensor<std::int64_t> t(Shape{2, 23, 29});
  for (index_t i = 0; i < t.numel(); ++i) t[i] = rng.below(7) == 0 ? 255 : static_cast<std::int64_t>(rng.below(11));
  Tensor<float> xf(xd.shape());
  for (index_t i = 0; i < xd.numel(); ++i) xf[i] = static_cast<float>(xd[i]);
  const CrossEntropyLoss<double>::Options od{.ignore_index = 255, .reduction = Reduction::mean_all, .loss_weight = 0.4};
  CrossEntropyLoss<double> ref(od);
  const double ref_loss = ref.forward(xd, t);
  auto ref_d = zeros<double>(xd.shape());
  ref.backward(ref_d);
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    CrossEntropyLoss<float> ce({.ignore_index = 255, .reduction = Reduction::mean_all, .loss_weight = 0.4});
    auto d = zeros<float>(xf.shape());
    test::with_threads(threads, [&] {
      CHECK(std::abs(ce.forward(xf, t) - ref_loss) <= 1e-6 * std::abs(ref_loss));
      ce.backward(d);
    });
    CHECK(testing::relative_error(d, ref_d) <= 1e-5);
    CHECK(testing::relative_error(ce.probabilities(), ref.probabilities()) <= 1e-5);
    CHECK(testing::relative_error(ce.losses(), ref.losses()) <= 1e-5);
  }
}

TEST_CASE("CrossEntropyLoss: bad targets, shapes and weights are clear errors") {
  Tensor<float> x = full<float>(Shape{2, 3}, 0.5f);
  Tensor<std::int64_t> t(Shape{2});
  t[0] = 1;
  t[1] = 3;
  CrossEntropyLoss<float> ce;
  CHECK_THROWS_WITH_AS(ce.forward(x, t), doctest::Contains("target 3 at element 1 is outside [0, 3)"), Error);
  t[1] = -1;
  CHECK_THROWS_WITH_AS(ce.forward(x, t), doctest::Contains("target -1 at element 1 is outside [0, 3) and is not ignore_index -100"), Error);
  Tensor<std::int64_t> t3(Shape{3});
  CHECK_THROWS_WITH_AS(ce.forward(x, t3), doctest::Contains("target has shape [3], expected [2]"), Error);
  Tensor<float> flat(Shape{6});
  CHECK_THROWS_WITH_AS(ce.forward(flat, t), doctest::Contains("logits must be [N, K, ...], got shape [6]"), Error);
  t[1] = 0;
  CrossEntropyLoss<float> weighted({.class_weight = {1.0, 2.0}});
  CHECK_THROWS_WITH_AS(weighted.forward(x, t), doctest::Contains("class_weight has 2 entries, logits have 3 classes"), Error);
  CHECK_THROWS_WITH_AS(CrossEntropyLoss<float>({.class_weight = {1.0, -2.0}}),
                       doctest::Contains("class_weight entries must be finite and >= 0, got -2"), Error);
  CrossEntropyLoss<float> none({.reduction = Reduction::sum});
  none.forward(x, t);
  auto d = zeros<float>(x.shape());
  CHECK_THROWS_WITH_AS(none.backward(d, zeros<float>(Shape{2})), doctest::Contains("needs reduction none"), Error);
  Tensor<float> wrong(Shape{3, 2});
  CHECK_THROWS_WITH_AS(none.backward(wrong), doctest::Contains("dlogits has shape [3, 2], expected [2, 3]"), Error);
}
