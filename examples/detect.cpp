// gcnet_detect: runs a gcnet_train_det checkpoint on image files (PNG, JPEG, BMP; files or
// folders of them), no annotations needed. Writes one JSON with every image's detections (box
// x1 y1 x2 y2 in the image's pixels, class, score, mask as COCO RLE) and, with --show-dir,
// each image with its boxes, class names, scores and masks drawn.
//   gcnet_detect WORK_DIR/latest.safetensors IMAGE_OR_FOLDER... [--out detections.json]
//                [--show-dir DIR] [--score-thr 0.3] [--max-per-img 100]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "det_data.hpp"
#include "det_model.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/data/coco_mask.hpp"
#include "gcnet/data/coco_rle_string.hpp"
#include "gcnet/data/image.hpp"
#include "gcnet/data/picture_detections.hpp"
#include "gcnet/io/atomic_file.hpp"

using namespace gcnet;
namespace fs = std::filesystem;

namespace {

struct Settings {
  std::string checkpoint, out = "detections.json", show_dir, preset;
  std::vector<std::string> inputs;
  det_example::TestSettings test{.score_thr = 0.3};
  index_t scale_w = -1, scale_h = -1;
  int threads = 0;
};

bool is_image_file(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp";
}

// The files named, folders expanded to their image files (sorted by name, not recursive).
std::vector<std::string> list_images(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> here;
      for (const auto& e : fs::directory_iterator(in))
        if (e.is_regular_file() && is_image_file(e.path())) here.push_back(e.path().string());
      GCNET_CHECK(!here.empty(), in, ": no .png, .jpg, .jpeg or .bmp files in this folder");
      std::sort(here.begin(), here.end());
      files.insert(files.end(), here.begin(), here.end());
    } else {
      GCNET_CHECK(fs::exists(in, ec), in, ": no such file or folder");
      files.push_back(in);
    }
  }
  return files;
}

// The image as a detection sample (no annotations), through the test pipeline.
data::DetSample load_sample(const std::string& file, std::int64_t id, const data::DetCompose& pipeline) {
  data::Image img;
  try {
    img = data::read_image(file);
  } catch (const std::exception& e) {
    gcnet::detail::fail("cannot read the image: ", e.what());
  }
  data::DetSample s;
  s.image = Tensor<float>(Shape{img.height, img.width, 3});
  for (index_t p = 0; p < img.height * img.width; ++p)
    for (index_t c = 0; c < 3; ++c)
      s.image[p * 3 + c] = img.pixels[static_cast<std::size_t>(img.channels == 3 ? p * 3 + c : p)];
  s.boxes = Tensor<float>(Shape{0, 4});
  s.labels = Tensor<std::int64_t>(Shape{0});
  s.ignore_boxes = Tensor<float>(Shape{0, 4});
  s.meta.image_id = id;
  s.meta.file = file;
  s.meta.ori_h = s.meta.img_h = s.meta.pad_h = img.height;
  s.meta.ori_w = s.meta.img_w = s.meta.pad_w = img.width;
  Rng rng(0, 0);
  pipeline(s, rng);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  CLI::App app{"gcnet_detect: detect and segment objects in images with a gcnet_train_det checkpoint; writes the "
               "detections as JSON and, with --show-dir, pictures of them"};
  app.add_option("checkpoint", s.checkpoint, "a checkpoint written by gcnet_train_det")->required();
  app.add_option("images", s.inputs, "image files (PNG, JPEG, BMP) or folders of them")->required();
  app.add_option("--out", s.out, "the detections JSON")->capture_default_str();
  app.add_option("--show-dir", s.show_dir, "write each image with its detections drawn here");
  app.add_option("--preset", s.preset, "refuse a checkpoint of another preset (mmdet, torchvision)");
  app.add_option("--score-thr", s.test.score_thr, "keep detections scoring at least this")->capture_default_str();
  app.add_option("--max-per-img", s.test.max_per_img, "keep at most this many detections per image")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--scale", s.scale_w, "resize to fit W x H before detecting (keep ratio; default: the training "
                 "data's, recorded in the checkpoint; 0: as they are)")->expected(1);
  app.add_option("--scale-h", s.scale_h, "the H of --scale (default: as --scale)");
  app.add_option("--threads", s.threads, "OpenMP threads (0: all cores)")->check(CLI::Range(0, 1024));
  CLI11_PARSE(app, argc, argv);
  try {
    det_example::check_test_settings(s.test);
    if (s.threads > 0) set_num_threads(s.threads);
    const det_example::CheckpointInfo info = det_example::read_checkpoint_info(s.checkpoint, s.preset);
    // The training data's resize, unless asked otherwise.
    det_example::DataChoice d;
    d.scale_w = info.model.scale_w;
    d.scale_h = info.model.scale_h;
    d.torchvision_norm = info.model.preset == "torchvision";
    if (s.scale_w >= 0) {
      d.scale_w = s.scale_w;
      d.scale_h = s.scale_h >= 0 ? s.scale_h : s.scale_w;
    }
    const data::DetCompose pipeline = det_example::pipeline(d, /*train=*/false);
    const std::vector<std::string> files = list_images(s.inputs);
    std::vector<std::string> names = info.class_names;
    for (index_t k = static_cast<index_t>(names.size()); k < info.num_classes; ++k) names.push_back("class " + std::to_string(k));
    std::vector<data::Rgb8> palette;
    if (info.model.data_kind == "scenes")
      for (index_t c = 1; c <= info.num_classes && c < data::FashionScenesDataset::classes().size(); ++c) {
        const auto& p = data::FashionScenesDataset::classes().palette[static_cast<std::size_t>(c)];
        palette.push_back({p[0], p[1], p[2]});
      }
    det_example::Detector det(info, s.checkpoint);
    std::printf("gcnet_detect: %s, %zu images\n", det.describe().c_str(), files.size());
    if (!s.show_dir.empty()) fs::create_directories(s.show_dir);
    nlohmann::json out = nlohmann::json::array();
    for (std::size_t f = 0; f < files.size(); ++f) {
      const data::DetSample sample = load_sample(files[f], static_cast<std::int64_t>(f + 1), pipeline);
      const data::DetBatchData batch = data::collate_det({sample});
      const Detections<float> dets = det.predict(batch, s.test).at(0);
      nlohmann::json e = {{"file", files[f]}, {"height", sample.meta.ori_h}, {"width", sample.meta.ori_w}};
      nlohmann::json list = nlohmann::json::array();
      for (index_t i = 0; i < dets.size(); ++i) {
        const float* b = dets.boxes.data() + 4 * i;
        const std::int64_t label = dets.labels[i];
        nlohmann::json r = {{"label", label}, {"class", names[static_cast<std::size_t>(label)]},
                            {"score", dets.scores[i]}, {"bbox", {b[0], b[1], b[2], b[3]}}};
        if (dets.masks.defined() && dets.masks.numel() > 0) {
          const data::Rle rle = data::rle_from_mask(dets.masks.data() + i * sample.meta.ori_h * sample.meta.ori_w,
                                                    sample.meta.ori_h, sample.meta.ori_w);
          r["segmentation"] = {{"size", {rle.h, rle.w}}, {"counts", data::rle_to_string(rle)}};
        }
        list.push_back(std::move(r));
      }
      e["detections"] = std::move(list);
      out.push_back(std::move(e));
      std::printf("%s: %lld detections\n", files[f].c_str(), static_cast<long long>(dets.size()));
      if (!s.show_dir.empty()) {
        const data::Image picture = data::read_image(files[f]);
        const data::DrawDetectionsOptions o{.score_thr = s.test.score_thr,
                                            .upscale = std::max(picture.width, picture.height) < 400 ? 3 : 1};
        const fs::path name = fs::path(s.show_dir) / (fs::path(files[f]).stem().string() + ".png");
        data::write_png(name.string(), data::draw_detections(picture, dets, names, palette, o));
      }
    }
    const std::string text = out.dump(1) + "\n";
    io::write_file_atomically(s.out, [&](io::FileSink& file) { file.write(text.data(), text.size()); });
    std::printf("detections %s%s%s\n", s.out.c_str(), s.show_dir.empty() ? "" : ", pictures ", s.show_dir.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gcnet_detect: %s\n", e.what());
    return 2;
  }
}
