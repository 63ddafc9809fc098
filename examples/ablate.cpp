// gcnet_ablate: the GCNet paper's block ablation under identical conditions, in one table.
// For a task it trains the same network with each variant (ablate/variants.hpp: no block, SE r16,
// GC r16 / r4 / att+mul / avg+add / without LayerNorm, SNL, +1 NL) for every seed, measures the
// cost (params, MACs, the blocks' element-wise and softmax work, fwd and fwd+bwd latency) once
// per variant, and writes <out-dir>/ablation.{md,csv,json} with the run's record. After a
// classification run with the nl variant it adds the paper's attention analysis: the NL block's
// average cosine distances (beside the paper's Table 1) in nl_analysis.{md,json}, and
// attention.png (NL attention for several query points beside the GC block's attention map).
//   gcnet_ablate                                  # the default run: all variants x seeds 0,1,2
//   gcnet_ablate --variants none,gc16,nl --seeds 0 --epochs 1
//   gcnet_ablate --task seg --variants none,gc16 --seeds 0 --seg-iters 20 --seg-scenes 32
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gcnet/ablate/attention_analysis.hpp"
#include "gcnet/ablate/classification.hpp"
#include "gcnet/ablate/seg_task.hpp"
#include "gcnet/ablate/table.hpp"
#include "gcnet/core/parallel.hpp"

#ifndef GCNET_ABLATE_SOURCE_DIR
#define GCNET_ABLATE_SOURCE_DIR "."
#endif

using namespace gcnet;
using namespace gcnet::ablate;

namespace {

std::array<index_t, 4> parse_blocks(const std::string& s) {
  std::array<index_t, 4> b{};
  std::stringstream ss(s);
  std::string item;
  int k = 0;
  while (std::getline(ss, item, ',')) {
    GCNET_CHECK(k < 4, "--blocks: expected four counts like 1,1,2,1, got '", s, "'");
    try {
      b[static_cast<std::size_t>(k++)] = std::stoll(item);
    } catch (const std::exception&) {
      gcnet::detail::fail("--blocks: '", item, "' is not a number (in '", s, "')");
    }
  }
  GCNET_CHECK(k == 4, "--blocks: expected four counts like 1,1,2,1, got '", s, "'");
  for (index_t v : b) GCNET_CHECK(v >= 1 && v <= 64, "--blocks: counts must be in [1, 64], got '", s, "'");
  return b;
}

void print_table_files(const TablePaths& p) {
  std::printf("table %s\n      %s\n      %s\n", p.markdown.c_str(), p.csv.c_str(), p.json.c_str());
}

void write_text(const std::string& path, const std::string& text) {
  io::write_file_atomically(path, [&](io::FileSink& f) { f.write(text.data(), text.size()); });
}

}  // namespace

int main(int argc, char** argv) {
  ClassificationSettings cls;
  SegAblationSettings seg;
  std::string task = "classification", variants = "all", stages = "0111", blocks = "1,1,2,1", out_dir = "work/ablate";
  int threads = 0;
  index_t analysis_images = 1000, picture_images = 4;
  bool no_analysis = false;
  CLI::App app{"gcnet_ablate: train the same network with each global-context variant (none, SE, GC r16/r4/mul/avg/"
               "no-LN, SNL, +1 NL) under identical conditions and report cost and accuracy in one table, plus the "
               "GCNet paper's Non-local attention analysis"};
  app.add_option("--task", task, "classification (Fashion-MNIST top-1) or seg (the Fashion-MNIST scenes, mIoU)")
      ->check(CLI::IsMember({"classification", "seg"}))->capture_default_str();
  app.add_option("--variants", variants, "'all' or a comma-separated subset of: " + variant_names())
      ->capture_default_str();
  app.add_option("--stages", stages, "stages c2..c5 that get the context-family blocks, four 0/1 digits "
                 "(+1 NL always sits before layer3's last block)")->capture_default_str();
  app.add_option("--seeds", cls.seeds, "seeds (each variant trains once per seed)")->delimiter(',')->capture_default_str();
  app.add_option("--threads", threads, "OpenMP threads (0: all cores); results are reproducible at a fixed count")
      ->check(CLI::Range(0, 1024));
  app.add_option("--out-dir", out_dir, "folder for the table, the analysis and the picture")->capture_default_str();
  auto* c = "Classification";
  app.add_option("--train-images", cls.train_images, "training images (the first N of the train split)")
      ->check(CLI::Range(1, 60000))->group(c)->capture_default_str();
  app.add_option("--test-images", cls.test_images, "test images (the first N of t10k)")
      ->check(CLI::Range(1, 10000))->group(c)->capture_default_str();
  app.add_option("--epochs", cls.epochs, "epochs over the training images")->check(CLI::Range(1, 1000))->group(c)->capture_default_str();
  app.add_option("--batch", cls.batch, "batch size")->check(CLI::Range(1, 4096))->group(c)->capture_default_str();
  app.add_option("--lr", cls.lr, "peak learning rate (SGD, warm-up then linear decay)")->check(CLI::PositiveNumber)->group(c)->capture_default_str();
  app.add_option("--weight-decay", cls.weight_decay, "SGD weight decay")->check(CLI::NonNegativeNumber)->group(c)->capture_default_str();
  app.add_option("--warmup-iters", cls.warmup_iters, "linear warm-up iterations")->check(CLI::NonNegativeNumber)->group(c)->capture_default_str();
  app.add_option("--base-channels", cls.model.base_channels, "width of layer1 (doubling per stage)")
      ->check(CLI::Range(1, 1024))->group(c)->capture_default_str();
  app.add_option("--stem-channels", cls.model.stem_channels, "stem conv width")->check(CLI::Range(1, 1024))->group(c)->capture_default_str();
  app.add_option("--blocks", blocks, "residual blocks per stage, e.g. 2,2,2,2 (ResNet-18)")->group(c)->capture_default_str();
  app.add_flag("--augment", cls.augment, "train with a random shift of +-2 px and a horizontal flip (same for every "
               "variant of a seed)")->group(c);
  app.add_option("--data-dir", cls.data_dir, "Fashion-MNIST folder (default: $GCNET_FASHION_MNIST_DIR or Debian's)")->group(c);
  auto* l = "Latency";
  app.add_option("--latency-batch", cls.latency_batch, "batch of the latency measurement")->check(CLI::Range(1, 4096))->group(l)->capture_default_str();
  app.add_option("--latency-warmup", cls.latency_warmup, "untimed calls first")->check(CLI::Range(0, 1000))->group(l)->capture_default_str();
  app.add_option("--latency-repeats", cls.latency_repeats, "timed calls (the median is reported)")->check(CLI::Range(1, 10000))->group(l)->capture_default_str();
  auto* a = "Analysis";
  app.add_option("--analysis-images", analysis_images, "test images for the NL cosine distances")
      ->check(CLI::Range(1, 10000))->group(a)->capture_default_str();
  app.add_option("--picture-images", picture_images, "rows of attention.png")->check(CLI::Range(1, 64))->group(a)->capture_default_str();
  app.add_flag("--no-analysis", no_analysis, "skip the attention analysis")->group(a);
  auto* sg = "Segmentation (--task seg)";
  app.add_option("--seg-iters", seg.iters, "training iterations per variant and seed")->check(CLI::PositiveNumber)->group(sg)->capture_default_str();
  app.add_option("--seg-batch", seg.batch, "scenes per iteration")->check(CLI::Range(1, 1024))->group(sg)->capture_default_str();
  app.add_option("--seg-lr", seg.lr, "base lr (SGD, mmseg's poly schedule)")->check(CLI::PositiveNumber)->group(sg)->capture_default_str();
  app.add_option("--seg-scenes", seg.scenes, "training scenes")->check(CLI::Range(1, 1 << 20))->group(sg)->capture_default_str();
  app.add_option("--seg-val-scenes", seg.val_scenes, "validation scenes")->check(CLI::Range(1, 1 << 20))->group(sg)->capture_default_str();
  app.add_option("--seg-scene-size", seg.scene_size, "scene side in pixels")->check(CLI::Range(128, 4096))->group(sg)->capture_default_str();
  app.add_option("--seg-head", seg.model.head, "decode head: fcn (the backbone block alone), gc, nl")
      ->check(CLI::IsMember({"fcn", "gc", "nl"}))->group(sg)->capture_default_str();
  app.add_option("--seg-base-channels", seg.model.base_channels, "backbone width (ResNetV1c-18 D8)")
      ->check(CLI::Range(1, 1024))->group(sg)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0) set_num_threads(threads);
    GCNET_CHECK(!cls.seeds.empty(), "--seeds: give at least one seed");
    const std::vector<Variant> chosen = select_variants(variants);
    const RunInfo run = current_run(command_line(argc, argv), GCNET_ABLATE_SOURCE_DIR);
    std::filesystem::create_directories(out_dir);
    std::printf("gcnet_ablate: %s, %zu variants x %zu seeds, %d threads, commit %s\n", task.c_str(), chosen.size(),
                cls.seeds.size(), num_threads(), run.commit.c_str());
    if (task == "seg") {
      seg.seeds = cls.seeds;
      seg.stages = parse_stage_digits(stages, "--stages");
      const AblationTable t = run_seg_ablation(seg, chosen, run);
      std::printf("\n%s\n", to_markdown(t).c_str());
      print_table_files(write_table(t, out_dir));
      return 0;
    }
    cls.model.stages = parse_stage_digits(stages, "--stages");
    cls.model.blocks = parse_blocks(blocks);
    std::unique_ptr<AblationClassifier> nl_net, gc_net;
    const std::uint64_t first = cls.seeds.front();
    auto keep = [&](const Variant& v, std::uint64_t seed, std::unique_ptr<AblationClassifier> net) {
      if (seed != first || no_analysis) return;
      if (v.name == "nl") nl_net = std::move(net);
      if (v.name == "gc16") gc_net = std::move(net);
    };
    const AblationTable t = run_classification_ablation(cls, chosen, run, keep);
    std::printf("\n%s\n", to_markdown(t).c_str());
    print_table_files(write_table(t, out_dir));
    if (nl_net) {
      const FashionSubset d = load_fashion_subset(cls.train_images, cls.test_images, cls.data_dir);
      const NonLocalStatistics st = non_local_table(*nl_net, d, analysis_images);
      const std::string label = "Fashion-MNIST, +1 NL (seed " + std::to_string(first) + ")";
      const std::string md = "## The paper's Table 1: average cosine distance between positions (Non-local block)\n\n"
                             "- command: `" + run.command + "`\n- commit " + run.commit + ", " + run.date + "\n\n" +
                             format_non_local_table(st, label);
      std::printf("%s\n", md.c_str());
      write_text((std::filesystem::path(out_dir) / "nl_analysis.md").string(), md);
      nlohmann::json j = {{"images", st.images}, {"input", st.input}, {"attention", st.attention},
                          {"output", st.output}, {"seed", first}, {"command", run.command}, {"commit", run.commit},
                          {"paper", {{"coco", {0.401, 0.020, 0.012}}, {"imagenet", {0.358, 0.004, 0.003}}}}};
      write_text((std::filesystem::path(out_dir) / "nl_analysis.json").string(), j.dump(2) + "\n");
      const auto& in = nl_net->non_local_input();
      const index_t h = in.size(2), w = in.size(3);
      const std::vector<std::pair<index_t, index_t>> queries{{h / 4, w / 4}, {h / 4, 3 * w / 4}, {h / 2, w / 2},
                                                             {3 * h / 4, w / 4}, {3 * h / 4, 3 * w / 4}};
      const std::string png = (std::filesystem::path(out_dir) / "attention.png").string();
      data::write_png(png, attention_picture(*nl_net, gc_net.get(), d, picture_images, queries));
      std::printf("picture %s (per row: input | NL attention of %zu query points, marked, at %lldx%lld |%s)\n",
                  png.c_str(), queries.size(), static_cast<long long>(h), static_cast<long long>(w),
                  gc_net ? " GC r16 attention of layer3's last block" : " (no gc16 variant: no GC panel)");
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\ngcnet_ablate: %s\n", e.what());
    return 2;
  }
}
