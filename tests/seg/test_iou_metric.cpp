#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gcnet/seg/iou_metric.hpp"
#include "gcnet/seg/iou_report.hpp"

using namespace gcnet;
using seg::IoUMetric;

namespace {
Tensor<std::int64_t> label_map(index_t h, index_t w, std::vector<std::int64_t> v) {
  REQUIRE(static_cast<index_t>(v.size()) == h * w);
  Tensor<std::int64_t> t(Shape{h, w});
  for (index_t i = 0; i < h * w; ++i) t[i] = v[static_cast<std::size_t>(i)];
  return t;
}

// Image 1 (2x4), ignore = 255. Kept (gt, pred) pairs: (0,0) (0,1) (1,1) (1,1) (0,2) (1,1).
// intersect [1, 3, 0], label [3, 3, 0], pred [1, 4, 1], union [3, 4, 1]:
// IoU [1/3, 3/4, 0] (class 2 only predicted: 0, counted), Acc [1/3, 1, nan];
// mIoU 13/36, mAcc 2/3, aAcc 4/6.
const auto gt1 = [] { return label_map(2, 4, {0, 0, 1, 1, 0, 255, 1, 255}); };
const auto pred1 = [] { return label_map(2, 4, {0, 1, 1, 1, 2, 0, 1, 2}); };
// Image 2 (1x3): (2,2) (2,0) (0,0).
const auto gt2 = [] { return label_map(1, 3, {2, 2, 0}); };
const auto pred2 = [] { return label_map(1, 3, {2, 0, 0}); };

bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || std::abs(a - b) < 1e-12; }
}  // namespace

TEST_CASE("IoUMetric: ignored pixels, a class only predicted, hand-computed scores") {
  IoUMetric m(3);
  m.add(pred1(), gt1());
  CHECK(m.area_intersect() == std::vector<std::int64_t>{1, 3, 0});
  CHECK(m.area_label() == std::vector<std::int64_t>{3, 3, 0});
  CHECK(m.area_pred_label() == std::vector<std::int64_t>{1, 4, 1});
  CHECK(m.area_union() == std::vector<std::int64_t>{3, 4, 1});
  const auto r = m.compute();
  CHECK(same(r.raw.iou[0], 1.0 / 3));
  CHECK(same(r.raw.iou[1], 0.75));
  CHECK(same(r.raw.iou[2], 0.0));
  CHECK(same(r.raw.acc[0], 1.0 / 3));
  CHECK(same(r.raw.acc[1], 1.0));
  CHECK(std::isnan(r.raw.acc[2]));
  CHECK(same(r.raw.mean_iou, 13.0 / 36));
  CHECK(same(r.raw.mean_acc, 2.0 / 3));
  CHECK(same(r.raw.all_acc, 4.0 / 6));
  CHECK(r.reported.iou == std::vector<double>{33.33, 75.0, 0.0});
  CHECK(r.reported.mean_iou == 36.11);
  CHECK(r.reported.mean_acc == 66.67);
  CHECK(r.reported.all_acc == 66.67);
  CHECK(r.classes == std::vector<std::string>{"0", "1", "2"});
  CHECK(m.images() == 1);
}

TEST_CASE("IoUMetric: a class absent from both maps is NaN and left out of mIoU") {
  IoUMetric m(4);
  m.add(pred1(), gt1());
  const auto r = m.compute();
  CHECK(std::isnan(r.raw.iou[3]));
  CHECK(std::isnan(r.raw.acc[3]));
  CHECK(std::isnan(r.reported.iou[3]));
  CHECK(same(r.raw.mean_iou, 13.0 / 36));  // as with 3 classes
  CHECK(same(r.raw.mean_acc, 2.0 / 3));
}

TEST_CASE("IoUMetric: sums over the dataset, not an average of per-image scores") {
  IoUMetric both(3);
  both.add(pred1(), gt1());
  both.add(pred2(), gt2());
  // intersect [2, 3, 1], label [4, 3, 2], pred [3, 4, 2], union [5, 4, 3].
  CHECK(both.area_union() == std::vector<std::int64_t>{5, 4, 3});
  const auto r = both.compute();
  CHECK(same(r.raw.mean_iou, (0.4 + 0.75 + 1.0 / 3) / 3));
  CHECK(same(r.raw.mean_acc, (0.5 + 1.0 + 0.5) / 3));
  CHECK(same(r.raw.all_acc, 6.0 / 9));
  CHECK(r.reported.mean_iou == 49.44);
  // Per image the mIoUs are 13/36 and 1/2; their mean (43.06) is not the dataset's mIoU.
  IoUMetric second(3);
  second.add(pred2(), gt2());
  CHECK(same(second.compute().raw.mean_iou, 0.5));
  CHECK(both.images() == 2);
}

TEST_CASE("IoUMetric: confusion matrix rows are ground truth, columns prediction; ignored pixels absent") {
  IoUMetric m(3);
  m.add(pred1(), gt1());
  m.add(pred2(), gt2());
  const std::int64_t expected[3][3] = {{2, 1, 1}, {0, 3, 0}, {1, 0, 1}};
  const Tensor<std::int64_t> cm = m.confusion_matrix();
  CHECK(cm.shape() == Shape{3, 3});
  std::int64_t total = 0;
  for (index_t g = 0; g < 3; ++g)
    for (index_t p = 0; p < 3; ++p) {
      CHECK(m.confusion(g, p) == expected[g][p]);
      CHECK(cm.at({g, p}) == expected[g][p]);
      total += cm.at({g, p});
    }
  CHECK(total == 9);  // 11 pixels, 2 ignored
}

TEST_CASE("IoUMetric: a batch [N, H, W] counts as its images") {
  Tensor<std::int64_t> pred(Shape{2, 2, 4}), gt(Shape{2, 2, 4});
  for (index_t i = 0; i < 8; ++i) {
    pred[i] = pred1()[i], gt[i] = gt1()[i];
    pred[8 + i] = pred1()[i], gt[8 + i] = gt1()[i];
  }
  IoUMetric batch(3), twice(3);
  batch.add(pred, gt);
  twice.add(pred1(), gt1());
  twice.add(pred1(), gt1());
  CHECK(batch.area_union() == twice.area_union());
  CHECK(batch.area_intersect() == twice.area_intersect());
  CHECK(batch.images() == 2);
}

TEST_CASE("IoUMetric: merging two metrics equals one accumulation") {
  IoUMetric a(3, 255, {"sky", "road", "car"}), b(3, 255, {"sky", "road", "car"}), one(3, 255, {"sky", "road", "car"});
  a.add(pred1(), gt1());
  b.add(pred2(), gt2());
  one.add(pred1(), gt1());
  one.add(pred2(), gt2());
  a.merge(b);
  for (index_t g = 0; g < 3; ++g)
    for (index_t p = 0; p < 3; ++p) CHECK(a.confusion(g, p) == one.confusion(g, p));
  CHECK(a.compute().reported.mean_iou == one.compute().reported.mean_iou);
  CHECK(a.images() == 2);
  CHECK_THROWS_WITH_AS(a.merge(IoUMetric(4)), doctest::Contains("IoUMetric::merge: metrics differ"), Error);
  CHECK_THROWS_WITH_AS(a.merge(IoUMetric(3)), doctest::Contains("name their classes differently"), Error);
  a.reset();
  CHECK(a.images() == 0);
  CHECK(a.area_label() == std::vector<std::int64_t>{0, 0, 0});
  CHECK(std::isnan(a.compute().raw.all_acc));  // nothing counted: 0 / 0
}

TEST_CASE("IoUMetric: rounding is np.round(x * 100, 2), ties to even") {
  // Expected values printed by numpy for the same float64 inputs.
  CHECK(seg::mmseg_percent(1.0 / 3) == 33.33);
  CHECK(seg::mmseg_percent(2.0 / 3) == 66.67);
  CHECK(seg::mmseg_percent(0.00125) == 0.12);
  CHECK(seg::mmseg_percent(0.000125) == 0.01);
  CHECK(seg::mmseg_percent(0.00375) == 0.38);
  CHECK(seg::mmseg_percent(0.123445) == 12.34);
  CHECK(seg::mmseg_percent(0.00015) == 0.02);
  CHECK(seg::mmseg_percent(0.00025) == 0.02);
  CHECK(seg::mmseg_percent(0.00035) == 0.03);
  CHECK(std::isnan(seg::mmseg_percent(std::nan(""))));
  CHECK(std::isnan(seg::nanmean({std::nan(""), std::nan("")})));
}

TEST_CASE("IoUMetric: text table and JSON (null for NaN)") {
  IoUMetric m(4, 255, {"background", "shirt", "bag", "boot"});
  m.add(pred1(), gt1());
  const std::string table = seg::iou_table(m.compute());
  INFO(table);
  CHECK(table.find("| Class      |   IoU |    Acc |") != std::string::npos);
  CHECK(table.find("| background | 33.33 |  33.33 |") != std::string::npos);
  CHECK(table.find("| shirt      | 75.00 | 100.00 |") != std::string::npos);
  CHECK(table.find("| bag        |  0.00 |    nan |") != std::string::npos);
  CHECK(table.find("| boot       |   nan |    nan |") != std::string::npos);
  CHECK(table.find("|  aAcc |  mIoU |  mAcc |") != std::string::npos);
  CHECK(table.find("| 66.67 | 36.11 | 66.67 |") != std::string::npos);

  const nlohmann::json j = seg::iou_json(m);
  CHECK(j["mIoU"].get<double>() == 36.11);
  CHECK(j["aAcc"].get<double>() == 66.67);
  CHECK(j["per_class"][2]["class"] == "bag");
  CHECK(j["per_class"][2]["IoU"].get<double>() == 0.0);
  CHECK(j["per_class"][2]["Acc"].is_null());
  CHECK(j["per_class"][3]["IoU"].is_null());
  CHECK(j["unrounded"]["IoU"][3].is_null());
  CHECK(std::abs(j["unrounded"]["mIoU"].get<double>() - 13.0 / 36) < 1e-12);
  CHECK(j["confusion_matrix"][0] == nlohmann::json({1, 1, 1, 0}));
  CHECK(j["area_union"] == nlohmann::json({3, 4, 1, 0}));
  CHECK(j["ignore_index"] == 255);
  const std::string text = j.dump();
  CHECK(text.find("NaN") == std::string::npos);
  CHECK(text.find("nan") == std::string::npos);
  CHECK(nlohmann::json::parse(text) == j);
}

TEST_CASE("IoUMetric: bad inputs throw clear errors and count nothing") {
  IoUMetric m(3);
  CHECK_THROWS_WITH_AS(m.add(label_map(1, 3, {0, 1, 2}), label_map(3, 1, {0, 1, 2})),
                       "IoUMetric::add: prediction of shape [1, 3] and ground truth of shape [3, 1] differ", Error);
  CHECK_THROWS_WITH_AS(m.add(label_map(1, 3, {0, 3, 2}), label_map(1, 3, {0, 1, 2})),
                       "IoUMetric::add: prediction has value 3 at (row 0, column 1); expected a class in [0, 3)",
                       Error);
  CHECK_THROWS_WITH_AS(m.add(label_map(1, 3, {0, 1, -1}), label_map(1, 3, {0, 1, 2})),
                       doctest::Contains("prediction has value -1 at (row 0, column 2)"), Error);
  CHECK_THROWS_WITH_AS(m.add(label_map(2, 2, {0, 1, 2, 0}), label_map(2, 2, {0, 1, 2, 7})),
                       "IoUMetric::add: ground truth has value 7 at (row 1, column 1); expected a class in [0, 3) or "
                       "the ignore index 255",
                       Error);
  Tensor<std::int64_t> batch(Shape{2, 1, 2});
  for (index_t i = 0; i < 4; ++i) batch[i] = i == 3 ? 254 : 0;
  CHECK_THROWS_WITH_AS(m.add(full<std::int64_t>(Shape{2, 1, 2}, 0), batch),
                       doctest::Contains("ground truth has value 254 at (image 1, row 0, column 1)"), Error);
  CHECK_THROWS_WITH_AS(m.add(full<std::int64_t>(Shape{4}, 0), full<std::int64_t>(Shape{4}, 0)),
                       doctest::Contains("must be [H, W] or [N, H, W], got [4]"), Error);
  // The failed adds left nothing behind, not even the valid pixels before the bad one.
  CHECK(m.area_label() == std::vector<std::int64_t>{0, 0, 0});
  CHECK(m.images() == 0);

  CHECK_THROWS_WITH_AS(IoUMetric(0), doctest::Contains("num_classes must be positive"), Error);
  CHECK_THROWS_WITH_AS(IoUMetric(3, 1), doctest::Contains("ignore_index 1 is one of the 3 classes"), Error);
  CHECK_THROWS_WITH_AS(IoUMetric(3, 255, {"a", "b"}), doctest::Contains("2 class names for 3 classes"), Error);
  CHECK_THROWS_WITH_AS(m.confusion(3, 0), doctest::Contains("out of range"), Error);
}
