// CocoDataset and the instances reader: polygons, compressed and uncompressed RLE and crowd
// annotations into boxes, labels, masks and ignore boxes; mmdet's annotation filtering
// (ignore, outside the image, area <= 0, w/h < 1, unused categories, invalid polygons) and
// image filtering (filter_empty_gt, min_size, test_mode); the label mapping; every error the
// issue lists, with the file and the entry named; and the Fashion-MNIST scenes' instances.json
// read back to the scenes' own boxes and masks. Files are written by the test into a scratch
// folder.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/fashion_mnist_required.hpp"
#include "gcnet/data/coco_dataset.hpp"
#include "gcnet/data/fashion_scenes_writer.hpp"
#include "support/files.hpp"
#include "support/mask_blocks.hpp"

using namespace gcnet;
using gcnet::test::mask_block;
using namespace gcnet::data;
namespace fs = std::filesystem;
using gcnet::test::has;
using nlohmann::json;

namespace {

// An RGB image whose pixel values encode their position, so a wrong read shows.
Image pattern(index_t h, index_t w, index_t channels = 3) {
  Image img{h, w, channels, std::vector<std::uint8_t>(static_cast<std::size_t>(h * w * channels))};
  for (std::size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<std::uint8_t>((i * 7) % 251);
  return img;
}

json image(std::int64_t id, const std::string& file, index_t h, index_t w) {
  return {{"id", id}, {"file_name", file}, {"height", h}, {"width", w}};
}
json ann(std::int64_t id, std::int64_t image_id, std::int64_t cat, std::array<double, 4> bbox, double area, json seg) {
  return {{"id", id}, {"image_id", image_id}, {"category_id", cat}, {"bbox", bbox}, {"area", area}, {"iscrowd", 0},
          {"segmentation", std::move(seg)}};
}
json square(double x0, double y0, double x1, double y1) { return json::array({{x0, y0, x1, y0, x1, y1, x0, y1}}); }

// The test data set: categories in file order 3 ("cat"), 1 ("dog"), 8 ("car").
//  image 1 (20x30): polygon (dog), uncompressed RLE (car), compressed RLE (cat), crowd (cat),
//    and annotations mmdet skips or ignores;
//  image 2 (10x10): no annotations;  image 5 (40x40): only a crowd annotation;
//  image 7 (8x8): one dog;  image 9 (12x12): only a car.
json coco_json() {
  json j;
  j["images"] = {image(1, "a.png", 20, 30), image(2, "b.png", 10, 10), image(5, "c.png", 40, 40),
                 image(7, "tiny.png", 8, 8), image(9, "car.png", 12, 12)};
  j["categories"] = {{{"id", 3}, {"name", "cat"}}, {{"id", 1}, {"name", "dog"}}, {{"id", 8}, {"name", "car"}}};
  json a = json::array();
  a.push_back(ann(10, 1, 1, {2, 3, 10, 5}, 50, square(2, 3, 12, 8)));
  a.push_back(ann(11, 1, 8, {15, 2, 4, 6}, 24,
                  {{"counts", rle_encode(mask_block(20, 30, 2, 8, 15, 19), 20, 30)}, {"size", {20, 30}}}));
  a.push_back(ann(12, 1, 3, {20, 10, 5, 5}, 25,
                  {{"counts", rle_to_string(rle_from_mask(mask_block(20, 30, 10, 15, 20, 25), 20, 30))}, {"size", {20, 30}}}));
  json crowd = ann(13, 1, 3, {0, 0, 6, 6}, 36,
                   {{"counts", rle_to_string(rle_from_mask(mask_block(20, 30, 0, 6, 0, 6), 20, 30))}, {"size", {20, 30}}});
  crowd["iscrowd"] = 1;
  a.push_back(crowd);
  json ignored = ann(14, 1, 1, {3, 3, 4, 4}, 16, square(3, 3, 7, 7));
  ignored["ignore"] = 1;
  a.push_back(ignored);
  a.push_back(ann(15, 1, 1, {35, 5, 4, 4}, 16, square(35, 5, 39, 9)));    // outside the 30-wide image
  a.push_back(ann(16, 1, 1, {1, 1, 0.5, 4}, 2, square(1, 1, 1.5, 5)));   // w < 1
  a.push_back(ann(17, 1, 1, {1, 1, 4, 4}, 0, square(1, 1, 5, 5)));      // area 0
  a.push_back(ann(18, 1, 8, {5, 12, 3, 3}, 9, json::array({{5, 12, 8, 12}})));  // no polygon of 3 points: ignored
  a.push_back(ann(19, 5, 3, {1, 1, 30, 30}, 900, square(1, 1, 31, 31)));
  a.back()["iscrowd"] = true;
  a.push_back(ann(20, 7, 1, {1, 1, 3, 3}, 9, square(1, 1, 4, 4)));
  a.push_back(ann(21, 9, 8, {2, 2, 5, 5}, 25, square(2, 2, 7, 7)));
  j["annotations"] = a;
  return j;
}

// Writes instances.json (from `j`) and the images it names into a fresh folder.
fs::path write_set(const std::string& name, const json& j, bool images = true) {
  const fs::path root = gcnet::test::scratch_dir("coco_dataset", name);
  gcnet::test::spit(root / "instances.json", j.dump());
  if (images) {
    fs::create_directories(root / "images");
    for (const auto& im : j["images"])
      write_png((root / "images" / im["file_name"].get<std::string>()).string(),
                pattern(im["height"].get<index_t>(), im["width"].get<index_t>()));
  }
  return root;
}

CocoDataset open(const fs::path& root, CocoDatasetOptions opt = {}) {
  return CocoDataset((root / "instances.json").string(), (root / "images").string(), std::move(opt));
}

std::vector<float> values(const Tensor<float>& t) { return std::vector<float>(t.data(), t.data() + t.numel()); }
std::vector<std::uint8_t> mask_of(const DetSample& s, index_t k) {
  const index_t n = s.masks.size(1) * s.masks.size(2);
  return std::vector<std::uint8_t>(s.masks.data() + k * n, s.masks.data() + (k + 1) * n);
}

// The error raised by reading a one-image set whose annotations are `anns` (and images `imgs`).
std::string error_of(const std::string& name, json anns, json imgs = json::array({image(1, "a.png", 4, 5)})) {
  json j;
  j["images"] = std::move(imgs);
  j["categories"] = {{{"id", 1}, {"name", "a"}}};
  j["annotations"] = std::move(anns);
  const fs::path root = write_set(name, j, false);
  try {
    open(root);
  } catch (const gcnet::Error& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("CocoDataset: polygons, RLEs, crowd and mmdet's annotation filtering") {
  const fs::path root = write_set("basic", coco_json());
  const std::string file = (root / "instances.json").string();
  const CocoDataset ds = open(root);
  REQUIRE(ds.size() == 5);  // no image filtering by default
  CHECK(ds.cat_ids() == std::vector<std::int64_t>{3, 1, 8});  // file order
  CHECK(ds.class_names() == std::vector<std::string>{"cat", "dog", "car"});
  CHECK(ds.label_of(1) == 1);
  CHECK(ds.label_of(8) == 2);
  CHECK(ds.label_of(4) == -1);

  const DetSample s = ds.load(0);
  CHECK(s.meta.image_id == 1);
  CHECK(s.meta.file == (root / "images" / "a.png").string());
  CHECK(s.meta.ori_h == 20);
  CHECK(s.meta.ori_w == 30);
  CHECK(s.image.shape() == Shape{20, 30, 3});
  const Image src = pattern(20, 30);
  CHECK(s.image[0] == float(src.pixels[0]));
  CHECK(s.image[1799] == float(src.pixels[1799]));
  REQUIRE(s.num_instances() == 3);
  CHECK(values(s.boxes) == std::vector<float>{2, 3, 12, 8, 15, 2, 19, 8, 20, 10, 25, 15});
  CHECK(std::vector<std::int64_t>(s.labels.data(), s.labels.data() + 3) == std::vector<std::int64_t>{1, 2, 0});
  REQUIRE(s.masks.shape() == Shape{3, 20, 30});
  CHECK(mask_of(s, 0) == mask_block(20, 30, 3, 8, 2, 12));   // polygon
  CHECK(mask_of(s, 1) == mask_block(20, 30, 2, 8, 15, 19));  // uncompressed RLE
  CHECK(mask_of(s, 2) == mask_block(20, 30, 10, 15, 20, 25));  // compressed RLE
  // The crowd box and the instance without a valid polygon are ignore boxes.
  CHECK(values(s.ignore_boxes) == std::vector<float>{0, 0, 6, 6, 5, 12, 8, 15});

  // An image without annotations, and one with only a crowd region.
  const DetSample empty = ds.load(1);
  CHECK(empty.boxes.shape() == Shape{0, 4});
  CHECK(empty.labels.shape() == Shape{0});
  CHECK(empty.masks.shape() == Shape{0, 10, 10});
  CHECK(empty.ignore_boxes.shape() == Shape{0, 4});
  const DetSample crowd = ds.annotations(2);
  CHECK(crowd.num_instances() == 0);
  CHECK(values(crowd.ignore_boxes) == std::vector<float>{1, 1, 31, 31});
  CHECK_FALSE(crowd.image.defined());

  // The reader keeps everything as the file says.
  const CocoInstances& c = ds.coco();
  CHECK(c.file == file);
  CHECK(c.annotations.size() == 12);
  CHECK(c.annotations[1].segmentation.kind == CocoSegmentation::Kind::rle);
  CHECK_FALSE(c.annotations[1].segmentation.compressed);
  CHECK(c.annotations[2].segmentation.compressed);
  CHECK(c.annotations[3].iscrowd);
  CHECK(c.annotations[4].ignore);
  CHECK(c.annotations[9].iscrowd);
  CHECK(c.image_annotations[0].size() == 9);
  CHECK(c.image(7).file_name == "tiny.png");
  CHECK(coco_segmentation_to_rle(c.annotations[0].segmentation, 20, 30) == rle_from_mask(mask_block(20, 30, 3, 8, 2, 12), 20, 30));
}

TEST_CASE("CocoDataset: image filtering (filter_empty_gt, min_size, test_mode) and classes") {
  const fs::path root = write_set("filter", coco_json(), false);
  auto ids = [](const CocoDataset& ds) {
    std::vector<std::int64_t> out;
    for (index_t i = 0; i < ds.size(); ++i) out.push_back(ds.image_info(i).id);
    return out;
  };
  // mmdet: an image counts as non-empty if it has any annotation of a used category, crowd included.
  CHECK(ids(open(root, {.filter_empty_gt = true})) == std::vector<std::int64_t>{1, 5, 7, 9});
  CHECK(ids(open(root, {.filter_empty_gt = true, .min_size = 10})) == std::vector<std::int64_t>{1, 5, 9});
  CHECK(ids(open(root, {.filter_empty_gt = true, .min_size = 10, .test_mode = true})) ==
        std::vector<std::int64_t>{1, 2, 5, 7, 9});
  // classes: only those categories, labels in FILE order (pycocotools getCatIds), not the list's.
  const CocoDataset dc = open(root, {.classes = {"dog", "cat"}, .filter_empty_gt = true});
  CHECK(dc.cat_ids() == std::vector<std::int64_t>{3, 1});
  CHECK(dc.label_of(8) == -1);
  CHECK(ids(dc) == std::vector<std::int64_t>{1, 5, 7});  // image 9 has only a car
  const DetSample s = dc.annotations(0);
  CHECK(values(s.boxes) == std::vector<float>{2, 3, 12, 8, 20, 10, 25, 15});
  CHECK(std::vector<std::int64_t>(s.labels.data(), s.labels.data() + 2) == std::vector<std::int64_t>{1, 0});
  CHECK(values(s.ignore_boxes) == std::vector<float>{0, 0, 6, 6});  // the car without polygon is not used at all
  CHECK_THROWS_WITH_AS(open(root, {.classes = {"dog", "horse"}}),
                       has("instances.json: class \"horse\" of CocoDatasetOptions::classes names no category"),
                       gcnet::Error);
  // Boxes only: without masks the polygon check of mmdet's _process_masks does not run, so the
  // instance without a valid polygon is a GT box again.
  const DetSample nb = open(root, {.with_mask = false}).annotations(0);
  CHECK_FALSE(nb.has_masks());
  CHECK(nb.num_instances() == 4);
  CHECK(values(nb.ignore_boxes) == std::vector<float>{0, 0, 6, 6});
  CHECK_THROWS_WITH_AS(open(root).annotations(7), has("out of range [0, 5)"), gcnet::Error);
}

TEST_CASE("CocoDataset: gray images become 3 channels; the image must match its entry") {
  json j = coco_json();
  const fs::path root = write_set("gray", j);
  write_png((root / "images" / "tiny.png").string(), pattern(8, 8, 1));
  const CocoDataset ds = open(root);
  const DetSample s = ds.load(3);
  CHECK(s.image.shape() == Shape{8, 8, 3});
  const Image gray = pattern(8, 8, 1);
  CHECK(s.image[3 * 5 + 0] == float(gray.pixels[5]));
  CHECK(s.image[3 * 5 + 2] == float(gray.pixels[5]));
  write_png((root / "images" / "b.png").string(), pattern(10, 12));
  CHECK_THROWS_WITH_AS(ds.load(1), has("b.png: image is 10x12 but " + (root / "instances.json").string() + " says 10x10 (image id 2)"),
                       gcnet::Error);
  fs::remove(root / "images" / "c.png");
  CHECK_THROWS_WITH_AS(ds.load(2), has("c.png: cannot open file"), gcnet::Error);
  // with_mask needs a segmentation per kept annotation.
  j["annotations"][0].erase("segmentation");
  const fs::path root2 = write_set("noseg", j, false);
  CHECK_THROWS_WITH_AS(open(root2).annotations(0),
                       has("instances.json: annotations[0] (id 10): no \"segmentation\" (with_mask needs one"),
                       gcnet::Error);
  CHECK(open(root2, {.with_mask = false}).annotations(0).num_instances() == 4);
}

TEST_CASE("COCO instances: every error names the file and the entry") {
  const fs::path bad = gcnet::test::scratch_dir("coco_dataset", "notjson");
  gcnet::test::spit(bad / "instances.json", "{\"images\": [");
  CHECK_THROWS_WITH_AS(open(bad), has((bad / "instances.json").string() + ": not valid JSON"), gcnet::Error);
  gcnet::test::spit(bad / "instances.json", "[]");
  CHECK_THROWS_WITH_AS(open(bad), has("expected a COCO instances object"), gcnet::Error);
  gcnet::test::spit(bad / "instances.json", "{\"images\": [], \"categories\": []}");
  CHECK_THROWS_WITH_AS(open(bad), has("expected a \"annotations\" array"), gcnet::Error);
  CHECK_THROWS_WITH_AS(CocoDataset((bad / "missing.json").string(), "."), has("missing.json: cannot open file"),
                       gcnet::Error);

  const json poly = square(0, 0, 2, 2);
  CHECK(error_of("ok", {ann(4, 1, 1, {0, 0, 2, 2}, 4, poly)}) == "no error");
  {
    const std::string e = error_of("image", {ann(4, 1, 1, {0, 0, 2, 2}, 4, poly), ann(5, 99, 1, {0, 0, 2, 2}, 4, poly)});
    CHECK(e.find("instances.json: annotations[1] (id 5): image_id 99 names no image in \"images\"") != std::string::npos);
  }
  CHECK(error_of("cat", {ann(4, 1, 42, {0, 0, 2, 2}, 4, poly)})
            .find("instances.json: annotations[0] (id 4): category_id 42 names no category in \"categories\"") !=
        std::string::npos);
  CHECK(error_of("odd", {ann(4, 1, 1, {0, 0, 2, 2}, 4, json::array({{0, 0, 2, 0, 2, 2, 0}}))})
            .find("instances.json: annotations[0] (id 4): polygon 0 has an odd number of coordinates (7)") !=
        std::string::npos);
  CHECK(error_of("odd2", {ann(4, 1, 1, {0, 0, 2, 2}, 4, json::array({{0, 0, 2, 0, 2, 2}, {1, 1, 2}}))})
            .find("polygon 1 has an odd number of coordinates (3)") != std::string::npos);
  CHECK(error_of("rlesum", {ann(4, 1, 1, {0, 0, 2, 2}, 4, {{"counts", {3, 2}}, {"size", {4, 5}}})})
            .find("instances.json: annotations[0] (id 4): segmentation: RLE counts sum to 5 but its size 4x5 has 20 "
                  "pixels") != std::string::npos);
  CHECK(error_of("rlestr", {ann(4, 1, 1, {0, 0, 2, 2}, 4, {{"counts", "92204"}, {"size", {4, 5}}})})
            .find("annotations[0] (id 4): segmentation: RLE counts sum to 21") != std::string::npos);
  CHECK(error_of("rlechar", {ann(4, 1, 1, {0, 0, 2, 2}, 4, {{"counts", "92 03"}, {"size", {4, 5}}})})
            .find("annotations[0] (id 4): segmentation: compressed RLE string has the character") != std::string::npos);
  CHECK(error_of("rlesize", {ann(4, 1, 1, {0, 0, 2, 2}, 4, {{"counts", {24}}, {"size", {4, 6}}})})
            .find("annotations[0] (id 4): RLE size 4x6 is not the size 4x5 of image id 1") != std::string::npos);
  CHECK(error_of("rleneg", {ann(4, 1, 1, {0, 0, 2, 2}, 4, {{"counts", {25, -5}}, {"size", {4, 5}}})})
            .find("RLE counts[1] must be a non-negative integer, got -5") != std::string::npos);
  CHECK(error_of("dup", {ann(4, 1, 1, {0, 0, 2, 2}, 4, poly), ann(4, 1, 1, {0, 0, 2, 2}, 4, poly)})
            .find("annotations[1] (id 4): annotation id 4 appears twice") != std::string::npos);
  CHECK(error_of("dupimg", json::array(), {image(1, "a.png", 4, 5), image(1, "b.png", 4, 5)})
            .find("instances.json: images[1] (id 1): image id 1 appears twice") != std::string::npos);
  CHECK(error_of("imgsize", json::array(), {image(1, "a.png", 0, 5)}).find("images[0] (id 1): image size 0x5") !=
        std::string::npos);
  json nobox = ann(4, 1, 1, {0, 0, 2, 2}, 4, poly);
  nobox["bbox"] = {1, 2, 3};
  CHECK(error_of("bbox", {nobox}).find("annotations[0] (id 4): \"bbox\" must be [x, y, width, height], got [1,2,3]") !=
        std::string::npos);
  json noarea = ann(4, 1, 1, {0, 0, 2, 2}, 4, poly);
  noarea.erase("area");
  CHECK(error_of("area", {noarea}).find("annotations[0] (id 4): missing \"area\"") != std::string::npos);
  json fid = ann(4, 1, 1, {0, 0, 2, 2}, 4, poly);
  fid["image_id"] = 1.5;
  CHECK(error_of("fid", {fid}).find("annotations[0] (id 4): \"image_id\" must be an integer, got 1.5") !=
        std::string::npos);
  json nan_coord = ann(4, 1, 1, {0, 0, 2, 2}, 4, json::array({{0, 0, 2, 0, 2, "x"}}));
  CHECK(error_of("coord", {nan_coord}).find("polygon 0: coordinate 5 must be a number, got \"x\"") != std::string::npos);
}

TEST_CASE("Fashion-MNIST scenes: instances.json reads back to the scenes' boxes, labels and masks") {
  gcnet::test::require_fashion_mnist();
  const fs::path root = gcnet::test::scratch_dir("coco_dataset", "scenes");
  const FashionScenesDataset scenes({.split = SceneSplit::val, .count = 4, .seed = 5});
  write_fashion_scenes(root.string(), scenes, {.threads = 2});
  const CocoDataset ds((root / "instances.json").string(), (root / "images").string());
  REQUIRE(ds.size() == 4);
  CHECK(ds.num_classes() == 10);
  for (index_t c = 0; c < 10; ++c) CHECK(ds.cat_ids()[static_cast<std::size_t>(c)] == c + 1);
  index_t total = 0;
  for (index_t i = 0; i < 4; ++i) {
    const Scene sc = scenes.scene(i);
    const DetSample s = ds.load(i);
    CHECK(s.meta.image_id == i + 1);
    CHECK(s.image.shape() == Shape{sc.image.height, sc.image.width, 3});
    bool same_pixels = true;
    for (std::size_t p = 0; p < sc.image.pixels.size(); ++p) same_pixels &= s.image[static_cast<index_t>(p)] == sc.image.pixels[p];
    CHECK(same_pixels);
    REQUIRE(s.num_instances() == static_cast<index_t>(sc.instances.size()));
    CHECK(s.ignore_boxes.size(0) == 0);
    for (std::size_t k = 0; k < sc.instances.size(); ++k) {
      const SceneInstance& inst = sc.instances[k];
      const auto K = static_cast<index_t>(k);
      CHECK(s.boxes[4 * K + 0] == float(inst.box.x));
      CHECK(s.boxes[4 * K + 1] == float(inst.box.y));
      CHECK(s.boxes[4 * K + 2] == float(inst.box.x + inst.box.w));
      CHECK(s.boxes[4 * K + 3] == float(inst.box.y + inst.box.h));
      CHECK(s.labels[K] == inst.category_id - 1);
      CHECK(mask_of(s, K) == inst.mask);
      ++total;
    }
  }
  CHECK(total > 4);
}
