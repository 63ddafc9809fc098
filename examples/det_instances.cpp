// The Mask R-CNN types of the detection examples compiled once (det/detector_instances.hpp), and
// the programs' Detector and checkpoint reading (det_model.hpp), which only this unit builds.
#define GCNET_DETECTOR_INSTANCES 1
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "det_build.hpp"
#include "det_model.hpp"
#include "gcnet/io/checkpoint.hpp"

namespace det_example {

namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size() && i < 12; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > 12) s += ", ...";
  return s;
}

// A converted torchvision state dict (tools/convert_checkpoint.py) records only the preset: the
// model is torchvision's as it is, on COCO-style data at its 1333 x 800.
ModelSettings torchvision_settings(index_t num_classes) {
  ModelSettings m;
  m.num_classes = num_classes;
  set_torchvision_model(m);
  m.scale_w = 1333;
  m.scale_h = 800;
  m.data_kind = "coco";
  return m;
}

}  // namespace

CheckpointInfo read_checkpoint_info(const std::string& path, const std::string& want_preset) {
  const std::map<std::string, std::string> meta = io::read_checkpoint_metadata(path);
  const auto get = [&](const char* k) {
    const auto it = meta.find(k);
    return it == meta.end() ? std::string() : it->second;
  };
  CheckpointInfo info;
  info.path = path;
  if (!get("detector").empty()) {
    try {
      info.config = nlohmann::json::parse(get("detector"));
      info.model = info.config.get<ModelSettings>();
    } catch (const nlohmann::json::exception& e) {
      gcnet::detail::fail(path, ": bad \"detector\" metadata (", e.what(), ")");
    }
  } else if (get("det_preset") == kTorchvisionMaskRCNNPreset) {
    index_t nc = 90;
    if (!get("det_num_classes").empty()) nc = std::stoll(get("det_num_classes"));
    info.model = torchvision_settings(nc);
    info.config = info.model;
  } else {
    gcnet::detail::fail(path, ": not a gcnet_train_det checkpoint (no \"detector\" metadata)",
                        get("segmentor").empty() ? "" : "; it is a gcnet_train_seg (segmentation) checkpoint",
                        get("det_preset").empty() ? "" : "; its preset is '" + get("det_preset") + "'");
  }
  info.preset = get("det_preset").empty() ? preset_name(info.model) : get("det_preset");
  info.num_classes = info.model.num_classes;
  if (!get("det_num_classes").empty())
    GCNET_CHECK(std::to_string(info.num_classes) == get("det_num_classes"), path, ": metadata disagrees: the model has ",
                info.num_classes, " classes, det_num_classes says ", get("det_num_classes"));
  if (!want_preset.empty()) {
    const bool family = want_preset == info.model.preset;  // "mmdet" / "torchvision"
    GCNET_CHECK(family || want_preset == info.preset, path, ": a checkpoint of the preset '", info.preset, "' (",
                info.model.preset, " family), but --preset asks for '", want_preset, "'");
  }
  if (!get("classes").empty()) {
    try {
      const nlohmann::json c = nlohmann::json::parse(get("classes"));
      c.at("names").get_to(info.class_names);
      c.at("cat_ids").get_to(info.cat_ids);
    } catch (const nlohmann::json::exception& e) {
      gcnet::detail::fail(path, ": bad \"classes\" metadata (", e.what(), ")");
    }
    GCNET_CHECK(static_cast<index_t>(info.class_names.size()) == info.num_classes, path, ": ", info.class_names.size(),
                " class names for a model of ", info.num_classes, " classes");
  }
  return info;
}

void check_classes(const CheckpointInfo& info, const DetData& data, const std::string& data_name) {
  const auto n = static_cast<index_t>(data.class_names.size());
  GCNET_CHECK(n == info.num_classes, data_name, " has ", n, " categories (", joined(data.class_names),
              ") but the checkpoint ", info.path, " is a detector of ", info.num_classes, " classes",
              info.class_names.empty() ? std::string() : " (" + joined(info.class_names) + ")",
              ": evaluate it on data with the categories it was trained on");
  if (!info.class_names.empty())
    for (std::size_t k = 0; k < data.class_names.size(); ++k)
      GCNET_CHECK(data.class_names[k] == info.class_names[k], data_name, ": category ", k, " is '",
                  data.class_names[k], "' but the checkpoint ", info.path, " calls class ", k, " '",
                  info.class_names[k], "' (categories in another order or other categories)");
}

struct Detector::Impl {
  std::shared_ptr<void> model;
  std::function<std::vector<Detections<float>>(const data::DetBatchData&, const TestSettings&)> predict;
  std::string describe;
  bool masks = true;
};

namespace {

template <class Model>
void setup(Detector::Impl& impl, const MaskRCNNConfig& c, const std::string& checkpoint) {
  auto model = std::make_shared<Model>(c);
  load_mask_rcnn_checkpoint(checkpoint, *model);  // strict: every tensor by name and shape
  model->set_training(false);
  impl.describe = model->describe();
  impl.masks = model->with_mask();
  const RoIHeadTestOptions base = c.roi.test;
  impl.predict = [model, base](const data::DetBatchData& b, const TestSettings& t) {
    RoIHeadTestOptions o = base;
    o.score_thr = t.score_thr;
    o.max_per_img = t.max_per_img;
    return model->predict(b.images, b.shapes, o);
  };
  impl.model = model;
}

}  // namespace

Detector::Detector(const CheckpointInfo& info, const std::string& checkpoint) : impl_(std::make_unique<Impl>()) {
  const MaskRCNNConfig c = to_config(info.model);
  if (info.model.preset == "torchvision") setup<DetTorchvision>(*impl_, c, checkpoint);
  else if (info.model.depth < 50) setup<DetBasicSyncBN>(*impl_, c, checkpoint);
  else setup<DetBottleneckSyncBN>(*impl_, c, checkpoint);
}

Detector::~Detector() = default;

std::vector<Detections<float>> Detector::predict(const data::DetBatchData& batch, const TestSettings& t) {
  check_test_settings(t);
  return impl_->predict(batch, t);
}
bool Detector::has_masks() const { return impl_->masks; }
std::string Detector::describe() const { return impl_->describe; }

}  // namespace det_example
