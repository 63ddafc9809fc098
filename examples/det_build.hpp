#pragma once
// From the example programs' ModelSettings (det_model.hpp) to the library's Mask R-CNN: the
// MaskRCNNConfig (det/mask_rcnn_config.hpp: mmdet's family or torchvision's preset at the
// settings' widths), the model type for its backbone (det/detector_instances.hpp declares the
// types compiled once in det_instances.cpp), the model's input from a collated batch and the
// named losses the Trainer logs.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "det_model.hpp"
#include "gcnet/det/detector_instances.hpp"
#include "gcnet/train/trainer.hpp"

namespace det_example {
using namespace gcnet;

// mmdet's preset name for the settings ("mask-rcnn_r18-syncbn-gcb-r4-c3-c5_fpn"), torchvision's
// for that preset.
inline std::string preset_name(const ModelSettings& m) {
  if (m.preset == "torchvision") return kTorchvisionMaskRCNNPreset;
  std::string name = "mask-rcnn_r" + std::to_string(m.depth);
  if (m.norm == "syncbn") name += "-syncbn";
  if (m.plugin == "gc") {  // mmdet's "-gcb-r4-c3-c5" for a run of stages, else each listed
    std::vector<int> st;
    for (int k = 0; k < 4; ++k)
      if (m.plugin_stages[static_cast<std::size_t>(k)]) st.push_back(k + 2);
    name += "-gcb-r" + std::to_string(m.ratio) + "-";
    const bool run = !st.empty() && st.back() - st.front() + 1 == static_cast<int>(st.size());
    if (run && st.size() > 1) name += "c" + std::to_string(st.front()) + "-c" + std::to_string(st.back());
    else
      for (int k : st) name += "c" + std::to_string(k);
  }
  return name + "_fpn_1x_coco";
}

inline MaskRCNNConfig to_config(const ModelSettings& m) {
  check_model_settings(m);
  MaskRCNNConfig c = m.preset == "torchvision" ? torchvision_mask_rcnn_config(m.num_classes)
                                               : mmdet_mask_rcnn_config(m.num_classes, GcVariant::none,
                                                                        m.norm == "syncbn");
  c.preset = preset_name(m);
  c.backbone = resnet_depth(m.depth);
  c.backbone.base_channels = m.base_channels;
  c.backbone.stem_channels = m.base_channels;  // mmdet's ResNet: stem = base width
  c.backbone.frozen_stages = m.frozen_stages;
  c.backbone.norm_eval = m.norm_eval;
  if (m.plugin == "gc")
    c.backbone.plugins.push_back({.block = gc_options(0, {1, m.ratio}),
                                  .position = m.depth < 50 ? Position::AfterConv2 : Position::AfterConv3,
                                  .stages = m.plugin_stages});
  c.neck_channels = m.fpn_channels;
  c.rpn.train.sampler.num = m.rpn_samples;
  c.rpn.train_proposals.nms_pre = m.rpn_train_pre;
  c.rpn.train_proposals.max_per_img = m.rpn_train_post;
  c.rpn.test.nms_pre = m.rpn_test_pre;
  c.rpn.test.max_per_img = m.rpn_test_post;
  c.roi.train.sampler.num = m.roi_samples;
  c.roi.bbox_head.fc_out_channels = m.fc_channels;
  if (c.roi.mask_head) c.roi.mask_head->conv_out_channels = m.mask_channels;
  if (m.scale_w > 0) {
    c.transform.max_size = std::max(m.scale_w, m.scale_h);
    c.transform.min_size = std::min(m.scale_w, m.scale_h);
  }
  return finalize(c);
}

// The model for the settings, built on the heap (a detector is large), given to fn(model&).
template <class Fn>
decltype(auto) with_detector(const ModelSettings& m, Fn&& fn) {
  const MaskRCNNConfig c = to_config(m);
  if (m.preset == "torchvision") {
    auto model = std::make_unique<DetTorchvision>(c);
    return fn(*model);
  }
  if (m.depth < 50) {
    auto model = std::make_unique<DetBasicSyncBN>(c);
    return fn(*model);
  }
  auto model = std::make_unique<DetBottleneckSyncBN>(c);
  return fn(*model);
}

template <class Model>
using ModelOutput = typename Model::output_type;

// The detector's input from a collated batch (the images, each image's shape and ground truth).
template <class Model>
DetBatch<float> model_input(const data::DetBatchData& b) {
  DetBatch<float> in;
  in.images = b.images;
  in.shapes = b.shapes;
  in.gt = b.gt;
  return in;
}

// The Trainer's loss function: every loss weighs 1; mmdet's log dictionary.
inline NamedLosses named_losses(const DetLosses<float>& out, DetLosses<float>& dout) { return det_losses(out, dout); }

template <class Model>
std::string describe_model(Model& model, const ModelSettings& m) {
  (void)m;
  return model.describe();
}

}  // namespace det_example
