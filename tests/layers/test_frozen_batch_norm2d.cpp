#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/layers/frozen_batch_norm2d.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;
using test::max_abs_diff;

namespace {


void randomize(FrozenBatchNorm2d<double>& f, std::uint64_t seed) {
  Rng rng(seed);
  for (index_t c = 0; c < f.channels(); ++c) {
    f.weight()[c] = rng.normal();
    f.bias()[c] = rng.normal();
    f.running_mean()[c] = rng.normal();
    f.running_var()[c] = rng.uniform(0.5, 2.0);
  }
}
}  // namespace

TEST_CASE("FrozenBatchNorm2d: four buffers named as torchvision, no parameters") {
  FrozenBatchNorm2d<float> f(5);
  CHECK(f.describe() == "FrozenBatchNorm2d(5, eps=1e-05)");
  std::vector<std::string> b;
  for (auto& [n, t] : named_buffers(f)) b.push_back(n);
  CHECK(b == std::vector<std::string>{"weight", "bias", "running_mean", "running_var"});
  CHECK(named_parameters(f).empty());
  CHECK(parameter_count(f) == 0);
  // Identity statistics at construction: y = x / sqrt(1 + eps).
  const auto x = random_tensor<float>(Shape{2, 5, 2, 2}, 1);
  Tensor<float> y;
  f.forward(x, y);
  for (index_t i = 0; i < x.numel(); ++i) CHECK(y[i] == doctest::Approx(x[i] / std::sqrt(1 + 1e-5)).epsilon(1e-6));
}

TEST_CASE("FrozenBatchNorm2d: PyTorch (torchvision) parity") {
  const io::SafetensorsReader file(GCNET_FIXTURE_DIR "/norm.safetensors");
  FrozenBatchNorm2d<float> f(file.meta_int("frozen_bn.channels"), file.meta_double("frozen_bn.eps"));
  auto r = testing::run_parity(f, file, "frozen_bn");
  INFO(r.report);
  CHECK(r.ok);
  CHECK(r.report.find("frozen_bn.dx") != std::string::npos);
}

TEST_CASE("FrozenBatchNorm2d: gradient check (dx only)") {
  FrozenBatchNorm2d<double> f(4, 1e-3);
  randomize(f, 2);
  auto r = testing::check_gradients(f, Shape{2, 4, 3, 3});
  INFO(r.report);
  CHECK(r.ok);
  CHECK(r.checked == 40);
}

TEST_CASE("FrozenBatchNorm2d: law: eval-mode BatchNorm2d equals FrozenBatchNorm2d::from(bn)") {
  for (bool affine : {true, false}) {
    BatchNorm2d<double> bn({.channels = 3, .eps = 1e-4, .affine = affine});
    // Train on a few batches so the running statistics are not the defaults.
    Tensor<double> y_bn, y_frozen;
    for (std::uint64_t k = 0; k < 3; ++k) bn.forward(random_tensor<double>(Shape{4, 3, 2, 2}, 10 + k, 2.0, 0.5), y_bn);
    if (affine) {
      Rng rng(4);
      for (index_t c = 0; c < 3; ++c) {
        bn.weight()->value[c] = rng.normal();
        bn.bias()->value[c] = rng.normal();
      }
    }
    bn.set_training(false);
    auto frozen = FrozenBatchNorm2d<double>::from(bn);
    CHECK(frozen.eps() == 1e-4);

    const auto x = random_tensor<double>(Shape{2, 3, 4, 3}, 20, 1.5, -1.0);
    bn.forward(x, y_bn);
    frozen.forward(x, y_frozen);
    CHECK(max_abs_diff(y_bn, y_frozen) < 1e-12);
    CHECK(max_abs_diff(y_bn, x) > 1e-2);  // the statistics really act

    const auto dy = random_tensor<double>(x.shape(), 21);
    auto dx_bn = random_tensor<double>(x.shape(), 22), dx_frozen = clone(dx_bn);
    bn.backward(x, y_bn, dy, dx_bn);
    frozen.backward(x, y_frozen, dy, dx_frozen);
    CHECK(max_abs_diff(dx_bn, dx_frozen) < 1e-12);
  }
}

TEST_CASE("FrozenBatchNorm2d: bad inputs and options") {
  FrozenBatchNorm2d<float> f(3);
  CHECK_THROWS_WITH_AS(f.setup(Shape{2, 4, 5, 5}),
                       doctest::Contains("FrozenBatchNorm2d(3, eps=1e-05): expected input with 3 channels, got shape [2, 4, 5, 5]"),
                       Error);
  CHECK_THROWS_WITH_AS(f.setup(Shape{2, 3, 5}),
                       doctest::Contains("FrozenBatchNorm2d(3, eps=1e-05): expected a 4-d NCHW input, got shape [2, 3, 5]"),
                       Error);
  CHECK_THROWS_WITH_AS(FrozenBatchNorm2d<float>(0), doctest::Contains("the number of channels must be positive, got 0"),
                       Error);
  BatchNorm2d<float> no_stats({.channels = 3, .track_running_stats = false});
  CHECK_THROWS_WITH_AS(FrozenBatchNorm2d<float>::from(no_stats),
                       doctest::Contains("FrozenBatchNorm2d::from: BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, "
                                         "track_running_stats=False) has no running statistics to freeze"),
                       Error);
}
