// Hash init (tests/support/hash_init.hpp) against the values Python computed
// (tools/fixtures/hash_init.py -> tests/fixtures/hash_init.safetensors), bit for bit in float64.
#include <doctest/doctest.h>

#include <cstring>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "support/hash_init.hpp"

using namespace gcnet;

namespace {
const io::SafetensorsReader& fixture() {
  static const io::SafetensorsReader f(std::string(GCNET_FIXTURE_DIR) + "/hash_init.safetensors");
  return f;
}
}  // namespace

TEST_CASE("hash init: the FNV-1a and splitmix64 building blocks") {
  CHECK(test::fnv1a64("") == 0xcbf29ce484222325ull);
  CHECK(test::fnv1a64("a") == 0xaf63dc4c8601ec8cull);  // published FNV-1a 64 test vector
  CHECK(test::splitmix64(0) == 0);
  CHECK(test::splitmix64(0x9E3779B97F4A7C15ull) == 0xe220a8397b1dcdafull);  // first output of splitmix64 seeded 0
}

TEST_CASE("hash init: C++ equals Python bit for bit in float64") {
  const auto& f = fixture();
  REQUIRE(f.names().size() == 11);
  for (const auto& name : f.names()) {
    CAPTURE(name);
    const auto expected = f.tensor<double>(name);
    Tensor<double, Cpu> ours;
    REQUIRE(test::hash_tensor(name, expected.shape(), ours));
    REQUIRE(ours.shape() == expected.shape());
    index_t mismatches = 0;
    for (index_t i = 0; i < ours.numel(); ++i)
      mismatches += std::memcmp(&ours[i], &expected[i], sizeof(double)) != 0;
    CHECK(mismatches == 0);
  }
}

TEST_CASE("hash init: ranges follow the rules") {
  Tensor<double, Cpu> t;
  REQUIRE(test::hash_tensor("layer1.0.conv1.weight", Shape{64, 16, 3, 3}, t));
  const double a = std::sqrt(3.0 / (16 * 9));
  double lo = 1e9, hi = -1e9;
  for (index_t i = 0; i < t.numel(); ++i) lo = std::min(lo, t[i]), hi = std::max(hi, t[i]);
  CHECK(lo >= -a);
  CHECK(hi < a);
  CHECK(lo < -0.9 * a);  // the whole range is used
  CHECK(hi > 0.9 * a);
  REQUIRE(test::hash_tensor("conv2.conv_offset.weight", Shape{18, 16, 3, 3}, t));
  for (index_t i = 0; i < t.numel(); ++i) REQUIRE(std::abs(t[i]) < a / 4);
  CHECK_FALSE(test::hash_tensor("bn1.num_batches_tracked", Shape{1}, t));
  CHECK_THROWS_WITH_AS(test::hash_tensor("bn1.mystery", Shape{3}, t),
                       doctest::Contains("no rule for tensor 'bn1.mystery' of shape [3]"), gcnet::Error);
}

TEST_CASE("hash init: a model is filled by name through its visitors") {
  Conv2d<float> conv({.in = 3, .out = 8, .kernel = 3, .padding = 1});
  BatchNorm2d<float> bn(8);
  test::hash_init(conv, "");
  test::hash_init(bn, "bn1.");
  const auto& f = fixture();
  const auto w = f.tensor<double>("conv1.weight");
  // Conv2d reports "weight"; with no prefix its values are those of the name "weight".
  Tensor<float, Cpu> expect_w;
  REQUIRE(test::hash_tensor<float>("weight", conv.weight().value.shape(), expect_w));
  for (index_t i = 0; i < expect_w.numel(); ++i) REQUIRE(conv.weight().value[i] == expect_w[i]);
  CHECK(w.shape() == conv.weight().value.shape());
  for (const char* n : {"weight", "bias", "running_mean", "running_var"}) {
    CAPTURE(n);
    const auto e = f.tensor<double>(std::string("bn1.") + n);
    const Tensor<float, Cpu>* got = nullptr;
    bn.visit_parameters("bn1.", [&](const std::string& name, Param<float, Cpu>& p) {
      if (name == std::string("bn1.") + n) got = &p.value;
    });
    bn.visit_buffers("bn1.", [&](const std::string& name, Tensor<float, Cpu>& b) {
      if (name == std::string("bn1.") + n) got = &b;
    });
    REQUIRE(got != nullptr);
    for (index_t i = 0; i < e.numel(); ++i) CHECK((*got)[i] == static_cast<float>(e[i]));
  }
  CHECK(bn.num_batches_tracked()[0] == 0);  // the counter is left alone
}
