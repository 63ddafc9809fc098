#pragma once
// The detector as the example programs see it, without its template machinery: what a
// gcnet_train_det checkpoint records (metadata "detector": the model config as JSON, "preset",
// "num_classes", "classes": names and COCO category ids) and a Detector that rebuilds the model
// from it, loads the weights and predicts on collated batches. The Detector's code and the
// MaskRCNN types are compiled once, in det_instances.cpp; the programs include only this.
#include <cmath>
#include <array>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "det_data.hpp"
#include "gcnet/data/det_batch.hpp"
#include "gcnet/det/det_types.hpp"

namespace det_example {
using namespace gcnet;

// The example model as values: what gcnet_train_det's flags set and its checkpoints record
// (metadata "detector"), so the other programs rebuild it. preset "mmdet" is mmdet's
// mask-rcnn_r*_fpn family (ResNet with optional GC blocks, SyncBN, FPN, RPN, StandardRoIHead);
// "torchvision" is torchvision's maskrcnn_resnet50_fpn (frozen BN, its anchors, RoIAlign, coder
// clamp, background index 0, mask pasting).
struct ModelSettings {
  std::string preset = "mmdet";
  int depth = 50;
  index_t base_channels = 64;          // layer1's planes (64 in mmdet; smaller is faster)
  std::string plugin = "none";         // none or gc (ContextBlock after conv3 / conv2)
  int ratio = 16;                      // GC: planes = C / ratio
  std::array<bool, 4> plugin_stages{false, true, true, true};  // c2..c5
  std::string norm = "syncbn";         // mmdet: syncbn (BN across ranks; one process: BN); torchvision: frozen
  int frozen_stages = 1;               // mmdet: 1 (stem and layer1 frozen) with pretrained weights; -1 none
  bool norm_eval = false;              // mmdet: true with pretrained weights
  index_t fpn_channels = 256;
  index_t rpn_feat_channels = 256;
  index_t rpn_train_pre = 2000, rpn_train_post = 1000, rpn_test_pre = 1000, rpn_test_post = 1000;
  index_t rpn_samples = 256;           // RPN sampler: anchors per image
  index_t roi_samples = 512;           // RoI sampler: RoIs per image (positive fraction 0.25)
  index_t fc_channels = 1024;          // Shared2FCBBoxHead
  index_t mask_channels = 256;         // FCNMaskHead convs
  index_t num_classes = 80;
  index_t scale_w = 0, scale_h = 0;    // the training data's Resize (0: none), for evaluation and detection
  std::string data_kind = "scenes";    // scenes or coco
};

inline void to_json(nlohmann::json& j, const ModelSettings& m) {
  j = {{"preset", m.preset}, {"depth", m.depth}, {"base_channels", m.base_channels}, {"plugin", m.plugin},
       {"ratio", m.ratio}, {"plugin_stages", m.plugin_stages}, {"norm", m.norm}, {"frozen_stages", m.frozen_stages},
       {"norm_eval", m.norm_eval}, {"fpn_channels", m.fpn_channels}, {"rpn_feat_channels", m.rpn_feat_channels},
       {"rpn_train_pre", m.rpn_train_pre}, {"rpn_train_post", m.rpn_train_post}, {"rpn_test_pre", m.rpn_test_pre},
       {"rpn_test_post", m.rpn_test_post}, {"rpn_samples", m.rpn_samples}, {"roi_samples", m.roi_samples},
       {"fc_channels", m.fc_channels}, {"mask_channels", m.mask_channels}, {"num_classes", m.num_classes},
       {"data", {{"scale_w", m.scale_w}, {"scale_h", m.scale_h}, {"kind", m.data_kind}}}};
}
inline void from_json(const nlohmann::json& j, ModelSettings& m) {
  m = ModelSettings{};
  const auto get = [&](const char* k, auto& v) {
    if (j.contains(k)) j.at(k).get_to(v);
  };
  get("preset", m.preset);
  get("depth", m.depth);
  get("base_channels", m.base_channels);
  get("plugin", m.plugin);
  get("ratio", m.ratio);
  get("plugin_stages", m.plugin_stages);
  get("norm", m.norm);
  get("frozen_stages", m.frozen_stages);
  get("norm_eval", m.norm_eval);
  get("fpn_channels", m.fpn_channels);
  get("rpn_feat_channels", m.rpn_feat_channels);
  get("rpn_train_pre", m.rpn_train_pre);
  get("rpn_train_post", m.rpn_train_post);
  get("rpn_test_pre", m.rpn_test_pre);
  get("rpn_test_post", m.rpn_test_post);
  get("rpn_samples", m.rpn_samples);
  get("roi_samples", m.roi_samples);
  get("fc_channels", m.fc_channels);
  get("mask_channels", m.mask_channels);
  get("num_classes", m.num_classes);
  if (j.contains("data")) {
    const auto& d = j.at("data");
    if (d.contains("scale_w")) d.at("scale_w").get_to(m.scale_w);
    if (d.contains("scale_h")) d.at("scale_h").get_to(m.scale_h);
    if (d.contains("kind")) d.at("kind").get_to(m.data_kind);
  }
  // Checkpoints written before the COCO default was recorded trained at mmdet's 1333 x 800.
  if (m.data_kind == "coco" && m.scale_w <= 0) m.scale_w = 1333, m.scale_h = 800;
}

inline void check_model_settings(const ModelSettings& m) {
  GCNET_CHECK(m.preset == "mmdet" || m.preset == "torchvision", "--preset must be mmdet or torchvision, got '",
              m.preset, "'");
  GCNET_CHECK(m.depth == 18 || m.depth == 34 || m.depth == 50 || m.depth == 101 || m.depth == 152,
              "--depth must be one of 18, 34, 50, 101, 152, got ", m.depth);
  GCNET_CHECK(m.plugin == "none" || m.plugin == "gc", "--plugin must be none or gc, got '", m.plugin, "'");
  GCNET_CHECK(m.norm == (m.preset == "torchvision" ? "frozen" : "syncbn"), "the ", m.preset,
              " preset's backbone norm is ", m.preset == "torchvision" ? "frozen" : "syncbn", ", got '", m.norm, "'");
  GCNET_CHECK(m.preset != "torchvision" || m.depth == 50, "the torchvision preset is ResNet-50, got --depth ", m.depth);
  GCNET_CHECK(m.num_classes > 0, "the model needs at least one class, got ", m.num_classes);
  GCNET_CHECK(m.base_channels > 0 && m.fpn_channels > 0 && m.rpn_feat_channels > 0 && m.fc_channels > 0 &&
                  m.mask_channels > 0 && m.ratio > 0,
              "model widths and the GC ratio must be positive");
}

// gcnet_train_det's default model: a small GC-ResNet-18 Mask R-CNN (GC r4 in c3-c5, SyncBN,
// FPN 64, fewer proposals and RoIs) that trains on the 128 x 128 scenes in minutes on 2 cores.
inline void set_default_model(ModelSettings& m) {
  m.preset = "mmdet";
  m.depth = 18;
  m.base_channels = 32;
  m.plugin = "gc";
  m.ratio = 4;
  m.plugin_stages = {false, true, true, true};
  m.norm = "syncbn";
  m.frozen_stages = -1;  // trained from scratch: nothing to freeze
  m.norm_eval = false;
  m.fpn_channels = 64;
  m.rpn_feat_channels = 64;
  m.rpn_train_pre = 1000;
  m.rpn_train_post = 500;
  m.rpn_test_pre = 1000;
  m.rpn_test_post = 300;
  m.rpn_samples = 256;
  m.roi_samples = 128;
  m.fc_channels = 256;
  m.mask_channels = 32;  // at 64 the mask head (4 convs on every positive RoI) took half of a step
}

// torchvision's maskrcnn_resnet50_fpn as it is (ResNet-50, FrozenBatchNorm2d, layer1 and the stem
// frozen, FPN 256, its heads and proposal counts); the scale is torchvision's 800 / 1333.
inline void set_torchvision_model(ModelSettings& m) {
  const index_t nc = m.num_classes;
  m = ModelSettings{};
  m.preset = "torchvision";
  m.norm = "frozen";
  m.frozen_stages = 1;
  m.norm_eval = true;
  m.num_classes = nc;
  m.rpn_train_pre = 2000;
  m.rpn_train_post = 2000;
}

// Inference settings of the programs (mmdet test_cfg.rcnn).
struct TestSettings {
  double score_thr = 0.05;
  index_t max_per_img = 100;
};

// A negative threshold is a user error (mmdet would silently keep everything).
inline void check_test_settings(const TestSettings& t) {
  GCNET_CHECK(std::isfinite(t.score_thr) && t.score_thr >= 0, "--score-thr must be a score in [0, 1], got ",
              t.score_thr, " (a negative threshold keeps nothing out)");
  GCNET_CHECK(t.score_thr <= 1, "--score-thr must be a score in [0, 1], got ", t.score_thr);
  GCNET_CHECK(t.max_per_img > 0, "--max-per-img must be positive, got ", t.max_per_img);
}

struct CheckpointInfo {
  std::string path;
  ModelSettings model;                   // metadata "detector"
  nlohmann::json config;                 // the same, as recorded
  std::string preset;                    // "mmdet" or "torchvision"
  index_t num_classes = 0;
  std::vector<std::string> class_names;  // may be empty (converted checkpoints)
  std::vector<std::int64_t> cat_ids;
};

// Reads what a checkpoint says about its model. `want_preset` (empty: any) must match the
// checkpoint's: a checkpoint of another preset is an error naming both.
CheckpointInfo read_checkpoint_info(const std::string& path, const std::string& want_preset);

// The data's classes must be the model's: same count (and names, when the checkpoint has them).
void check_classes(const CheckpointInfo& info, const DetData& data, const std::string& data_name);

class Detector {
 public:
  Detector(const CheckpointInfo& info, const std::string& checkpoint);
  ~Detector();
  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;
  // Per image of the batch: boxes, scores, labels, binary masks at the original image size.
  std::vector<Detections<float>> predict(const data::DetBatchData& batch, const TestSettings& t);
  bool has_masks() const;
  std::string describe() const;

  struct Impl;  // the model and its predict, defined in det_instances.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace det_example
