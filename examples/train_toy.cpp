// The demo's main job: trains a small convolutional network on generated images (oriented
// gratings, examples/toy_data.hpp) with the Trainer, and leaves in the work folder what an
// mmdet run leaves: <timestamp>.log.json, iter_<N>.safetensors + latest.safetensors, and the
// loss/lr curve (curve.svg).
//   gcnet_train_toy [--iters 100] [--batch 32] [--lr 0.05] [--seed 1] [--work-dir DIR]
//                   [--log-interval 10] [--checkpoint-interval 40] [--resume CKPT]
//                   [--allow-settings-change]
// A resume must use the settings the checkpoint recorded (batch, size, samples, lr, seed and
// the schedule, which depends on --iters), or it would not continue the run exactly.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>

#include "gcnet/data/loader.hpp"
#include "gcnet/io/atomic_file.hpp"
#include "gcnet/data/datasets.hpp"
#include "gcnet/gcnet.hpp"
#include "gcnet/train/log_plot.hpp"
#include "gcnet/train/trainer.hpp"
#include "toy_data.hpp"
#if GCNET_EXAMPLE_MPI
// Under `mpirun -np K` the trainer's default communicator is then the MPI world: data parallel.
#include "gcnet/dist/mpi_communicator.hpp"
#endif

using namespace gcnet;

// conv3x3 -> BN -> ReLU, the repeated unit of the toy network.
using ConvBnRelu = Seq<Conv2d<>, BatchNorm2d<>, ReLU<>>;
using ToyNet = Seq<ConvBnRelu, MaxPool2d<>, ConvBnRelu, MaxPool2d<>, ConvBnRelu, GlobalAvgPool2d<>, Flatten<>, Linear<>>;

ConvBnRelu conv_bn_relu(index_t in, index_t out) {
  return ConvBnRelu{Conv2d<>({.in = in, .out = out, .kernel = 3, .padding = 1, .bias = false}), BatchNorm2d<>(out),
                    ReLU<>()}
      .named({"conv", "bn", "relu"});
}

ToyNet make_net() {
  return ToyNet{conv_bn_relu(3, 16),  MaxPool2d<>({.kernel = 2}), conv_bn_relu(16, 32),
                MaxPool2d<>({.kernel = 2}), conv_bn_relu(32, 64), GlobalAvgPool2d<>(),
                Flatten<>(), Linear<>(64, toy::kClasses)};
}

// The generated training set: `n` samples, sample i drawn from Philox stream (seed, 100 + i).
data::InMemoryDataset make_dataset(std::uint64_t seed, index_t n, index_t size) {
  std::vector<data::Sample> samples;
  for (index_t i = 0; i < n; ++i) {
    Rng rng(seed, 100 + static_cast<std::uint64_t>(i));
    const int k = static_cast<int>(rng.below(toy::kClasses));
    samples.push_back({toy::make_image(rng, k, size), {}, k});
  }
  return data::InMemoryDataset(std::move(samples));
}

// Accuracy in eval mode (running BN statistics) on freshly generated images.
double held_out_accuracy(ToyNet& net, std::uint64_t seed, index_t batch, index_t size) {
  set_training(net, false);
  Rng rng(seed, /*stream=*/1);
  Tensor<float> images, logits;
  Tensor<std::int64_t> labels;
  int correct = 0, total = 0;
  for (int b = 0; b < 4; ++b) {
    toy::make_batch(rng, images, labels, batch, size);
    net.forward(images, logits);
    for (index_t i = 0; i < logits.size(0); ++i) {
      index_t best = 0;
      for (index_t k = 1; k < logits.size(1); ++k)
        if (logits.at({i, k}) > logits.at({i, best})) best = k;
      correct += best == labels[i];
      ++total;
    }
  }
  set_training(net, true);
  return double(correct) / total;
}

int main(int argc, char** argv) {
  CLI::App app{"gcnet demo: train a small CNN on generated oriented gratings"};
  int iters = 100, batch = 32, size = 32, samples = 1024, log_interval = 10, ckpt_interval = 40;
  double lr = 0.05;
  std::uint64_t seed = 1;
  std::string work_dir = "work/demo", resume;
  app.add_option("--iters", iters, "training iterations")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "batch size")->check(CLI::Range(2, 4096));
  app.add_option("--size", size, "image size")->check(CLI::Range(8, 512));
  app.add_option("--samples", samples, "generated training images")->check(CLI::Range(2, 1 << 20));
  app.add_option("--lr", lr, "base learning rate")->check(CLI::PositiveNumber);
  // Digits only: CLI11 would read "-1" into the unsigned seed as 2^64 - 1.
  app.add_option("--seed", seed, "random seed (weights and data)")
      ->check(CLI::Validator(
          [](std::string& v) {
            const bool digits = !v.empty() && v.size() <= 20 && v.find_first_not_of("0123456789") == std::string::npos;
            return digits ? std::string() : "must be a non-negative integer, got " + v;
          },
          "UINT"));
  app.add_option("--log-interval", log_interval, "iterations per log line")->check(CLI::PositiveNumber);
  app.add_option("--checkpoint-interval", ckpt_interval, "iterations per checkpoint (0: at the end only)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--work-dir", work_dir, "folder for the log, checkpoints and curve");
  app.add_option("--resume", resume, "checkpoint to continue from (e.g. WORK_DIR/latest.safetensors)");
  bool allow_settings_change = false;
  app.add_flag("--allow-settings-change", allow_settings_change,
               "resume even if the settings differ from the checkpoint's (the run is then not continued exactly)");
  CLI11_PARSE(app, argc, argv);

  try {
    manual_seed(seed);
    ToyNet net = make_net();
    data::DataLoader loader(make_dataset(seed, samples, size),
                            {.batch_size = batch, .shuffle = true, .seed = seed, .workers = 1});
    Sgd<float> opt(named_parameters(net), {.lr = lr, .momentum = 0.9, .weight_decay = 1e-4});
    // mmdet-style: linear warmup from 0.1 x lr, then 10x decays late in the run.
    const std::int64_t warmup = std::max(2, iters / 12);
    const std::vector<std::int64_t> milestones = {iters * 2 / 3, iters * 11 / 12};
    const WarmupMultiStepLr schedule({.warmup = {.start_factor = 0.1, .iters = warmup}, .milestones = milestones});
    CrossEntropyLoss<float> ce;
    auto loss_fn = [&ce](const Tensor<float>& logits, const data::Batch& b, Tensor<float>& dlogits) {
      const double loss = ce.forward(logits, b.labels);
      ce.backward(dlogits);
      return NamedLosses{{"loss_cls", loss}};
    };
    TrainerOptions topt;
    topt.work_dir = work_dir;
    topt.log_interval = log_interval;
    topt.checkpoint_interval = ckpt_interval;
    topt.seed = seed;
    topt.exp_name = "train_toy";
    // What a resume must keep (the trainer adds the seed and the batches per epoch).
    topt.run_settings = {{"batch", std::to_string(batch)},
                         {"size", std::to_string(size)},
                         {"samples", std::to_string(samples)},
                         {"lr", nlohmann::json(lr).dump()},
                         {"schedule", nlohmann::json{{"warmup", warmup}, {"milestones", milestones}}.dump()}};
    topt.allow_settings_change = allow_settings_change;
    topt.config = {{"model", net.describe()}, {"iters", iters},  {"batch", batch},   {"size", size},
                   {"samples", samples},      {"lr", lr},        {"momentum", 0.9},  {"weight_decay", 1e-4},
                   {"warmup", warmup}, {"milestones", milestones}};
    Trainer trainer(net, loader, opt, schedule, loss_fn, topt);

    // Under mpirun every rank trains its shard of each batch; only rank 0 reports and writes.
    const bool lead = trainer.rank() == 0;
    if (lead)
      std::printf("gcnet demo: %s\n%lld parameters, batch %d, %d iterations, %d threads, %d rank(s)\n",
                  net.describe().c_str(), static_cast<long long>(parameter_count(net)), batch, iters, num_threads(),
                  trainer.world_size());
    if (!resume.empty()) {
      trainer.resume(resume);
      if (trainer.iter() >= iters) {  // nothing to train: say so instead of failing on an empty log
        if (lead)
          std::printf("%s is at iteration %lld, the end of a run of --iters %d: nothing to train (to train further, "
                      "pass a larger --iters with --allow-settings-change)\n",
                      resume.c_str(), static_cast<long long>(trainer.iter()), iters);
        return 0;
      }
    }
    trainer.run(iters);
    if (!lead) return 0;

    write_curve_and_report(trainer.log_path(), trainer.last_checkpoint(), work_dir);
    const auto& losses = trainer.loss_curve();
    const double accuracy = held_out_accuracy(net, seed + 1, batch, size);
    if (losses.size() < 2) {
      std::printf("held-out accuracy %.1f%% (chance %.1f%%)\n", 100 * accuracy, 100.0 / toy::kClasses);
      return 0;
    }
    const double first = losses.front().second, last = losses.back().second;
    {  // the run's summary (README), written atomically like the checkpoints
      const std::string text =
          nlohmann::json{{"first_loss", first}, {"last_loss", last}, {"accuracy", accuracy}}.dump() + "\n";
      io::write_file_atomically((std::filesystem::path(work_dir) / "summary.json").string(),
                                [&](io::FileSink& out) { out.write(text.data(), text.size()); });
    }
    std::printf("loss %.4f -> %.4f (%s); held-out accuracy %.1f%% (chance %.1f%%)\n", first, last,
                last < first ? "falling" : "NOT falling", 100 * accuracy, 100.0 / toy::kClasses);
    return last < first ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gcnet_train_toy: %s\n", e.what());
    return 2;
  }
}
