// The detection examples (issue 18): the parts they share (batch collation, the loader's exact
// resume and sharding, the bitmap font and the detection pictures) and the command-line programs
// run as a user would (paths in GCNET_TRAIN_DET / GCNET_TEST_DET / GCNET_DETECT): a tiny training
// run, its evaluation and detection, and the clear errors the issue asks for (an annotation file
// whose categories disagree with the checkpoint, an image that cannot be read, a checkpoint of
// another preset, a negative score threshold).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gcnet/data/det_batch.hpp"
#include "gcnet/data/det_loader.hpp"
#include "gcnet/data/det_transforms.hpp"
#include "gcnet/data/fashion_scenes_dataset.hpp"
#include "gcnet/data/fashion_scenes_writer.hpp"
#include "gcnet/data/picture_detections.hpp"
#include "gcnet/data/picture_text.hpp"
#include "../support/run_program.hpp"

using namespace gcnet;
using test::Run;
namespace fs = std::filesystem;

namespace {

// A sample of h x w (C = 3) whose pixel value encodes (tag, y, x, c); one box and a mask.
data::DetSample make_sample(index_t h, index_t w, float tag) {
  data::DetSample s;
  s.image = Tensor<float>(Shape{h, w, 3});
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x)
      for (index_t c = 0; c < 3; ++c) s.image.at({y, x, c}) = tag * 1000 + static_cast<float>(y * 100 + x * 3 + c) / 1000;
  s.boxes = Tensor<float>(Shape{1, 4});
  s.boxes.at({0, 0}) = 1, s.boxes.at({0, 1}) = 2, s.boxes.at({0, 2}) = 5, s.boxes.at({0, 3}) = 6;
  s.labels = Tensor<std::int64_t>(Shape{1});
  s.labels[0] = static_cast<std::int64_t>(tag);
  s.masks = Tensor<std::uint8_t>(Shape{1, h, w});
  for (index_t i = 0; i < h * w; ++i) s.masks[i] = static_cast<std::uint8_t>(i % 2);
  s.ignore_boxes = Tensor<float>(Shape{0, 4});
  s.meta.image_id = static_cast<std::int64_t>(tag);
  s.meta.ori_h = s.meta.img_h = s.meta.pad_h = h;
  s.meta.ori_w = s.meta.img_w = s.meta.pad_w = w;
  return s;
}

// A data set of n samples whose sizes vary and whose content records (index, an rng draw).
struct TinyDetDataset {
  index_t n = 10;
  index_t size() const { return n; }
  data::DetSample get(index_t i, Rng& rng) const {
    data::DetSample s = make_sample(20 + i % 3 * 7, 30 - i % 2 * 5, static_cast<float>(i));
    s.boxes.at({0, 0}) = static_cast<float>(rng.uniform());
    return s;
  }
};

}  // namespace

TEST_CASE("collate_det pads to the largest image rounded to the divisor, NCHW, zeros outside") {
  const std::vector<data::DetSample> samples{make_sample(20, 30, 1), make_sample(40, 10, 2)};
  const data::DetBatchData b = data::collate_det(samples, 32);
  REQUIRE(b.images.shape() == Shape{2, 3, 64, 32});
  CHECK(b.size() == 2);
  for (index_t n = 0; n < 2; ++n) {
    const index_t h = samples[static_cast<std::size_t>(n)].height(), w = samples[static_cast<std::size_t>(n)].width();
    for (index_t c = 0; c < 3; ++c)
      for (index_t y = 0; y < 64; ++y)
        for (index_t x = 0; x < 32; ++x) {
          const float want = y < h && x < w ? samples[static_cast<std::size_t>(n)].image.at({y, x, c}) : 0.0f;
          REQUIRE(b.images.at({n, c, y, x}) == want);
        }
    CHECK(b.shapes[static_cast<std::size_t>(n)].img_h == h);
    CHECK(b.shapes[static_cast<std::size_t>(n)].img_w == w);
    CHECK(b.metas[static_cast<std::size_t>(n)].pad_h == 64);
    CHECK(b.metas[static_cast<std::size_t>(n)].pad_w == 32);
    CHECK(b.gt[static_cast<std::size_t>(n)].masks.shape() == Shape{1, h, w});
    CHECK(b.gt[static_cast<std::size_t>(n)].labels[0] == n + 1);
  }
}

TEST_CASE("collate_det cuts padded masks back to img_shape and refuses mixed channels") {
  data::DetSample s = make_sample(20, 30, 1);
  Rng rng(0, 0);
  data::DetPad{.divisor = 32}(s, rng);  // the sample is padded to 32 x 32, img stays 20 x 30
  const data::DetBatchData b = data::collate_det({s}, 32);
  CHECK(b.gt[0].masks.shape() == Shape{1, 20, 30});
  CHECK(b.shapes[0].img_h == 20);
  data::DetSample gray = make_sample(8, 8, 2);
  gray.image = Tensor<float>(Shape{8, 8, 1});
  CHECK_THROWS_WITH(data::collate_det({make_sample(8, 8, 1), gray}), doctest::Contains("channels"));
}

TEST_CASE("DetLoader: seek resumes exactly, shards split each global batch, prefetch changes nothing") {
  data::DetLoader<TinyDetDataset> a(TinyDetDataset{}, {.batch_size = 4, .seed = 7, .prefetch = true});
  data::DetLoader<TinyDetDataset> b(TinyDetDataset{}, {.batch_size = 4, .seed = 7, .prefetch = false});
  CHECK(a.batches_per_epoch() == 2);
  std::vector<data::DetBatchData> seq;
  for (int g = 0; g < 5; ++g) seq.push_back(a.next());
  for (int g = 0; g < 5; ++g) {
    const data::DetBatchData x = b.next();
    CHECK(x.indices == seq[static_cast<std::size_t>(g)].indices);
    CHECK(x.gt[0].boxes.at({0, 0}) == seq[static_cast<std::size_t>(g)].gt[0].boxes.at({0, 0}));
  }
  CHECK(seq[0].indices != seq[2].indices);  // epochs reshuffle
  b.seek(3);
  CHECK(b.next().indices == seq[3].indices);
  data::DetLoader<TinyDetDataset> r0(TinyDetDataset{}, {.batch_size = 4, .seed = 7});
  data::DetLoader<TinyDetDataset> r1(TinyDetDataset{}, {.batch_size = 4, .seed = 7});
  r0.shard(0, 2);
  r1.shard(1, 2);
  r0.seek(1);
  r1.seek(1);
  std::vector<index_t> both = r0.next().indices, second = r1.next().indices;
  both.insert(both.end(), second.begin(), second.end());
  CHECK(both == seq[1].indices);
  CHECK_THROWS_WITH(r0.shard(0, 3), doctest::Contains("not a multiple"));
}

TEST_CASE("the font has a glyph for letters, digits and the tag punctuation; text is drawn where asked") {
  for (char c : std::string("ABCXYZabcxyz0123456789 .-_:%/"))
    CHECK_MESSAGE(data::has_glyph(c), "no glyph for '", c, "'");
  CHECK(data::text_width("ab", 2) == 22);
  data::Image im{12, 20, 3, std::vector<std::uint8_t>(12 * 20 * 3, 0)};
  data::draw_text(im, 1, 2, "1", {255, 0, 0});
  // '1': row 0 is 0x04 (column 2), row 6 is 0x0E (columns 1-3).
  CHECK(im.at(2, 3, 0) == 255);
  CHECK(im.at(2, 2, 0) == 0);
  CHECK(im.at(8, 2, 0) == 255);
  CHECK(im.at(8, 4, 0) == 255);
  CHECK(im.at(8, 5, 0) == 0);
  data::draw_text(im, 18, 10, "W", {0, 255, 0});  // clipped, no crash
}

TEST_CASE("draw_detections: mask blended, box outlined, tag drawn, low scores left out") {
  data::Image base{32, 32, 3, std::vector<std::uint8_t>(32 * 32 * 3, 100)};
  Detections<float> d;
  d.boxes = Tensor<float>(Shape{2, 4});
  const float boxes[8] = {4, 12, 20, 28, 0, 0, 8, 8};
  std::copy(boxes, boxes + 8, d.boxes.data());
  d.scores = Tensor<float>(Shape{2});
  d.scores[0] = 0.9f, d.scores[1] = 0.1f;
  d.labels = Tensor<std::int64_t>(Shape{2});
  d.labels[0] = 0, d.labels[1] = 1;
  d.masks = Tensor<std::uint8_t>(Shape{2, 32, 32});
  std::fill_n(d.masks.data(), d.masks.numel(), std::uint8_t{0});
  d.masks.at({0, 16, 10}) = 1;
  d.masks.at({1, 2, 2}) = 1;
  const std::vector<data::Rgb8> palette{{200, 0, 0}, {0, 0, 200}};
  const data::Image im = data::draw_detections(base, d, {"Bag", "Coat"}, palette, {.score_thr = 0.3, .upscale = 2});
  REQUIRE(im.height == 64);
  CHECK(im.at(32, 20, 0) == 150);  // mask pixel (16, 10) enlarged: 0.5 * 100 + 0.5 * 200
  CHECK(im.at(32, 20, 2) == 50);
  CHECK(im.at(40, 8, 0) == 200);   // left edge of box 0 at x = 4 * 2
  CHECK(im.at(4, 4, 2) == 100);    // the 0.1 detection is not drawn
  CHECK(data::detection_tag(0, 0.9, {"Bag"}, true) == "Bag 0.90");
  Detections<float> bad = d;
  bad.masks = Tensor<std::uint8_t>(Shape{2, 16, 16});
  CHECK_THROWS_WITH(data::draw_detections(base, bad, {}, {}), doctest::Contains("masks of shape"));
}

// ---- the programs, run as a user would ----
namespace {


fs::path work_root() { return fs::temp_directory_path() / ("gcnet_test_det_cli_" + std::to_string(::getpid())); }

// A tiny detector trained for 2 iterations on 4 scenes, once per test process.
const fs::path& trained() {
  static const fs::path dir = [] {
    const fs::path d = work_root() / "train";
    fs::remove_all(d);
    const Run r = test::run_program(GCNET_TRAIN_DET,
                      "--scenes 4 --batch 2 --iters 2 --log-interval 1 --threads 1 --base-channels 8 --fpn-channels 16 "
                      "--fc-channels 32 --mask-channels 8 --roi-samples 32 --rpn-train-post 100 --rpn-test-post 50 "
                      "--work-dir '" + d.string() + "'");
    INFO(r.output);
    REQUIRE(r.status == 0);
    return d;
  }();
  return dir;
}

std::string checkpoint() {  // quoted for the shell (appended: GCC 12 warns falsely on "'" + s + "'")
  std::string quoted = "'";
  quoted += (trained() / "latest.safetensors").string();
  quoted += "'";
  return quoted;
}

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

}  // namespace

TEST_CASE("gcnet_train_det trains, logs and records what gcnet_test_det needs") {
  const fs::path& d = trained();
  CHECK(fs::exists(d / "latest.safetensors"));
  CHECK(fs::exists(d / "curve.svg"));
  bool log = false;
  for (const auto& e : fs::directory_iterator(d)) log = log || e.path().string().ends_with(".log.json");
  CHECK(log);
}

TEST_CASE("gcnet_train_det --time-budget plans the schedule from the measured speed and trains within the budget") {
  const fs::path d = work_root() / "budget";
  const std::string small = "--scenes 4 --batch 2 --threads 1 --base-channels 8 --fpn-channels 16 --fc-channels 32 "
                            "--mask-channels 8 --roi-samples 32 --rpn-train-post 100 --log-interval 25 ";
  const auto t0 = std::chrono::steady_clock::now();
  const Run r = test::run_program(GCNET_TRAIN_DET, small + "--time-budget 6 --work-dir '" + d.string() + "'");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(r.output);
  REQUIRE(r.status == 0);
  const auto [planned, trained] = gcnet::test::budget_counts(r.output);
  CHECK(planned > 10);
  CHECK(trained > 10);
  CHECK(took < 8.0);  // the budget, with room for the process's start and end
  // The log has the plan and the iterations trained, the checkpoint is at the last one, the
  // schedule's steps follow the run's length, and the scratch folder is gone.
  std::string log;
  for (const auto& e : fs::directory_iterator(d))
    if (e.path().extension() == ".json") {
      std::ifstream in(e.path());
      std::stringstream ss;
      ss << in.rdbuf();
      log = ss.str();
    }
  CHECK(log.find("\"max_iters\":" + std::to_string(planned)) != std::string::npos);
  CHECK(log.find("\"iter\":" + std::to_string(trained) + ",") != std::string::npos);
  CHECK(fs::exists(d / "latest.safetensors"));
  CHECK_FALSE(fs::exists(d / ".speed-probe"));
}

TEST_CASE("gcnet_train_det --time-budget: too short a budget, or with --iters or --epochs, is refused") {
  const std::string small = "--scenes 4 --batch 2 --threads 1 --base-channels 8 --fpn-channels 16 --fc-channels 32 "
                            "--mask-channels 8 --work-dir '" + (work_root() / "refused").string() + "' ";
  const Run too_short = test::run_program(GCNET_TRAIN_DET, small + "--time-budget 0.001");
  INFO(too_short.output);
  CHECK(too_short.status != 0);
  CHECK(too_short.output.find("leaves no time to train") != std::string::npos);
  for (const std::string& both_args : {small + "--time-budget 10 --iters 5", small + "--time-budget 10 --epochs 2"}) {
    const Run both = test::run_program(GCNET_TRAIN_DET, both_args);
    INFO(both.output);
    CHECK(both.status != 0);
    CHECK(both.output.find("excludes") != std::string::npos);
  }
}

TEST_CASE("gcnet_test_det evaluates on the scenes: results JSON, both APs, pictures") {
  const fs::path out = work_root() / "test";
  const Run r = test::run_program(GCNET_TEST_DET, checkpoint() + " --scenes 4 --threads 1 --out '" + (out / "r").string() +
                                        "' --show-dir '" + (out / "show").string() + "' --show 2");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]") != std::string::npos);
  CHECK(r.output.find("Evaluating segm") != std::string::npos);
  CHECK(fs::exists(out / "r.bbox.json"));
  CHECK(fs::exists(out / "r.segm.json"));
  CHECK(fs::exists(out / "r.eval.json"));
  CHECK(fs::exists(out / "show" / "000001.png"));
  CHECK(fs::exists(out / "show" / "000002.png"));
}

TEST_CASE("gcnet_test_det on the scenes written as COCO files equals it on the generated scenes") {
  // The checkpoint's own resize applies to any data: the scenes as files are not resized to
  // COCO's 1333 x 800 (which gave AP 0 before the training scale was recorded).
  const fs::path out = work_root() / "as_coco";
  data::FashionScenesOptions o;
  o.split = data::SceneSplit::val;
  o.count = 4;
  data::write_fashion_scenes(out.string(), data::FashionScenesDataset(o), {.threads = 1});
  const Run generated = test::run_program(GCNET_TEST_DET, checkpoint() + " --scenes 4 --threads 1 --score-thr 0 --out '" +
                                                              (out / "generated").string() + "'");
  const Run files = test::run_program(GCNET_TEST_DET, checkpoint() + " --ann '" + (out / "instances.json").string() +
                                                          "' --img-dir '" + (out / "images").string() +
                                                          "' --threads 1 --score-thr 0 --out '" + (out / "files").string() + "'");
  INFO(generated.output);
  INFO(files.output);
  REQUIRE(generated.status == 0);
  REQUIRE(files.status == 0);
  // The same detections, written the same (the tiny model's scores are low: threshold 0 keeps them).
  const auto text = [](const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  const std::string a = text(out / "generated.bbox.json"), b = text(out / "files.bbox.json");
  CHECK(a.size() > 100);
  CHECK(a == b);
  CHECK(text(out / "generated.segm.json") == text(out / "files.segm.json"));
}

TEST_CASE("gcnet_detect runs on image files and folders without annotations") {
  const fs::path out = work_root() / "detect";
  fs::create_directories(out / "in");
  data::Image img{64, 96, 3, std::vector<std::uint8_t>(64 * 96 * 3, 128)};
  data::write_png((out / "in" / "a.png").string(), img);
  data::write_png((out / "in" / "b.png").string(), img);
  const Run r = test::run_program(GCNET_DETECT, checkpoint() + " '" + (out / "in").string() + "' --threads 1 --out '" +
                                      (out / "det.json").string() + "' --show-dir '" + (out / "show").string() + "'");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(fs::exists(out / "det.json"));
  CHECK(fs::exists(out / "show" / "a.png"));
  CHECK(fs::exists(out / "show" / "b.png"));
}

TEST_CASE("a negative --score-thr is a clear error") {
  for (const char* program : {GCNET_TEST_DET, GCNET_DETECT}) {
    const Run r = test::run_program(program, checkpoint() + (std::string(program) == GCNET_DETECT ? " x.png" : "") +
                                   " --score-thr -0.5");
    INFO(r.output);
    CHECK(r.status != 0);
    CHECK(r.output.find("--score-thr must be a score in [0, 1], got -0.5") != std::string::npos);
  }
}

TEST_CASE("an annotation file whose categories disagree with the checkpoint's classes is refused") {
  const fs::path ann = work_root() / "coco" / "three.json";
  write_text(ann, R"({"images": [{"id": 1, "file_name": "a.png", "height": 32, "width": 32}], "annotations": [],
                      "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "bird"}]})");
  const Run r = test::run_program(GCNET_TEST_DET, checkpoint() + " --ann '" + ann.string() + "' --img-dir '" +
                                        ann.parent_path().string() + "'");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK(r.output.find(ann.string() + " has 3 categories (cat, dog, bird) but the checkpoint") != std::string::npos);
  CHECK(r.output.find("is a detector of 10 classes") != std::string::npos);
}

TEST_CASE("an image that cannot be read is a clear error naming it") {
  const fs::path bad = work_root() / "bad" / "broken.png";
  write_text(bad, "this is not a PNG");
  const Run r = test::run_program(GCNET_DETECT, checkpoint() + " '" + bad.string() + "' --out '" +
                                      (bad.parent_path() / "d.json").string() + "'");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK(r.output.find("cannot read the image") != std::string::npos);
  CHECK(r.output.find(bad.string()) != std::string::npos);
  CHECK(!fs::exists(bad.parent_path() / "d.json"));
}

TEST_CASE("a checkpoint of another preset is refused") {
  const Run r = test::run_program(GCNET_TEST_DET, checkpoint() + " --preset torchvision --scenes 2");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK(r.output.find("a checkpoint of the preset 'mask-rcnn_r18-syncbn-gcb-r4-c3-c5_fpn_1x_coco' (mmdet family), "
                      "but --preset asks for 'torchvision'") != std::string::npos);
}
