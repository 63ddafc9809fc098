// gcnet_test_seg: evaluates a gcnet_train_seg checkpoint as mmseg's tools/test.py does: whole or
// sliding-window inference, optionally multi-scale + flip (--aug-test), mmseg's IoUMetric
// (dataset-summed histograms, per-class IoU and Acc, mIoU, mAcc, aAcc) printed as a table and
// written as JSON with the confusion matrix. --show-dir writes side-by-side pictures: input,
// ground truth, prediction (in the dataset's palette) and the GC head's attention (the softmax of
// conv_mask over the H*W positions) as a heatmap over the input.
//   gcnet_test_seg WORK_DIR/latest.safetensors [--data DIR] [--aug-test] [--mode slide --crop 512
//                  --stride 341] [--show-dir DIR] [--out results.json]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "gcnet/core/parallel.hpp"
#include "gcnet/data/image.hpp"
#include "gcnet/data/loader.hpp"
#include "gcnet/data/picture.hpp"
#include "gcnet/io/atomic_file.hpp"
#include "gcnet/io/checkpoint.hpp"
#include "gcnet/seg/inference.hpp"
#include "gcnet/seg/iou_report.hpp"
#include "gcnet/seg/segmentor_config.hpp"
#include "gcnet/train/progress.hpp"
#include "seg_data.hpp"

using namespace gcnet;

namespace {

struct Settings {
  std::string checkpoint, out, show_dir;
  seg_example::DataChoice data;
  std::string mode = "whole";
  index_t crop = 512, stride = 341, batch = 0;
  index_t img_scale = -1;  // -1: the checkpoint's training scale (metadata "img_scale"), 0: none
  int show = 16, threads = 0;
  bool aug_test = false, no_flip = false;
  std::vector<double> ratios{0.5, 0.75, 1.0, 1.25, 1.5, 1.75};
};

// Back to 0..255 RGB from the normalised image [C, H, W] of batch item n.
data::Image denormalize(const Tensor<float>& images, index_t n) {
  const auto norm = seg_example::normalize();
  const index_t C = images.size(1), H = images.size(2), W = images.size(3);
  data::Image im{H, W, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(H * W * 3))};
  for (index_t y = 0; y < H; ++y)
    for (index_t x = 0; x < W; ++x)
      for (index_t c = 0; c < 3; ++c) {
        const index_t ci = C == 1 ? 0 : c;
        const float v = images.at({n, ci, y, x}) * norm.std[static_cast<std::size_t>(ci)] + norm.mean[static_cast<std::size_t>(ci)];
        im.at(y, x, c) = static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
  return im;
}

// A label map in the palette (ignored pixels black).
data::Image colorize(const Tensor<std::int64_t>& labels, index_t n, const data::SegClasses& classes) {
  const index_t H = labels.size(1), W = labels.size(2);
  data::Image im{H, W, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(H * W * 3), 0)};
  for (index_t y = 0; y < H; ++y)
    for (index_t x = 0; x < W; ++x) {
      const std::int64_t k = labels.at({n, y, x});
      if (k < 0 || k >= classes.size()) continue;
      for (index_t c = 0; c < 3; ++c) im.at(y, x, c) = classes.palette[static_cast<std::size_t>(k)][static_cast<std::size_t>(c)];
    }
  return im;
}

// The attention map [h, w] of image n (bilinearly up to the input's size, scaled to its maximum)
// as a heatmap blended over the input: blue (low) to red (high).
data::Image heatmap(const data::Image& input, const Tensor<float>& attention, index_t n) {
  const index_t h = attention.size(2), w = attention.size(3);
  std::vector<double> map(static_cast<std::size_t>(h * w));
  for (index_t i = 0; i < h * w; ++i) map[static_cast<std::size_t>(i)] = attention[n * h * w + i];
  return data::heatmap_over(input, map.data(), h, w, /*opacity=*/0.55);
}

template <class Seg>
int evaluate(Seg& seg, const Settings& s, const data::SegClasses& classes) {
  const index_t batch = s.batch > 0 ? s.batch : (s.data.folder.empty() ? 8 : 1);  // folder images differ in size
  auto [dataset, dataset_classes] = seg_example::make_dataset(s.data, /*train=*/false,
                                                              data::Compose{seg_example::normalize()});
  GCNET_CHECK(dataset_classes.size() == classes.size(), s.checkpoint, ": the model has ", classes.size(),
              " classes but the data has ", dataset_classes.size());
  data::DataLoader loader(std::move(dataset), {.batch_size = batch, .shuffle = false, .workers = 1, .drop_last = false});
  seg.set_training(false);
  const bool gc_head = seg.decode_head().options().block == HeadBlock::GlobalContext &&
                       seg.decode_head().options().gc.pooling == Pooling::Attention;
  seg::LogitsFunction<float> logits = [&seg](const Tensor<float>& images) {
    SegOutputs<float, Cpu> out;
    seg.forward(Context::eval(), images, out);
    return out.decode;
  };
  const seg::InferenceOptions io{.mode = s.mode == "slide" ? seg::InferenceMode::slide : seg::InferenceMode::whole,
                                 .crop = Size2(s.crop), .stride = Size2(s.stride),
                                 .align_corners = seg.align_corners()};
  // mmseg's test pipeline: Resize(scale=(S, S), keep_ratio=True) before the model, the logits
  // resized back to the label's size; aug-test ratios are relative to that scale.
  auto tta_for = [&](const Tensor<float>& images) -> std::optional<seg::TtaOptions> {
    const double r = s.img_scale > 0 ? static_cast<double>(s.img_scale) / double(std::max(images.size(2), images.size(3)))
                                     : 1.0;
    if (!s.aug_test && r == 1.0) return std::nullopt;
    std::vector<double> ratios = s.aug_test ? s.ratios : std::vector<double>{1.0};
    for (double& x : ratios) x *= r;
    return seg::TtaOptions{.ratios = ratios, .flip = s.aug_test && !s.no_flip};
  };
  if (!s.show_dir.empty()) std::filesystem::create_directories(s.show_dir);

  seg::IoUMetric metric(classes.size(), 255, classes.names);
  const index_t total = loader.dataset().size();
  const auto t0 = std::chrono::steady_clock::now();
  index_t done = 0;
  int shown = 0;
  for (std::int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
    const data::Batch batch_data = loader.next();
    const std::optional<seg::TtaOptions> tta = tta_for(batch_data.images);
    const seg::Prediction<float> p = seg::predict(logits, batch_data.images, io, tta);
    metric.add(p.labels, batch_data.labels);
    done += batch_data.images.size(0);
    if (!s.show_dir.empty() && shown < s.show) {
      Tensor<float> attention;
      if (gc_head) {  // one whole-image pass (at the test scale) for the GC head's attention on this batch
        const double r = tta ? tta->ratios.front() : 1.0;
        logits(r == 1.0 ? batch_data.images
                        : seg::resize_to(batch_data.images,
                                         seg::scaled_size(batch_data.images.size(2), batch_data.images.size(3), r), false));
        attention = attention_map(seg.decode_head());
      }
      for (index_t n = 0; n < batch_data.images.size(0) && shown < s.show; ++n, ++shown) {
        const data::Image input = denormalize(batch_data.images, n);
        std::vector<data::Image> panels{input, colorize(batch_data.labels, n, classes), colorize(p.labels, n, classes)};
        if (attention.defined()) panels.push_back(heatmap(input, attention, n));
        char name[64];
        std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(batch_data.indices[static_cast<std::size_t>(n)]));
        data::write_png((std::filesystem::path(s.show_dir) / name).string(), data::side_by_side(panels));
      }
    }
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("\r[%lld/%lld] %.1f img/s, eta: %s", static_cast<long long>(done), static_cast<long long>(total),
                double(done) / std::max(el, 1e-9), format_eta(el / double(done) * double(total - done)).c_str());
    std::fflush(stdout);
  }
  std::printf("\n");
  const seg::IoUResults r = metric.compute();
  std::printf("%s", seg::iou_table(r).c_str());
  nlohmann::json j = seg::iou_json(metric);
  j["checkpoint"] = s.checkpoint;
  j["mode"] = s.mode;
  j["aug_test"] = s.aug_test;
  j["img_scale"] = s.img_scale;
  const std::string out = s.out.empty()
                              ? (std::filesystem::path(s.checkpoint).parent_path() / "eval.json").string()
                              : s.out;
  const std::string text = j.dump(2) + "\n";
  io::write_file_atomically(out, [&](io::FileSink& f) { f.write(text.data(), text.size()); });
  std::printf("mIoU %.2f, aAcc %.2f, mAcc %.2f over %lld images\nresults %s\n", r.reported.mean_iou,
              r.reported.all_acc, r.reported.mean_acc, static_cast<long long>(metric.images()), out.c_str());
  if (!s.show_dir.empty())
    std::printf("pictures %s (input | ground truth | prediction%s)\n", s.show_dir.c_str(),
                gc_head ? " | GC attention" : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  s.data.scenes = 500;
  CLI::App app{"gcnet_test_seg: evaluate a gcnet_train_seg checkpoint (per-class IoU/Acc, mIoU, aAcc as mmseg), "
               "optionally with multi-scale + flip test-time augmentation and sliding windows, and draw the "
               "predictions and the GC attention"};
  app.add_option("checkpoint", s.checkpoint, "a checkpoint written by gcnet_train_seg")->required();
  app.add_option("--data", s.data.folder, "a validation folder: images/, labels/ and classes.json (default: the "
                 "generated validation scenes, from Fashion-MNIST's t10k split)");
  app.add_option("--scenes", s.data.scenes, "generated: number of validation scenes")->check(CLI::Range(1, 1 << 24))->capture_default_str();
  app.add_option("--scene-size", s.data.scene_size, "generated: scene side")->check(CLI::Range(128, 4096))->capture_default_str();
  app.add_option("--data-seed", s.data.data_seed, "generated: the scenes' seed")->capture_default_str();
  app.add_option("--mode", s.mode, "whole (the full image at once) or slide (windows of --crop every --stride)")
      ->check(CLI::IsMember({"whole", "slide"}))->capture_default_str();
  app.add_option("--crop", s.crop, "slide: window side")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--stride", s.stride, "slide: window step")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--img-scale", s.img_scale, "resize the images to fit this side before inference (mmseg's test "
                 "Resize, keep ratio; logits resized back to the labels); default: the checkpoint's training "
                 "--img-scale, 0: none")->check(CLI::Range(0, 8192));
  app.add_flag("--aug-test", s.aug_test, "multi-scale (--ratios) + horizontal flip, softmax averaged");
  app.add_option("--ratios", s.ratios, "aug-test image ratios")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_flag("--no-flip", s.no_flip, "aug-test without the flipped passes");
  app.add_option("--batch", s.batch, "images per forward (0: 8 for the scenes, 1 for a folder)")->check(CLI::Range(0, 1024));
  app.add_option("--show-dir", s.show_dir, "write side-by-side pictures here");
  app.add_option("--show", s.show, "how many pictures")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--out", s.out, "results JSON (default: eval.json beside the checkpoint)");
  app.add_option("--threads", s.threads, "OpenMP threads (0: all cores)")->check(CLI::Range(0, 1024));
  CLI11_PARSE(app, argc, argv);
  try {
    if (s.threads > 0) set_num_threads(s.threads);
    const auto meta = io::read_checkpoint_metadata(s.checkpoint);
    GCNET_CHECK(meta.count("segmentor") && meta.count("classes"), s.checkpoint,
                ": not a gcnet_train_seg checkpoint (no \"segmentor\" / \"classes\" metadata)");
    SegmentorConfig config;
    try {
      config = nlohmann::json::parse(meta.at("segmentor")).get<SegmentorConfig>();
    } catch (const nlohmann::json::exception& e) {
      gcnet::detail::fail(s.checkpoint, ": bad \"segmentor\" metadata (", e.what(), ")");
    }
    if (s.img_scale < 0) {
      s.img_scale = 0;
      if (meta.count("img_scale")) {
        try {
          s.img_scale = std::stoll(meta.at("img_scale"));
        } catch (const std::exception&) {
          s.img_scale = -1;
        }
        GCNET_CHECK(s.img_scale >= 0, s.checkpoint, ": bad \"img_scale\" metadata '", meta.at("img_scale"),
                    "' (expected a side in pixels, 0 for none)");
      }
    }
    const data::SegClasses classes = data::parse_seg_classes(meta.at("classes"), s.checkpoint + " (metadata \"classes\")");
    return with_segmentor(config, [&](auto& seg) {
      io::load_checkpoint(s.checkpoint, seg, nullptr);
      return evaluate(seg, s, classes);
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\ngcnet_test_seg: %s\n", e.what());
    return 2;
  }
}
