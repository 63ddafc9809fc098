#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/core/parallel.hpp"
#include "gcnet/data/coco_instances.hpp"
#include "gcnet/data/coco_results.hpp"
#include "gcnet/eval/coco_eval.hpp"
#include "gcnet/eval/coco_eval_load.hpp"
#include "support/errors.hpp"

using namespace gcnet;
using gcnet::test::error_of;
using eval::CocoEvalInput;
using eval::EvalDet;
using eval::EvalGt;
using eval::IouType;

namespace {

EvalGt gt(std::int64_t id, std::int64_t img, std::int64_t cat, std::array<double, 4> box, double area,
          bool crowd = false) {
  EvalGt g;
  g.id = id;
  g.image_id = img;
  g.category_id = cat;
  g.bbox = box;
  g.area = area;
  g.iscrowd = crowd;
  return g;
}

// A bbox result as loadRes leaves it: area = w * h.
EvalDet det(std::int64_t img, std::int64_t cat, std::array<double, 4> box, double score) {
  EvalDet d;
  d.image_id = img;
  d.category_id = cat;
  d.bbox = box;
  d.score = score;
  d.area = box[2] * box[3];
  return d;
}

// Reference §16.9 (verified with pycocotools @ 8c9bcc3).
CocoEvalInput reference_case() {
  CocoEvalInput in;
  in.image_ids = {1, 2};
  in.category_ids = {1, 2};
  in.gts = {gt(1, 1, 1, {10, 10, 20, 20}, 400), gt(2, 1, 1, {50, 10, 40, 40}, 1600),
            gt(3, 1, 2, {0, 40, 100, 40}, 4000, true), gt(4, 2, 1, {5, 5, 90, 70}, 6300),
            gt(5, 2, 2, {20, 20, 30, 30}, 900)};
  in.dets = {det(1, 1, {11, 11, 20, 20}, .9), det(1, 1, {50, 12, 40, 38}, .8), det(1, 1, {12, 10, 20, 20}, .8),
             det(1, 2, {10, 45, 20, 20}, .7),  det(2, 1, {5, 5, 90, 70}, .6),   det(2, 1, {60, 60, 10, 10}, .95),
             det(2, 2, {22, 22, 30, 30}, .3)};
  return in;
}

void check_stats(const eval::CocoEvalResult& r, const std::array<double, 12>& expect, double tol = 1e-6) {
  for (std::size_t i = 0; i < 12; ++i) {
    INFO("stat ", i, ": got ", r.stats[i], ", expected ", expect[i]);
    CHECK(std::abs(r.stats[i] - expect[i]) <= tol);
  }
}

}  // namespace

TEST_CASE("coco_evaluate: the reference end-to-end bbox case (all 12 numbers)") {
  const auto r = eval::coco_evaluate(reference_case(), IouType::bbox);
  check_stats(r, {0.565281, 0.822112, 0.822112, 0.475, 1.0, -1, 0.416667, 0.75, 0.75, 0.65, 1.0, -1});
  // pycocotools' printed summary, character for character.
  CHECK(r.summary() ==
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.565\n"
        " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.822\n"
        " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.822\n"
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.475\n"
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 1.000\n"
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000\n"
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.417\n"
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.750\n"
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.750\n"
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.650\n"
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 1.000\n"
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000\n");
}

namespace {

// The library's one-call form on a GT and a results file's text.
eval::CocoEvalResult evaluate_json(const std::string& gt_text, const std::string& res_text, IouType type,
                                   eval::CocoEvalLoadOptions opt = {}) {
  const auto gt = data::parse_coco_instances(gt_text, "gt.json");
  const auto res = data::parse_coco_results(res_text, "dt.json", &gt);
  opt.results_name = "dt.json";
  return eval::coco_evaluate(gt, res, type, opt);
}

const char* const kGt100 =
    R"({"images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "annotations": [)";

// precision[t, r, k, a, m] of a result.
double prec(const eval::CocoEvalResult& r, index_t t, index_t rr, index_t k, index_t a, index_t m) {
  return r.precision[r.dims.precision_index(t, rr, k, a, m)];
}


}  // namespace

TEST_CASE("coco_evaluate: the reference case read from JSON gives the same numbers") {
  const std::string gt = std::string(kGt100) + R"(
      {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
      {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 10, 40, 40], "area": 1600, "iscrowd": 0},
      {"id": 3, "image_id": 1, "category_id": 2, "bbox": [0, 40, 100, 40], "area": 4000, "iscrowd": 1},
      {"id": 4, "image_id": 2, "category_id": 1, "bbox": [5, 5, 90, 70], "area": 6300, "iscrowd": 0},
      {"id": 5, "image_id": 2, "category_id": 2, "bbox": [20, 20, 30, 30], "area": 900, "iscrowd": 0}]})";
  const std::string res = R"([
      {"image_id": 1, "category_id": 1, "bbox": [11, 11, 20, 20], "score": 0.9},
      {"image_id": 1, "category_id": 1, "bbox": [50, 12, 40, 38], "score": 0.8},
      {"image_id": 1, "category_id": 1, "bbox": [12, 10, 20, 20], "score": 0.8},
      {"image_id": 1, "category_id": 2, "bbox": [10, 45, 20, 20], "score": 0.7},
      {"image_id": 2, "category_id": 1, "bbox": [5, 5, 90, 70], "score": 0.6},
      {"image_id": 2, "category_id": 1, "bbox": [60, 60, 10, 10], "score": 0.95},
      {"image_id": 2, "category_id": 2, "bbox": [22, 22, 30, 30], "score": 0.3}])";
  const auto r = evaluate_json(gt, res, IouType::bbox);
  check_stats(r, {0.565281, 0.822112, 0.822112, 0.475, 1.0, -1, 0.416667, 0.75, 0.75, 0.65, 1.0, -1});
  // Per-category AP (mmdet classwise): category 1 at area all, maxDets 100.
  REQUIRE(r.per_category.size() == 2);
  CHECK(r.per_category[0].category_id == 1);
  CHECK(std::isnan(r.per_category[0].ap_large));
  CHECK(std::isnan(r.per_category[1].ap_medium));
  CHECK(std::abs((r.per_category[0].ap + r.per_category[1].ap) / 2 - r.stats[0]) < 1e-12);
}

TEST_CASE("coco_evaluate: thresholds are numpy.linspace's values, bit for bit") {
  const eval::CocoEvalParams p;
  // np.linspace(.5, .95, 10) and np.linspace(0, 1, 101), as numpy 1.24 computes them.
  const double expect[10] = {0x1.0000000000000p-1, 0x1.199999999999ap-1, 0x1.3333333333333p-1, 0x1.4cccccccccccdp-1,
                             0x1.6666666666666p-1, 0x1.8000000000000p-1, 0x1.999999999999ap-1, 0x1.b333333333333p-1,
                             0x1.cccccccccccccp-1, 0x1.e666666666666p-1};
  REQUIRE(p.iou_thresholds.size() == 10);
  for (int i = 0; i < 10; ++i) CHECK(p.iou_thresholds[i] == expect[i]);
  REQUIRE(p.recall_thresholds.size() == 101);
  for (int i = 0; i < 100; ++i) CHECK(p.recall_thresholds[i] == static_cast<double>(i) * 0.01);
  CHECK(p.recall_thresholds[100] == 1.0);
  CHECK(p.area_ranges[3].hi == 1e10);
}

TEST_CASE("coco_evaluate: IoU exactly at a threshold matches (>=), in double") {
  CocoEvalInput in;
  in.image_ids = {1};
  in.category_ids = {1};
  in.gts = {gt(1, 1, 1, {0, 0, 10, 10}, 100)};
  in.dets = {det(1, 1, {0, 0, 10, 5}, 0.9)};  // IoU = 50 / 100 = 0.5 exactly
  auto r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[1] == doctest::Approx(1.0));  // AP50
  CHECK(r.stats[2] == doctest::Approx(0.0));  // AP75
  CHECK(r.stats[0] == doctest::Approx(0.1));
  in.dets = {det(1, 1, {0, 0, 10, 7.5}, 0.9)};  // IoU = 0.75 exactly: matches at .5 ... .75
  r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[2] == doctest::Approx(1.0));
  CHECK(r.stats[0] == doctest::Approx(0.6));
  CHECK(eval::coco_box_iou({0, 0, 10, 10}, {5, 5, 10, 10}, false) == doctest::Approx(1.0 / 7).epsilon(1e-15));
  CHECK(eval::coco_box_iou({0, 0, 10, 10}, {5, 5, 10, 10}, true) == 0.25);
}

TEST_CASE("coco_evaluate quirk: the threshold is capped at 1 - 1e-10") {
  CocoEvalInput in;
  in.image_ids = {1};
  in.category_ids = {1};
  in.gts = {gt(1, 1, 1, {0, 0, 100, 100}, 10000)};
  in.dets = {det(1, 1, {0, 0, 100, 100 - 1e-9}, 0.9)};  // IoU = 1 - 1e-11
  eval::CocoEvalParams p;
  p.iou_thresholds = {1.0};
  const auto r = eval::coco_evaluate(in, IouType::bbox, p);
  CHECK(r.stats[0] == doctest::Approx(1.0));  // matched: 1 - 1e-11 >= min(1, 1 - 1e-10)
  CHECK(r.stats[1] == -1);                    // no threshold equals 0.5
}

TEST_CASE("coco_evaluate quirk: tied scores keep results-file order within an image, image-id order across images") {
  CocoEvalInput in;
  in.image_ids = {1};
  in.category_ids = {1};
  in.gts = {gt(1, 1, 1, {0, 0, 10, 10}, 100)};
  const EvalDet fp = det(1, 1, {50, 50, 10, 10}, 0.5), tp = det(1, 1, {0, 0, 10, 10}, 0.5);
  in.dets = {fp, tp};  // FP first: pr = [0, 1/2] -> envelope 1/2 everywhere
  CHECK(eval::coco_evaluate(in, IouType::bbox).stats[1] == doctest::Approx(0.5));
  in.dets = {tp, fp};  // TP first: precision 1 at recall 1
  CHECK(eval::coco_evaluate(in, IouType::bbox).stats[1] == doctest::Approx(1.0));

  // Across images the tie goes by image id, not by file order: image 1's FP before image 2's TP.
  in.image_ids = {2, 1};
  in.gts = {gt(1, 1, 1, {0, 0, 10, 10}, 100), gt(2, 2, 1, {0, 0, 10, 10}, 100)};
  in.dets = {det(2, 1, {0, 0, 10, 10}, 0.5), det(1, 1, {50, 50, 10, 10}, 0.5)};
  // order FP, TP: rc = [0, .5], pr = [0, .5] -> q = .5 for r <= .5, 0 above: 51 / 101 * .5
  CHECK(eval::coco_evaluate(in, IouType::bbox).stats[1] == doctest::Approx(51.0 / 101 * 0.5));
  in.dets = {det(2, 1, {50, 50, 10, 10}, 0.5), det(1, 1, {0, 0, 10, 10}, 0.5)};  // TP (image 1) first
  CHECK(eval::coco_evaluate(in, IouType::bbox).stats[1] == doctest::Approx(51.0 / 101));
}

TEST_CASE("coco_evaluate quirk: maxDets cuts per image and per category") {
  CocoEvalInput in;
  in.image_ids = {1};
  in.category_ids = {1, 2};
  in.gts = {gt(1, 1, 1, {0, 0, 10, 10}, 100)};
  // 100 better-scored false positives in category 1 push its true positive past maxDets=100.
  for (int i = 0; i < 100; ++i) in.dets.push_back(det(1, 1, {50, 50, 10, 10}, 0.9));
  in.dets.push_back(det(1, 1, {0, 0, 10, 10}, 0.1));
  auto r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[8] == doctest::Approx(0.0));  // AR100
  // The same 100 false positives in category 2 do not count against category 1's 100.
  for (int i = 0; i < 100; ++i) in.dets[static_cast<std::size_t>(i)].category_id = 2;
  r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[8] == doctest::Approx(1.0));
  CHECK(r.stats[6] == doctest::Approx(1.0));  // AR1: the cell's best detection is the TP
  CHECK(r.stats[0] == doctest::Approx(1.0));  // category 2 has no GT: left out of the mean
  CHECK(r.per_category[0].ap == doctest::Approx(1.0));
  CHECK(std::isnan(r.per_category[1].ap));
  CHECK(prec(r, 0, 0, 1, 0, 2) == -1);
  CHECK(r.recall[r.dims.recall_index(0, 1, 0, 2)] == -1);

  // AR1 / AR10: one image with 3 GTs and 3 TPs.
  in.gts = {gt(1, 1, 1, {0, 0, 10, 10}, 100), gt(2, 1, 1, {20, 0, 10, 10}, 100), gt(3, 1, 1, {40, 0, 10, 10}, 100)};
  in.dets = {det(1, 1, {0, 0, 10, 10}, 0.9), det(1, 1, {20, 0, 10, 10}, 0.8), det(1, 1, {40, 0, 10, 10}, 0.7)};
  r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[6] == doctest::Approx(1.0 / 3));
  CHECK(r.stats[7] == doctest::Approx(1.0));
}

TEST_CASE("coco_evaluate quirk: a GT's area field (not its box) decides its area range; ranges are inclusive") {
  const std::string res = R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}])";
  // A 10x10 box whose annotation says area 5000 (medium); "ignore": 1 is overwritten by iscrowd 0.
  auto r = evaluate_json(std::string(kGt100) +
                             R"({"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 5000,
                                 "iscrowd": 0, "ignore": 1}]})",
                         res, IouType::bbox);
  CHECK(r.stats[0] == doctest::Approx(1.0));
  CHECK(r.stats[3] == -1);  // no small GT
  CHECK(r.stats[4] == doctest::Approx(1.0));
  // Area exactly 32^2 is both small and medium.
  r = evaluate_json(std::string(kGt100) +
                        R"({"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 1024,
                            "iscrowd": 0}]})",
                    res, IouType::bbox);
  CHECK(r.stats[3] == doctest::Approx(1.0));
  CHECK(r.stats[4] == doctest::Approx(1.0));
  CHECK(r.stats[5] == -1);
}

TEST_CASE("coco_evaluate: an unmatched detection outside the area range is ignored, a matched one is not") {
  CocoEvalInput in;
  in.image_ids = {1};
  in.category_ids = {1};
  in.gts = {gt(1, 1, 1, {0, 0, 10, 10}, 100)};                                  // small
  in.dets = {det(1, 1, {50, 50, 40, 40}, 0.9), det(1, 1, {0, 0, 10, 10}, 0.8)};  // medium FP, then the TP
  auto r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[3] == doctest::Approx(1.0));  // small: the medium FP does not count
  CHECK(r.stats[0] == doctest::Approx(0.5));  // all: it does
  in.dets = {det(1, 1, {50, 50, 5, 5}, 0.9), det(1, 1, {0, 0, 10, 10}, 0.8)};   // small FP
  r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[3] == doctest::Approx(0.5));
}

TEST_CASE("coco_evaluate: crowd GTs absorb any number of detections, by intersection over detection area") {
  CocoEvalInput in;
  in.image_ids = {1};
  in.category_ids = {1};
  in.gts = {gt(1, 1, 1, {0, 0, 10, 10}, 100), gt(2, 1, 1, {20, 0, 80, 80}, 6400, true)};
  // Two detections inside the crowd region (IoU with it = 1 by the crowd rule), scored above the TP.
  in.dets = {det(1, 1, {30, 10, 20, 20}, 0.9), det(1, 1, {60, 40, 10, 10}, 0.85), det(1, 1, {0, 0, 10, 10}, 0.5)};
  auto r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[0] == doctest::Approx(1.0));  // both ignored, not false positives
  CHECK(r.stats[8] == doctest::Approx(1.0));  // the crowd GT is not counted in recall
  // Without the crowd flag the same GT is an ordinary (medium) one: the detections inside it are
  // false positives and it is missed.
  in.gts[1].iscrowd = false;
  r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[8] == doctest::Approx(0.5));
  // A detection prefers a real GT; it falls back to a crowd one only when no real GT matches.
  in.gts = {gt(1, 1, 1, {0, 0, 10, 10}, 100), gt(2, 1, 1, {0, 0, 100, 100}, 10000, true)};
  in.dets = {det(1, 1, {0, 0, 10, 10}, 0.9), det(1, 1, {0, 0, 10, 10}, 0.8)};
  r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[0] == doctest::Approx(1.0));  // first: TP on GT 1; second: absorbed by the crowd
}

TEST_CASE("coco_evaluate quirks: on equal IoU the later GT wins; a GT with id 0 counts as unmatched") {
  CocoEvalInput in;
  in.image_ids = {1};
  in.category_ids = {1};
  in.dets = {det(1, 1, {0, 0, 10, 10}, 0.9)};
  // Two identical GTs: the detection takes the later one, id 0, and so scores as a false positive.
  in.gts = {gt(7, 1, 1, {0, 0, 10, 10}, 100), gt(0, 1, 1, {0, 0, 10, 10}, 100)};
  auto r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[1] == doctest::Approx(0.0));
  CHECK(r.stats[8] == doctest::Approx(0.0));
  // Swapped: it takes GT 7, a true positive.
  in.gts = {gt(0, 1, 1, {0, 0, 10, 10}, 100), gt(7, 1, 1, {0, 0, 10, 10}, 100)};
  r = eval::coco_evaluate(in, IouType::bbox);
  CHECK(r.stats[1] == doctest::Approx(51.0 / 101));
  CHECK(r.stats[8] == doctest::Approx(0.5));
}

TEST_CASE("coco_evaluate quirk: precision past the highest recall reached is 0, not -1") {
  CocoEvalInput in;
  in.image_ids = {1};
  in.category_ids = {1};
  in.gts = {gt(1, 1, 1, {0, 0, 10, 10}, 100), gt(2, 1, 1, {50, 50, 10, 10}, 100)};
  in.dets = {det(1, 1, {0, 0, 10, 10}, 0.9)};
  const auto r = eval::coco_evaluate(in, IouType::bbox);
  // pr = tp / (tp + fp + np.spacing(1)): a perfect precision is 1 / (1 + 2^-52), as in pycocotools.
  const double one = 1.0 / (1.0 + 0x1p-52);
  CHECK(one < 1.0);
  for (index_t rr = 0; rr <= 50; ++rr) CHECK(prec(r, 0, rr, 0, 0, 2) == one);
  for (index_t rr = 51; rr <= 100; ++rr) CHECK(prec(r, 0, rr, 0, 0, 2) == 0.0);
  CHECK(r.recall[r.dims.recall_index(0, 0, 0, 2)] == 0.5);
}

TEST_CASE("coco_evaluate quirk: a GT id used twice resolves to its last annotation (COCO.loadAnns)") {
  CocoEvalInput in;
  in.image_ids = {1, 2};
  in.category_ids = {1};
  in.gts = {gt(4, 1, 1, {0, 0, 10, 10}, 100), gt(4, 2, 1, {0, 0, 10, 10}, 100)};
  in.dets = {det(1, 1, {0, 0, 10, 10}, 0.9), det(2, 1, {0, 0, 10, 10}, 0.8)};
  const auto r = eval::coco_evaluate(in, IouType::bbox);
  // Image 1's GT is replaced by image 2's, which is then counted twice: 1 of 2 found, after a FP.
  CHECK(r.stats[8] == doctest::Approx(0.5));
  CHECK(r.stats[1] == doctest::Approx(51.0 / 101 * 0.5));
}

TEST_CASE("coco_evaluate segm: RLE IoU of the reference masks, crowd, and the area of mask results") {
  // Reference §16.8: 48x64, rows 0-39 x cols 0-49 vs rows 20-47 x cols 30-63.
  const auto block = [](index_t h, index_t w, index_t y0, index_t y1, index_t x0, index_t x1) {
    std::vector<std::uint8_t> m(static_cast<std::size_t>(h * w), 0);
    for (index_t y = y0; y <= y1; ++y)
      for (index_t x = x0; x <= x1; ++x) m[static_cast<std::size_t>(y * w + x)] = 1;
    return data::rle_from_mask(m, h, w);
  };
  const data::Rle a = block(48, 64, 0, 39, 0, 49), b = block(48, 64, 20, 47, 30, 63);
  CHECK(eval::coco_mask_iou(eval::mask_view(b), eval::mask_view(a), false) == doctest::Approx(0.156740).epsilon(1e-5));
  CHECK(eval::coco_mask_iou(eval::mask_view(b), eval::mask_view(a), true) == doctest::Approx(0.420168).epsilon(1e-5));
  CHECK(eval::coco_mask_iou(eval::mask_view(b), eval::mask_view(block(48, 65, 0, 39, 0, 49)), false) == -1);

  // A segm evaluation on 8x8 masks: the GT is a 4x4 block; detection 1 covers 12 of its 16 pixels
  // (IoU 0.75), detection 2 lies elsewhere.
  CocoEvalInput in;
  in.image_ids = {1};
  in.category_ids = {1};
  EvalGt g = gt(1, 1, 1, {}, 16);
  g.segmentation = block(8, 8, 0, 3, 0, 3);
  in.gts = {g};
  EvalDet d1 = det(1, 1, {}, 0.8), d2 = det(1, 1, {}, 0.9);
  d1.segmentation = block(8, 8, 0, 2, 0, 3);
  d1.area = 12;
  d2.segmentation = block(8, 8, 6, 7, 6, 7);
  d2.area = 4;
  in.dets = {d1, d2};
  const auto r = eval::coco_evaluate(in, IouType::segm);
  // Order d2 (FP), d1 (TP at t <= .75): precision 1/2 at every recall for 6 thresholds, 0 above.
  CHECK(r.stats[0] == doctest::Approx(0.5 * 6 / 10));
  CHECK(r.stats[2] == doctest::Approx(0.5));
  CHECK(r.stats[8] == doctest::Approx(0.6));
  // The same boxes scored as boxes do not see the masks.
  CHECK(eval::coco_evaluate(in, IouType::bbox).stats[8] == doctest::Approx(0.0));
  // A detection without a mask is an error, not a silent IoU of 0.
  in.dets[1].segmentation = {};
  CHECK(error_of([&] { eval::coco_evaluate(in, IouType::segm); }).find("detection 1 (image 1) has no mask") !=
        std::string::npos);
}

TEST_CASE("coco_evaluate quirk: the first result decides whether a segm result's area is its box or its mask") {
  // GT: a 10x10 block (small). Result 1: a far-away 4x4 mask (a false positive) that carries a
  // 100x100 box; result 2: the GT's mask. With boxes in the file, result 1's area is its box area
  // (large), so in the small range it is an unmatched detection outside the range: ignored.
  const std::string gt = std::string(kGt100) + R"(
      {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0,
       "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}]})";
  std::vector<std::uint8_t> far(100 * 100, 0), own(100 * 100, 0);
  for (int y = 80; y < 84; ++y)
    for (int x = 80; x < 84; ++x) far[static_cast<std::size_t>(y * 100 + x)] = 1;
  const data::CocoInstances gti = data::parse_coco_instances(gt, "gt.json");
  const data::Rle own_rle = data::coco_segmentation_to_rle(gti.annotations[0].segmentation, 100, 100);
  CHECK(data::rle_area(own_rle) == 100);
  const std::string far_s = data::rle_to_string(data::rle_from_mask(far, 100, 100));
  const std::string own_s = data::rle_to_string(own_rle);
  const auto result = [](const std::string& counts, double score, bool with_box) {
    std::string s = R"({"image_id": 1, "category_id": 1, "score": )" + std::to_string(score) +
                    R"(, "segmentation": {"size": [100, 100], "counts": )" + nlohmann::json(counts).dump() + "}";
    if (with_box) s += R"(, "bbox": [0, 0, 100, 100])";
    return s + "}";
  };
  auto r = evaluate_json(gt, "[" + result(far_s, 0.9, true) + "," + result(own_s, 0.8, true) + "]", IouType::segm);
  CHECK(r.stats[3] == doctest::Approx(1.0));  // small: the FP's "area" is 10000
  CHECK(r.stats[0] == doctest::Approx(0.5));
  r = evaluate_json(gt, "[" + result(far_s, 0.9, false) + "," + result(own_s, 0.8, false) + "]", IouType::segm);
  CHECK(r.stats[3] == doctest::Approx(0.5));  // mask areas: the 16-pixel FP is small and counts
  // Only results[0] decides: a box on results[1] alone does not switch the branch.
  r = evaluate_json(gt, "[" + result(far_s, 0.9, false) + "," + result(own_s, 0.8, true) + "]", IouType::segm);
  CHECK(r.stats[3] == doctest::Approx(0.5));
  // ...and results[0] with a box makes a box required everywhere, as loadRes reads them all alike.
  CHECK(error_of([&] {
          evaluate_json(gt, "[" + result(far_s, 0.9, true) + "," + result(own_s, 0.8, false) + "]", IouType::segm);
        }).find("dt.json: results[1]: no \"bbox\"") != std::string::npos);
}

TEST_CASE("coco_eval_input: an unknown image is an error naming the file and entry; an unknown category is dropped as pycocotools, or an error when strict") {
  const std::string gt = std::string(kGt100) +
                         R"({"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100}]})";
  const std::string unknown_image = R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
                                        {"image_id": 3, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}])";
  const std::string e1 = error_of([&] { evaluate_json(gt, unknown_image, IouType::bbox); });
  CHECK(e1.find("dt.json: results[1]") != std::string::npos);
  CHECK(e1.find("image_id 3") != std::string::npos);
  const std::string unknown_cat = R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
                                      {"image_id": 1, "category_id": 9, "bbox": [0, 0, 10, 10], "score": 0.95}])";
  // Default: pycocotools' numbers (the 0.95 result of category 9 would otherwise rank first).
  CHECK(evaluate_json(gt, unknown_cat, IouType::bbox).stats[0] == doctest::Approx(1.0));
  eval::CocoEvalLoadOptions strict;
  strict.ignore_unknown_categories = false;
  const std::string e2 = error_of([&] { evaluate_json(gt, unknown_cat, IouType::bbox, strict); });
  CHECK(e2.find("dt.json: results[1]: category_id 9") != std::string::npos);
  CHECK(error_of([&] { evaluate_json(gt, "[{", IouType::bbox); }).find("dt.json: not valid JSON") == 0);
  // The library entry point checks images too.
  CocoEvalInput in = reference_case();
  in.dets[2].image_id = 42;
  CHECK(error_of([&] { eval::coco_evaluate(in, IouType::bbox); }).find("detection 2 names image id 42") !=
        std::string::npos);
}

TEST_CASE("coco_evaluate: random cases against the plain-numpy restatement (tools/fixtures/coco_eval_reference.py)") {
  std::ifstream f(GCNET_FIXTURE_DIR "/coco_eval_random.json");
  REQUIRE(f.good());
  const nlohmann::json fx = nlohmann::json::parse(f);
  REQUIRE(fx["cases"].size() == 5);
  for (const auto& c : fx["cases"]) {
    INFO("case ", c["name"].get<std::string>());
    const auto r = evaluate_json(c["gt"].dump(), c["results"].dump(), IouType::bbox);
    const auto stats = c["stats"].get<std::vector<double>>();
    for (std::size_t i = 0; i < 12; ++i) {
      INFO("stat ", i);
      CHECK(r.stats[i] == doctest::Approx(stats[i]).epsilon(1e-12));
    }
    const auto recall = c["recall"].get<std::vector<double>>();
    REQUIRE(recall.size() == r.recall.size());
    for (std::size_t i = 0; i < recall.size(); ++i) CHECK(r.recall[i] == doctest::Approx(recall[i]).epsilon(1e-12));
    // The mean over recall thresholds of every precision row (-1 where absent).
    const auto pmean = c["precision_mean"].get<std::vector<double>>();
    const auto& d = r.dims;
    std::size_t i = 0, bad = 0;
    for (index_t t = 0; t < d.T; ++t)
      for (index_t k = 0; k < d.K; ++k)
        for (index_t a = 0; a < d.A; ++a)
          for (index_t m = 0; m < d.M; ++m, ++i) {
            double s = 0;
            for (index_t rr = 0; rr < d.R; ++rr) s += prec(r, t, rr, k, a, m);
            const double mean = prec(r, t, 0, k, a, m) == -1 ? -1.0 : s / static_cast<double>(d.R);
            if (std::abs(mean - pmean[i]) > 1e-12) ++bad;
          }
    CHECK(bad == 0);
    const auto& pc = c["per_category"];
    REQUIRE(pc.size() == r.per_category.size());
    for (std::size_t k = 0; k < pc.size(); ++k) {
      const auto& e = r.per_category[k];
      const double got[6] = {e.ap, e.ap50, e.ap75, e.ap_small, e.ap_medium, e.ap_large};
      for (std::size_t j = 0; j < 6; ++j) {
        if (pc[k][j].is_null())
          CHECK(std::isnan(got[j]));
        else
          CHECK(got[j] == doctest::Approx(pc[k][j].get<double>()).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("coco_evaluate: the same numbers with one thread and with all") {
  std::ifstream f(GCNET_FIXTURE_DIR "/coco_eval_random.json");
  REQUIRE(f.good());
  const nlohmann::json fx = nlohmann::json::parse(f);
  const auto& c = fx["cases"][3];
  const auto gt = data::parse_coco_instances(c["gt"].dump(), "gt.json");
  const auto in = eval::coco_eval_input(gt, data::parse_coco_results(c["results"].dump(), "dt.json", &gt),
                                        IouType::bbox);
  const auto all = eval::coco_evaluate(in, IouType::bbox);
  const int threads = num_threads();
  set_num_threads(1);
  const auto one = eval::coco_evaluate(in, IouType::bbox);
  set_num_threads(threads);
  CHECK(all.precision == one.precision);
  CHECK(all.recall == one.recall);
  CHECK(all.stats == one.stats);
}
