#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "blocks_parity.hpp"
#include "gcnet/blocks/gc_block.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;

namespace {

template <class Ratio, class Fusion>
void check_gc_gradients(Pooling pooling) {
  GCBlock<Ratio, Fusion, double> gc(8, pooling);
  test::randomize_parameters(gc, 7);
  auto r = testing::check_gradients(gc, Shape{2, 8, 3, 5});
  INFO(gc.describe() << "\n" << r.report);
  CHECK(r.ok);
  CHECK(r.checked > 40);
}

index_t gc_r50_params_r16() {
  index_t n = 0;
  for (auto [blocks, c] : {std::pair<index_t, index_t>{4, 512}, {6, 1024}, {3, 2048}})
    n += blocks * GCBlock<std::ratio<1, 16>>(c).parameter_count();
  return n;
}

}  // namespace

TEST_CASE("GCBlock: describe, state-dict names and mmcv init") {
  manual_seed(3);
  GCBlock<std::ratio<1, 4>, fusion::MulAdd> gc(16, Pooling::Attention);
  CHECK(gc.describe() == "GCBlock(16, ratio=1/4, pooling=attention, fusion=mul+add)");
  std::vector<std::string> names;
  for (auto& [n, p] : named_parameters(gc)) names.push_back(n);
  CHECK(names == std::vector<std::string>{
                     "conv_mask.weight", "conv_mask.bias", "channel_add_conv.0.weight", "channel_add_conv.0.bias",
                     "channel_add_conv.1.weight", "channel_add_conv.1.bias", "channel_add_conv.3.weight",
                     "channel_add_conv.3.bias", "channel_mul_conv.0.weight", "channel_mul_conv.0.bias",
                     "channel_mul_conv.1.weight", "channel_mul_conv.1.bias", "channel_mul_conv.3.weight",
                     "channel_mul_conv.3.bias"});
  auto ps = named_parameters(gc);
  CHECK(ps[0].second->shape() == Shape{1, 16, 1, 1});
  CHECK(ps[2].second->shape() == Shape{4, 16, 1, 1});
  CHECK(ps[4].second->shape() == Shape{4, 1, 1});
  CHECK(ps[6].second->shape() == Shape{16, 4, 1, 1});
  // Last convs zero, LayerNorm 1/0, conv_mask bias 0 and weight non-zero.
  for (int k : {6, 7, 12, 13})
    for (index_t i = 0; i < ps[k].second->value.numel(); ++i) CHECK(ps[k].second->value[i] == 0.0f);
  CHECK(ps[4].second->value[0] == 1.0f);
  CHECK(ps[1].second->value[0] == 0.0f);
  double ss = 0;
  for (index_t i = 0; i < 16; ++i) ss += ps[0].second->value[i] * ps[0].second->value[i];
  CHECK(ss > 0);
  // Average pooling has no conv_mask; add-only fusion no channel_mul_conv.
  GCBlock<std::ratio<1, 4>, fusion::Add> avg(16, Pooling::Average);
  CHECK(named_parameters(avg).size() == 6);
  CHECK(named_parameters(avg)[0].first == "channel_add_conv.0.weight");
  static_assert(Layer<GCBlock<>>);
}

TEST_CASE("GCBlock: conv_mask init is kaiming normal fan_in (std sqrt(2/C))") {
  manual_seed(11);
  GCBlock<std::ratio<1, 16>> gc(4096);
  auto& w = gc.context().mask_weight_param().value;
  double ss = 0;
  for (index_t i = 0; i < w.numel(); ++i) ss += double(w[i]) * w[i];
  CHECK(std::sqrt(ss / w.numel()) == doctest::Approx(std::sqrt(2.0 / 4096)).epsilon(0.05));
}

TEST_CASE("GCBlock: gradients, attention pooling, each fusion") {
  check_gc_gradients<std::ratio<1, 4>, fusion::Add>(Pooling::Attention);
  check_gc_gradients<std::ratio<1, 4>, fusion::Mul>(Pooling::Attention);
  check_gc_gradients<std::ratio<1, 2>, fusion::MulAdd>(Pooling::Attention);
}

TEST_CASE("GCBlock: gradients, average pooling, each fusion") {
  check_gc_gradients<std::ratio<1, 4>, fusion::Add>(Pooling::Average);
  check_gc_gradients<std::ratio<1, 4>, fusion::Mul>(Pooling::Average);
  check_gc_gradients<std::ratio<1, 2>, fusion::MulAdd>(Pooling::Average);
}

TEST_CASE("GCBlock: gradients across several position tiles (large C, online softmax)") {
  // C = 4096 gives tiles of 16 positions, so H*W = 40 spans 3 tiles (one partial).
  CHECK(blocks::position_block(4096) == 16);
  GCBlock<std::ratio<1, 256>, fusion::MulAdd, double> gc(4096);
  test::randomize_parameters(gc, 8);
  testing::GradCheckOptions o;
  o.param_probes = 6;
  o.eps = 1e-5;  // the loss sums 330K outputs: at 1e-6 its rounding dominates the difference
  auto r = testing::check_gradients(gc, Shape{2, 4096, 5, 8}, o);
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("GCBlock: PyTorch parity (committed subset)") {
  for (const char* file : {"/blocks_gc.safetensors", "/blocks_gc_c256.safetensors"}) {
    const io::SafetensorsReader f(std::string(GCNET_FIXTURE_DIR) + file);
    const auto cases = test::split_csv(f.meta("cases"));
    CHECK(cases.size() >= 1);
    for (const auto& c : cases) {
      auto r = test::block_parity(f, c);
      INFO(r.report);
      CHECK(r.ok);
      CHECK(r.report.find(c + ".grad.") != std::string::npos);
    }
  }
}

// The full grid (C 16/64/256, HxW 7x7/13x11/28x28, every fusion and pooling, SE, SNL) is
// generated at test time by the ctest `blocks_parity_full_grid`, which sets this variable.
TEST_CASE("blocks full grid parity (GCNET_BLOCKS_FULL_DIR)") {
  const char* dir = std::getenv("GCNET_BLOCKS_FULL_DIR");
  if (!dir) {
    MESSAGE("GCNET_BLOCKS_FULL_DIR not set: the full grid runs as ctest blocks_parity_full_grid");
    return;
  }
  std::ifstream list(std::string(dir) + "/blocks_full_files.txt");
  REQUIRE(list);
  int files = 0, cases = 0;
  for (std::string path; std::getline(list, path);) {
    if (path.empty()) continue;
    ++files;
    const io::SafetensorsReader f(path);
    for (const auto& c : test::split_csv(f.meta("cases"))) {
      ++cases;
      auto r = test::block_parity(f, c);
      INFO(c << "\n" << r.report);
      CHECK(r.ok);
    }
  }
  CHECK(files == 9);
  CHECK(cases == 9 * 8);
}

TEST_CASE("GCBlock laws: add is the identity at init, mul halves x, mask bias shift is invisible") {
  const auto x = test::random_tensor<float>(Shape{2, 16, 5, 6}, 5);
  Tensor<float> y;
  GCBlock<std::ratio<1, 4>, fusion::Add> add(16);
  add.forward(x, y);
  for (index_t i = 0; i < x.numel(); ++i) REQUIRE(y[i] == x[i]);
  GCBlock<std::ratio<1, 4>, fusion::Mul> mul(16, Pooling::Average);
  mul.forward(x, y);
  for (index_t i = 0; i < x.numel(); ++i) REQUIRE(y[i] == doctest::Approx(0.5f * x[i]));

  GCBlock<std::ratio<1, 4>, fusion::MulAdd> gc(16);
  test::randomize_parameters(gc, 9);
  Tensor<float> y0, y1;
  gc.forward(x, y0);
  gc.context().mask_bias_param().value[0] += 3.5f;
  gc.forward(x, y1);
  double diff = 0, scale = 0;
  for (index_t i = 0; i < x.numel(); ++i) {
    diff = std::max(diff, double(std::abs(y0[i] - y1[i])));
    scale = std::max(scale, double(std::abs(y0[i] - x[i])));
  }
  CHECK(scale > 1e-2);  // the block does change x, so the law is not vacuous
  CHECK(diff <= 1e-5 * (1 + scale));
}

TEST_CASE("GCBlock: parameter counts on ResNet-50 c3-c5 match the paper") {
  // per block (C+1) + (C p + p) + 2p + (p C + C)
  CHECK(GCBlock<std::ratio<1, 16>>(512).parameter_count() == 513 + 512 * 32 + 32 + 64 + 32 * 512 + 512);
  CHECK(parameter_count(*std::make_unique<GCBlock<std::ratio<1, 16>>>(512)) == 33889);
  const index_t r16 = gc_r50_params_r16();
  CHECK(r16 == 2521741);
  CHECK(std::round(r16 / 1e4) / 100 == doctest::Approx(2.52));
  index_t r4 = 0;
  for (auto [blocks, c] : {std::pair<index_t, index_t>{4, 512}, {6, 1024}, {3, 2048}})
    r4 += blocks * GCBlock<std::ratio<1, 4>>(c).parameter_count();
  CHECK(std::round(r4 / 1e5) / 10 == doctest::Approx(10.0));
  // Two branches double the transform, average pooling drops conv_mask.
  CHECK(GCBlock<std::ratio<1, 16>, fusion::MulAdd>(512, Pooling::Average).parameter_count() == 2 * (33889 - 513));
}

TEST_CASE("GCBlock: FLOPs (multiply-add = 2)") {
  GCBlock<std::ratio<1, 4>, fusion::Add> gc(16);
  const double n = 2, c = 16, s = 30, p = 4;
  const double context = n * (4 * c * s + 4 * s);
  const double transform = n * p * (2 * c + 1) + n * c * (2 * p + 1) + n * p * 6;
  CHECK(gc.flops(Shape{2, 16, 5, 6}) == doctest::Approx(context + transform + n * c * s));
  GCBlock<std::ratio<1, 4>, fusion::Add> avg(16, Pooling::Average);
  CHECK(avg.flops(Shape{2, 16, 5, 6}) == doctest::Approx(n * (c * s + c) + transform + n * c * s));
}

TEST_CASE("GCBlock: bad input and options give clear errors") {
  GCBlock<std::ratio<1, 16>> gc(32);
  Tensor<float> y;
  CHECK_THROWS_WITH_AS(gc.forward(test::random_tensor<float>(Shape{2, 16, 4, 4}, 1), y),
                       doctest::Contains("GCBlock(32, ratio=1/16, pooling=attention, fusion=add): expected input "
                                         "with 32 channels, got shape [2, 16, 4, 4]"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(gc.setup(Shape{2, 32, 0, 4}), doctest::Contains("H*W > 0, got shape [2, 32, 0, 4]"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(gc.setup(Shape{2, 32, 4}), doctest::Contains("expected a 4-d NCHW input, got shape [2, 32, 4]"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS((GCBlock<std::ratio<1, 16>>(8)),
                       doctest::Contains("GCBlock(8, ratio=1/16, pooling=attention, fusion=add): planes = int(8 * "
                                         "1/16) = 0"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS((GCBlock<std::ratio<1, 16>, fusion::Mul>(0, Pooling::Average)),
                       doctest::Contains("channels must be positive, got 0"), gcnet::Error);
}
