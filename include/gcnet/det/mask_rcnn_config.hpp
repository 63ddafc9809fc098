#pragma once
// Mask R-CNN configurations (det/mask_rcnn.hpp): every part's options as values, and a preset
// name that checkpoints record (a checkpoint of another preset is refused on load).
//   mmdet's mask-rcnn_r50_fpn_1x_coco family (gcnet-reference §9, §2.5), the default:
//     mmdet_mask_rcnn_config(nc)                    "mask-rcnn_r50_fpn_1x_coco"
//     mmdet_mask_rcnn_config(nc, GcVariant::r16)    "mask-rcnn_r50-gcb-r16-c3-c5_fpn_1x_coco"
//     mmdet_mask_rcnn_config(nc, GcVariant::r4)     "mask-rcnn_r50-gcb-r4-c3-c5_fpn_1x_coco"
//     ... with sync_bn = true                      "mask-rcnn_r50-syncbn[-gcb-rK-c3-c5]_fpn_1x_coco"
//       ResNet-50 (frozen_stages 1, norm_eval; SyncBN: norm_eval off), GC blocks after conv3 of
//       every block of c3-c5, FPN 256 x 5, mmdet's RPN and RoI heads, 1333 x 800 resize, mean/std
//       on 0..255 pixels, padding to 32.
//   torchvision_mask_rcnn_config(nc)                "torchvision_maskrcnn": maskrcnn_resnet50_fpn
//       (FrozenBatchNorm2d backbone, trainable_backbone_layers 3 = frozen_stages 1, torchvision's
//       anchors, RoIAlign sampling 2 not aligned, box coder clamp, background class 0, its mask
//       pasting, GeneralizedRCNNTransform: min_size / max_size resize, ImageNet mean/std on [0, 1]
//       images, batch padded to 32). nc counts foreground classes (torchvision's num_classes - 1).
// The backbone's sizes are runtime values (ResNetOptions: depth/blocks, base and stem widths,
// plugins, frozen stages, norm_eval): finalize() derives the FPN inputs, the heads' channels and
// class counts from them, so a small detector is the same preset at other widths. The backbone's
// norm TYPE is the MaskRCNN's template argument; `norm` says which one the preset expects and the
// model checks it.
#include <array>
#include <string>

#include "gcnet/det/rpn_options.hpp"
#include "gcnet/det/standard_roi_head.hpp"
#include "gcnet/models/fpn.hpp"
#include "gcnet/models/resnet_options.hpp"

namespace gcnet {

enum class MaskRCNNStyle { mmdet, torchvision };
enum class BackboneNorm { batch_norm, sync_batch_norm, frozen_batch_norm };
enum class GcVariant { none, r16, r4 };

inline const char* backbone_norm_name(BackboneNorm n) {
  return n == BackboneNorm::batch_norm ? "BatchNorm2d"
         : n == BackboneNorm::sync_batch_norm ? "SyncBatchNorm2d" : "FrozenBatchNorm2d";
}

// How images become the network input. mmdet: keep-ratio resize into scale (long x short edge:
// 1333 x 800), (x - mean) / std on 0..255 pixels (the data pipeline does it). torchvision
// (det/torchvision_transform.hpp): normalise [0, 1] images, then resize so that the short side
// is min_size unless the long side would pass max_size.
struct DetTransformOptions {
  index_t min_size = 800;   // short side (mmdet: scale's short edge)
  index_t max_size = 1333;  // long side bound
  std::array<double, 3> mean{123.675, 116.28, 103.53};
  std::array<double, 3> std_dev{58.395, 57.12, 57.375};
  double pixel_max = 255;   // the range the mean/std apply to: 255 (mmdet) or 1 (torchvision)
  index_t size_divisor = 32;  // batch padded to a multiple
};

struct MaskRCNNConfig {
  std::string preset = "mask-rcnn_r50_fpn_1x_coco";
  MaskRCNNStyle style = MaskRCNNStyle::mmdet;
  BackboneNorm norm = BackboneNorm::batch_norm;
  index_t num_classes = 80;  // foreground classes
  ResNetOptions backbone = resnet_depth(50);
  index_t neck_channels = 256;  // FPN out_channels = RPN and RoI head input channels
  index_t neck_outs = 5;
  RPNHeadOptions rpn = mmdet_rpn_head_options();
  StandardRoIHeadOptions roi = mmdet_roi_head_options();
  DetTransformOptions transform{};
};

// Sets what follows from the others: FPN inputs from the backbone's stage channels (expansion 4
// for Bottleneck ResNets, 1 for BasicBlock ones), the RPN's and RoI head's input channels from the
// FPN, the heads' class counts. Called by MaskRCNN's constructor; call it after editing a config to
// read the derived values.
inline FPNOptions mask_rcnn_neck_options(const MaskRCNNConfig& c, index_t expansion = 4) {
  FPNOptions f;
  for (int i : c.backbone.out_indices) f.in_channels.push_back(c.backbone.base_channels * (index_t(1) << i) * expansion);
  f.out_channels = c.neck_channels;
  f.num_outs = c.neck_outs;
  return f;
}

inline MaskRCNNConfig finalize(MaskRCNNConfig c) {
  GCNET_CHECK(c.num_classes > 0, "MaskRCNN config '", c.preset, "': num_classes must be positive, got ", c.num_classes);
  GCNET_CHECK(c.neck_channels > 0, "MaskRCNN config '", c.preset, "': neck_channels must be positive");
  GCNET_CHECK(c.backbone.out_indices.size() == 4, "MaskRCNN config '", c.preset,
              "': the FPN reads c2..c5, so backbone.out_indices must be {0, 1, 2, 3}");
  c.rpn.in_channels = c.neck_channels;
  c.rpn.feat_channels = c.neck_channels;  // mmdet's 256 -> 256 and torchvision's RPNHead(256)
  c.roi.bbox_head.in_channels = c.neck_channels;
  c.roi.bbox_head.num_classes = c.num_classes;
  if (c.roi.mask_head) {
    c.roi.mask_head->in_channels = c.neck_channels;
    c.roi.mask_head->num_classes = c.num_classes;
  }
  return c;
}

// The mmdet family. sync_bn: the SyncBN-backbone variants (norm_eval off, as mmdet's configs).
inline MaskRCNNConfig mmdet_mask_rcnn_config(index_t num_classes = 80, GcVariant gc = GcVariant::none,
                                             bool sync_bn = false) {
  MaskRCNNConfig c;
  c.style = MaskRCNNStyle::mmdet;
  c.num_classes = num_classes;
  c.backbone = resnet_depth(50);
  c.backbone.frozen_stages = 1;
  c.backbone.norm_eval = !sync_bn;
  c.norm = sync_bn ? BackboneNorm::sync_batch_norm : BackboneNorm::batch_norm;
  std::string name = "mask-rcnn_r50";
  if (sync_bn) name += "-syncbn";
  if (gc != GcVariant::none) {
    const index_t den = gc == GcVariant::r16 ? 16 : 4;
    c.backbone.plugins.push_back({.block = gc_options(0, {1, den}), .position = Position::AfterConv3,
                                  .stages = {false, true, true, true}});
    name += "-gcb-r" + std::to_string(den) + "-c3-c5";
  }
  c.preset = name + "_fpn_1x_coco";
  c.rpn = mmdet_rpn_head_options();
  c.roi = mmdet_roi_head_options(num_classes);
  return finalize(c);
}

inline constexpr const char* kTorchvisionMaskRCNNPreset = "torchvision_maskrcnn";  // tools/convert_checkpoint.py's

// torchvision 0.14's maskrcnn_resnet50_fpn (its defaults min_size 800, max_size 1333).
inline MaskRCNNConfig torchvision_mask_rcnn_config(index_t num_classes = 90, index_t min_size = 800,
                                                   index_t max_size = 1333) {
  MaskRCNNConfig c;
  c.preset = kTorchvisionMaskRCNNPreset;
  c.style = MaskRCNNStyle::torchvision;
  c.norm = BackboneNorm::frozen_batch_norm;
  c.num_classes = num_classes;
  c.backbone = resnet_depth(50);
  c.backbone.frozen_stages = 1;  // trainable_backbone_layers 3: layer2..layer4
  c.backbone.norm_eval = true;   // FrozenBatchNorm2d: no statistics to update anyway
  c.rpn = torchvision_rpn_head_options();
  c.roi = torchvision_roi_head_options(num_classes);
  c.transform = {.min_size = min_size, .max_size = max_size, .mean = {0.485, 0.456, 0.406},
                 .std_dev = {0.229, 0.224, 0.225}, .pixel_max = 1, .size_divisor = 32};
  return finalize(c);
}

// The preset of a name: the names above (mmdet's with or without "-syncbn" / "-gcb-rK-c3-c5").
inline MaskRCNNConfig mask_rcnn_config(const std::string& preset, index_t num_classes) {
  if (preset == kTorchvisionMaskRCNNPreset) return torchvision_mask_rcnn_config(num_classes);
  for (bool sync : {false, true})
    for (GcVariant gc : {GcVariant::none, GcVariant::r16, GcVariant::r4}) {
      MaskRCNNConfig c = mmdet_mask_rcnn_config(num_classes, gc, sync);
      if (c.preset == preset) return c;
    }
  detail::fail("MaskRCNN: unknown preset '", preset, "' (expected ", kTorchvisionMaskRCNNPreset,
               ", mask-rcnn_r50_fpn_1x_coco, mask-rcnn_r50-gcb-r16-c3-c5_fpn_1x_coco, "
               "mask-rcnn_r50-gcb-r4-c3-c5_fpn_1x_coco or their -syncbn variants)");
}

}  // namespace gcnet
