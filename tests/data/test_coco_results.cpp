// COCO results files (coco_results.hpp): detections -> [x, y, w, h] boxes as mmdet's
// xyxy2xywh of float32 values, category ids from labels, masks as compressed RLE strings;
// written atomically and read back identically (the round trip), with the errors for damaged
// files and for results that name an image the ground truth does not have.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "gcnet/data/coco_results.hpp"
#include "support/files.hpp"
#include "support/mask_blocks.hpp"

using namespace gcnet;
using gcnet::test::mask_block;
using namespace gcnet::data;
namespace fs = std::filesystem;
using gcnet::test::has;

namespace {

// Three detections on one 300x400 image: boxes xyxy, scores, labels 0..2 of cat_ids {3, 1, 8}.
struct Dets {
  Tensor<float> boxes{Shape{3, 4}}, scores{Shape{3}};
  Tensor<std::int64_t> labels{Shape{3}};
  Tensor<std::uint8_t> masks{Shape{3, 300, 400}};
  Dets() {
    const float b[] = {10.1f, 20.2f, 30.3f, 40.4f, 50.f, 100.f, 60.f, 200.f, 0.f, 0.f, 399.5f, 299.25f};
    std::copy(b, b + 12, boxes.data());
    scores[0] = 0.9f, scores[1] = 0.123456789f, scores[2] = 0.05f;
    labels[0] = 2, labels[1] = 0, labels[2] = 1;
    const auto m0 = mask_block(300, 400, 20, 41, 10, 31), m1 = mask_block(300, 400, 100, 200, 50, 60), m2 = mask_block(300, 400, 0, 300, 0, 400);
    std::copy(m0.begin(), m0.end(), masks.data());
    std::copy(m1.begin(), m1.end(), masks.data() + 120000);
    std::copy(m2.begin(), m2.end(), masks.data() + 240000);
  }
};
const std::vector<std::int64_t> cat_ids{3, 1, 8};
}  // namespace

TEST_CASE("coco_results_of_image: xyxy2xywh in double of the float32 box, category ids, scores") {
  const Dets d;
  const std::vector<CocoResult> r = coco_results_of_image(42, d.boxes, d.scores, d.labels, cat_ids, encode_masks(d.masks));
  REQUIRE(r.size() == 3);
  CHECK(r[0].image_id == 42);
  CHECK(r[0].category_id == 8);
  CHECK(r[1].category_id == 3);
  CHECK(r[2].category_id == 1);
  CHECK(r[0].bbox == std::array<double, 4>{double(10.1f), double(20.2f), double(30.3f) - double(10.1f),
                                           double(40.4f) - double(20.2f)});
  CHECK(r[2].bbox == std::array<double, 4>{0, 0, 399.5, 299.25});
  CHECK(r[1].score == double(0.123456789f));
  CHECK(rle_to_string(r[1].segmentation) == "lg>T3X600000000000000000\\`S3");  // the reference's 300x400 vector
  CHECK(rle_area(r[0].segmentation) == 21 * 21);
  CHECK(coco_results_of_image(1, Tensor<float>(Shape{0, 4}), Tensor<float>(Shape{0}), Tensor<std::int64_t>(Shape{0}),
                              cat_ids).empty());

  Tensor<std::int64_t> bad_labels(Shape{3});
  bad_labels[0] = 0, bad_labels[1] = 3, bad_labels[2] = 0;
  CHECK_THROWS_WITH_AS(coco_results_of_image(42, d.boxes, d.scores, bad_labels, cat_ids),
                       has("image 42 detection 1 has label 3 but there are 3 classes"), gcnet::Error);
  CHECK_THROWS_WITH_AS(coco_results_of_image(42, d.boxes, Tensor<float>(Shape{2}), d.labels, cat_ids),
                       has("scores [2] and labels [3] for 3 boxes"), gcnet::Error);
  CHECK_THROWS_WITH_AS(coco_results_of_image(42, d.boxes, d.scores, d.labels, cat_ids, {Rle{}}),
                       has("1 masks for 3 boxes"), gcnet::Error);
}

TEST_CASE("Results files: bbox and segm round trip, JSON as pycocotools expects") {
  const fs::path dir = gcnet::test::scratch_dir("coco_results", "roundtrip");
  const Dets d;
  std::vector<CocoResult> all = coco_results_of_image(42, d.boxes, d.scores, d.labels, cat_ids, encode_masks(d.masks));
  const std::vector<CocoResult> more = coco_results_of_image(7, d.boxes, d.scores, d.labels, cat_ids);
  const std::string bbox_file = (dir / "r.bbox.json").string(), segm_file = (dir / "r.segm.json").string();

  write_coco_results(bbox_file, all);
  const std::string text = gcnet::test::slurp(bbox_file);
  // What Python's json.dumps writes for mmdet's xyxy2xywh of these float32 values (shortest
  // round-trip reprs of the doubles).
  CHECK(text.find(R"("bbox":[10.100000381469727,20.200000762939453,20.19999885559082,20.200000762939453])") !=
        std::string::npos);
  CHECK(text.find(R"("score":0.12345679104328156)") != std::string::npos);
  CHECK(text.find("\"segmentation\"") == std::string::npos);
  const std::vector<CocoResult> back = read_coco_results(bbox_file);
  REQUIRE(back.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(back[i].image_id == all[i].image_id);
    CHECK(back[i].category_id == all[i].category_id);
    CHECK(back[i].score == all[i].score);
    CHECK(back[i].bbox == all[i].bbox);
    CHECK(back[i].has_bbox);
    CHECK_FALSE(back[i].has_segmentation());
  }

  write_coco_results(segm_file, all, {.type = CocoResultType::segm});
  const std::string segm_text = gcnet::test::slurp(segm_file);
  CHECK(segm_text.find("\"bbox\"") == std::string::npos);  // see coco_results.hpp: loadRes would use the box area
  CHECK(segm_text.find(R"("counts":"lg>T3X600000000000000000\\`S3")") != std::string::npos);
  CHECK(segm_text.find(R"("size":[300,400])") != std::string::npos);
  const std::vector<CocoResult> segm = read_coco_results(segm_file);
  REQUIRE(segm.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(segm[i].segmentation == all[i].segmentation);
    CHECK(segm[i].score == all[i].score);
    CHECK_FALSE(segm[i].has_bbox);
  }
  write_coco_results(segm_file, all, {.type = CocoResultType::segm, .segm_with_bbox = true});
  const std::vector<CocoResult> both = read_coco_results(segm_file);
  CHECK(both[2].bbox == all[2].bbox);
  CHECK(both[2].segmentation == all[2].segmentation);

  // A segm file needs masks; the old file stays whole when writing fails.
  all.insert(all.end(), more.begin(), more.end());
  CHECK_THROWS_WITH_AS(write_coco_results(segm_file, all, {.type = CocoResultType::segm}),
                       has("write_coco_results: result 3 (image 7) has no mask for a segm results file"), gcnet::Error);
  CHECK(read_coco_results(segm_file).size() == 3);
  all[0].score = std::nan("");
  CHECK_THROWS_WITH_AS(write_coco_results(bbox_file, all), has("result 0 (image 42) has score nan"), gcnet::Error);
  CHECK(read_coco_results(bbox_file).size() == 3);
  CHECK_THROWS_WITH_AS(write_coco_results((dir / "no" / "r.json").string(), more), has("folder"), gcnet::Error);
  // Only the two results files are in the folder: no temporary file is left behind.
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 2);

  // An empty list is a valid results file.
  write_coco_results(bbox_file, {});
  CHECK(gcnet::test::slurp(bbox_file) == "[]");
  CHECK(read_coco_results(bbox_file).empty());
}

TEST_CASE("Results files: errors name the file and the result; unknown images against a GT") {
  const fs::path dir = gcnet::test::scratch_dir("coco_results", "errors");
  const std::string gt_text = R"({"images": [{"id": 1, "height": 4, "width": 5}, {"id": 3, "height": 4, "width": 5}],
    "categories": [{"id": 1, "name": "a"}], "annotations": []})";
  const CocoInstances gt = parse_coco_instances(gt_text, "gt.json");
  const std::string f = (dir / "r.json").string();
  auto err = [&](const std::string& text, const CocoInstances* g = nullptr) -> std::string {
    gcnet::test::spit(f, text);
    try {
      read_coco_results(f, g);
    } catch (const gcnet::Error& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string ok = R"({"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.5})";
  CHECK(err("[" + ok + "]", &gt) == "no error");
  CHECK(err("[" + ok + R"(, {"image_id": 2, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.5}])", &gt) ==
        f + ": results[1]: image_id 2 names no image of the ground truth gt.json");
  // Without a GT any image id is accepted.
  CHECK(err("[" + ok + R"(, {"image_id": 2, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.5}])") == "no error");
  CHECK(err("[" + ok).find(f + ": not valid JSON") == 0);
  CHECK(err(ok) == f + ": a COCO results file is a JSON list of results, got a JSON object");
  CHECK(err(R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]}])") == f + ": results[0]: missing \"score\"");
  CHECK(err(R"([{"image_id": 1, "category_id": 1, "score": 1}])") ==
        f + ": results[0]: a result needs a \"bbox\" or a \"segmentation\"");
  CHECK(err(R"([{"image_id": "1", "category_id": 1, "bbox": [0, 0, 2, 2], "score": 1}])") ==
        f + ": results[0]: \"image_id\" must be an integer, got \"1\"");
  CHECK(err(R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 2], "score": 1}])").find("results[0]: \"bbox\" must be") !=
        std::string::npos);
  CHECK(err(R"([{"image_id": 1, "category_id": 1, "segmentation": {"size": [4, 5], "counts": "92204"}, "score": 1}])") ==
        f + ": results[0]: segmentation: RLE counts sum to 21 but its size 4x5 has 20 pixels");
  CHECK(err(R"([{"image_id": 1, "category_id": 1, "segmentation": [[0, 0, 1, 0, 1, 1]], "score": 1}])")
            .find("results[0]: \"segmentation\" of a result must be an RLE") != std::string::npos);
  // Uncompressed counts are read too.
  gcnet::test::spit(f, R"([{"image_id": 1, "category_id": 1, "segmentation": {"size": [4, 5], "counts": [9, 2, 2, 2, 5]}, "score": 1}])");
  CHECK(rle_to_string(read_coco_results(f, &gt)[0].segmentation) == "92203");
}
