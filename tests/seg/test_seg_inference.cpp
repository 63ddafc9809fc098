#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/seg/inference.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using seg::InferenceMode;
using seg::InferenceOptions;
using seg::LogitsFunction;
using seg::TtaOptions;
using test::random_tensor;

namespace {
// Stand-ins for a segmentor, each a fixed function of the image.
//  - pixel_linear: a random 1x1 map C -> K at full resolution; translation- and flip-equivariant.
//  - pooled: 1x1 map, tanh, then the mean of each 8x8 block (ceil(H/8) x ceil(W/8) outputs); like
//    a D8 network's output it depends on where the blocks fall, so it is neither.
//  - conv_pooled: a 3x3 convolution (zero padding), then 4x4 block means (F.avg_pool2d(4, 4,
//    ceil_mode=True)). With the random Weights, whose kernels are mirror-symmetric left to right,
//    it is flip-equivariant whenever the width is a multiple of 4.
// Each checks that it gets a contiguous, finite [N, C, H, W] batch.
template <class T>
struct Weights {
  index_t C, K;
  std::vector<T> w;  // [K, C, 3, 3] (pixel_linear and pooled use the centre tap)
  std::vector<T> b;
  Weights(index_t c, index_t k, std::uint64_t seed) : C(c), K(k) {
    Rng rng(seed);
    for (index_t i = 0; i < K * C * 9; ++i) w.push_back(static_cast<T>(rng.normal()));
    for (index_t i = 0; i < K * C; ++i)  // mirror each kernel: column 2 = column 0
      for (index_t r = 0; r < 3; ++r)
        w[static_cast<std::size_t>(i * 9 + r * 3 + 2)] = w[static_cast<std::size_t>(i * 9 + r * 3)];
    for (index_t k = 0; k < K; ++k) b.push_back(static_cast<T>(rng.normal()));
  }
  // Given weights [K, C, 3, 3] and bias [K].
  Weights(const Tensor<T>& weight, const Tensor<T>& bias) : C(weight.size(1)), K(weight.size(0)) {
    for (index_t i = 0; i < weight.numel(); ++i) w.push_back(weight[i]);
    for (index_t i = 0; i < bias.numel(); ++i) b.push_back(bias[i]);
  }
  T tap(index_t k, index_t c, index_t dy, index_t dx) const {
    return w[static_cast<std::size_t>(((k * C + c) * 3 + dy) * 3 + dx)];
  }
};

template <class T>
void check_input(const Tensor<T>& x, index_t C) {
  REQUIRE(x.rank() == 4);
  REQUIRE(x.size(1) == C);
  REQUIRE(x.is_contiguous());
  bool finite = true;
  for (index_t i = 0; i < x.numel(); ++i) finite = finite && std::isfinite(x[i]);
  REQUIRE(finite);
}

// Mean of each block x block tile (tiles at the bottom/right edge may be smaller).
template <class T>
Tensor<T> block_mean(const Tensor<T>& x, index_t block) {
  const index_t N = x.size(0), K = x.size(1), H = x.size(2), W = x.size(3);
  const index_t h = (H + block - 1) / block, w = (W + block - 1) / block;
  Tensor<T> y(Shape{N, K, h, w});
  for (index_t p = 0; p < N * K; ++p)
    for (index_t i = 0; i < h; ++i)
      for (index_t j = 0; j < w; ++j) {
        T s = 0;
        index_t n = 0;
        for (index_t y0 = i * block; y0 < std::min(H, (i + 1) * block); ++y0)
          for (index_t x0 = j * block; x0 < std::min(W, (j + 1) * block); ++x0, ++n) s += x[(p * H + y0) * W + x0];
        y[(p * h + i) * w + j] = s / static_cast<T>(n);
      }
  return y;
}

template <class T>
LogitsFunction<T> pixel_linear(const Weights<T>& m) {
  return [m](const Tensor<T>& x) {
    check_input(x, m.C);
    const index_t N = x.size(0), P = x.size(2) * x.size(3);
    Tensor<T> y(Shape{N, m.K, x.size(2), x.size(3)});
    for (index_t n = 0; n < N; ++n)
      for (index_t k = 0; k < m.K; ++k)
        for (index_t i = 0; i < P; ++i) {
          T s = m.b[static_cast<std::size_t>(k)];
          for (index_t c = 0; c < m.C; ++c) s += m.tap(k, c, 1, 1) * x[(n * m.C + c) * P + i];
          y[(n * m.K + k) * P + i] = s;
        }
    return y;
  };
}

template <class T>
LogitsFunction<T> pooled(const Weights<T>& m) {
  const LogitsFunction<T> linear = pixel_linear(m);
  return [linear](const Tensor<T>& x) {
    Tensor<T> y = linear(x);
    for (index_t i = 0; i < y.numel(); ++i) y[i] = std::tanh(y[i]);
    return block_mean(y, 8);
  };
}

template <class T>
LogitsFunction<T> conv_pooled(const Weights<T>& m) {
  return [m](const Tensor<T>& x) {
    check_input(x, m.C);
    const index_t N = x.size(0), H = x.size(2), W = x.size(3);
    Tensor<T> y(Shape{N, m.K, H, W});
    for (index_t n = 0; n < N; ++n)
      for (index_t k = 0; k < m.K; ++k)
        for (index_t i = 0; i < H; ++i)
          for (index_t j = 0; j < W; ++j) {
            T s = m.b[static_cast<std::size_t>(k)];
            for (index_t c = 0; c < m.C; ++c)
              for (index_t dy = 0; dy < 3; ++dy)
                for (index_t dx = 0; dx < 3; ++dx) {
                  const index_t yy = i + dy - 1, xx = j + dx - 1;
                  if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                    s += m.tap(k, c, dy, dx) * x[((n * m.C + c) * H + yy) * W + xx];
                }
            y[((n * m.K + k) * H + i) * W + j] = s;
          }
    return block_mean(y, 4);
  };
}

template <class T>
double max_abs_diff(const Tensor<T>& a, const Tensor<T>& b) {
  REQUIRE(a.shape() == b.shape());
  double d = 0;
  for (index_t i = 0; i < a.numel(); ++i)
    d = std::max(d, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return d;
}

template <class T>
bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.shape() != b.shape()) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (!(a[i] == b[i])) return false;
  return true;
}

template <class T>
bool all_finite(const Tensor<T>& t) {
  for (index_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(static_cast<double>(t[i]))) return false;
  return true;
}

InferenceOptions slide(Size2 crop, Size2 stride, bool align_corners = false) {
  return {.mode = InferenceMode::slide, .crop = crop, .stride = stride, .align_corners = align_corners};
}
}  // namespace

TEST_CASE("slide windows: mmseg's grid, the last window pulled back, small images in one window") {
  using W = seg::Window;
  // H = 10, crop 4, stride 3: max(10 - 4 + 2, 0) // 3 + 1 = 3 rows of windows.
  CHECK(seg::slide_windows(10, 4, 4, 3) == std::vector<W>{{0, 4, 0, 4}, {3, 7, 0, 4}, {6, 10, 0, 4}});
  // H = 11: 4 rows; the last one starts at 9, ends at min(13, 11) and is pulled back to [7, 11).
  const auto rows = seg::slide_windows(11, 4, 4, 3);
  REQUIRE(rows.size() == 4);
  CHECK(rows.back() == W{7, 11, 0, 4});
  // Exact tiling: H = 12, crop 4, stride 4 -> [0,4) [4,8) [8,12).
  CHECK(seg::slide_windows(12, 4, 4, 4) == std::vector<W>{{0, 4, 0, 4}, {4, 8, 0, 4}, {8, 12, 0, 4}});
  // An image smaller than the crop is one window of its own size.
  CHECK(seg::slide_windows(3, 5, Size2{8, 8}, Size2{6, 6}) == std::vector<W>{{0, 3, 0, 5}});
  // Rectangular crop and stride: 2 x 3 windows, row by row.
  const auto grid = seg::slide_windows(9, 14, Size2{6, 6}, Size2{4, 5});
  CHECK(grid == std::vector<W>{{0, 6, 0, 6}, {0, 6, 5, 11}, {0, 6, 8, 14}, {3, 9, 0, 6}, {3, 9, 5, 11}, {3, 9, 8, 14}});
}

TEST_CASE("slide inference equals whole inference when one crop covers the image") {
  const Weights<float> m(3, 5, 11);
  const auto model = pooled(m);
  const auto x = random_tensor<float>(Shape{2, 3, 20, 28}, 1);
  for (bool ac : {false, true}) {
    const Tensor<float> whole = seg::whole_inference<float>(model, x, ac);
    CHECK(whole.shape() == Shape{2, 5, 20, 28});
    CHECK(all_finite(whole));
    // A crop the image's size, and a crop larger than the image: one window either way.
    CHECK(bitwise_equal(seg::slide_inference<float>(model, x, Size2{20, 28}, Size2{10, 14}, ac), whole));
    CHECK(bitwise_equal(seg::slide_inference<float>(model, x, 64, 32, ac), whole));
    CHECK(bitwise_equal(seg::inference<float>(model, x, slide(64, 32, ac)), whole));
  }
}

TEST_CASE("slide inference with overlapping windows equals whole inference for a per-pixel model") {
  const Weights<float> m(3, 4, 12);
  const auto model = pixel_linear(m);
  const auto x = random_tensor<float>(Shape{2, 3, 23, 31}, 2);
  const Tensor<float> whole = seg::whole_inference<float>(model, x);
  // Windows overlap by 3 rows and 4 columns; up to 4 windows cover a pixel (averaged).
  const Tensor<float> slid = seg::slide_inference<float>(model, x, Size2{8, 10}, Size2{5, 6});
  CHECK(slid.shape() == whole.shape());
  CHECK(max_abs_diff(slid, whole) < 1e-5);
  // A position-dependent model does not give the same logits (the test above is not vacuous).
  CHECK(max_abs_diff(seg::slide_inference<float>(pooled(m), x, Size2{8, 10}, Size2{5, 6}),
                     seg::whole_inference<float>(pooled(m), x)) > 1e-3);
}

TEST_CASE("slide inference averages: constant logits stay constant however many windows overlap") {
  const LogitsFunction<float> constant = [](const Tensor<float>& x) {
    return full<float>(Shape{x.size(0), 2, (x.size(2) + 7) / 8, (x.size(3) + 7) / 8}, 0.25f);
  };
  const auto x = random_tensor<float>(Shape{1, 3, 19, 26}, 3);
  const Tensor<float> y = seg::slide_inference<float>(constant, x, Size2{9, 7}, Size2{4, 3});
  CHECK(y.shape() == Shape{1, 2, 19, 26});
  for (index_t i = 0; i < y.numel(); ++i) REQUIRE(y[i] == 0.25f);
}

TEST_CASE("multi-scale TTA with ratio 1 and no flip equals one pass, in both modes") {
  const Weights<float> m(3, 5, 13);
  const auto model = pooled(m);
  const auto x = random_tensor<float>(Shape{2, 3, 21, 30}, 4);
  const TtaOptions one{.ratios = {1.0}, .flip = false};
  for (const InferenceOptions& o : {InferenceOptions{}, InferenceOptions{.align_corners = true}, slide(16, 10)}) {
    const Tensor<float> logits = seg::inference<float>(model, x, o);
    const Tensor<float> probs = seg::aug_test<float>(model, x, o, one);
    CHECK(bitwise_equal(probs, seg::softmax_over_classes(logits)));
    const auto with_tta = seg::predict<float>(model, x, o, one);
    const auto without = seg::predict<float>(model, x, o);
    CHECK(bitwise_equal(with_tta.labels, without.labels));
    CHECK(bitwise_equal(with_tta.probabilities, without.probabilities));
  }
}

TEST_CASE("flip TTA of a flip-equivariant model equals no flip, at every scale") {
  const Weights<float> m(3, 4, 14);
  const auto model = conv_pooled(m);
  // Width 32: the scaled widths (16, 32, 48) are multiples of the model's 4x4 blocks.
  const auto x = random_tensor<float>(Shape{1, 3, 20, 32}, 5);
  for (bool ac : {false, true}) {
    const InferenceOptions o{.align_corners = ac};
    // Ratio 1: the mean of the two passes is the single pass's softmax.
    const Tensor<float> single = seg::softmax_over_classes(seg::whole_inference<float>(model, x, ac));
    CHECK(max_abs_diff(seg::aug_test<float>(model, x, o, {.ratios = {1.0}, .flip = true}), single) < 1e-6);
    // Several scales: flipping adds nothing either.
    const std::vector<double> ratios{0.5, 1.0, 1.5};
    const auto flipped = seg::aug_test<float>(model, x, o, {.ratios = ratios, .flip = true});
    const auto plain = seg::aug_test<float>(model, x, o, {.ratios = ratios, .flip = false});
    CHECK(max_abs_diff(flipped, plain) < 1e-6);
  }
  // The model is not trivially symmetric: the mirrored image gives other logits.
  const auto lx = seg::whole_inference<float>(model, x);
  CHECK(max_abs_diff(lx, seg::whole_inference<float>(model, seg::flip_horizontal(x))) > 1e-3);
}

TEST_CASE("TTA passes: resize by the ratio, flip, infer, unflip, resize back, softmax, mean") {
  const Weights<float> m(3, 4, 15);
  const auto model = pooled(m);  // not flip-equivariant: the flipped pass differs
  const auto x = random_tensor<float>(Shape{2, 3, 26, 36}, 6);
  for (const InferenceOptions& o : {InferenceOptions{.align_corners = true}, slide(Size2{12, 16}, Size2{8, 8})}) {
    const Size2 s = seg::scaled_size(26, 36, 0.75);
    const Tensor<float> xs = seg::resize_to(x, s, false);
    const auto back = [&](const Tensor<float>& l) { return seg::resize_to(l, Size2{26, 36}, o.align_corners); };
    const Tensor<float> p1 = seg::softmax_over_classes(back(seg::inference<float>(model, xs, o)));
    const Tensor<float> p2 = seg::softmax_over_classes(
        back(seg::flip_horizontal(seg::inference<float>(model, seg::flip_horizontal(xs), o))));
    const Tensor<float> got = seg::aug_test<float>(model, x, o, {.ratios = {0.75}, .flip = true});
    REQUIRE(got.shape() == p1.shape());
    double d = 0;
    for (index_t i = 0; i < got.numel(); ++i) d = std::max(d, std::abs(got[i] - (p1[i] + p2[i]) / 2.0));
    CHECK(d < 1e-6);
    CHECK(max_abs_diff(p1, p2) > 1e-3);
  }
}

TEST_CASE("scaled sizes follow mmcv's Resize(scale_factor, keep_ratio): int(side * r + 0.5), then imrescale") {
  CHECK(seg::scaled_size(512, 1024, 0.75) == Size2{384, 768});
  CHECK(seg::scaled_size(375, 500, 0.75) == Size2{281, 375});
  CHECK(seg::scaled_size(20, 33, 0.5) == Size2{10, 17});
  // imrescale's second rounding: 13x19 at 1.25 targets 16x24 but becomes 16x23 (values from mmcv's rules).
  CHECK(seg::scaled_size(13, 19, 1.25) == Size2{16, 23});
  CHECK(seg::scaled_size(11, 17, 1.75) == Size2{19, 29});
  CHECK(seg::scaled_size(7, 9, 1.0) == Size2{7, 9});
}

TEST_CASE("every output element is written: odd sizes, all modes, default TTA") {
  const Weights<float> m(3, 6, 16);
  const auto x = random_tensor<float>(Shape{2, 3, 13, 19}, 7);
  for (const auto& model : {pooled(m), pixel_linear(m), conv_pooled(m)}) {
    for (const InferenceOptions& o : {InferenceOptions{}, slide(Size2{8, 6}, Size2{5, 4}, true), slide(7, 7)}) {
      const Tensor<float> logits = seg::inference<float>(model, x, o);
      CHECK(logits.shape() == Shape{2, 6, 13, 19});
      CHECK(all_finite(logits));
      for (const auto& tta : {std::optional<TtaOptions>{}, std::optional<TtaOptions>{TtaOptions{}}}) {
        const auto p = seg::predict<float>(model, x, o, tta);
        REQUIRE(p.probabilities.shape() == Shape{2, 6, 13, 19});
        REQUIRE(p.labels.shape() == Shape{2, 13, 19});
        CHECK(all_finite(p.probabilities));
        for (index_t n = 0; n < 2; ++n)
          for (index_t i = 0; i < 13 * 19; ++i) {
            double sum = 0, best = -1;
            index_t arg = -1;
            for (index_t k = 0; k < 6; ++k) {
              const double v = p.probabilities[(n * 6 + k) * 13 * 19 + i];
              sum += v;
              if (v > best) best = v, arg = k;
            }
            REQUIRE(std::abs(sum - 1.0) < 1e-5);
            REQUIRE(p.labels[n * 13 * 19 + i] == arg);
          }
      }
    }
  }
}

TEST_CASE("without TTA the labels are the argmax of the logits") {
  const Weights<float> m(3, 5, 17);
  const auto model = pooled(m);
  const auto x = random_tensor<float>(Shape{1, 3, 17, 23}, 8);
  const auto p = seg::predict<float>(model, x);
  CHECK(bitwise_equal(p.labels, seg::argmax_over_classes(seg::whole_inference<float>(model, x))));
  // Ties go to the lower class, as torch.argmax.
  Tensor<float> tie = full<float>(Shape{1, 3, 1, 2}, 1.0f);
  tie[1] = 0.0f;  // pixel 1 of class 0
  const auto labels = seg::argmax_over_classes(tie);
  CHECK(labels[0] == 0);
  CHECK(labels[1] == 1);
}

TEST_CASE("inference in double") {
  const Weights<double> m(2, 3, 18);
  const auto x = random_tensor<double>(Shape{1, 2, 15, 18}, 9);
  const auto whole = seg::whole_inference<double>(pixel_linear(m), x);
  CHECK(max_abs_diff(seg::slide_inference<double>(pixel_linear(m), x, 8, 5), whole) < 1e-12);
  const auto p = seg::predict<double>(conv_pooled(m), x, {}, TtaOptions{});
  CHECK(all_finite(p.probabilities));
}

TEST_CASE("bad options and misbehaving logits functions give clear errors") {
  const Weights<float> m(3, 4, 19);
  const auto model = pooled(m);
  const auto x = random_tensor<float>(Shape{2, 3, 16, 16}, 10);
  using doctest::Contains;
  CHECK_THROWS_WITH_AS(seg::inference<float>(model, x, slide(0, 4)), Contains("crop must be positive, got 0x0"), Error);
  CHECK_THROWS_WITH_AS(seg::inference<float>(model, x, slide(Size2{8, -2}, 4)),
                       Contains("crop must be positive, got 8x-2"), Error);
  CHECK_THROWS_WITH_AS(seg::inference<float>(model, x, slide(8, 0)), Contains("stride must be positive, got 0x0"),
                       Error);
  CHECK_THROWS_WITH_AS(seg::inference<float>(model, x, slide(8, Size2{4, 9})),
                       Contains("stride 4x9 is larger than crop 8x8"), Error);
  CHECK_THROWS_WITH_AS(seg::aug_test<float>(model, x, {}, {.ratios = {}}), Contains("the list of ratios is empty"),
                       Error);
  CHECK_THROWS_WITH_AS(seg::aug_test<float>(model, x, {}, {.ratios = {1.0, 0.0}}),
                       Contains("ratio 0 is not a positive number"), Error);
  CHECK_THROWS_WITH_AS(seg::aug_test<float>(model, x, {}, {.ratios = {std::nan("")}}),
                       Contains("is not a positive number"), Error);
  CHECK_THROWS_WITH_AS(seg::scaled_size(16, 16, 0.01), Contains("ratio 0.01 scales a 16x16 image to 0x0"), Error);

  const LogitsFunction<float> wrong_batch = [](const Tensor<float>&) { return full<float>(Shape{1, 4, 2, 2}, 0.f); };
  CHECK_THROWS_WITH_AS(seg::whole_inference<float>(wrong_batch, x),
                       "seg inference: the logits function returned a batch of 1 (shape [1, 4, 2, 2]) for 2 images of "
                       "shape [2, 3, 16, 16]",
                       Error);
  const LogitsFunction<float> wrong_rank = [](const Tensor<float>&) { return full<float>(Shape{2, 4, 4}, 0.f); };
  CHECK_THROWS_WITH_AS(seg::slide_inference<float>(wrong_rank, x, 8, 8),
                       Contains("must return [N, K, h, w], got shape [2, 4, 4]"), Error);
  const LogitsFunction<float> empty = [](const Tensor<float>&) { return Tensor<float>(Shape{2, 0, 4, 4}); };
  CHECK_THROWS_WITH_AS(seg::whole_inference<float>(empty, x), Contains("returned an empty tensor"), Error);
  // Functions whose class count changes between calls: caught across windows and scales.
  const auto calls = std::make_shared<int>(0);
  const LogitsFunction<float> fickle = [calls](const Tensor<float>& in) {
    return full<float>(Shape{in.size(0), (*calls)++ == 0 ? 3 : 4, 2, 2}, 0.f);
  };
  CHECK_THROWS_WITH_AS(seg::slide_inference<float>(fickle, x, Size2{16, 8}, Size2{16, 4}),
                       Contains("returned 4 classes (shape [2, 4, 2, 2]) after 3 before"), Error);
  const LogitsFunction<float> moody = [](const Tensor<float>& in) {
    return full<float>(Shape{in.size(0), in.size(3) > 10 ? 3 : 4, 2, 2}, 0.f);
  };
  CHECK_THROWS_WITH_AS(seg::aug_test<float>(moody, x, {}, {.ratios = {1.0, 0.5}, .flip = false}),
                       Contains("returned 4 classes at ratio 0.5 and 3 before"), Error);
  CHECK_THROWS_WITH_AS(seg::whole_inference<float>(LogitsFunction<float>{}, x),
                       Contains("the logits function is empty"), Error);
  CHECK_THROWS_WITH_AS(seg::whole_inference<float>(model, random_tensor<float>(Shape{3, 16, 16}, 1)),
                       Contains("images must be [N, C, H, W], got shape [3, 16, 16]"), Error);
}

TEST_CASE("PyTorch parity: whole, slide, multi-scale + flip (tools/fixtures/seg_inference.py)") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/seg_inference.safetensors");
  for (const std::string c : {"whole", "whole_tta", "slide_ac", "slide_tta_ac"}) {
    INFO(c);
    const Weights<double> m(f.tensor<double>(c + ".weight"), f.tensor<double>(c + ".bias"));
    const InferenceOptions o{.mode = f.meta(c + ".mode") == "slide" ? InferenceMode::slide : InferenceMode::whole,
                             .crop = test::meta_size2(f, c + ".crop"),
                             .stride = test::meta_size2(f, c + ".stride"),
                             .align_corners = test::meta_flag(f, c + ".align_corners")};
    std::optional<TtaOptions> tta;
    if (test::meta_flag(f, c + ".tta")) {
      tta = TtaOptions{.ratios = {}, .flip = test::meta_flag(f, c + ".flip")};
      for (const auto& r : test::split_csv(f.meta(c + ".ratios"))) tta->ratios.push_back(std::stod(r));
    }
    const Tensor<double> x = f.tensor<double>(c + ".x"), expected = f.tensor<double>(c + ".out");
    const Tensor<double> got =
        tta ? seg::aug_test<double>(conv_pooled(m), x, o, *tta) : seg::inference<double>(conv_pooled(m), x, o);
    CHECK(max_abs_diff(got, expected) < 1e-12);
    // The same in float, to float precision.
    const Weights<float> mf(f.tensor<float>(c + ".weight"), f.tensor<float>(c + ".bias"));
    const Tensor<float> xf = f.tensor<float>(c + ".x");
    const Tensor<float> gf =
        tta ? seg::aug_test<float>(conv_pooled(mf), xf, o, *tta) : seg::inference<float>(conv_pooled(mf), xf, o);
    double d = 0;
    for (index_t i = 0; i < gf.numel(); ++i) d = std::max(d, std::abs(gf[i] - expected[i]));
    CHECK(d < 2e-5);
  }
}
