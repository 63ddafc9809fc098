// The demo's main job: trains a small convolutional network on generated images (oriented
// gratings, examples/toy_data.hpp) and prints the loss as it falls.
//   gcnet_train_toy [--iters 80] [--batch 32] [--lr 0.05] [--seed 1] [--work-dir DIR]
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "gcnet/gcnet.hpp"
#include "toy_data.hpp"

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

// Writes `text` to `path` atomically (temporary file, then rename).
void write_atomic(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    GCNET_CHECK(out.good(), tmp, ": cannot open for writing");
    out << text;
    out.flush();
    GCNET_CHECK(out.good(), tmp, ": write failed");
  }
  std::filesystem::rename(tmp, path);
}

int main(int argc, char** argv) {
  CLI::App app{"gcnet demo: train a small CNN on generated oriented gratings"};
  int iters = 80, batch = 32, size = 32;
  double lr = 0.05;
  std::uint64_t seed = 1;
  std::string work_dir = "work/demo";
  app.add_option("--iters", iters, "training iterations")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "batch size")->check(CLI::Range(2, 4096));
  app.add_option("--size", size, "image size")->check(CLI::Range(8, 512));
  app.add_option("--lr", lr, "learning rate")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "random seed (weights and data)");
  app.add_option("--work-dir", work_dir, "folder for the run's summary");
  CLI11_PARSE(app, argc, argv);

  try {
    manual_seed(seed);
    ToyNet net = make_net();
    Sgd<float> opt(named_parameters(net), {.lr = lr, .momentum = 0.9, .weight_decay = 1e-4});
    CrossEntropyLoss<float> loss_fn;
    Rng data_rng(seed, /*stream=*/1);
    std::printf("gcnet demo: %s\n%lld parameters, batch %d, %d iterations, %d threads\n", net.describe().c_str(),
                static_cast<long long>(parameter_count(net)), batch, iters, num_threads());

    Tensor<float> images, logits, dlogits, dimages;
    Tensor<std::int64_t> labels;
    double first = 0, last = 0, window = 0;
    const int report = std::max(1, iters / 8);
    const auto start = std::chrono::steady_clock::now();
    for (int it = 1; it <= iters; ++it) {
      toy::make_batch(data_rng, images, labels, batch, size);
      net.forward(images, logits);
      const float loss = loss_fn.forward(logits, labels);
      GCNET_CHECK(std::isfinite(loss), "training diverged: loss ", loss, " at iteration ", it);
      dlogits = zeros<float>(logits.shape());
      loss_fn.backward(dlogits);
      dimages = zeros<float>(images.shape());
      net.backward(images, logits, dlogits, dimages);
      opt.step();
      window += loss;
      if (it % report == 0 || it == iters) {
        const int n = it % report == 0 ? report : it % report;
        const double mean = window / n;
        if (first == 0) first = mean;
        last = mean;
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("iter %4d  loss %.4f  (%.1f it/s)\n", it, mean, it / secs);
        window = 0;
      }
    }

    // Held-out accuracy in eval mode (running BN statistics).
    set_training(net, false);
    int correct = 0, total = 0;
    for (int b = 0; b < 4; ++b) {
      toy::make_batch(data_rng, images, labels, batch, size);
      net.forward(images, logits);
      for (index_t i = 0; i < logits.size(0); ++i) {
        index_t best = 0;
        for (index_t k = 1; k < logits.size(1); ++k)
          if (logits.at({i, k}) > logits.at({i, best})) best = k;
        correct += best == labels[i];
        ++total;
      }
    }
    const double accuracy = double(correct) / total;
    std::printf("loss %.4f -> %.4f (%s); held-out accuracy %.1f%% (chance %.1f%%)\n", first, last,
                last < first ? "falling" : "NOT falling", 100 * accuracy, 100.0 / toy::kClasses);

    std::filesystem::create_directories(work_dir);
    char summary[256];
    std::snprintf(summary, sizeof summary, "{\"first_loss\": %.6f, \"last_loss\": %.6f, \"accuracy\": %.4f}\n", first,
                  last, accuracy);
    write_atomic(std::filesystem::path(work_dir) / "summary.json", summary);
    return last < first ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gcnet_train_toy: %s\n", e.what());
    return 2;
  }
}
