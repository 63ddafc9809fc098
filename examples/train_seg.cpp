// gcnet_train_seg: trains mmseg's GCNet segmentor (EncoderDecoder: ResNetV1c-D8 backbone with an
// optional context block, GCHead / NLHead / FCNHead decode head, auxiliary FCNHead) with the
// Trainer: SGD (mmseg's gcnet configs) or AdamW with mmseg's poly schedule, checkpoints, exact resume, <timestamp>.log.json and the
// loss curve (curve.svg). Under `mpirun -np K` it trains data-parallel with SyncBN.
// Data: the generated Fashion-MNIST scenes (default) or a folder in the mmseg layout (--data).
// The checkpoint records the model (metadata "segmentor") and the classes, so
//   gcnet_test_seg WORK_DIR/latest.safetensors
// evaluates it without repeating the model flags.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include "gcnet/core/parallel.hpp"
#include "gcnet/data/loader.hpp"
#include "gcnet/data/photometric.hpp"
#include "gcnet/optim/adamw.hpp"
#include "gcnet/optim/lr_schedule.hpp"
#include "gcnet/optim/sgd.hpp"
#include "gcnet/seg/segmentor_config.hpp"
#include "gcnet/train/log_plot.hpp"
#include "gcnet/train/time_budget.hpp"
#include "gcnet/train/trainer.hpp"
#include "seg_data.hpp"
#if GCNET_EXAMPLE_MPI
#include "gcnet/dist/mpi_communicator.hpp"
#endif

using namespace gcnet;

namespace {

struct Settings {
  SegmentorConfig model;
  seg_example::DataChoice data;
  double time_budget = 0;  // > 0: seconds from the program's start; sets iters from the measured speed
  std::optional<TimeBudget> budget;  // set from time_budget once the program has started
  int iters = 1000, batch = 8, log_interval = 20, checkpoint_interval = 0, workers = 1, threads = 0;
  index_t crop = 0, img_scale = 0;             // 0: no crop (the scenes' size); folder data: mmseg's crop 512
  index_t scale_long = 2048, scale_short = 512;  // folder data: RandomResize scale (ADE20K's)
  double lr = 0.01, momentum = 0.9, weight_decay = 5e-4, power = 0.9, min_lr = 1e-4;
  std::uint64_t seed = 0;
  std::string work_dir = "work/seg", resume, plugin_stages = "0111", optimizer = "sgd";
  bool allow_settings_change = false, no_aux = false;
};

// mmseg's training pipeline: for a folder RandomResize (ratio 0.5-2) -> RandomCrop
// (cat_max_ratio 0.75) -> RandomFlip -> PhotoMetricDistortion -> Normalize; for the generated
// scenes (already at their size, articles at random scales) RandomFlip -> Normalize.
data::Compose train_pipeline(const Settings& s) {
  data::Compose t;
  if (!s.data.folder.empty()) {
    t.push_back(data::RandomResize{.long_edge = s.scale_long, .short_edge = s.scale_short});
    const index_t crop = s.crop > 0 ? s.crop : 512;
    t.push_back(data::RandomCrop{.crop_h = crop, .crop_w = crop, .cat_max_ratio = 0.75});
  } else {
    if (s.img_scale > 0) t.push_back(data::Resize{.long_edge = s.img_scale, .short_edge = s.img_scale});
    if (s.crop > 0) t.push_back(data::RandomCrop{.crop_h = s.crop, .crop_w = s.crop});
  }
  t.push_back(data::RandomFlip{});
  if (!s.data.folder.empty()) t.push_back(data::PhotoMetricDistortion{});
  t.push_back(seg_example::normalize());
  return t;
}

// Calls f(optimizer) with the optimizer the settings name, over all of the segmentor's parameters.
template <class Seg, class F>
decltype(auto) with_optimizer(Seg& seg, const Settings& s, F&& f) {
  if (s.optimizer == "adamw") {
    AdamW<float> opt(named_parameters(seg), {.lr = s.lr, .weight_decay = s.weight_decay});
    return f(opt);
  }
  Sgd<float> opt(named_parameters(seg), {.lr = s.lr, .momentum = s.momentum, .weight_decay = s.weight_decay});
  return f(opt);
}

TrainerOptions trainer_options(const Settings& s) {
  TrainerOptions topt;
  topt.work_dir = s.work_dir;
  topt.log_interval = s.log_interval;
  topt.checkpoint_interval = s.checkpoint_interval;
  topt.seed = s.seed;
  topt.exp_name = "train_seg";
  return topt;
}

// --time-budget: seconds per training iteration of this very run, from a throwaway copy.
template <class Seg>
double seconds_per_iteration(Seg& seg, const Settings& s, data::AnyDataset dataset) {
  constexpr std::int64_t warmup = 10, timed = 40;
  return time_speed_probe(trainer_options(s), warmup, timed, [&](const TrainerOptions& o, auto time) {
    data::DataLoader loader(std::move(dataset), {.batch_size = s.batch, .shuffle = true, .seed = o.seed, .workers = s.workers});
    const PolyLr schedule({.max_iters = warmup + timed, .power = s.power, .eta_min = s.min_lr});
    auto loss_fn = [&seg](const SegOutputs<float, Cpu>& out, const data::Batch& b, SegOutputs<float, Cpu>& dout) {
      return seg.losses(out, b.labels, dout);
    };
    return with_optimizer(seg, s, [&](auto& opt) {
      Trainer trainer(seg, loader, opt, schedule, loss_fn, o);
      return time(trainer);
    });
  });
}

template <class Seg, class Optimizer>
int train_with(Seg& seg, Optimizer& opt, const Settings& s, const data::SegClasses& classes, data::AnyDataset dataset);

template <class Seg>
int train(Seg& seg, const Settings& s, const data::SegClasses& classes, data::AnyDataset dataset) {
  return with_optimizer(seg, s, [&](auto& opt) { return train_with(seg, opt, s, classes, std::move(dataset)); });
}

template <class Seg, class Optimizer>
int train_with(Seg& seg, Optimizer& opt, const Settings& s, const data::SegClasses& classes, data::AnyDataset dataset) {
  data::DataLoader loader(std::move(dataset),
                          {.batch_size = s.batch, .shuffle = true, .seed = s.seed, .workers = s.workers});
  const PolyLr schedule({.max_iters = s.iters, .power = s.power, .eta_min = s.min_lr});
  auto loss_fn = [&seg](const SegOutputs<float, Cpu>& out, const data::Batch& b, SegOutputs<float, Cpu>& dout) {
    return seg.losses(out, b.labels, dout);
  };
  TrainerOptions topt = trainer_options(s);
  if (s.budget) s.budget->apply(topt);
  const nlohmann::json model_json = s.model;
  // The checkpoint says what it is: gcnet_test_seg rebuilds the model and names the classes from it.
  topt.metadata = {{"segmentor", model_json.dump()}, {"classes", data::seg_classes_json(classes).dump()}};
  if (s.data.folder.empty()) topt.metadata["img_scale"] = std::to_string(s.img_scale);  // gcnet_test_seg's default
  topt.run_settings = {{"model", model_json.dump()},
                       {"batch", std::to_string(s.batch)},
                       {"data", s.data.folder.empty() ? "scenes:" + std::to_string(s.data.scenes) + ":" +
                                                            std::to_string(s.data.scene_size) + ":" +
                                                            std::to_string(s.data.data_seed)
                                                      : s.data.folder},
                       {"crop", std::to_string(s.crop)},
                       {"img_scale", std::to_string(s.img_scale)},
                       {"lr", nlohmann::json(s.lr).dump()},
                       {"optimizer", s.optimizer},
                       {"schedule", nlohmann::json{{"iters", s.iters}, {"power", s.power}, {"min_lr", s.min_lr}}.dump()}};
  topt.allow_settings_change = s.allow_settings_change;
  topt.config = {{"model", model_json}, {"describe", seg.describe()}, {"iters", s.iters}, {"time_budget", s.time_budget}, {"batch", s.batch},
                 {"optimizer", s.optimizer}, {"lr", s.lr}, {"momentum", s.momentum}, {"weight_decay", s.weight_decay}, {"power", s.power},
                 {"min_lr", s.min_lr}, {"crop", s.crop}, {"img_scale", s.img_scale}, {"data", s.data.folder.empty() ? "fashion-mnist scenes" : s.data.folder}};
  Trainer trainer(seg, loader, opt, schedule, loss_fn, topt);
  const bool lead = trainer.rank() == 0;
  if (lead)
    std::printf("gcnet_train_seg: %s\n%lld parameters, %lld training images, batch %d, %d iterations, %d threads, "
                "%d rank(s)\n",
                seg.describe().c_str(), static_cast<long long>(parameter_count(seg)),
                static_cast<long long>(loader.dataset().size()), s.batch, s.iters, num_threads(),
                trainer.world_size());
  if (!s.resume.empty()) {
    trainer.resume(s.resume);
    if (trainer.iter() >= s.iters) {
      if (lead)
        std::printf("%s is at iteration %lld, the end of a run of --iters %d: nothing to train\n", s.resume.c_str(),
                    static_cast<long long>(trainer.iter()), s.iters);
      return 0;
    }
  }
  trainer.run(s.iters);
  if (s.budget) print_budget_outcome(trainer);
  if (!lead) return 0;
  write_curve_and_report(trainer.log_path(), trainer.last_checkpoint(), s.work_dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  // The defaults are the README's demo model: a narrow GC-ResNet-18 V1c-D8 with a GCHead.
  s.model.depth = 18;
  s.model.base_channels = 8;
  s.model.stem_channels = 16;
  s.model.plugin = "gc";
  s.model.ratio = 4;
  s.model.head = "gc";
  s.model.head_channels = 32;
  s.model.aux_channels = 16;
  CLI::App app{"gcnet_train_seg: train mmseg's GCNet segmentor (ResNetV1c-D8 + GCHead / NLHead / FCNHead, auxiliary "
               "FCNHead) on the generated Fashion-MNIST scenes or on your own images.\n"
               "mmseg's gcnet_r50-d8 is: --depth 50 --base-channels 64 --stem-channels 64 --plugin none --head gc "
               "--head-channels 512 --aux-channels 256 --crop 512"};
  auto* model = "Model";
  app.add_option("--depth", s.model.depth, "ResNet depth: 18, 34 (BasicBlock) or 50, 101, 152 (Bottleneck)")
      ->check(CLI::IsMember({18, 34, 50, 101, 152}))->group(model)->capture_default_str();
  app.add_option("--base-channels", s.model.base_channels, "width of layer1 (64 in mmseg; smaller is faster)")
      ->check(CLI::Range(1, 4096))->group(model)->capture_default_str();
  app.add_option("--stem-channels", s.model.stem_channels, "output channels of the deep stem")
      ->check(CLI::Range(2, 4096))->group(model)->capture_default_str();
  app.add_option("--output-stride", s.model.output_stride, "8: ResNetV1c-D8 (mmseg's gcnet_r50-d8); 16: D16, "
                 "a quarter of the work in c4, c5 and the heads for logits at 1/16 of the image")
      ->check(CLI::IsMember({8, 16}))->group(model)->capture_default_str();
  app.add_option("--plugin", s.model.plugin, "context block in the backbone: none, se, gc, snl, nl")
      ->check(CLI::IsMember({"none", "se", "gc", "snl", "nl"}))->group(model)->capture_default_str();
  app.add_option("--ratio", s.model.ratio, "the block's reduction: GC planes C/ratio, SE C/ratio")
      ->check(CLI::PositiveNumber)->group(model)->capture_default_str();
  app.add_option("--plugin-stages", s.plugin_stages, "stages c2..c5 that get the block, as four 0/1 digits")
      ->group(model)->capture_default_str();
  app.add_option("--head", s.model.head, "decode head: fcn, gc (GCHead), nl (NLHead)")
      ->check(CLI::IsMember({"fcn", "gc", "nl"}))->group(model)->capture_default_str();
  app.add_option("--head-channels", s.model.head_channels, "channels of the decode head")
      ->check(CLI::PositiveNumber)->group(model)->capture_default_str();
  app.add_option("--aux-channels", s.model.aux_channels, "channels of the auxiliary FCN head")
      ->check(CLI::PositiveNumber)->group(model)->capture_default_str();
  app.add_flag("--no-aux", s.no_aux, "train without the auxiliary head")->group(model);
  auto* data = "Data";
  app.add_option("--data", s.data.folder, "a training folder: images/, labels/ (PNG label maps) and classes.json "
                 "(default: the generated Fashion-MNIST scenes)")->group(data);
  app.add_option("--scenes", s.data.scenes, "generated: number of training scenes")
      ->check(CLI::Range(1, 1 << 24))->group(data)->capture_default_str();
  app.add_option("--scene-size", s.data.scene_size, "generated: scene side in pixels")
      ->check(CLI::Range(128, 4096))->group(data)->capture_default_str();
  app.add_option("--data-seed", s.data.data_seed, "generated: the scenes' seed")->group(data)->capture_default_str();
  app.add_option("--crop", s.crop, "random crop side (0: none for the scenes, 512 for a folder)")
      ->check(CLI::Range(0, 8192))->group(data)->capture_default_str();
  app.add_option("--img-scale", s.img_scale, "generated: train (and test) at this side, the scenes resized to it "
                 "(mmseg's Resize(scale, keep_ratio)); 0: their own size")
      ->check(CLI::Range(0, 8192))->group(data)->capture_default_str();
  app.add_option("--workers", s.workers, "data loading threads")->check(CLI::Range(0, 64))->group(data)->capture_default_str();
  auto* sched = "Schedule";
  auto* iters = app.add_option("--iters", s.iters, "training iterations")->check(CLI::PositiveNumber)->group(sched)->capture_default_str();
  auto* budget = app.add_option("--time-budget", s.time_budget,
                 "instead of --iters: train as many iterations as fit in this many seconds (counted from the "
                 "program's start, data set-up included) on this machine. A few iterations are timed first to plan "
                 "the schedule's length, which the first half of the run re-sizes to its own speed; the budget's "
                 "end stops training in any case")
      ->check(CLI::PositiveNumber)->group(sched)->excludes(iters);
  app.add_option("--batch", s.batch, "images per iteration (over all ranks)")->check(CLI::Range(1, 4096))->group(sched)->capture_default_str();
  app.add_option("--lr", s.lr, "base learning rate (poly decay)")->check(CLI::PositiveNumber)->group(sched)->capture_default_str();
  app.add_option("--optimizer", s.optimizer, "sgd (momentum, weight decay) or adamw (decoupled weight decay)")
      ->check(CLI::IsMember({"sgd", "adamw"}))->group(sched)->capture_default_str();
  app.add_option("--momentum", s.momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0))->group(sched)->capture_default_str();
  app.add_option("--weight-decay", s.weight_decay, "weight decay (SGD: L2 on the gradient; AdamW: decoupled)")->check(CLI::NonNegativeNumber)->group(sched)->capture_default_str();
  app.add_option("--power", s.power, "poly schedule power")->check(CLI::NonNegativeNumber)->group(sched)->capture_default_str();
  app.add_option("--min-lr", s.min_lr, "poly schedule's final lr")->check(CLI::NonNegativeNumber)->group(sched)->capture_default_str();
  auto* run = "Run";
  app.add_option("--seed", s.seed, "random seed (weights, shuffling, augmentation)")->group(run)->capture_default_str();
  app.add_option("--threads", s.threads, "OpenMP threads (0: all cores)")->check(CLI::Range(0, 1024))->group(run);
  app.add_option("--work-dir", s.work_dir, "folder for the log, checkpoints and curve")->group(run)->capture_default_str();
  app.add_option("--log-interval", s.log_interval, "iterations per progress line")->check(CLI::PositiveNumber)->group(run)->capture_default_str();
  app.add_option("--checkpoint-interval", s.checkpoint_interval, "iterations per checkpoint (0: at the end only)")
      ->check(CLI::NonNegativeNumber)->group(run)->capture_default_str();
  app.add_option("--resume", s.resume, "checkpoint to continue from (e.g. WORK_DIR/latest.safetensors)")
      ->group(run)->excludes(budget);
  app.add_flag("--allow-settings-change", s.allow_settings_change,
               "resume even if the settings differ from the checkpoint's")->group(run);
  CLI11_PARSE(app, argc, argv);

  const auto program_start = std::chrono::steady_clock::now();
  try {
    if (s.threads > 0) set_num_threads(s.threads);
    s.model.plugin_stages = parse_stage_digits(s.plugin_stages, "--plugin-stages");
    s.model.aux = !s.no_aux;
    auto [dataset, classes] = seg_example::make_dataset(s.data, /*train=*/true, train_pipeline(s));
    s.model.num_classes = classes.size();
    if (s.time_budget > 0) {
      s.budget.emplace(s.time_budget, program_start);
      const double per_iter = with_segmentor(s.model, [&](auto& seg) { return seconds_per_iteration(seg, s, dataset); });
      s.iters = static_cast<int>(s.budget->plan(per_iter));
      if (dist::default_communicator().rank() == 0)
        std::printf("time budget %.0f s: set-up and timing took %.1f s, an iteration %.4f s: %d iterations planned "
                    "(re-sized to the run's own speed during its first half)\n", s.time_budget, s.budget->spent(),
                    per_iter, s.iters);
    }
    manual_seed(s.seed);  // the weights as --iters alone gives them, timed or not
    return with_segmentor(s.model, [&](auto& seg) { return train(seg, s, classes, dataset); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gcnet_train_seg: %s\n", e.what());
    return 2;
  }
}
