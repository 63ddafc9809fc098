// gcnet_test_det: evaluates a gcnet_train_det checkpoint as mmdet's tools/test.py with CocoMetric
// does: inference on the validation data (the generated validation scenes by default, or a COCO
// annotation file + image folder), the results written as COCO results JSON (<out>.bbox.json,
// <out>.segm.json, atomically), and the library's COCOeval (pycocotools' numbers) for boxes and
// masks: the 12 summary numbers each and the per-class AP table. --show-dir draws ground truth
// and detections (boxes, class names, scores, coloured masks) side by side.
//   gcnet_test_det WORK_DIR/latest.safetensors [--ann FILE --img-dir DIR] [--show-dir DIR]
//                  [--score-thr 0.05] [--max-per-img 100] [--out PREFIX]
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "det_data.hpp"
#include "det_model.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/data/coco_results.hpp"
#include "gcnet/data/picture.hpp"
#include "gcnet/data/picture_detections.hpp"
#include "gcnet/eval/coco_eval.hpp"
#include "gcnet/eval/coco_eval_load.hpp"
#include "gcnet/io/atomic_file.hpp"
#include "gcnet/train/progress.hpp"

using namespace gcnet;

namespace {

struct Settings {
  std::string checkpoint, out, show_dir, preset;
  det_example::DataChoice data;
  det_example::TestSettings test;
  index_t batch = 0;
  int show = 16, threads = 0;
  double show_score_thr = 0.3;
};

const char* const kStatNames[12] = {"AP", "AP50", "AP75", "APs", "APm", "APl",
                                    "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};

nlohmann::json number_or_null(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

nlohmann::json eval_json(const eval::CocoEvalResult& r, const det_example::DetData& d) {
  nlohmann::json j;
  for (int i = 0; i < 12; ++i) j[kStatNames[i]] = r.stats[static_cast<std::size_t>(i)];
  j["summary"] = r.lines;
  nlohmann::json cats = nlohmann::json::array();
  for (const auto& c : r.per_category) {
    std::string name;
    for (std::size_t k = 0; k < d.cat_ids.size(); ++k)
      if (d.cat_ids[k] == c.category_id) name = d.class_names[k];
    cats.push_back({{"category_id", c.category_id}, {"name", name}, {"AP", number_or_null(c.ap)},
                    {"AP50", number_or_null(c.ap50)}, {"AP75", number_or_null(c.ap75)}});
  }
  j["per_category"] = cats;
  return j;
}

void print_table(const char* what, const eval::CocoEvalResult& r, const det_example::DetData& d) {
  std::printf("\nEvaluating %s (COCOeval):\n%s", what, r.summary().c_str());
  std::printf("per-class %s AP (area all, maxDets 100; nan: no ground truth of the class):\n", what);
  std::printf("  %-14s %6s %6s %6s\n", "class", "AP", "AP50", "AP75");
  for (const auto& c : r.per_category) {
    std::string name = std::to_string(c.category_id);
    for (std::size_t k = 0; k < d.cat_ids.size(); ++k)
      if (d.cat_ids[k] == c.category_id) name = d.class_names[k];
    std::printf("  %-14s %6.1f %6.1f %6.1f\n", name.substr(0, 14).c_str(), 100 * c.ap, 100 * c.ap50, 100 * c.ap75);
  }
}

// Ground truth of one sample as Detections (score 1), for the left panel of --show-dir.
Detections<float> gt_as_detections(const data::DetSample& s) {
  Detections<float> d;
  d.boxes = s.boxes;
  d.labels = s.labels;
  d.scores = Tensor<float>(Shape{s.num_instances()});
  std::fill_n(d.scores.data(), d.scores.numel(), 1.0f);
  d.masks = s.masks;
  return d;
}

int evaluate(det_example::Detector& det, const Settings& s, const det_example::DetData& data) {
  const index_t batch = s.batch > 0 ? s.batch : (s.data.coco() ? 1 : 8);
  data::DetLoader<det_example::AnyDetDataset> loader(
      data.dataset, {.batch_size = batch, .shuffle = false, .drop_last = false, .prefetch = true});
  if (!s.show_dir.empty()) std::filesystem::create_directories(s.show_dir);
  std::vector<data::CocoResult> boxes, masks;
  const index_t total = data.dataset.size();
  const auto t0 = std::chrono::steady_clock::now();
  index_t done = 0;
  int shown = 0;
  for (std::int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
    const data::DetBatchData bd = loader.next();
    const std::vector<Detections<float>> dets = det.predict(bd, s.test);
    for (index_t n = 0; n < bd.size(); ++n) {
      const Detections<float>& d = dets[static_cast<std::size_t>(n)];
      const data::DetMeta& meta = bd.metas[static_cast<std::size_t>(n)];
      const std::vector<data::Rle> rles = d.masks.defined() ? data::encode_masks(d.masks) : std::vector<data::Rle>{};
      for (auto& r : data::coco_results_of_image(meta.image_id, d.boxes, d.scores, d.labels, data.cat_ids)) boxes.push_back(r);
      if (!rles.empty())
        for (auto& r : data::coco_results_of_image(meta.image_id, d.boxes, d.scores, d.labels, data.cat_ids, rles))
          masks.push_back(r);
      if (!s.show_dir.empty() && shown < s.show) {
        const index_t i = bd.indices[static_cast<std::size_t>(n)];
        const data::Image picture = data.original(i, meta);
        const data::DrawDetectionsOptions o{.score_thr = s.show_score_thr, .upscale = picture.width < 400 ? 3 : 1};
        // The ground truth at the original size: the sample as loaded, without the pipeline.
        const data::DetSample gt = data.load(i);
        data::DrawDetectionsOptions og = o;
        og.show_scores = false;
        og.score_thr = 0;
        const data::Image panels = data::side_by_side(
            {data::draw_detections(picture, gt_as_detections(gt), data.class_names, data.palette, og),
             data::draw_detections(picture, d, data.class_names, data.palette, o)});
        char name[64];
        std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(meta.image_id));
        data::write_png((std::filesystem::path(s.show_dir) / name).string(), panels);
        ++shown;
      }
    }
    done += bd.size();
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("\r[%lld/%lld] %.1f img/s, eta: %s", static_cast<long long>(done), static_cast<long long>(total),
                double(done) / std::max(el, 1e-9), format_eta(el / double(done) * double(total - done)).c_str());
    std::fflush(stdout);
  }
  std::printf("\n");
  const std::string prefix = s.out.empty()
                                 ? (std::filesystem::path(s.checkpoint).parent_path() / "results").string()
                                 : s.out;
  data::write_coco_results(prefix + ".bbox.json", boxes, {.type = data::CocoResultType::bbox});
  if (!masks.empty() || det.has_masks())
    data::write_coco_results(prefix + ".segm.json", masks, {.type = data::CocoResultType::segm});

  const data::CocoInstances gt = data.ground_truth();
  nlohmann::json j;
  j["checkpoint"] = s.checkpoint;
  j["data"] = s.data.describe();
  j["images"] = total;
  j["score_thr"] = s.test.score_thr;
  j["max_per_img"] = s.test.max_per_img;
  const eval::CocoEvalResult rb = eval::coco_evaluate(gt, boxes, eval::IouType::bbox);
  print_table("bbox", rb, data);
  j["bbox"] = eval_json(rb, data);
  double mask_ap = std::nan("");
  if (det.has_masks()) {
    const eval::CocoEvalResult rm = eval::coco_evaluate(gt, masks, eval::IouType::segm);
    print_table("segm", rm, data);
    j["segm"] = eval_json(rm, data);
    mask_ap = rm.stats[0];
  }
  const std::string text = j.dump(2) + "\n";
  io::write_file_atomically(prefix + ".eval.json", [&](io::FileSink& f) { f.write(text.data(), text.size()); });
  std::printf("\nbbox AP %.1f, segm AP %.1f over %lld images\nresults %s.bbox.json%s, numbers %s.eval.json\n",
              100 * rb.stats[0], 100 * mask_ap, static_cast<long long>(total), prefix.c_str(),
              det.has_masks() ? (" " + prefix + ".segm.json").c_str() : "", prefix.c_str());
  if (!s.show_dir.empty()) std::printf("pictures %s (ground truth | detections)\n", s.show_dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  s.data.scenes = 500;
  CLI::App app{"gcnet_test_det: evaluate a gcnet_train_det checkpoint: COCO box and mask AP (pycocotools' 12 numbers "
               "each, per-class AP), results JSON, and pictures of the detections"};
  app.add_option("checkpoint", s.checkpoint, "a checkpoint written by gcnet_train_det")->required();
  app.add_option("--ann", s.data.ann, "COCO instances JSON of the evaluation images (default: the generated "
                 "validation scenes, from Fashion-MNIST's t10k split)");
  app.add_option("--img-dir", s.data.img_dir, "the folder of --ann's images");
  app.add_option("--scenes", s.data.scenes, "generated: number of validation scenes")->check(CLI::Range(1, 1 << 24))->capture_default_str();
  app.add_option("--scene-size", s.data.scene_size, "generated: scene side")->check(CLI::Range(128, 4096))->capture_default_str();
  app.add_option("--data-seed", s.data.data_seed, "generated: the scenes' seed")->capture_default_str();
  app.add_option("--preset", s.preset, "refuse a checkpoint of another preset (mmdet, torchvision); default: the "
                 "checkpoint's own");
  app.add_option("--score-thr", s.test.score_thr, "drop detections scoring below this (mmdet test_cfg.rcnn.score_thr)")
      ->capture_default_str();
  app.add_option("--max-per-img", s.test.max_per_img, "keep at most this many detections per image")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--batch", s.batch, "images per forward (0: 8 for the scenes, 1 for COCO)")->check(CLI::Range(0, 1024));
  app.add_option("--show-dir", s.show_dir, "write pictures here: ground truth | detections");
  app.add_option("--show", s.show, "how many pictures")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--show-score-thr", s.show_score_thr, "draw detections scoring at least this")->capture_default_str();
  app.add_option("--out", s.out, "results prefix: PREFIX.bbox.json, PREFIX.segm.json, PREFIX.eval.json (default: "
                 "results.* beside the checkpoint)");
  app.add_option("--threads", s.threads, "OpenMP threads (0: all cores)")->check(CLI::Range(0, 1024));
  CLI11_PARSE(app, argc, argv);
  try {
    det_example::check_test_settings(s.test);
    if (s.threads > 0) set_num_threads(s.threads);
    const det_example::CheckpointInfo info = det_example::read_checkpoint_info(s.checkpoint, s.preset);
    // The checkpoint's pipeline: its resize and normalisation.
    s.data.scale_w = info.model.scale_w;
    s.data.scale_h = info.model.scale_h;
    s.data.torchvision_norm = info.model.preset == "torchvision";
    const det_example::DetData data = det_example::make_det_data(s.data, /*train=*/false);
    det_example::check_classes(info, data, s.data.coco() ? s.data.ann : "the generated scenes");
    det_example::Detector det(info, s.checkpoint);
    std::printf("gcnet_test_det: %s, %lld images\n", det.describe().c_str(), static_cast<long long>(data.dataset.size()));
    return evaluate(det, s, data);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\ngcnet_test_det: %s\n", e.what());
    return 2;
  }
}
