#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/ops/mask_target.hpp"
#include "gcnet/ops/paste_masks.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"
#include "support/errors.hpp"

using namespace gcnet;
using gcnet::test::error_of;
using ops::MaskTargetOptions;
using testing::relative_error;

namespace {
const std::string kFixture = std::string(GCNET_FIXTURE_DIR) + "/detops_roi.safetensors";

template <class T>
Tensor<T> cast(const Tensor<double>& t) {
  Tensor<T> out(t.shape());
  for (index_t i = 0; i < t.numel(); ++i) out[i] = static_cast<T>(t[i]);
  return out;
}

// Binary values against a threshold of the reference's soft values, except within `band` of the
// threshold (where the last bit decides). Returns {mismatches, compared}.
template <class B>
std::pair<int, int> binary_mismatches(const Tensor<B>& binary, const Tensor<double>& soft, double band) {
  int bad = 0, compared = 0;
  for (index_t i = 0; i < soft.numel(); ++i) {
    if (std::abs(soft[i] - 0.5) < band) continue;
    ++compared;
    bad += (binary[i] != B(0)) != (soft[i] >= 0.5);
  }
  return {bad, compared};
}

// The closed form of detection-reference §15.2: u = (j + .5 - x1) / (x2 - x1) * M - .5, likewise v,
// bilinear on the M x M map with taps outside read as 0.
double closed_form(const Tensor<double>& probs, index_t n, double x1, double y1, double x2, double y2, index_t i,
                   index_t j) {
  const index_t M = probs.size(1);
  const double u = (j + 0.5 - x1) / (x2 - x1) * M - 0.5, v = (i + 0.5 - y1) / (y2 - y1) * M - 0.5;
  const double u0 = std::floor(u), v0 = std::floor(v);
  double s = 0;
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) {
      const double r = v0 + dy, c = u0 + dx;
      if (r < 0 || r >= M || c < 0 || c >= M) continue;
      const double w = (dy ? v - v0 : 1 - (v - v0)) * (dx ? u - u0 : 1 - (u - u0));
      s += w * probs.at({n, static_cast<index_t>(r), static_cast<index_t>(c)});
    }
  return s;
}

}  // namespace

TEST_CASE("mask_target_single: mmdet's targets (clip, aligned RoIAlign to 28x28, >= 0.5), double and float") {
  io::SafetensorsReader f(kFixture);
  const std::string c = "mask.mmdet";
  CHECK(f.meta_int(c + ".size") == 28);
  const auto masks = f.tensor<std::uint8_t>(c + ".masks");
  const auto boxes = f.tensor<double>(c + ".boxes");
  const auto inds = f.tensor<std::int64_t>(c + ".inds");
  const auto soft = f.tensor<double>(c + ".soft");
  MaskTargetOptions raw;
  raw.binarize = false;
  CHECK(relative_error(ops::mask_target_single(boxes, inds, masks, raw), soft) <= 1e-13);
  const auto t = ops::mask_target_single(boxes, inds, masks);
  CHECK(t.shape() == Shape{5, 28, 28});
  int ones = 0;
  for (index_t i = 0; i < t.numel(); ++i) {
    CHECK((t[i] == 0.0 || t[i] == 1.0));
    ones += t[i] == 1.0;
  }
  CHECK(ones > 300);
  const auto [bad, compared] = binary_mismatches(t, soft, 1e-9);
  CHECK(bad == 0);
  CHECK(compared > 3800);
  // Float boxes, the same masks: soft values to float precision, the same binary targets away
  // from the threshold.
  const auto tf = ops::mask_target_single(cast<float>(boxes), inds, masks);
  const auto [bad_f, compared_f] = binary_mismatches(tf, soft, 1e-5);
  CHECK(bad_f == 0);
  CHECK(compared_f > 3800);
  // Without clipping the partly outside proposals differ (the test would notice a missing clip).
  MaskTargetOptions unclipped = raw;
  unclipped.clip = false;
  CHECK(relative_error(ops::mask_target_single(boxes, inds, masks, unclipped), soft) > 1e-2);
}

TEST_CASE("mask targets: torchvision's project_masks_on_boxes (no clip, not aligned, soft, 14x14)") {
  io::SafetensorsReader f(kFixture);
  const std::string c = "mask.tv";
  const auto o = ops::torchvision_mask_target_options(f.meta_int(c + ".size"));
  const auto t = ops::mask_target_single(f.tensor<double>(c + ".boxes"), f.tensor<std::int64_t>(c + ".inds"),
                                         f.tensor<std::uint8_t>(c + ".masks"), o);
  CHECK(relative_error(t, f.tensor<double>(c + ".soft")) <= 1e-13);
}

TEST_CASE("mask_targets: a batch concatenates its images - no positives gives [0, 28, 28] - bad input") {
  io::SafetensorsReader f(kFixture);
  const auto masks = f.tensor<std::uint8_t>("mask.mmdet.masks");
  const auto boxes = f.tensor<double>("mask.mmdet.boxes");
  const auto inds = f.tensor<std::int64_t>("mask.mmdet.inds");
  const auto empty = ops::mask_target_single(Tensor<double>(Shape{0, 4}), Tensor<std::int64_t>(Shape{0}), masks);
  CHECK(empty.shape() == Shape{0, 28, 28});
  const auto both = ops::mask_targets<double, std::uint8_t>({boxes, Tensor<double>(Shape{0, 4}), boxes.slice(1, 3)},
                                                            {inds, Tensor<std::int64_t>(Shape{0}), inds.slice(1, 3)},
                                                            {masks, masks, masks});
  const auto one = ops::mask_target_single(boxes, inds, masks);
  REQUIRE(both.shape() == Shape{7, 28, 28});
  for (index_t i = 0; i < one.numel(); ++i) CHECK(both[i] == one[i]);
  for (index_t i = 0; i < 2 * 28 * 28; ++i) CHECK(both[one.numel() + i] == one[28 * 28 + i]);
  // A bin whose mean is exactly 0.5 (samples on a 1 and a 0 pixel) is foreground: >=, not >.
  Tensor<std::uint8_t> half(Shape{1, 1, 2});
  half[0] = 1, half[1] = 0;
  Tensor<double> whole(Shape{1, 4});
  whole[0] = 0, whole[1] = 0, whole[2] = 2, whole[3] = 1;
  Tensor<std::int64_t> zero(Shape{1});
  zero[0] = 0;
  MaskTargetOptions one_cell;
  one_cell.size = 1;
  CHECK(ops::mask_target_single(whole, zero, half, one_cell)[0] == 1.0);
  one_cell.binarize = false;
  CHECK(ops::mask_target_single(whole, zero, half, one_cell)[0] == 0.5);
  Tensor<std::int64_t> bad_inds = clone(inds);
  bad_inds[3] = 3;
  CHECK(error_of([&] { ops::mask_target_single(boxes, bad_inds, masks); })
            .find("mask_target_single: positive 3 is assigned GT 3, but the image has 3 GT masks") != std::string::npos);
  CHECK(error_of([&] { ops::mask_target_single(boxes, inds.slice(0, 4), masks); })
            .find("assigned GT indices must have shape [5], got [4]") != std::string::npos);
  CHECK(error_of([&] { ops::mask_target_single(boxes, inds, masks.reshape(Shape{3, 1080})); })
            .find("GT masks must have shape [G, H, W], got [3, 1080]") != std::string::npos);
  Tensor<double> nan_boxes = clone(boxes);
  nan_boxes[2] = NAN;
  CHECK(error_of([&] { ops::mask_target_single(nan_boxes, inds, masks); })
            .find("mask_target_single: RoI 0 has a non-finite coordinate") != std::string::npos);
}

TEST_CASE("paste_masks: mmdet's _do_paste_mask (grid_sample, per-instance window) parity and threshold") {
  io::SafetensorsReader f(kFixture);
  const Size2 canvas = test::meta_size2(f, "paste.canvas");
  const auto probs = f.tensor<double>("paste.probs");
  const auto boxes = f.tensor<double>("paste.boxes");
  const auto expect = f.tensor<double>("paste.mmdet");
  const auto soft = ops::paste_masks_soft(probs, boxes, canvas.h, canvas.w);
  CHECK(relative_error(soft, expect) <= 1e-13);
  const auto binary = ops::paste_masks(probs, boxes, canvas.h, canvas.w);
  CHECK(binary.shape() == Shape{5, canvas.h, canvas.w});
  const auto [bad, compared] = binary_mismatches(binary, expect, 1e-9);
  CHECK(bad == 0);
  CHECK(compared > 3000);
  int ones = 0;
  for (index_t i = 0; i < binary.numel(); ++i) ones += binary[i];
  CHECK(ones > 100);
  const auto binary_f = ops::paste_masks(cast<float>(probs), cast<float>(boxes), canvas.h, canvas.w);
  const auto [bad_f, compared_f] = binary_mismatches(binary_f, expect, 1e-5);
  CHECK(bad_f == 0);
  CHECK(compared_f > 3000);
}

TEST_CASE("paste_masks: the reference's closed form inside the window, 0 outside it") {
  const index_t H = 40, W = 50, M = 28;
  const auto probs = test::random_tensor<double>(Shape{4, M, M}, 3, 0.3, 0.5);
  Tensor<double> boxes(Shape{4, 4});
  const double b[4][4] = {{3.3, 2.6, 41.7, 37.2}, {-6.5, -4.2, 19.8, 12.4}, {18.2, 10.9, 57.5, 49.1}, {7.0, 8.0, 9.5, 30.0}};
  for (index_t i = 0; i < 16; ++i) boxes[i] = b[i / 4][i % 4];
  const auto soft = ops::paste_masks_soft(probs, boxes, H, W);
  int inside = 0;
  for (index_t n = 0; n < 4; ++n) {
    const double x1 = b[n][0], y1 = b[n][1], x2 = b[n][2], y2 = b[n][3];
    const double c0 = std::max(std::floor(x1) - 1, 0.0), c1 = std::min(std::ceil(x2) + 1, double(W));
    const double r0 = std::max(std::floor(y1) - 1, 0.0), r1 = std::min(std::ceil(y2) + 1, double(H));
    for (index_t i = 0; i < H; ++i)
      for (index_t j = 0; j < W; ++j) {
        const bool in = i >= r0 && i < r1 && j >= c0 && j < c1;
        inside += in;
        const double expect = in ? closed_form(probs, n, x1, y1, x2, y2, i, j) : 0.0;
        if (std::abs(soft.at({n, i, j}) - expect) > 1e-12) {
          FAIL_CHECK("instance ", n, " pixel (", i, ", ", j, "): ", soft.at({n, i, j}), " vs ", expect);
        }
      }
  }
  CHECK(inside > 2000);
}

TEST_CASE("paste_masks_torchvision: paste_masks_in_image parity (pad, expand 30/28, int box, resize)") {
  io::SafetensorsReader f(kFixture);
  const Size2 canvas = test::meta_size2(f, "paste.canvas");
  const auto probs = f.tensor<double>("paste.probs");
  const auto boxes = f.tensor<double>("paste.boxes");
  const auto tv = ops::paste_masks_torchvision(probs, boxes, canvas.h, canvas.w);
  CHECK(relative_error(tv, f.tensor<double>("paste.torchvision")) <= 1e-13);
  const auto tv_f = ops::paste_masks_torchvision(cast<float>(probs), cast<float>(boxes), canvas.h, canvas.w);
  CHECK(relative_error(tv_f, f.tensor<double>("paste.torchvision")) <= 1e-6);
  // The binary form (pasted and thresholded in one pass, > threshold) is the soft one thresholded.
  for (double thr : {0.5, 0.3}) {
    const auto binary = ops::paste_masks_torchvision_binary(probs, boxes, canvas.h, canvas.w, thr);
    REQUIRE(binary.shape() == tv.shape());
    index_t bad = 0, ones = 0;
    for (index_t i = 0; i < tv.numel(); ++i) {
      bad += binary[i] != (tv[i] > thr ? 1 : 0);
      ones += binary[i];
    }
    CHECK(bad == 0);
    CHECK(ones > 100);
  }
}

TEST_CASE("paste_masks: edge boxes (wholly outside, zero width) and bad input") {
  const auto probs = test::random_tensor<double>(Shape{2, 4, 4}, 1, 0.2, 0.5);
  Tensor<double> boxes(Shape{2, 4});
  const double b[8] = {-20, -20, -10, -10, 30, 2, 40, 8};  // left of and right of a 10 x 12 canvas
  for (index_t i = 0; i < 8; ++i) boxes[i] = b[i];
  for (const auto& t : {ops::paste_masks_soft(probs, boxes, 10, 12), ops::paste_masks_torchvision(probs, boxes, 10, 12)})
    for (index_t i = 0; i < t.numel(); ++i) CHECK(t[i] == 0.0);
  // Zero width: mmdet maps the infinite grid coordinate to 0, the map's centre column.
  boxes[0] = 4, boxes[1] = 0, boxes[2] = 4, boxes[3] = 8;
  const auto soft = ops::paste_masks_soft(probs, boxes, 10, 12);
  for (index_t i = 0; i < 10; ++i) CHECK((soft.at({0, i, 2}) == 0.0 && soft.at({0, i, 5}) == 0.0));  // the window
  for (index_t i = 0; i < 9; ++i)
    for (index_t j = 3; j < 5; ++j) {
      const double v = (i + 0.5) / 8 * 4 - 0.5, v0 = std::floor(v), lv = v - v0;
      // u = 1.5: the mean of columns 1 and 2.
      auto at = [&](double r) { return r < 0 || r > 3 ? 0.0 : 0.5 * (probs.at({0, index_t(r), 1}) + probs.at({0, index_t(r), 2})); };
      CHECK(soft.at({0, i, j}) == doctest::Approx((1 - lv) * at(v0) + lv * at(v0 + 1)).epsilon(1e-12));
    }
  CHECK(error_of([&] { ops::paste_masks(probs, Tensor<double>(Shape{3, 4}), 10, 12); })
            .find("paste_masks: boxes must have shape [2, 4], got [3, 4]") != std::string::npos);
  CHECK(error_of([&] { ops::paste_masks(probs.reshape(Shape{2, 16}), boxes, 10, 12); })
            .find("paste_masks: mask probabilities must have shape [N, Mh, Mw]") != std::string::npos);
  boxes[5] = INFINITY;
  CHECK(error_of([&] { ops::paste_masks_torchvision(probs, boxes, 10, 12); })
            .find("paste_masks_torchvision: box 1 has a non-finite coordinate") != std::string::npos);
}
