// Detection transforms (det_transforms.hpp): mmdet's keep-ratio Resize (mmcv.imrescale's size
// and scale_factor, float32 box scaling, clipping, nearest masks), horizontal flip
// (x1' = W - x2), normalize (to_rgb), padding to a multiple of 32, and the meta that maps
// results back to the original image.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "gcnet/data/det_transforms.hpp"
#include "support/files.hpp"

using namespace gcnet;
using namespace gcnet::data;
using gcnet::test::has;

namespace {
// An H x W x 3 image with distinct values, boxes, labels and per-instance masks.
DetSample sample(index_t H, index_t W, std::vector<float> boxes, std::vector<float> ignore = {}) {
  DetSample s;
  s.image = Tensor<float>(Shape{H, W, 3});
  for (index_t i = 0; i < s.image.numel(); ++i) s.image[i] = static_cast<float>((i * 37) % 256);
  const index_t n = static_cast<index_t>(boxes.size() / 4);
  s.boxes = Tensor<float>(Shape{n, 4});
  std::copy(boxes.begin(), boxes.end(), s.boxes.data());
  s.labels = Tensor<std::int64_t>(Shape{n});
  for (index_t k = 0; k < n; ++k) s.labels[k] = k;
  s.masks = Tensor<std::uint8_t>(Shape{n, H, W});
  for (index_t k = 0; k < n; ++k)  // instance k: the pixels inside its (integer) box
    for (index_t y = 0; y < H; ++y)
      for (index_t x = 0; x < W; ++x)
        s.masks[(k * H + y) * W + x] = x >= boxes[4 * k] && x < boxes[4 * k + 2] && y >= boxes[4 * k + 1] && y < boxes[4 * k + 3];
  s.ignore_boxes = Tensor<float>(Shape{static_cast<index_t>(ignore.size() / 4), 4});
  std::copy(ignore.begin(), ignore.end(), s.ignore_boxes.data());
  s.meta.ori_h = s.meta.img_h = s.meta.pad_h = H;
  s.meta.ori_w = s.meta.img_w = s.meta.pad_w = W;
  return s;
}
std::vector<float> values(const Tensor<float>& t) { return std::vector<float>(t.data(), t.data() + t.numel()); }
}  // namespace

TEST_CASE("DetResize: mmcv.imrescale's size and mmdet's scale_factor, boxes in float32, clipped") {
  Rng rng;
  // COCO's usual case: 480x640 -> 800x1067 under (1333, 800).
  {
    DetSample s = sample(480, 640, {100, 50, 300, 400});
    s.masks = Tensor<std::uint8_t>();  // keep it light
    DetResize{}(s, rng);
    CHECK(s.image.shape() == Shape{800, 1067, 3});
    CHECK(s.meta.img_h == 800);
    CHECK(s.meta.img_w == 1067);
    CHECK(s.meta.pad_h == 800);
    CHECK(s.meta.scale_w == 1067.0 / 640);
    CHECK(s.meta.scale_h == 800.0 / 480);
    CHECK(s.boxes[0] == 100.0f * static_cast<float>(1067.0 / 640));
    CHECK(s.boxes[3] == 400.0f * static_cast<float>(800.0 / 480));
  }
  // A portrait image: the long edge (height) limits: 1333/1000 < 800/600.
  {
    DetSample s = sample(1000, 600, {});
    s.masks = Tensor<std::uint8_t>();
    DetResize{}(s, rng);
    CHECK(s.image.shape() == Shape{1333, 800, 3});  // int(600 * 1.333 + 0.5) = 800
  }
  // Small case: 6x8 under (20, 10): f = min(20/8, 10/6) -> 10x13, scale (13/8, 10/6).
  DetSample s = sample(6, 8, {1, 1, 5, 4, 6, 5, 8, 6}, {0, 0, 2, 2});
  const DetSample before = sample(6, 8, {1, 1, 5, 4, 6, 5, 8, 6}, {0, 0, 2, 2});
  DetResize{.scale_w = 20, .scale_h = 10}(s, rng);
  REQUIRE(s.image.shape() == Shape{10, 13, 3});
  const float sw = static_cast<float>(13.0 / 8), sh = static_cast<float>(10.0 / 6);
  CHECK(values(s.boxes) == std::vector<float>{1 * sw, 1 * sh, 5 * sw, 4 * sh, 6 * sw, 5 * sh, 8 * sw, 6 * sh});
  CHECK(values(s.ignore_boxes) == std::vector<float>{0, 0, 2 * sw, 2 * sh});
  CHECK(values(s.image) == values(resize_bilinear_hwc(before.image, 10, 13)));
  REQUIRE(s.masks.shape() == Shape{2, 10, 13});
  for (index_t k = 0; k < 2; ++k) {
    Tensor<std::uint8_t> m(Shape{6, 8});
    std::copy_n(before.masks.data() + k * 48, 48, m.data());
    const Tensor<std::uint8_t> want = resize_nearest_hw(m, 10, 13);
    CHECK(std::vector<std::uint8_t>(s.masks.data() + k * 130, s.masks.data() + (k + 1) * 130) ==
          std::vector<std::uint8_t>(want.data(), want.data() + 130));
  }
  // Nearest: output (y, x) reads input (floor(y * 6/10), floor(x * 8/13)).
  CHECK(s.masks[(0 * 10 + 2) * 13 + 2] == before.masks[(0 * 6 + 1) * 8 + 1]);

  // Boxes beyond the image are clipped to [0, w] x [0, h] of the resized image (clip_object_border).
  DetSample c = sample(6, 8, {-2, 3, 9, 7});
  c.masks = Tensor<std::uint8_t>();
  DetResize{.scale_w = 16, .scale_h = 12}(c, rng);  // exactly 2x
  CHECK(values(c.boxes) == std::vector<float>{0, 6, 16, 12});
  DetSample nc = sample(6, 8, {-2, 3, 9, 7});
  DetResize{.scale_w = 16, .scale_h = 12, .clip_boxes = false}(nc, rng);
  CHECK(values(nc.boxes) == std::vector<float>{-4, 6, 18, 14});

  // keep_ratio = false: exactly (scale_w, scale_h).
  DetSample f = sample(6, 8, {1, 1, 5, 4});
  DetResize{.scale_w = 20, .scale_h = 10, .keep_ratio = false}(f, rng);
  CHECK(f.image.shape() == Shape{10, 20, 3});
  CHECK(f.masks.shape() == Shape{1, 10, 20});
  CHECK(f.meta.scale_w == 2.5);
  CHECK(values(f.boxes) == std::vector<float>{2.5f, 1 * sh, 12.5f, 4 * sh});

  DetSample bad = sample(6, 8, {1, 1, 5, 4});
  bad.labels = Tensor<std::int64_t>(Shape{2});
  CHECK_THROWS_WITH_AS(DetResize{}(bad, rng), has("DetResize: labels of shape [2] for 1 boxes"), gcnet::Error);
  CHECK_THROWS_WITH_AS(DetResize{.scale_w = 0}(s, rng), has("DetResize: scale (0, 800) must be positive"), gcnet::Error);
}

TEST_CASE("DetRandomFlip: image, masks and boxes (x1' = W - x2), meta.flip; flip twice restores") {
  Rng rng(3);
  DetSample s = sample(5, 9, {1, 0, 4, 3, 6, 2, 9, 5}, {0, 0, 2, 2});
  const DetSample orig = sample(5, 9, {1, 0, 4, 3, 6, 2, 9, 5}, {0, 0, 2, 2});
  DetRandomFlip{.prob = 1.0}(s, rng);
  CHECK(s.meta.flip);
  CHECK(values(s.boxes) == std::vector<float>{5, 0, 8, 3, 0, 2, 3, 5});
  CHECK(values(s.ignore_boxes) == std::vector<float>{7, 0, 9, 2});
  for (index_t y = 0; y < 5; ++y)
    for (index_t x = 0; x < 9; ++x) {
      for (index_t c = 0; c < 3; ++c) CHECK(s.image[(y * 9 + x) * 3 + c] == orig.image[(y * 9 + 8 - x) * 3 + c]);
      for (index_t k = 0; k < 2; ++k) CHECK(s.masks[(k * 5 + y) * 9 + x] == orig.masks[(k * 5 + y) * 9 + 8 - x]);
    }
  // The flipped masks still lie inside the flipped boxes (box k covers mask k exactly).
  CHECK(s.masks[(0 * 5 + 0) * 9 + 5] == 1);
  CHECK(s.masks[(0 * 5 + 0) * 9 + 4] == 0);
  DetRandomFlip{.prob = 1.0}(s, rng);
  CHECK_FALSE(s.meta.flip);
  CHECK(values(s.boxes) == values(orig.boxes));
  CHECK(values(s.image) == values(orig.image));
  // prob 0 never flips; prob 0.5 flips about half the time, from the Rng only.
  DetRandomFlip{.prob = 0.0}(s, rng);
  CHECK_FALSE(s.meta.flip);
  int flips = 0;
  for (int i = 0; i < 200; ++i) {
    DetSample t = sample(2, 3, {0, 0, 1, 1});
    DetRandomFlip{}(t, rng);
    flips += t.meta.flip;
  }
  CHECK(flips > 70);
  CHECK(flips < 130);
  DetSample p = sample(5, 9, {1, 0, 4, 3});
  DetPad{}(p, rng);
  CHECK_THROWS_WITH_AS(DetRandomFlip{.prob = 1.0}(p, rng), has("flip before DetPad"), gcnet::Error);
}

TEST_CASE("DetNormalize and DetPad") {
  Rng rng;
  DetSample s = sample(3, 2, {0, 0, 1, 1});
  const DetSample orig = sample(3, 2, {0, 0, 1, 1});
  DetNormalize{}(s, rng);
  CHECK(s.image[0] == (orig.image[0] - 123.675f) / 58.395f);
  CHECK(s.image[4] == (orig.image[4] - 116.28f) / 57.12f);
  DetSample bgr = sample(3, 2, {0, 0, 1, 1});
  DetNormalize{.mean = {1, 2, 3}, .std = {2, 4, 8}, .to_rgb = false}(bgr, rng);
  CHECK(bgr.image[3] == (orig.image[5] - 1) / 2);  // pixel 1: B first
  CHECK(bgr.image[4] == (orig.image[4] - 2) / 4);
  CHECK(bgr.image[5] == (orig.image[3] - 3) / 8);
  const DetNormalize short_mean{.mean = {1, 2}}, zero_std{.std = {1, 0, 1}};
  CHECK_THROWS_WITH_AS(short_mean(s, rng), has("mean/std have 2/3 entries for an image with 3"), gcnet::Error);
  CHECK_THROWS_WITH_AS(zero_std(s, rng), has("std entries must be positive"), gcnet::Error);

  DetSample p = sample(33, 64, {1, 2, 30, 31}, {0, 0, 4, 4});
  DetPad{.pad_value = -1}(p, rng);
  CHECK(p.image.shape() == Shape{64, 64, 3});
  CHECK(p.masks.shape() == Shape{1, 64, 64});
  CHECK(p.meta.pad_h == 64);
  CHECK(p.meta.pad_w == 64);
  CHECK(p.meta.img_h == 33);  // unchanged: the valid region
  CHECK(values(p.boxes) == std::vector<float>{1, 2, 30, 31});
  CHECK(p.image[(32 * 64 + 5) * 3 + 1] == sample(33, 64, {}).image[(32 * 64 + 5) * 3 + 1]);
  CHECK(p.image[(33 * 64 + 5) * 3 + 1] == -1);
  CHECK(p.masks[(0 * 64 + 30) * 64 + 29] == 1);
  CHECK(p.masks[(0 * 64 + 40) * 64 + 20] == 0);
  // Already a multiple: nothing moves, the meta says so.
  DetSample q = sample(32, 64, {1, 2, 3, 4});
  const float* before = q.image.data();
  DetPad{}(q, rng);
  CHECK(q.image.data() == before);
  CHECK(q.meta.pad_h == 32);
  CHECK_THROWS_WITH_AS(DetPad{.divisor = 0}(q, rng), has("divisor must be positive"), gcnet::Error);
}

TEST_CASE("The detection pipeline: boxes map back to the original through the meta") {
  Rng rng(11);
  const DetSample orig = sample(48, 70, {3, 4, 40, 30, 50, 10, 69, 47});
  DetSample s = sample(48, 70, {3, 4, 40, 30, 50, 10, 69, 47});
  const DetCompose pipeline{DetResize{.scale_w = 200, .scale_h = 100}, DetRandomFlip{.prob = 1.0}, DetNormalize{},
                            DetPad{}};
  pipeline(s, rng);
  CHECK(s.meta.img_h == 100);
  CHECK(s.meta.img_w == 146);  // int(70 * 100/48 + 0.5)
  CHECK(s.image.shape() == Shape{128, 160, 3});
  CHECK(s.masks.shape() == Shape{2, 128, 160});
  CHECK(s.meta.pad_h == 128);
  CHECK(s.meta.pad_w == 160);
  CHECK(s.meta.flip);
  for (index_t k = 0; k < 2; ++k) {
    // Undo the flip in img_w, then the scale.
    const double x1 = (s.meta.img_w - s.boxes[4 * k + 2]) / s.meta.scale_w;
    const double x2 = (s.meta.img_w - s.boxes[4 * k + 0]) / s.meta.scale_w;
    CHECK(x1 == doctest::Approx(orig.boxes[4 * k + 0]).epsilon(1e-6));
    CHECK(x2 == doctest::Approx(orig.boxes[4 * k + 2]).epsilon(1e-6));
    CHECK(s.boxes[4 * k + 1] / s.meta.scale_h == doctest::Approx(orig.boxes[4 * k + 1]).epsilon(1e-6));
  }
}
