#pragma once
// FashionScenesDataset: `count` generated Fashion-MNIST scenes (fashion_scenes.hpp) as a data
// loader Dataset: get(i, rng) generates scene i from (seed, split, i), independent of rng, and
// then runs the transforms with rng, so the loader's augmentation streams apply as for files.
// The Fashion-MNIST split is read once and shared (shared_ptr to const) by every copy of the
// dataset and every dataset of the same split and folder; get() is const and thread-safe.
#include <memory>
#include <string>
#include <utility>

#include "gcnet/data/fashion_scenes.hpp"
#include "gcnet/data/sample.hpp"
#include "gcnet/data/transforms.hpp"

namespace gcnet::data {

struct FashionScenesOptions {
  SceneSplit split = SceneSplit::train;  // train: articles from the train split; val: from t10k
  index_t count = 1000;                  // scenes 0..count-1
  std::uint64_t seed = 0;
  SceneOptions scene{};                  // size (default 128x128), articles, scales, clutter
  Compose transform{};                   // run on every sample in get()
  std::string fashion_mnist_dir{};       // empty: $GCNET_FASHION_MNIST_DIR, else Debian's folder
};

class FashionScenesDataset {
 public:
  explicit FashionScenesDataset(FashionScenesOptions opt) : opt_(std::move(opt)) {
    GCNET_CHECK(opt_.count > 0, "FashionScenesDataset: count must be positive, got ", opt_.count);
    check_scene_options(opt_.scene);
    source_ = shared_fashion_mnist(source_split(opt_.split), opt_.fashion_mnist_dir);
  }

  index_t size() const { return opt_.count; }
  const FashionScenesOptions& options() const { return opt_; }
  const FashionMnist& source() const { return *source_; }

  // Background (0) and the ten Fashion-MNIST classes (1..10), with the palette.
  static SegClasses classes() { return fashion_scene_classes(); }
  static index_t num_classes() { return 11; }

  // Scene i with its instances (visible masks, boxes, areas), untransformed.
  Scene scene(index_t i) const {
    GCNET_CHECK(i >= 0 && i < size(), "FashionScenesDataset: scene ", i, " out of range for ", size(), " scenes");
    return generate_fashion_scene(*source_, opt_.scene, opt_.seed, i);
  }

  // Sample{image float HWC 0..255 (RGB), label int64 HW (0..10)}, then the transforms.
  Sample get(index_t i, Rng& rng) const {
    const Scene s = scene(i);
    Sample out{image_to_tensor(s.image), label_to_tensor(s.label), -1};
    opt_.transform(out, rng);
    return out;
  }

 private:
  FashionScenesOptions opt_;
  std::shared_ptr<const FashionMnist> source_;
};

}  // namespace gcnet::data
