#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/ops/boxes.hpp"
#include "support/small_tensors.hpp"

using namespace gcnet;
using namespace gcnet::ops;
using gcnet::test::rows;

namespace {

// Elementwise equality, NaN equal to NaN; reports the first difference.
template <class T>
void check_identical(const Tensor<T>& got, const Tensor<T>& want, const char* what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  index_t bad = -1;
  for (index_t i = 0; i < got.numel() && bad < 0; ++i)
    if (!(got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i])))) bad = i;
  if (bad >= 0) INFO("element ", bad, ": gcnet ", got[bad], ", reference ", want[bad]);
  CHECK(bad == -1);
}
}  // namespace

TEST_CASE("box_iou equals torchvision 0.14's bit for bit (random boxes, an empty box, an identical pair)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/detops_boxes.safetensors");
  const auto a = f.tensor<float>("iou.a"), b = f.tensor<float>("iou.b");
  const auto got = box_iou(a, b);
  check_identical(got, f.tensor<float>("iou.iou"), "box_iou");
  CHECK(got.at({7, 5}) == 1.0f);
  // mmdet's eps changes nothing where the union is not tiny.
  check_identical(box_overlaps(a, b), f.tensor<float>("iou.iou"), "box_overlaps(iou, eps 1e-6)");
}

TEST_CASE("box_overlaps equals mmdet's bbox_overlaps in float32 (iou, iof, aligned, empty boxes give 0)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/detops_boxes.safetensors");
  const auto a = f.tensor<float>("mm_overlaps.a"), b = f.tensor<float>("mm_overlaps.b");
  check_identical(box_overlaps(a, b), f.tensor<float>("mm_overlaps.iou"), "iou");
  check_identical(box_overlaps(a, b, OverlapMode::iof), f.tensor<float>("mm_overlaps.iof"), "iof");
  check_identical(aligned_box_overlaps(a, b), f.tensor<float>("mm_overlaps.aligned_iou"), "aligned iou");
  check_identical(aligned_box_overlaps(a, b, OverlapMode::iof), f.tensor<float>("mm_overlaps.aligned_iof"),
                  "aligned iof");
  CHECK(aligned_box_overlaps(a, b)[2] == 0.0f);  // two empty boxes
}

TEST_CASE("box_overlaps: hand-computed values, modes, empty sets, double") {
  const auto a = rows(4, {0, 0, 2, 2, 1, 1, 3, 3, 5, 5, 5, 5});
  const auto b = rows(4, {1, 1, 3, 3, 0, 0, 4, 4});
  const auto iou = box_overlaps(a, b);
  REQUIRE(iou.shape() == Shape{3, 2});
  CHECK(iou.at({0, 0}) == doctest::Approx(1.0 / 7).epsilon(1e-7));  // inter 1, union 4 + 4 - 1
  CHECK(iou.at({0, 1}) == doctest::Approx(4.0 / 16));
  CHECK(iou.at({1, 0}) == 1.0f);
  CHECK(iou.at({2, 0}) == 0.0f);  // an empty box far away
  CHECK(iou.at({2, 1}) == 0.0f);  // an empty box inside: no intersection area
  const auto iof = box_overlaps(a, b, OverlapMode::iof);
  CHECK(iof.at({0, 0}) == doctest::Approx(0.25));  // over the first box's area 4
  CHECK(iof.at({0, 1}) == 1.0f);
  CHECK(iof.at({2, 1}) == 0.0f);  // 0 / max(0, eps)
  // Two empty boxes: mmdet's eps gives 0, torchvision's box_iou NaN.
  const auto e = rows(4, {3, 3, 3, 3});
  CHECK(box_overlaps(e, e)[0] == 0.0f);
  CHECK(std::isnan(box_iou(e, e)[0]));
  // Empty sets.
  CHECK(box_overlaps(Tensor<float>(Shape{0, 4}), b).shape() == Shape{0, 2});
  CHECK(box_overlaps(a, Tensor<float>(Shape{0, 4})).shape() == Shape{3, 0});
  CHECK(aligned_box_overlaps(Tensor<float>(Shape{0, 4}), Tensor<float>(Shape{0, 4})).shape() == Shape{0});
  // Double.
  Tensor<double> ad(Shape{1, 4}), bd(Shape{1, 4});
  for (int k = 0; k < 4; ++k) {
    ad[k] = a[k];
    bd[k] = b[k];
  }
  CHECK(box_overlaps(ad, bd)[0] == 1.0 / 7);
  // A non-contiguous view is read correctly.
  const auto big = rows(4, {0, 0, 2, 2, 9, 9, 9, 9, 1, 1, 3, 3});
  const auto view = big.narrow(0, 2, 1);
  CHECK(box_overlaps(view, a)[1] == 1.0f);
}

TEST_CASE("box_overlaps: large inputs run in parallel and match the serial rows") {
  Rng rng(5);
  Tensor<float> a(Shape{40, 4}), b(Shape{3000, 4});
  for (auto* t : {&a, &b})
    for (index_t i = 0; i < t->size(0); ++i) {
      const float x = static_cast<float>(rng.uniform(0, 200)), y = static_cast<float>(rng.uniform(0, 200));
      const float w = static_cast<float>(rng.uniform(1, 60)), h = static_cast<float>(rng.uniform(1, 60));
      (*t)[4 * i] = x;
      (*t)[4 * i + 1] = y;
      (*t)[4 * i + 2] = x + w;
      (*t)[4 * i + 3] = y + h;
    }
  const auto all = box_overlaps(a, b);
  for (index_t i = 0; i < a.size(0); i += 13) {
    const auto row = box_overlaps(a.narrow(0, i, 1), b);
    for (index_t j = 0; j < b.size(0); ++j) REQUIRE(row[j] == all[i * b.size(0) + j]);
  }
}

TEST_CASE("conversions and clipping equal torchvision's box_convert and clip_boxes_to_image") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/detops_boxes.safetensors");
  const auto c = f.tensor<float>("convert.boxes");
  check_identical(xyxy_to_xywh(c), f.tensor<float>("convert.xywh"), "xyxy_to_xywh");
  check_identical(xyxy_to_cxcywh(c), f.tensor<float>("convert.cxcywh"), "xyxy_to_cxcywh");
  const ImageSize img{f.meta_int("convert.height"), f.meta_int("convert.width")};
  check_identical(clipped_boxes(c, img), f.tensor<float>("convert.clipped"), "clipped_boxes");
  auto in_place = clone(c);
  clip_boxes(in_place, img);
  check_identical(in_place, f.tensor<float>("convert.clipped"), "clip_boxes");
  CHECK(in_place[0] == 0.0f);
  CHECK(in_place[2] == 320.0f);
  // Round trips (exact for these dyadic values).
  const auto h = rows(4, {1.5f, 2.25f, 10, 20.5f, -3, -4, 5, 6});
  check_identical(xywh_to_xyxy(xyxy_to_xywh(h)), h, "xywh round trip");
  check_identical(cxcywh_to_xyxy(xyxy_to_cxcywh(h)), h, "cxcywh round trip");
  const auto xywh = xyxy_to_xywh(h);
  CHECK(xywh[2] == 8.5f);
  CHECK(xywh[3] == 18.25f);
}

TEST_CASE("select_rows, box_areas, index_tensor") {
  const auto b = rows(4, {0, 0, 2, 3, 1, 1, 2, 2, 4, 4, 8, 5});
  const auto idx = index_tensor({2, 0, 2});
  const auto s = select_rows(b, idx);
  REQUIRE(s.shape() == Shape{3, 4});
  CHECK(s[0] == 4.0f);
  CHECK(s[4] == 0.0f);
  CHECK(s[11] == 5.0f);
  const auto ar = box_areas(b);
  CHECK(ar[0] == 6.0f);
  CHECK(ar[1] == 1.0f);
  CHECK(ar[2] == 4.0f);
  CHECK(select_rows(b, index_tensor({})).shape() == Shape{0, 4});
}

TEST_CASE("box operations: bad input throws naming the function, the row and what was expected") {
  const auto good = rows(4, {0, 0, 1, 1});
  CHECK_THROWS_WITH_AS(box_overlaps(Tensor<float>(Shape{2, 5}), good),
                       doctest::Contains("box_overlaps: first boxes must have shape [N, 4]"), Error);
  CHECK_THROWS_WITH_AS(box_overlaps(good, rows(4, {0, 0, 1, 1, 3, 0, 2, 1})),
                       doctest::Contains("box_overlaps: second boxes row 1 = (3, 0, 2, 1) is inverted"), Error);
  CHECK_THROWS_WITH_AS(box_iou(rows(4, {0, 0, std::numeric_limits<float>::quiet_NaN(), 1}), good),
                       doctest::Contains("row 0 = (0, 0, nan, 1) is not finite"), Error);
  CHECK_THROWS_WITH_AS(box_overlaps(good, good, OverlapMode::iou, -1.0),
                       doctest::Contains("eps must be finite and >= 0"), Error);
  CHECK_THROWS_WITH_AS(aligned_box_overlaps(good, rows(4, {0, 0, 1, 1, 0, 0, 1, 1})),
                       doctest::Contains("same number of rows, got 1 and 2"), Error);
  CHECK_THROWS_WITH_AS(xyxy_to_xywh(Tensor<float>(Shape{4})), doctest::Contains("xyxy_to_xywh: boxes must have shape"),
                       Error);
  auto b = clone(good);
  CHECK_THROWS_WITH_AS(clip_boxes(b, ImageSize{0, 5}), doctest::Contains("clip_boxes: image size must be positive"),
                       Error);
  CHECK_THROWS_WITH_AS(select_rows(good, index_tensor({1})),
                       doctest::Contains("select_rows: row index 1 at position 0 is outside [0, 1)"), Error);
}
