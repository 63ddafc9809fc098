#include <doctest/doctest.h>

#include <cmath>

#include "blocks_parity.hpp"
#include "gcnet/blocks/se_layer.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;

TEST_CASE("SELayer: describe, state-dict names and mmdet init") {
  manual_seed(5);
  SELayer<float> se(64, 16);
  CHECK(se.describe() == "SELayer(64, ratio=16)");
  std::vector<std::string> names;
  for (auto& [n, p] : named_parameters(se)) names.push_back(n);
  CHECK(names == std::vector<std::string>{"conv1.conv.weight", "conv1.conv.bias", "conv2.conv.weight",
                                          "conv2.conv.bias"});
  auto ps = named_parameters(se);
  CHECK(ps[0].second->shape() == Shape{4, 64, 1, 1});
  CHECK(ps[2].second->shape() == Shape{64, 4, 1, 1});
  CHECK(ps[1].second->value[0] == 0.0f);
  CHECK(ps[3].second->value[5] == 0.0f);
  // kaiming normal fan_out relu: conv2 weight std sqrt(2 / 64)
  SELayer<float> big(4096, 16);
  auto& w = named_parameters(big)[2].second->value;
  double ss = 0;
  for (index_t i = 0; i < w.numel(); ++i) ss += double(w[i]) * w[i];
  CHECK(std::sqrt(ss / w.numel()) == doctest::Approx(std::sqrt(2.0 / 4096)).epsilon(0.05));
  static_assert(Layer<SELayer<>>);
}

TEST_CASE("SELayer: gradients") {
  for (index_t ratio : {2, 4}) {
    SELayer<double> se(8, ratio);
    Rng rng(3);
    for (auto& [n, p] : named_parameters(se))
      for (index_t i = 0; i < p->value.numel(); ++i) p->value[i] = 0.5 * rng.normal();
    auto r = testing::check_gradients(se, Shape{2, 8, 4, 3});
    INFO(r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("SELayer: PyTorch parity") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/blocks_se.safetensors");
  for (const auto& c : test::split_csv(f.meta("cases"))) {
    auto r = test::block_parity(f, c);
    INFO(r.report);
    CHECK(r.ok);
    CHECK(r.report.find(c + ".dx") != std::string::npos);
  }
}

TEST_CASE("SELayer: float32 error at or below PyTorch's float32 error (both against float64)") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/blocks_se.safetensors");
  for (const auto& c : test::split_csv(f.meta("cases")))
    for (cpu::ForwardPath path : {cpu::ForwardPath::Generic, cpu::ForwardPath::SingleRegion}) {
      auto r = test::block_fidelity(f, c, path);
      INFO(c << ", path " << int(path) << "\n" << r.report);
      CHECK(r.ok);
      CHECK(r.compared == 6);  // y, dx, conv1.conv.weight/bias, conv2.conv.weight/bias
    }
}

TEST_CASE("SELayer: parameter count on ResNet-50 c3-c5 (2.51 M at r16) and FLOPs") {
  index_t n = 0;
  for (auto [blocks, c] : {std::pair<index_t, index_t>{4, 512}, {6, 1024}, {3, 2048}})
    n += blocks * SELayer<float>(c, 16).parameter_count();
  CHECK(n == 4 * (512 * 32 * 2 + 32 + 512) + 6 * (1024 * 64 * 2 + 64 + 1024) + 3 * (2048 * 128 * 2 + 128 + 2048));
  CHECK(std::round(n / 1e4) / 100 == doctest::Approx(2.51));
  SELayer<float> se(16, 4);
  const double N = 2, c = 16, s = 12, p = 4;
  CHECK(se.flops(Shape{2, 16, 3, 4}) ==
        doctest::Approx(N * (c * s + c) + N * p * (2 * c + 1) + N * c * (2 * p + 1) + N * p + N * c + N * c * s));
}

TEST_CASE("SELayer: bad input and options give clear errors") {
  SELayer<float> se(32, 16);
  Tensor<float> y;
  CHECK_THROWS_WITH_AS(se.forward(test::random_tensor<float>(Shape{1, 8, 4, 4}, 1), y),
                       doctest::Contains("SELayer(32, ratio=16): expected input with 32 channels, got shape [1, 8, 4, 4]"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(se.setup(Shape{1, 32, 3, 0}), doctest::Contains("H*W > 0"), gcnet::Error);
  CHECK_THROWS_WITH_AS(SELayer<float>(8, 16), doctest::Contains("SELayer(8, ratio=16): planes = int(8 / 16) = 0"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(SELayer<float>(8, 0), doctest::Contains("ratio must be positive, got 0"), gcnet::Error);
}
