#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;

namespace {

const io::SafetensorsReader& fixture() {
  static const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/norm.safetensors");
  return f;
}

BatchNorm2dOptions options_of(const std::string& c) {
  const auto& f = fixture();
  BatchNorm2dOptions o{.channels = f.meta_int(c + ".channels"), .eps = f.meta_double(c + ".eps")};
  const std::string m = f.meta(c + ".momentum");
  o.momentum = m == "none" ? std::nullopt : std::optional<double>(std::stod(m));
  o.affine = f.meta_int(c + ".affine") != 0;
  o.track_running_stats = f.meta_int(c + ".track_running_stats") != 0;
  return o;
}

// Random affine and running statistics (running_var positive), so nothing is trivially 1 or 0.
void randomize(BatchNorm2d<double>& bn, std::uint64_t seed) {
  Rng rng(seed);
  if (bn.weight())
    for (index_t c = 0; c < bn.channels(); ++c) {
      bn.weight()->value[c] = rng.uniform(0.5, 1.5);
      bn.bias()->value[c] = rng.normal();
    }
  if (bn.options().track_running_stats)
    for (index_t c = 0; c < bn.channels(); ++c) {
      bn.running_mean()[c] = rng.normal();
      bn.running_var()[c] = rng.uniform(0.5, 2.0);
    }
}

void check_grad(BatchNorm2d<double>& bn, const Shape& s) {
  testing::GradCheckOptions o;
  o.input_probes = 60;
  o.input_scale = 1.7;
  auto r = testing::check_gradients(bn, s, o);
  const std::string what = bn.describe() + (bn.training() ? " train\n" : " eval\n") + r.report;
  INFO(what);
  CHECK(r.ok);
  CHECK(r.checked >= std::min<index_t>(60, s.numel()));
}
}  // namespace

TEST_CASE("BatchNorm2d: describe, parameter and buffer names as PyTorch") {
  BatchNorm2d<float> bn(4);
  CHECK(bn.describe() == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
  std::vector<std::string> p, b;
  for (auto& [n, t] : named_parameters(bn)) p.push_back(n);
  for (auto& [n, t] : named_buffers(bn)) b.push_back(n);
  CHECK(p == std::vector<std::string>{"weight", "bias"});
  CHECK(b == std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"});
  CHECK(bn.num_batches_tracked().numel() == 1);
  CHECK(bn.running_var()[3] == 1.0f);
  CHECK(bn.weight()->value[2] == 1.0f);

  BatchNorm2d<float> bare({.channels = 2, .momentum = std::nullopt, .affine = false, .track_running_stats = false});
  CHECK(bare.describe() == "BatchNorm2d(2, eps=1e-05, momentum=None, affine=False, track_running_stats=False)");
  CHECK(named_parameters(bare).empty());
  CHECK(named_buffers(bare).empty());
  CHECK(bare.weight() == nullptr);
}

TEST_CASE("BatchNorm2d: PyTorch parity, train (with running-stat updates) and eval") {
  for (const char* c : {"bn_train", "bn_train_m03", "bn_train_noaffine", "bn_train_cma", "bn_eval",
                        "bn_eval_noaffine", "bn_eval_nostats"}) {
    BatchNorm2d<float> bn(options_of(c));
    auto r = testing::run_parity(bn, fixture(), c);
    INFO(r.report);
    CHECK(r.ok);
    const bool has_buffer_check = fixture().contains(std::string(c) + ".buffer_out.running_mean");
    CHECK(has_buffer_check == bn.options().track_running_stats);
  }
}

TEST_CASE("BatchNorm2d: training output is normalized per channel (large input: parallel path)") {
  // 64 channels of 2x32x32: the per-channel and element-wise kernels both go parallel.
  BatchNorm2d<float> bn(64);
  const Shape s{2, 64, 32, 32};
  const auto x = random_tensor<float>(s, 3, 3.0, 5.0);
  Tensor<float> y;
  bn.forward(x, y);
  const index_t hw = 32 * 32;
  for (index_t c = 0; c < 64; c += 7) {
    double sum = 0, sq = 0, xs = 0;
    for (index_t n = 0; n < 2; ++n)
      for (index_t j = 0; j < hw; ++j) {
        const double v = y[(n * 64 + c) * hw + j];
        sum += v;
        sq += v * v;
        xs += x[(n * 64 + c) * hw + j];
      }
    const double m = 2.0 * hw;
    CHECK(std::abs(sum / m) < 1e-5);
    CHECK(sq / m == doctest::Approx(1.0).epsilon(1e-4));  // biased variance, eps 1e-5
    CHECK(bn.running_mean()[c] == doctest::Approx(0.1 * xs / m).epsilon(1e-5));
  }
}

TEST_CASE("BatchNorm2d: running statistics, momentum and num_batches_tracked") {
  const Shape s{3, 2, 2, 2};
  const auto x1 = random_tensor<double>(s, 1, 2.0, 1.0), x2 = random_tensor<double>(s, 2, 0.5, -3.0);
  auto stats = [&](const Tensor<double>& x, index_t c, double& mean, double& unbiased) {
    double sum = 0, sq = 0;
    for (index_t n = 0; n < 3; ++n)
      for (index_t j = 0; j < 4; ++j) sum += x[(n * 2 + c) * 4 + j];
    mean = sum / 12;
    for (index_t n = 0; n < 3; ++n)
      for (index_t j = 0; j < 4; ++j) sq += std::pow(x[(n * 2 + c) * 4 + j] - mean, 2);
    unbiased = sq / 11;
  };
  Tensor<double> y;

  BatchNorm2d<double> bn({.channels = 2, .momentum = 0.25});
  bn.forward(x1, y);
  bn.forward(x2, y);
  CHECK(bn.num_batches_tracked()[0] == 2.0);
  for (index_t c = 0; c < 2; ++c) {
    double m1, v1, m2, v2;
    stats(x1, c, m1, v1);
    stats(x2, c, m2, v2);
    CHECK(bn.running_mean()[c] == doctest::Approx(0.75 * (0.25 * m1) + 0.25 * m2));
    CHECK(bn.running_var()[c] == doctest::Approx(0.75 * (0.75 + 0.25 * v1) + 0.25 * v2));
  }
  // Eval neither updates nor counts.
  bn.set_training(false);
  const double rm = bn.running_mean()[0];
  bn.forward(x1, y);
  CHECK(bn.num_batches_tracked()[0] == 2.0);
  CHECK(bn.running_mean()[0] == rm);

  // momentum=None: the cumulative average of the batch statistics.
  BatchNorm2d<double> cma({.channels = 2, .momentum = std::nullopt});
  cma.forward(x1, y);
  cma.forward(x2, y);
  for (index_t c = 0; c < 2; ++c) {
    double m1, v1, m2, v2;
    stats(x1, c, m1, v1);
    stats(x2, c, m2, v2);
    CHECK(cma.running_mean()[c] == doctest::Approx((m1 + m2) / 2));
    CHECK(cma.running_var()[c] == doctest::Approx((v1 + v2) / 2));
  }
}

TEST_CASE("BatchNorm2d: eval mode normalizes with the running statistics") {
  BatchNorm2d<double> bn(3);
  randomize(bn, 5);
  bn.set_training(false);
  const auto x = random_tensor<double>(Shape{2, 3, 2, 3}, 6);
  Tensor<double> y;
  bn.forward(x, y);
  for (index_t i = 0; i < x.numel(); ++i) {
    const index_t c = (i / 6) % 3;
    const double ref = (x[i] - bn.running_mean()[c]) / std::sqrt(bn.running_var()[c] + 1e-5) *
                           bn.weight()->value[c] + bn.bias()->value[c];
    CHECK(y[i] == doctest::Approx(ref).epsilon(1e-12));
  }
}

TEST_CASE("BatchNorm2d: gradient check, train and eval, with and without affine and running stats") {
  const Shape s{3, 4, 3, 2};
  for (bool affine : {true, false})
    for (bool track : {true, false})
      for (bool training : {true, false}) {
        manual_seed(11);
        BatchNorm2d<double> bn({.channels = 4, .affine = affine, .track_running_stats = track});
        randomize(bn, 12);
        bn.set_training(training);
        check_grad(bn, s);
      }
  BatchNorm2d<double> cma({.channels = 4, .eps = 1e-3, .momentum = std::nullopt});
  randomize(cma, 13);
  check_grad(cma, Shape{2, 4, 1, 1});  // two values per channel: the smallest legal batch
}

TEST_CASE("BatchNorm2d: bad inputs and options name the layer and the shapes") {
  BatchNorm2d<float> bn(3);
  const std::string name = "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)";
  CHECK_THROWS_WITH_AS(bn.setup(Shape{2, 4, 5, 5}),
                       doctest::Contains((name + ": expected input with 3 channels, got shape [2, 4, 5, 5]").c_str()),
                       Error);
  CHECK_THROWS_WITH_AS(bn.setup(Shape{2, 3}),
                       doctest::Contains((name + ": expected a 4-d NCHW input, got shape [2, 3]").c_str()), Error);
  Tensor<float> y;
  CHECK_THROWS_WITH_AS(bn.forward(random_tensor<float>(Shape{1, 3, 1, 1}, 1), y),
                       doctest::Contains("Expected more than 1 value per channel when training, got input of shape "
                                         "[1, 3, 1, 1]"),
                       Error);
  bn.set_training(false);  // running statistics: one value is fine
  CHECK(bn.setup(Shape{1, 3, 1, 1}) == Shape{1, 3, 1, 1});

  CHECK_THROWS_WITH_AS(BatchNorm2d<float>(0), doctest::Contains("BatchNorm2d: the number of channels must be positive, got 0"),
                       Error);
  CHECK_THROWS_WITH_AS(BatchNorm2d<float>({.channels = 2, .momentum = 1.5}),
                       doctest::Contains("momentum must be in [0, 1], got 1.5"), Error);
  CHECK_THROWS_WITH_AS(BatchNorm2d<float>({.channels = 2, .eps = -1}), doctest::Contains("eps must be non-negative"),
                       Error);
}
