#pragma once
// What gcnet_train_det, gcnet_test_det and gcnet_detect share about data: the generated
// Fashion-MNIST scenes with their instances (default) or a COCO-format data set (annotation JSON
// + image folder), as detection samples; the class names, category ids and colours; the COCO
// ground truth to evaluate against (for the scenes: the instances gcnet_make_scenes would write
// to instances.json); and the pipelines (mmdet's: Resize keep_ratio -> RandomFlip -> Normalize;
// padding to 32 happens per batch in collate_det).
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/data/coco_dataset.hpp"
#include "gcnet/data/coco_instances.hpp"
#include "gcnet/data/det_loader.hpp"
#include "gcnet/data/det_transforms.hpp"
#include "gcnet/data/fashion_scenes_dataset.hpp"
#include "gcnet/data/fashion_scenes_writer.hpp"
#include "gcnet/data/picture_text.hpp"

namespace det_example {
using namespace gcnet;

struct DataChoice {
  std::string ann, img_dir;       // COCO: instances JSON + image folder; empty: the generated scenes
  index_t scenes = 2000;          // generated: how many scenes
  index_t scene_size = 128;       // generated: side in pixels
  std::uint64_t data_seed = 0;    // generated: the scenes' seed
  index_t scale_w = 0, scale_h = 0;  // Resize(keep_ratio) to fit (w, h); 0: scenes as generated, COCO 1333x800
  bool torchvision_norm = false;  // torchvision's preset: ImageNet mean / std on [0, 1] pixels
  bool coco() const { return !ann.empty(); }
  std::string describe() const {
    if (coco()) return "coco:" + ann + ":" + img_dir;
    return "scenes:" + std::to_string(scenes) + ":" + std::to_string(scene_size) + ":" + std::to_string(data_seed);
  }
};

// The generated scenes as detection samples: every visible article is an instance (box = tight
// box of its visible mask, [x, y, x + w, y + h] as mmdet reads COCO's [x, y, w, h]; label =
// Fashion-MNIST class 0..9; mask = its visible pixels). Image id = scene index + 1, as the writer.
class SceneDetDataset {
 public:
  SceneDetDataset(data::FashionScenesOptions o, data::DetCompose transform)
      : scenes_(std::make_shared<data::FashionScenesDataset>(std::move(o))), transform_(std::move(transform)) {}

  index_t size() const { return scenes_->size(); }
  const data::FashionScenesDataset& scenes() const { return *scenes_; }

  data::DetSample load(index_t i) const {
    const data::Scene sc = scenes_->scene(i);
    const index_t H = sc.image.height, W = sc.image.width, n = static_cast<index_t>(sc.instances.size());
    data::DetSample s;
    s.image = data::image_to_tensor(sc.image);
    s.boxes = Tensor<float>(Shape{n, 4});
    s.labels = Tensor<std::int64_t>(Shape{n});
    s.masks = Tensor<std::uint8_t>(Shape{n, H, W});
    s.ignore_boxes = Tensor<float>(Shape{0, 4});
    for (index_t k = 0; k < n; ++k) {
      const data::SceneInstance& in = sc.instances[static_cast<std::size_t>(k)];
      float* b = s.boxes.data() + 4 * k;
      b[0] = static_cast<float>(in.box.x);
      b[1] = static_cast<float>(in.box.y);
      b[2] = static_cast<float>(in.box.x + in.box.w);
      b[3] = static_cast<float>(in.box.y + in.box.h);
      s.labels[k] = in.category_id - 1;
      std::copy(in.mask.begin(), in.mask.end(), s.masks.data() + k * H * W);
    }
    s.meta.image_id = i + 1;
    s.meta.ori_h = s.meta.img_h = s.meta.pad_h = H;
    s.meta.ori_w = s.meta.img_w = s.meta.pad_w = W;
    return s;
  }

  data::DetSample get(index_t i, Rng& rng) const {
    data::DetSample s = load(i);
    transform_(s, rng);
    return s;
  }

 private:
  std::shared_ptr<const data::FashionScenesDataset> scenes_;
  data::DetCompose transform_;
};

// A COCO data set shared by the copies of the loader's dataset (the annotations are read once).
struct SharedCoco {
  std::shared_ptr<const data::CocoDataset> p;
  index_t size() const { return p->size(); }
  data::DetSample get(index_t i, Rng& rng) const { return p->get(i, rng); }
};

// A detection data set of any kind (scenes or COCO), cheap to copy, const and thread-safe.
class AnyDetDataset {
 public:
  AnyDetDataset() = default;
  template <data::DetDataset D>
  explicit AnyDetDataset(D d) : impl_(std::make_shared<const Impl<D>>(std::move(d))) {}
  index_t size() const { return impl_->size(); }
  data::DetSample get(index_t i, Rng& rng) const { return impl_->get(i, rng); }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual index_t size() const = 0;
    virtual data::DetSample get(index_t i, Rng& rng) const = 0;
  };
  template <class D>
  struct Impl final : Base {
    explicit Impl(D d) : d(std::move(d)) {}
    index_t size() const override { return static_cast<index_t>(d.size()); }
    data::DetSample get(index_t i, Rng& rng) const override { return d.get(i, rng); }
    D d;
  };
  std::shared_ptr<const Base> impl_;
};

struct DetData {
  AnyDetDataset dataset;
  std::vector<std::string> class_names;  // label -> name
  std::vector<std::int64_t> cat_ids;     // label -> COCO category id
  std::vector<data::Rgb8> palette;       // label -> colour
  // The ground truth to evaluate against (COCO: the annotation file; scenes: built on demand).
  std::function<data::CocoInstances()> ground_truth;
  // The picture of sample i as loaded (original size, RGB), for drawing.
  std::function<data::Image(index_t i, const data::DetMeta&)> original;
  // Sample i as loaded, before the pipeline (ground truth at the original size), for drawing.
  std::function<data::DetSample(index_t i)> load;
};

// mmdet: ImageNet mean / std on RGB 0..255; torchvision: the same statistics on 0..1, i.e. x 255 here.
inline data::DetNormalize normalize(bool torchvision = false) {
  if (!torchvision) return {};
  return {.mean = {0.485f * 255, 0.456f * 255, 0.406f * 255}, .std = {0.229f * 255, 0.224f * 255, 0.225f * 255}};
}

// The scale a training run uses when none is given: mmdet's 1333 x 800 for COCO data, the scenes
// as generated. gcnet_train_det records the result in the checkpoint, so that evaluation and
// detection resize as training did, whatever data they are given.
inline void resolve_training_scale(DataChoice& d) {
  if (d.scale_h <= 0) d.scale_h = d.scale_w;
  if (d.coco() && d.scale_w <= 0) d.scale_w = 1333, d.scale_h = 800;
}

// mmdet's pipelines. Train: Resize (keep_ratio, when a scale is set) -> RandomFlip(0.5) ->
// Normalize; test: without the flip.
inline data::DetCompose pipeline(const DataChoice& d, bool train) {
  data::DetCompose t;
  const index_t sw = d.scale_w, sh = d.scale_h;
  if (sw > 0 && sh > 0) t.push_back(data::DetResize{.scale_w = sw, .scale_h = sh, .keep_ratio = true});
  if (train) t.push_back(data::DetRandomFlip{.prob = 0.5});
  t.push_back(normalize(d.torchvision_norm));
  return t;
}

// COCO instances of the scenes (what data::write_fashion_scenes writes to instances.json).
inline data::CocoInstances scene_ground_truth(const data::FashionScenesDataset& ds) {
  nlohmann::json coco;
  coco["images"] = nlohmann::json::array();
  coco["annotations"] = nlohmann::json::array();
  std::int64_t next_id = 1;
  for (index_t i = 0; i < ds.size(); ++i) {
    const data::Scene s = ds.scene(i);
    coco["images"].push_back({{"id", i + 1}, {"file_name", data::scene_file_stem(i) + ".png"},
                              {"height", s.image.height}, {"width", s.image.width}});
    for (auto& a : data::coco_annotations(s, i + 1, next_id)) coco["annotations"].push_back(std::move(a));
  }
  const data::SegClasses classes = data::FashionScenesDataset::classes();
  coco["categories"] = nlohmann::json::array();
  for (index_t c = 1; c < classes.size(); ++c)
    coco["categories"].push_back({{"id", c}, {"name", classes.names[static_cast<std::size_t>(c)]}});
  const std::string name = std::string("Fashion-MNIST ") + data::split_name(ds.options().split) + " scenes";
  return data::parse_coco_instances(coco.dump(), name);
}

// The data of `train` (training split, augmented) or evaluation (validation split / test mode).
inline DetData make_det_data(const DataChoice& d, bool train) {
  DetData out;
  if (d.coco()) {
    GCNET_CHECK(!d.img_dir.empty(), "--ann ", d.ann, " needs --img-dir (the folder of its images)");
    data::CocoDatasetOptions o;
    o.test_mode = !train;
    o.filter_empty_gt = train;  // mmdet's COCO training config
    o.min_size = train ? 32 : 0;
    o.transform = pipeline(d, train);
    auto ds = std::make_shared<data::CocoDataset>(d.ann, d.img_dir, o);
    GCNET_CHECK(ds->num_classes() > 0, d.ann, ": no categories");
    GCNET_CHECK(ds->size() > 0, d.ann, ": no images", train ? " with annotations" : "");
    out.class_names = ds->class_names();
    out.cat_ids = ds->cat_ids();
    // palette left empty: picture_detections spreads hues over the classes
    out.dataset = AnyDetDataset(SharedCoco{ds});
    out.ground_truth = [ds] { return ds->coco(); };
    out.original = [](index_t, const data::DetMeta& m) { return data::read_image(m.file); };
    out.load = [ds](index_t i) { return ds->annotations(i); };
    return out;
  }
  data::FashionScenesOptions o;
  o.split = train ? data::SceneSplit::train : data::SceneSplit::val;
  o.count = d.scenes;
  o.seed = d.data_seed;
  o.scene.height = o.scene.width = d.scene_size;
  SceneDetDataset ds(o, pipeline(d, train));
  const data::SegClasses classes = data::FashionScenesDataset::classes();
  for (index_t c = 1; c < classes.size(); ++c) {
    out.class_names.push_back(classes.names[static_cast<std::size_t>(c)]);
    out.cat_ids.push_back(c);
    const auto& p = classes.palette[static_cast<std::size_t>(c)];
    out.palette.push_back({p[0], p[1], p[2]});
  }
  out.ground_truth = [ds] { return scene_ground_truth(ds.scenes()); };
  out.original = [ds](index_t i, const data::DetMeta&) { return ds.scenes().scene(i).image; };
  out.load = [ds](index_t i) { return ds.load(i); };
  out.dataset = AnyDetDataset(std::move(ds));
  return out;
}

// The class list as recorded in a checkpoint's metadata ("classes": names; "cat_ids").
inline std::string classes_json(const DetData& d) {
  return nlohmann::json{{"names", d.class_names}, {"cat_ids", d.cat_ids}}.dump();
}

}  // namespace det_example
