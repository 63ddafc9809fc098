#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/ops/anchor_generator.hpp"

using namespace gcnet;
using namespace gcnet::ops;

namespace {
AnchorGeneratorOptions fpn_options() {
  AnchorGeneratorOptions o;
  o.strides = {4, 8, 16, 32, 64};
  o.ratios = {0.5, 1.0, 2.0};
  o.scales = {8};
  return o;
}

void check_identical(const Tensor<float>& got, const Tensor<float>& want, const char* what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  index_t bad = -1;
  for (index_t i = 0; i < got.numel() && bad < 0; ++i)
    if (got[i] != want[i]) bad = i;
  if (bad >= 0) INFO("element ", bad, ": gcnet ", got[bad], ", reference ", want[bad]);
  CHECK(bad == -1);
}
}  // namespace

TEST_CASE("AnchorGenerator: the reference's base anchors (Mask R-CNN FPN: strides 4..64, ratios 0.5, 1, 2, scale 8)") {
  const AnchorGenerator<float> gen(fpn_options());
  REQUIRE(gen.num_levels() == 5);
  const auto& b0 = gen.base_anchors(0);
  REQUIRE(b0.shape() == Shape{3, 4});
  const double want0[12] = {-22.627417, -11.313708, 22.627417, 11.313708, -16, -16, 16, 16,
                            -11.313708, -22.627417, 11.313708, 22.627417};
  for (int i = 0; i < 12; ++i) CHECK(std::abs(b0[i] - want0[i]) <= 2e-6);
  const auto& b4 = gen.base_anchors(4);
  const double want4[12] = {-362.038666, -181.019333, 362.038666, 181.019333, -256, -256, 256, 256,
                            -181.019333, -362.038666, 181.019333, 362.038666};
  for (int i = 0; i < 12; ++i) CHECK(std::abs(b4[i] - want4[i]) <= 3e-5);
  // Each level doubles the previous one exactly (powers of two).
  for (index_t l = 1; l < 5; ++l)
    for (int i = 0; i < 12; ++i) CHECK(gen.base_anchors(l)[i] == 2 * gen.base_anchors(l - 1)[i]);
}

TEST_CASE("AnchorGenerator: grid anchors in the heads' (y, x, a) order, centres at x * stride, y * stride") {
  const AnchorGenerator<float> gen(fpn_options());
  const auto all = gen.grid_anchors({{3, 5}, {2, 3}, {1, 2}, {1, 1}, {1, 1}});
  REQUIRE(all.size() == 5);
  CHECK(all[0].shape() == Shape{3 * 5 * 3, 4});
  CHECK(all[1].shape() == Shape{2 * 3 * 3, 4});
  const auto& base = gen.base_anchors(0);
  for (index_t y = 0; y < 3; ++y)
    for (index_t x = 0; x < 5; ++x)
      for (index_t a = 0; a < 3; ++a) {
        const index_t row = (y * 5 + x) * 3 + a;
        CHECK(all[0].at({row, 0}) == base[4 * a] + 4.0f * x);
        CHECK(all[0].at({row, 1}) == base[4 * a + 1] + 4.0f * y);
        CHECK(all[0].at({row, 2}) == base[4 * a + 2] + 4.0f * x);
        CHECK(all[0].at({row, 3}) == base[4 * a + 3] + 4.0f * y);
      }
  CHECK(gen.grid_anchors(2, {0, 7}).shape() == Shape{0, 4});
}

TEST_CASE("AnchorGenerator: octave scales (RetinaNet) equal mmdet's float32 anchors exactly") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/detops_boxes.safetensors");
  AnchorGeneratorOptions o;
  o.strides = {4, 8};
  o.ratios = {0.5, 1.0, 2.0};
  o.octave_base_scale = 4;
  o.scales_per_octave = 3;
  const AnchorGenerator<float> gen(o);
  CHECK(gen.num_base_anchors(0) == 9);
  const auto g = gen.grid_anchors({{5, 7}, {3, 4}});
  check_identical(g[0], f.tensor<float>("mm_anchors.l0"), "level 0");
  check_identical(g[1], f.tensor<float>("mm_anchors.l1"), "level 1");
}

TEST_CASE("AnchorGenerator: torchvision's rounded base anchors (round_base_anchors) equal its AnchorGenerator") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/detops_boxes.safetensors");
  AnchorGeneratorOptions o;
  o.strides = {4, 8};
  o.ratios = {0.5, 1.0, 2.0};
  o.scales = {8};  // sizes 32, 64 = base size (the stride) * 8
  o.round_base_anchors = true;
  const AnchorGenerator<float> gen(o);
  const auto g = gen.grid_anchors({{8, 12}, {4, 6}});
  check_identical(g[0], f.tensor<float>("tv_anchors.l0"), "level 0");
  check_identical(g[1], f.tensor<float>("tv_anchors.l1"), "level 1");
  // 22.627417 rounds to 23, 11.313708 to 11.
  CHECK(gen.base_anchors(0)[0] == -23.0f);
  CHECK(gen.base_anchors(0)[1] == -11.0f);
}

TEST_CASE("AnchorGenerator: scale_major = false orders scale-major, center_offset, explicit centres, (w, h) strides") {
  AnchorGeneratorOptions o;
  o.strides = {16};
  o.ratios = {0.5, 2.0};
  o.scales = {1, 2};
  const AnchorGenerator<float> major(o);
  o.scale_major = false;
  const AnchorGenerator<float> minor(o);
  // ratio-major: (r0 s0, r0 s1, r1 s0, r1 s1); scale-major: (s0 r0, s0 r1, s1 r0, s1 r1).
  const int perm[4] = {0, 2, 1, 3};
  for (int a = 0; a < 4; ++a)
    for (int k = 0; k < 4; ++k)
      CHECK(minor.base_anchors(0)[4 * a + k] == doctest::Approx(major.base_anchors(0)[4 * perm[a] + k]));
  o.scale_major = true;
  o.center_offset = 0.5;
  const AnchorGenerator<float> half(o);
  const auto& h = half.base_anchors(0);
  CHECK((h[0] + h[2]) / 2 == 8.0f);
  CHECK((h[1] + h[3]) / 2 == 8.0f);
  o.center_offset = 0;
  o.centers = {{{3.0, 5.0}}};
  const AnchorGenerator<float> centred(o);
  CHECK((centred.base_anchors(0)[0] + centred.base_anchors(0)[2]) / 2 == 3.0f);
  CHECK((centred.base_anchors(0)[1] + centred.base_anchors(0)[3]) / 2 == 5.0f);
  AnchorGeneratorOptions r;
  r.strides = {AnchorStride(8, 16)};
  r.ratios = {1.0};
  r.scales = {2};
  const AnchorGenerator<float> rect(r);
  CHECK(rect.base_anchors(0)[2] == 8.0f);  // base size min(8, 16) * 2 / 2
  const auto g = rect.grid_anchors(0, {2, 2});
  CHECK(g.at({3, 0}) == -8.0f + 8.0f);  // position (1, 1): x shift 8
  CHECK(g.at({3, 1}) == -8.0f + 16.0f);  // y shift 16
}

TEST_CASE("valid_flags: positions beyond this image's own padded size are invalid (batch padding)") {
  const AnchorGenerator<float> gen(fpn_options());
  // The batch is padded to 128 x 128; this image's own padded size is 100 x 60 (h x w).
  const std::vector<FeatSize> sizes = {{32, 32}, {16, 16}, {8, 8}, {4, 4}, {2, 2}};
  const auto flags = gen.valid_flags(sizes, ImageSize{100, 60});
  REQUIRE(flags.size() == 5);
  // Level 2 (stride 16): valid where y < ceil(100 / 16) = 7 and x < ceil(60 / 16) = 4.
  const auto& f2 = flags[2];
  REQUIRE(f2.shape() == Shape{8 * 8 * 3});
  index_t count = 0;
  for (index_t y = 0; y < 8; ++y)
    for (index_t x = 0; x < 8; ++x)
      for (index_t a = 0; a < 3; ++a) {
        const bool want = y < 7 && x < 4;
        CHECK(f2[(y * 8 + x) * 3 + a] == (want ? 1 : 0));
        count += f2[(y * 8 + x) * 3 + a];
      }
  CHECK(count == 7 * 4 * 3);
  // Level 4 (stride 64): ceil(100/64) = 2, ceil(60/64) = 1.
  CHECK(flags[4][0] == 1);
  CHECK(flags[4][3] == 0);
  CHECK(flags[4][6] == 1);
  // A feature map smaller than the padded size: everything valid.
  const auto small = gen.valid_flags({{1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, ImageSize{100, 60});
  for (const auto& t : small)
    for (index_t i = 0; i < t.numel(); ++i) CHECK(t[i] == 1);
}

TEST_CASE("anchor_inside_flags: allowed_border, strict right and bottom edges, negative border keeps all valid") {
  Tensor<float> a(Shape{5, 4});
  const float v[20] = {0, 0, 10, 10, -1, 0, 10, 10, 0, 0, 20, 10, 0, 0, 19.5f, 10, 2, 2, 4, 4};
  for (int i = 0; i < 20; ++i) a[i] = v[i];
  Tensor<std::uint8_t> valid(Shape{5});
  for (int i = 0; i < 5; ++i) valid[i] = 1;
  valid[4] = 0;
  const ImageSize img{20, 20};
  auto f = anchor_inside_flags(a, valid, img, 0);
  CHECK(f[0] == 1);
  CHECK(f[1] == 0);  // x1 < 0
  CHECK(f[2] == 0);  // x2 == W: strict <
  CHECK(f[3] == 1);
  CHECK(f[4] == 0);  // not valid
  f = anchor_inside_flags(a, valid, img, 1);
  CHECK(f[1] == 1);
  CHECK(f[2] == 1);
  f = anchor_inside_flags(a, valid, img, -1);  // Mask R-CNN: all valid anchors
  CHECK(f[1] == 1);
  CHECK(f[2] == 1);
  CHECK(f[4] == 0);
}

TEST_CASE("AnchorGenerator: bad options and arguments throw with clear messages") {
  AnchorGeneratorOptions o = fpn_options();
  o.octave_base_scale = 4;
  o.scales_per_octave = 3;
  CHECK_THROWS_WITH_AS(AnchorGenerator<float>{o}, doctest::Contains("give either scales or octave_base_scale"), Error);
  o = fpn_options();
  o.ratios = {1.0, 0.0};
  CHECK_THROWS_WITH_AS(AnchorGenerator<float>{o}, doctest::Contains("ratio 0 must be finite and > 0"), Error);
  o = fpn_options();
  o.strides = {};
  CHECK_THROWS_WITH_AS(AnchorGenerator<float>{o}, doctest::Contains("strides must name at least one level"), Error);
  o = fpn_options();
  o.base_sizes = {4, 8};
  CHECK_THROWS_WITH_AS(AnchorGenerator<float>{o}, doctest::Contains("2 base sizes for 5 levels"), Error);
  o = fpn_options();
  o.center_offset = 1.5;
  CHECK_THROWS_WITH_AS(AnchorGenerator<float>{o}, doctest::Contains("center_offset = 1.5"), Error);
  const AnchorGenerator<float> gen(fpn_options());
  CHECK_THROWS_WITH_AS(gen.base_anchors(5), doctest::Contains("level 5 out of range [0, 5)"), Error);
  CHECK_THROWS_WITH_AS(gen.grid_anchors({{1, 1}}), doctest::Contains("grid_anchors: 1 feature map sizes for 5 levels"),
                       Error);
  CHECK_THROWS_WITH_AS(gen.valid_flags({{1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, ImageSize{0, 3}),
                       doctest::Contains("image size must be positive"), Error);
  Tensor<std::uint8_t> valid(Shape{2});
  CHECK_THROWS_WITH_AS(anchor_inside_flags(Tensor<float>(Shape{3, 4}), valid, ImageSize{5, 5}),
                       doctest::Contains("valid flags have shape [2], expected [3]"), Error);
}
