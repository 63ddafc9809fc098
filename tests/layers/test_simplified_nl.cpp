#include <doctest/doctest.h>

#include "blocks_parity.hpp"
#include "gcnet/blocks/simplified_nl.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;

TEST_CASE("SimplifiedNL: names, identity at init, counts") {
  SimplifiedNL<float> snl(16);
  CHECK(snl.describe() == "SimplifiedNL(16)");
  std::vector<std::string> names;
  for (auto& [n, p] : named_parameters(snl)) names.push_back(n);
  CHECK(names == std::vector<std::string>{"conv_mask.weight", "conv_mask.bias", "transform.weight", "transform.bias"});
  CHECK(snl.parameter_count() == 17 + 16 * 16 + 16);
  const auto x = test::random_tensor<float>(Shape{2, 16, 3, 5}, 2);
  Tensor<float> y;
  snl.forward(x, y);
  for (index_t i = 0; i < x.numel(); ++i) REQUIRE(y[i] == x[i]);
  const double n = 2, c = 16, s = 15;
  CHECK(snl.flops(Shape{2, 16, 3, 5}) == doctest::Approx(n * (4 * c * s + 4 * s) + n * c * (2 * c + 1) + n * c * s));
  static_assert(Layer<SimplifiedNL<>>);
}

TEST_CASE("SimplifiedNL: gradients") {
  SimplifiedNL<double> snl(6);
  Rng rng(4);
  for (auto& [n, p] : named_parameters(snl))
    for (index_t i = 0; i < p->value.numel(); ++i) p->value[i] = 0.5 * rng.normal();
  auto r = testing::check_gradients(snl, Shape{2, 6, 4, 5});
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("SimplifiedNL: PyTorch parity") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/blocks_snl.safetensors");
  for (const auto& c : test::split_csv(f.meta("cases"))) {
    auto r = test::block_parity(f, c);
    INFO(r.report);
    CHECK(r.ok);
    CHECK(r.report.find(c + ".grad.transform.weight") != std::string::npos);
  }
}

TEST_CASE("SimplifiedNL: float32 error at or below PyTorch's float32 error (both against float64)") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/blocks_snl.safetensors");
  for (const auto& c : test::split_csv(f.meta("cases")))
    for (cpu::ForwardPath path : {cpu::ForwardPath::Generic, cpu::ForwardPath::SingleRegion}) {
      auto r = test::block_fidelity(f, c, path);
      INFO(c << ", path " << int(path) << "\n" << r.report);
      CHECK(r.ok);
      CHECK(r.compared == 6);  // y, dx, conv_mask.weight/bias, transform.weight/bias
    }
}

TEST_CASE("SimplifiedNL: bad input gives clear errors") {
  SimplifiedNL<float> snl(16);
  Tensor<float> y;
  CHECK_THROWS_WITH_AS(snl.forward(test::random_tensor<float>(Shape{1, 8, 4, 4}, 1), y),
                       doctest::Contains("SimplifiedNL(16): expected input with 16 channels, got shape [1, 8, 4, 4]"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(snl.setup(Shape{1, 16, 0, 0}), doctest::Contains("H*W > 0"), gcnet::Error);
  CHECK_THROWS_WITH_AS(SimplifiedNL<float>(0), doctest::Contains("SimplifiedNL(0): channels must be positive"),
                       gcnet::Error);
}
