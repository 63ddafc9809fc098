#pragma once
// The classification ablation: for each variant and seed, train AblationClassifier on a
// Fashion-MNIST subset and measure top-1 on t10k; cost and latency once per variant; one table.
// Identical conditions for every variant of a seed:
//   - data order and augmentation depend only on the seed (ablate/fashion_batches.hpp);
//   - initialization: the layers every variant has (stem, residual blocks, classifier) get the
//     values of the baseline built with manual_seed(seed); the block's own parameters are drawn
//     after manual_seed(seed ^ kBlockKey). So two variants of one seed differ only in the block;
//   - the schedule: SGD with momentum, linear warm-up then linear decay to 0, same iterations.
// On the CPU at a fixed thread count the same settings give the same accuracies to the last digit.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/ablate/classifier.hpp"
#include "gcnet/ablate/cost.hpp"
#include "gcnet/ablate/fashion_batches.hpp"
#include "gcnet/ablate/latency.hpp"
#include "gcnet/ablate/table.hpp"
#include "gcnet/loss/cross_entropy.hpp"
#include "gcnet/optim/lr_schedule.hpp"
#include "gcnet/optim/sgd.hpp"
#include "gcnet/train/progress.hpp"

namespace gcnet::ablate {

inline constexpr std::uint64_t kBlockKey = 0x626c6f636bull;  // "block"

struct ClassificationSettings {
  ClassifierOptions model{};
  index_t train_images = 12000, test_images = 10000;
  int epochs = 1;
  index_t batch = 64;
  double lr = 0.1, momentum = 0.9, weight_decay = 5e-4;
  index_t warmup_iters = 50;
  bool augment = false;  // shift +-2 px and flip (in this short schedule they cost ~6 points of top-1)
  std::vector<std::uint64_t> seeds{0, 1, 2};
  std::string data_dir;  // Fashion-MNIST folder (empty: data::fashion_mnist_dir())
  index_t eval_batch = 500;
  index_t latency_batch = 64;
  int latency_warmup = 3, latency_repeats = 10;
  bool print = true;
};

inline nlohmann::json settings_json(const ClassificationSettings& s) {
  const auto& m = s.model;
  return {{"stem_channels", m.stem_channels}, {"base_channels", m.base_channels}, {"blocks", m.blocks},
          {"stages", stages_name(m.stages)},  {"train_images", s.train_images},  {"test_images", s.test_images},
          {"epochs", s.epochs},               {"batch", s.batch},                {"lr", s.lr},
          {"momentum", s.momentum},           {"weight_decay", s.weight_decay},  {"warmup_iters", s.warmup_iters},
          {"augment", s.augment},             {"eval_batch", s.eval_batch}};
}

// The variant's network for `seed`, its shared layers initialized as the baseline's (see above).
inline std::unique_ptr<AblationClassifier> build_classifier(const ClassifierOptions& o, const Variant& v,
                                                            std::uint64_t seed) {
  manual_seed(seed);
  auto base = std::make_unique<AblationClassifier>(o, find_variant("none"));
  if (v.family == BlockFamily::None) return base;
  manual_seed(seed ^ kBlockKey);
  auto net = std::make_unique<AblationClassifier>(o, v);
  std::map<std::string, Param<float, Cpu>*> shared;
  base->visit_parameters("", [&](const std::string& n, Param<float, Cpu>& p) { shared[n] = &p; });
  index_t copied = 0;
  net->visit_parameters("", [&](const std::string& n, Param<float, Cpu>& p) {
    auto it = shared.find(n);
    if (it == shared.end()) return;
    GCNET_CHECK(it->second->value.shape() == p.value.shape(), "build_classifier: ", n, " differs in shape");
    copy(it->second->value, p.value);
    ++copied;
  });
  GCNET_CHECK(copied == static_cast<index_t>(shared.size()), "build_classifier: the ", v.name, " network lacks ",
              static_cast<index_t>(shared.size()) - copied, " of the baseline's parameters");
  return net;
}

// Top-1 accuracy (%) on the test subset, in eval mode; leaves the network in training mode.
inline double evaluate_top1(AblationClassifier& net, const FashionSubset& d, index_t eval_batch) {
  net.set_training(false);
  Tensor<float> images, logits;
  Tensor<std::int64_t> labels;
  index_t correct = 0;
  for (index_t start = 0; start < d.test_count; start += eval_batch) {
    const index_t n = std::min(eval_batch, d.test_count - start);
    test_batch(d, start, n, images, labels);
    net.forward(images, logits);
    const index_t K = logits.size(1);
    for (index_t i = 0; i < n; ++i) {
      index_t best = 0;
      for (index_t k = 1; k < K; ++k)
        if (logits[i * K + k] > logits[i * K + best]) best = k;
      correct += best == labels[i];
    }
  }
  net.set_training(true);
  return 100.0 * double(correct) / double(d.test_count);
}

inline std::int64_t iterations_per_epoch(const ClassificationSettings& s) { return s.train_images / s.batch; }
inline std::int64_t total_iterations(const ClassificationSettings& s) { return iterations_per_epoch(s) * s.epochs; }

struct TrainResult {
  double accuracy = 0, seconds = 0, final_loss = 0;
};

// Trains `net` (built by build_classifier for `seed`); `on_iter(iter, loss)` after every step.
inline TrainResult train_classifier(AblationClassifier& net, const FashionSubset& d, const ClassificationSettings& s,
                                    std::uint64_t seed,
                                    const std::function<void(std::int64_t, double)>& on_iter = {}) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t per_epoch = iterations_per_epoch(s), total = total_iterations(s);
  GCNET_CHECK(per_epoch > 0, "ablation: --train-images (", s.train_images, ") must be at least --batch (", s.batch, ")");
  Sgd<float> opt(named_parameters(net), {.lr = s.lr, .momentum = s.momentum, .weight_decay = s.weight_decay});
  const PolyLr decay({.max_iters = total, .power = 1.0, .eta_min = 0.0, .convention = Convention::mmcv});
  CrossEntropyLoss<float> ce;
  net.set_training(true);
  Tensor<float> images, logits, dlogits, none;
  Tensor<std::int64_t> labels;
  double loss = 0;
  std::int64_t it = 0;
  for (std::int64_t e = 0; e < s.epochs; ++e) {
    const auto order = epoch_permutation(d.train_count, seed, e);
    for (std::int64_t b = 0; b < per_epoch; ++b, ++it) {
      training_batch(d, order, seed, e, b * s.batch, s.batch, s.augment, images, labels);
      const double warm = it < s.warmup_iters ? 0.1 + 0.9 * double(it) / double(s.warmup_iters) : 1.0;
      opt.set_lr(decay.lr(s.lr, it) * warm);
      net.forward(images, logits);
      dlogits.resize(logits.shape());
      fill(dlogits, 0.0f);
      loss = double(ce.forward(logits, labels));
      GCNET_CHECK(std::isfinite(loss), "ablation: ", net.describe(), " seed ", seed, ": the loss is ", loss,
                  " at iteration ", it + 1);
      ce.backward(dlogits);
      net.backward(images, logits, dlogits, none);
      opt.step();
      if (on_iter) on_iter(it, loss);
    }
  }
  TrainResult r;
  r.final_loss = loss;
  r.accuracy = evaluate_top1(net, d, s.eval_batch);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// Called with each trained network (e.g. to keep the NL and GC models for the analysis).
using TrainedHook = std::function<void(const Variant&, std::uint64_t seed, std::unique_ptr<AblationClassifier>)>;

// The whole ablation: every variant x seed trained, costs and latency per variant, one table.
inline AblationTable run_classification_ablation(const ClassificationSettings& s, const std::vector<Variant>& variants,
                                                 const RunInfo& run, const TrainedHook& keep = {}) {
  GCNET_CHECK(!variants.empty() && !s.seeds.empty(), "ablation: no variants or no seeds");
  GCNET_CHECK(s.batch > 0 && s.epochs > 0 && s.eval_batch > 0 && s.latency_batch > 0,
              "ablation: batch sizes and epochs must be positive");
  const FashionSubset d = load_fashion_subset(s.train_images, s.test_images, s.data_dir);
  const index_t S = data::fashion_mnist_side;
  AblationTable t;
  t.task = "classification";
  t.dataset = "Fashion-MNIST, first " + std::to_string(s.train_images) + " training images x " +
              std::to_string(s.epochs) + (s.augment ? " epochs (shift +-2 px, flip)" : " epochs (no augmentation)") +
              ", top-1 on the first " +
              std::to_string(s.test_images) + " of t10k (" + data::fashion_mnist_dir(s.data_dir) + ")";
  t.metric = "top-1 %";
  t.input_shape = "[1, 1, " + std::to_string(S) + ", " + std::to_string(S) + "]";
  t.model = AblationClassifier(s.model, find_variant("none")).describe() + "; context blocks on " +
            stages_name(s.model.stages) + ", +1 NL before layer3's last block";
  t.cost_note = "MACs = multiply-adds of the convolutions, the linear layer and the blocks' matrix products "
                "(GC/SE/SNL: mask conv, attention-weighted sum, transform convs; NL: 1x1 convs and the two "
                "attention products); block other = the blocks' element-wise and softmax work in FLOPs (softmax, "
                "LayerNorm, ReLU, sigmoid, biases, pooling, fusion over the map: GlobalContextBlock::flops() - 2 x "
                "its MACs; for NL the softmax, biases and residual add, which NonLocal2d::flops() leaves out)";
  t.latency_batch = s.latency_batch;
  t.latency_warmup = s.latency_warmup;
  t.latency_repeats = s.latency_repeats;
  t.seeds = s.seeds;
  t.run = run;
  t.settings = settings_json(s);
  t.settings["train_seconds"] = nlohmann::json::object();

  // Latency first, all variants interleaved (fresh networks, seed 0).
  std::vector<Latency> latency;
  {
    std::vector<std::unique_ptr<AblationClassifier>> nets;
    std::vector<std::vector<Tensor<float>>> scratch(variants.size());
    std::vector<LatencyProbe> probes;
    Tensor<float> x(Shape{s.latency_batch, 1, S, S});
    Rng rng(0x6c6174ull);  // "lat"
    for (index_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(rng.normal());
    for (std::size_t k = 0; k < variants.size(); ++k) {
      nets.push_back(build_classifier(s.model, variants[k], 0));
      probes.push_back(layer_probe(*nets.back(), x, scratch[k]));
    }
    if (s.print) std::printf("latency: %zu variants, batch %lld, %d warm-up + %d interleaved rounds\n", variants.size(),
                             static_cast<long long>(s.latency_batch), s.latency_warmup, s.latency_repeats);
    latency = measure_latencies(probes, s.latency_warmup, s.latency_repeats);
  }
  const std::int64_t runs = static_cast<std::int64_t>(variants.size() * s.seeds.size());
  const std::int64_t iters = total_iterations(s);
  const auto start = std::chrono::steady_clock::now();
  std::int64_t done_runs = 0;
  for (std::size_t vi = 0; vi < variants.size(); ++vi) {
    const Variant& v = variants[vi];
    AblationRow row;
    row.variant = v.name;
    row.label = v.label;
    row.fwd_ms = latency[vi].fwd_ms;
    row.fwd_bwd_ms = latency[vi].fwd_bwd_ms;
    {  // cost on a fresh network of this variant
      auto net = build_classifier(s.model, v, 0);
      const NetworkCost c = network_cost(*net, S, S);
      row.params = c.params;
      row.block_params = c.block_params;
      row.macs = c.macs;
      row.block_macs = c.block_macs;
      row.block_other_flops = c.block_other_flops;
    }
    std::vector<double> secs;
    for (std::uint64_t seed : s.seeds) {
      auto net = build_classifier(s.model, v, seed);
      auto progress = [&](std::int64_t it, double loss) {
        if (!s.print || (it + 1) % 20 != 0) return;
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double frac = (double(done_runs) + double(it + 1) / double(iters)) / double(runs);
        std::printf("\r[%lld/%lld] %-10s seed %llu  iter %lld/%lld  loss %.4f  elapsed %s  eta %s   ",
                    static_cast<long long>(done_runs + 1), static_cast<long long>(runs), v.name.c_str(),
                    static_cast<unsigned long long>(seed), static_cast<long long>(it + 1), static_cast<long long>(iters),
                    loss, format_eta(el).c_str(), format_eta(el / frac * (1 - frac)).c_str());
        std::fflush(stdout);
      };
      const TrainResult r = train_classifier(*net, d, s, seed, progress);
      row.scores.push_back(r.accuracy);
      secs.push_back(r.seconds);
      ++done_runs;
      if (s.print) {
        std::printf("\r[%lld/%lld] %-10s seed %llu  top-1 %.2f%%  (%.1f s, final loss %.4f)%*s\n",
                    static_cast<long long>(done_runs), static_cast<long long>(runs), v.name.c_str(),
                    static_cast<unsigned long long>(seed), r.accuracy, r.seconds, r.final_loss, 30, "");
        std::fflush(stdout);
      }
      if (keep) keep(v, seed, std::move(net));
    }
    t.settings["train_seconds"][v.name] = secs;
    t.rows.push_back(std::move(row));
  }
  return t;
}

}  // namespace gcnet::ablate
