// gcnet_make_scenes: writes the generated Fashion-MNIST scenes (the segmentation and detection
// examples' default data) to disk in the folder layout other tools read: images/*.png,
// labels/*.png (palette PNGs, 0 background, 1-10 the articles), classes.json and COCO-style
// instances.json (visible masks as RLE, boxes, areas).
//   gcnet_make_scenes --write DIR [--split val] [--count 500] [--size 128] [--seed 0]
#include <CLI/CLI.hpp>

#include <cstdio>

#include "gcnet/data/fashion_scenes_writer.hpp"

using namespace gcnet;

int main(int argc, char** argv) {
  CLI::App app{"gcnet_make_scenes: write the generated Fashion-MNIST scenes (images, palette label PNGs, COCO "
               "instances.json) to a folder. Scene i of a (split, size, seed) is always the same."};
  std::string dir, split = "train";
  index_t count = 500, size = 128;
  std::uint64_t seed = 0;
  app.add_option("--write", dir, "output folder (created if missing)")->required();
  app.add_option("--split", split, "train (articles of Fashion-MNIST's train split) or val (its t10k split)")
      ->check(CLI::IsMember({"train", "val"}))->capture_default_str();
  app.add_option("--count", count, "number of scenes")->check(CLI::Range(1, 1 << 24))->capture_default_str();
  app.add_option("--size", size, "scene side in pixels")->check(CLI::Range(128, 4096))->capture_default_str();
  app.add_option("--seed", seed, "the scenes' seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    data::FashionScenesOptions o;
    o.split = split == "train" ? data::SceneSplit::train : data::SceneSplit::val;
    o.count = count;
    o.seed = seed;
    o.scene.height = o.scene.width = size;
    data::FashionScenesDataset ds(o);
    data::WriteScenesOptions wo;
    wo.progress = [](index_t done, index_t total) {
      if (done == total || done % 100 == 0) std::printf("\r%lld / %lld scenes", static_cast<long long>(done),
                                                        static_cast<long long>(total));
      std::fflush(stdout);
    };
    data::write_fashion_scenes(dir, ds, wo);
    std::printf("\nwrote %lld %s scenes to %s\n", static_cast<long long>(count), split.c_str(), dir.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gcnet_make_scenes: %s\n", e.what());
    return 2;
  }
}
