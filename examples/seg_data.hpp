#pragma once
// What gcnet_train_seg and gcnet_test_seg share: where the data comes from (the generated
// Fashion-MNIST scenes, or a folder in the mmseg layout) and how images are normalised.
#include <optional>
#include <string>

#include "gcnet/data/any_dataset.hpp"
#include "gcnet/data/fashion_scenes_dataset.hpp"
#include "gcnet/data/seg_folder_dataset.hpp"
#include "gcnet/data/transforms.hpp"

namespace seg_example {
using namespace gcnet;

// mmseg's data_preprocessor (ImageNet mean / std on RGB 0..255).
inline data::Normalize normalize() { return {}; }

struct DataChoice {
  std::string folder;          // a folder in the mmseg layout; empty: the generated scenes
  index_t scenes = 2000;       // generated: how many scenes
  index_t scene_size = 128;    // generated: side in pixels
  std::uint64_t data_seed = 0;  // generated: the scenes' seed
};

// The dataset of `split` ("train" or "val") with `transform`, and its classes.
inline std::pair<data::AnyDataset, data::SegClasses> make_dataset(const DataChoice& d, bool train,
                                                                  data::Compose transform) {
  if (d.folder.empty()) {
    data::FashionScenesOptions o;
    o.split = train ? data::SceneSplit::train : data::SceneSplit::val;
    o.count = d.scenes;
    o.seed = d.data_seed;
    o.scene.height = o.scene.width = d.scene_size;
    o.transform = std::move(transform);
    return {data::AnyDataset(data::FashionScenesDataset(o)), data::FashionScenesDataset::classes()};
  }
  data::SegFolderOptions o;
  o.transform = std::move(transform);
  data::SegFolderDataset ds(d.folder, o);
  data::SegClasses classes = ds.classes();
  return {data::AnyDataset(std::move(ds)), std::move(classes)};
}

}  // namespace seg_example
