#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "gcnet/data/transforms.hpp"
#include "gcnet/io/safetensors_reader.hpp"

using namespace gcnet;
using namespace gcnet::data;

namespace {
// A sample whose pixels encode their position: image (y, x, c) = 10 * y + x + 0.25 * c (+ 1),
// label (y, x) = (y + 2 * x) % 5.
Sample coded_sample(index_t h, index_t w, index_t c = 3) {
  Sample s{Tensor<float>(Shape{h, w, c}), Tensor<std::int64_t>(Shape{h, w}), -1};
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x) {
      for (index_t k = 0; k < c; ++k) s.image.at({y, x, k}) = static_cast<float>(10 * y + x) + 0.25f * k + 1;
      s.label.at({y, x}) = (y + 2 * x) % 5;
    }
  return s;
}
Sample random_sample(index_t h, index_t w, std::uint64_t seed) {
  Sample s{Tensor<float>(Shape{h, w, 3}), Tensor<std::int64_t>(Shape{h, w}), -1};
  Rng rng(seed);
  for (index_t i = 0; i < s.image.numel(); ++i) s.image[i] = static_cast<float>(rng.below(256));
  for (index_t i = 0; i < s.label.numel(); ++i) s.label[i] = static_cast<std::int64_t>(rng.below(4));
  return s;
}
template <class T>
bool same(const Tensor<T>& a, const Tensor<T>& b) {
  if (!(a.shape() == b.shape())) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}
}  // namespace

TEST_CASE("rescale_size follows mmcv: factor fits (long, short), sides round as int(x + 0.5)") {
  using P = std::pair<index_t, index_t>;
  CHECK(rescale_size(480, 640, 1333, 800) == P{800, 1067});   // mmdet 1x on a VGA image
  CHECK(rescale_size(640, 480, 1333, 800) == P{1067, 800});   // portrait: same edges
  CHECK(rescale_size(480, 640, 800, 1333) == P{800, 1067});   // edge order does not matter
  CHECK(rescale_size(1024, 2048, 2048, 1024) == P{1024, 2048});
  CHECK(rescale_size(13, 17, 10, 6) == P{6, 8});    // 13*6/13 = 6.0, 17*6/13 = 7.846 -> 8
  CHECK(rescale_size(100, 300, 600, 400) == P{200, 600});  // long edge limits
  CHECK(rescale_size(3, 5, 3, 3) == P{2, 3});       // 1.8 -> 2, 3
  CHECK_THROWS_WITH_AS(rescale_size(4, 4, 0, 3), doctest::Contains("scale edges must be positive"), gcnet::Error);
}

TEST_CASE("Resize: bilinear image and nearest label match torch's interpolate (tools/fixtures/data.py)") {
  const io::SafetensorsReader f(std::string(GCNET_FIXTURE_DIR) + "/data.safetensors");
  for (const char* name : {"down", "up", "gray_wide"}) {
    CAPTURE(name);
    const std::string c = std::string("resize.") + name;
    const auto img = f.tensor<float>(c + ".image");
    const auto lbl = f.tensor<double>(c + ".label");
    const auto want_img = f.tensor<double>(c + ".image_out");
    const auto want_lbl = f.tensor<double>(c + ".label_out");
    const std::string scale = f.meta(c + ".scale");
    const index_t a = std::stoll(scale.substr(0, scale.find(','))), b = std::stoll(scale.substr(scale.find(',') + 1));
    Sample s{img, Tensor<std::int64_t>(lbl.shape()), -1};
    for (index_t i = 0; i < lbl.numel(); ++i) s.label[i] = static_cast<std::int64_t>(lbl[i]);
    Rng rng(1);
    Resize{a, b}(s, rng);
    REQUIRE(s.image.shape() == want_img.shape());
    REQUIRE(s.label.shape() == want_lbl.shape());
    double err = 0, scale_ = 0;
    for (index_t i = 0; i < want_img.numel(); ++i) {
      err = std::max(err, std::abs(s.image[i] - want_img[i]));
      scale_ = std::max(scale_, std::abs(want_img[i]));
    }
    CHECK(err / scale_ < 1e-5);
    index_t wrong = 0;
    for (index_t i = 0; i < want_lbl.numel(); ++i) wrong += s.label[i] != static_cast<std::int64_t>(want_lbl[i]);
    CHECK(wrong == 0);
  }
}

TEST_CASE("Resize: a label that does not match the image is an error naming both shapes") {
  Sample s = coded_sample(4, 6);
  s.label = Tensor<std::int64_t>(Shape{4, 5});
  Rng rng(0);
  CHECK_THROWS_WITH_AS((Resize{8, 8}(s, rng)),
                       doctest::Contains("Resize: label of shape [4, 5] does not match image of shape [4, 6, 3]"),
                       gcnet::Error);
}

TEST_CASE("RandomResize: the scale is (int(long * r), int(short * r)) with r in the ratio range") {
  const Sample src = coded_sample(20, 30);
  bool saw_small = false, saw_large = false;
  for (std::uint64_t seed = 0; seed < 40; ++seed) {
    Sample s = copy_sample(src);
    Rng rng(seed), replay(seed);
    RandomResize{60, 40, 0.5, 2.0}(s, rng);
    const double r = replay.uniform(0.5, 2.0);
    const auto want = rescale_size(20, 30, static_cast<index_t>(60 * r), static_cast<index_t>(40 * r));
    CHECK(s.height() == want.first);
    CHECK(s.width() == want.second);
    CHECK(s.label.size(0) == want.first);
    saw_small |= r < 0.8;
    saw_large |= r > 1.6;
  }
  CHECK(saw_small);
  CHECK(saw_large);
}

TEST_CASE("RandomFlip: prob 1 mirrors image and label, prob 0 leaves them") {
  const Sample src = coded_sample(3, 4);
  Sample s = copy_sample(src);
  Rng rng(5);
  RandomFlip{1.0}(s, rng);
  for (index_t y = 0; y < 3; ++y)
    for (index_t x = 0; x < 4; ++x) {
      for (index_t c = 0; c < 3; ++c) CHECK(s.image.at({y, x, c}) == src.image.at({y, 3 - x, c}));
      CHECK(s.label.at({y, x}) == src.label.at({y, 3 - x}));
    }
  Sample t = copy_sample(src);
  RandomFlip{0.0}(t, rng);
  CHECK(same(t.image, src.image));
  CHECK(same(t.label, src.label));
  int flipped = 0;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    Sample u = copy_sample(src);
    Rng r(seed);
    RandomFlip{0.5}(u, r);
    flipped += !same(u.image, src.image);
  }
  CHECK(flipped > 70);
  CHECK(flipped < 130);
}

TEST_CASE("PadToMultiple: bottom/right padding, image 0 and label 255") {
  const Sample src = coded_sample(5, 7);
  Sample s = copy_sample(src);
  Rng rng(0);
  PadToMultiple{4}(s, rng);
  REQUIRE(s.image.shape() == Shape{8, 8, 3});
  REQUIRE(s.label.shape() == Shape{8, 8});
  for (index_t y = 0; y < 8; ++y)
    for (index_t x = 0; x < 8; ++x) {
      const bool inside = y < 5 && x < 7;
      for (index_t c = 0; c < 3; ++c) CHECK(s.image.at({y, x, c}) == (inside ? src.image.at({y, x, c}) : 0.f));
      CHECK(s.label.at({y, x}) == (inside ? src.label.at({y, x}) : 255));
    }
  Sample t = coded_sample(8, 12);
  PadToMultiple{4}(t, rng);
  CHECK(t.image.shape() == Shape{8, 12, 3});
  CHECK_THROWS_WITH_AS(PadToMultiple{0}(t, rng), doctest::Contains("PadToMultiple: divisor must be positive, got 0"),
                       gcnet::Error);
}

TEST_CASE("Normalize: (x - mean) / std per channel, mmdet defaults, channel count checked") {
  Sample s = coded_sample(2, 2);
  const Sample src = copy_sample(s);
  Rng rng(0);
  Normalize{}(s, rng);
  const float mean[3] = {123.675f, 116.28f, 103.53f}, stdv[3] = {58.395f, 57.12f, 57.375f};
  for (index_t i = 0; i < s.image.numel(); ++i)
    CHECK(s.image[i] == doctest::Approx((src.image[i] - mean[i % 3]) / stdv[i % 3]));
  Sample g = coded_sample(2, 2, 1);
  CHECK_THROWS_WITH_AS(Normalize{}(g, rng),
                       doctest::Contains("Normalize: mean/std have 3/3 entries for an image with 1 channels"),
                       gcnet::Error);
}

TEST_CASE("RandomCrop: the crop is a window of the sample, clipped to small images") {
  const Sample src = coded_sample(9, 12);
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    Sample s = copy_sample(src);
    Rng rng(seed);
    RandomCrop{4, 5}(s, rng);
    REQUIRE(s.image.shape() == Shape{4, 5, 3});
    // Image pixel (0,0) encodes the offset: 10 * oy + ox + 1.
    const auto code = static_cast<index_t>(s.image.at({0, 0, 0})) - 1;
    const index_t oy = code / 10, ox = code % 10;
    CHECK(oy <= 9 - 4);
    CHECK(ox <= 12 - 5);
    for (index_t y = 0; y < 4; ++y)
      for (index_t x = 0; x < 5; ++x) {
        CHECK(s.image.at({y, x, 2}) == src.image.at({oy + y, ox + x, 2}));
        CHECK(s.label.at({y, x}) == src.label.at({oy + y, ox + x}));
      }
  }
  Sample small = coded_sample(3, 4);
  Rng rng(1);
  RandomCrop{6, 2}(small, rng);
  CHECK(small.image.shape() == Shape{3, 2, 3});
  CHECK(small.label.shape() == Shape{3, 2});
}

TEST_CASE("RandomCrop: cat_max_ratio re-draws crops dominated by one class (255 ignored)") {
  // 8 x 16 label: columns 0-11 class 0, 12-15 class 1, row 0 ignore (255). An 8x8 crop at column
  // offset ox holds max(ox - 4, 0) class-1 columns; only ox in {7, 8} keeps class 0 under 75%.
  Sample src = coded_sample(8, 16);
  for (index_t y = 0; y < 8; ++y)
    for (index_t x = 0; x < 16; ++x) src.label.at({y, x}) = y == 0 ? 255 : (x >= 12 ? 1 : 0);
  const auto dominated = [](const Sample& s) {
    index_t c0 = 0, c1 = 0;
    for (index_t i = 0; i < s.label.numel(); ++i) {
      c0 += s.label[i] == 0;
      c1 += s.label[i] == 1;
    }
    return c1 == 0 || static_cast<double>(std::max(c0, c1)) / static_cast<double>(c0 + c1) >= 0.75;
  };
  int bad_plain = 0, bad_ratio = 0;
  for (std::uint64_t seed = 0; seed < 300; ++seed) {
    Sample a = copy_sample(src), b = copy_sample(src);
    Rng ra(seed), rb(seed);
    RandomCrop{8, 8}(a, ra);
    RandomCrop{8, 8, 0.75}(b, rb);
    bad_plain += dominated(a);
    bad_ratio += dominated(b);
    // Image and label are cropped together.
    const auto ox = static_cast<index_t>(b.image.at({0, 0, 0}) - 1) % 10;
    CHECK(b.label.at({1, 0}) == (ox >= 12 ? 1 : 0));
  }
  // Plain crops: 7 of 9 offsets are dominated (~233/300); with the ratio at most (7/9)^11 ~ 6% stay so.
  CHECK(bad_plain > 200);
  CHECK(bad_ratio < 40);
}

TEST_CASE("PhotoMetricDistortion: reproducible from the Rng, different across seeds, values in [0, 255]") {
  const Sample src = random_sample(6, 7, 11);
  PhotoMetricDistortion pmd;
  int differing = 0;
  for (std::uint64_t seed = 0; seed < 30; ++seed) {
    Sample a = copy_sample(src), b = copy_sample(src);
    Rng ra(seed), rb(seed);
    pmd(a, ra);
    pmd(b, rb);
    CHECK(same(a.image, b.image));
    CHECK(same(a.label, src.label));
    for (index_t i = 0; i < a.image.numel(); ++i) {
      CHECK(a.image[i] >= 0.f);
      CHECK(a.image[i] <= 255.f);
    }
    Sample c = copy_sample(src);
    Rng rc(seed + 1000);
    pmd(c, rc);
    differing += !same(a.image, c.image);
  }
  CHECK(differing > 20);
}

TEST_CASE("PhotoMetricDistortion: brightness alone shifts every pixel by one floor(delta) in [-32, 32]") {
  // Pixels in [40, 200] never clip; contrast/saturation fixed at 1 and hue at 0 leave only brightness.
  Sample src = random_sample(5, 5, 3);
  for (index_t i = 0; i < src.image.numel(); ++i) src.image[i] = 40 + std::fmod(src.image[i], 161.f);
  const PhotoMetricDistortion only_brightness{32, 1, 1, 1, 1, 0};
  int shifted = 0;
  for (std::uint64_t seed = 0; seed < 60; ++seed) {
    Sample s = copy_sample(src);
    Rng rng(seed);
    only_brightness(s, rng);
    const float d = s.image[0] - src.image[0];
    CHECK(d >= -32.f);
    CHECK(d <= 32.f);
    CHECK(d == std::floor(d));
    for (index_t i = 0; i < s.image.numel(); ++i) CHECK(s.image[i] - src.image[i] == doctest::Approx(d).epsilon(1e-4));
    shifted += d != 0;
  }
  CHECK(shifted > 15);  // applied with probability 1/2
  CHECK(shifted < 45);
}

TEST_CASE("PhotoMetricDistortion: HSV conversion follows OpenCV's conventions and round-trips") {
  namespace pd = photometric_detail;
  float h, s, v, r, g, b;
  pd::rgb_to_hsv(255, 0, 0, h, s, v);
  CHECK(h == 0.f);
  CHECK(s == 255.f);
  CHECK(v == 255.f);
  pd::rgb_to_hsv(0, 128, 0, h, s, v);
  CHECK(h == 60.f);  // 120 degrees on OpenCV's 0..180 scale
  CHECK(v == 128.f);
  pd::rgb_to_hsv(0, 0, 200, h, s, v);
  CHECK(h == 120.f);
  pd::rgb_to_hsv(100, 50, 50, h, s, v);
  CHECK(s == doctest::Approx(127.5));
  // Hue +60 (120 degrees) turns red into green.
  pd::hsv_to_rgb(60, 255, 255, r, g, b);
  CHECK(r == doctest::Approx(0));
  CHECK(g == doctest::Approx(255));
  CHECK(b == doctest::Approx(0));
  Rng rng(9);
  for (int k = 0; k < 200; ++k) {
    const auto R = static_cast<float>(rng.below(256)), G = static_cast<float>(rng.below(256)),
               B = static_cast<float>(rng.below(256));
    pd::rgb_to_hsv(R, G, B, h, s, v);
    CHECK(h >= 0.f);
    CHECK(h < 180.f);
    pd::hsv_to_rgb(h, s, v, r, g, b);
    CHECK(r == doctest::Approx(R).epsilon(1e-4));
    CHECK(g == doctest::Approx(G).epsilon(1e-4));
    CHECK(b == doctest::Approx(B).epsilon(1e-4));
  }
}

TEST_CASE("Compose runs the transforms in order with one Rng") {
  Compose pipeline{RandomFlip{1.0}, PadToMultiple{4}, Normalize{{1, 1, 1}, {2, 2, 2}}};
  CHECK(pipeline.size() == 3);
  Sample s = coded_sample(3, 3);
  Rng rng(0);
  pipeline(s, rng);
  REQUIRE(s.image.shape() == Shape{4, 4, 3});
  CHECK(s.image.at({0, 0, 0}) == doctest::Approx((3.f - 1.f) / 2.f));  // flipped: x = 2 -> 10*0 + 2 + 1
  CHECK(s.image.at({3, 3, 0}) == doctest::Approx(-0.5f));               // padding 0, normalized
  CHECK(s.label.at({3, 3}) == 255);
}
