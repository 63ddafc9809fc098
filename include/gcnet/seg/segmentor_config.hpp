#pragma once
// SegmentorConfig: a GCNet-family segmentor as values (what gcnet_train_seg's flags set and its
// checkpoints record, so gcnet_test_seg rebuilds the same model), and build_segmentor(), which
// makes mmseg's EncoderDecoder from it:
//   backbone  ResNetV1c-D8 of `depth` (18/34 BasicBlock, 50/101/152 Bottleneck), base_channels
//             wide, with a context plugin (none / se / gc / snl / nl) in plugin_stages: after conv3
//             (before the residual add) in a Bottleneck, after conv2 (same place) in a BasicBlock
//   decode    FCNHead / GCHead / NLHead on c5 (head_channels), mmseg's defaults
//   auxiliary FCNHead on c4 (one conv, no concat, loss weight 0.4), training only
// mmseg's gcnet_r50-d8 is {depth 50, base 64, plugin none, head gc, head 512, aux 256}; the
// GCNet backbone variant adds plugin gc (ratio 16) on c3-c5.
//   SegmentorConfig c;  c.depth = 18; c.base_channels = 16; c.plugin = "gc"; c.num_classes = 11;
//   with_segmentor(c, [&](auto& seg) { ... });   // the backbone type follows the depth
#include <array>
#include <string>

#include <nlohmann/json.hpp>

#include "gcnet/blocks/non_local2d.hpp"
#include "gcnet/layers/sync_batch_norm2d.hpp"
#include "gcnet/models/resnet.hpp"
#include "gcnet/seg/encoder_decoder.hpp"
#include "gcnet/seg/gc_head.hpp"
#include "gcnet/seg/nl_head.hpp"

namespace gcnet {

struct SegmentorConfig {
  int depth = 50;
  index_t base_channels = 64;    // planes of layer1 (mmseg: 64)
  index_t stem_channels = 64;    // the deep stem's output (mmseg: 64)
  int output_stride = 8;         // 8: ResNetV1c-D8 (mmseg's gcnet_r50-d8); 16: D16 (c4 strided, c5 dilated 2)
  std::string plugin = "none";   // backbone context block: none, se, gc, snl, nl
  int ratio = 16;                // gc: planes C/ratio; se: C/ratio
  std::array<bool, 4> plugin_stages{false, true, true, true};  // c2..c5
  std::string head = "gc";       // decode head: fcn, gc, nl
  int head_ratio = 4;            // GCHead ratio 1/head_ratio
  index_t head_channels = 512, aux_channels = 256;
  bool aux = true;
  index_t num_classes = 19;
  double dropout = 0.1;
  bool align_corners = false;
};

inline void to_json(nlohmann::json& j, const SegmentorConfig& c) {
  j = {{"depth", c.depth},           {"base_channels", c.base_channels}, {"stem_channels", c.stem_channels},
       {"output_stride", c.output_stride},
       {"plugin", c.plugin},         {"ratio", c.ratio},                 {"plugin_stages", c.plugin_stages},
       {"head", c.head},             {"head_ratio", c.head_ratio},       {"head_channels", c.head_channels},
       {"aux_channels", c.aux_channels}, {"aux", c.aux},                 {"num_classes", c.num_classes},
       {"dropout", c.dropout},       {"align_corners", c.align_corners}};
}
inline void from_json(const nlohmann::json& j, SegmentorConfig& c) {
  c = SegmentorConfig{};
  auto get = [&](const char* k, auto& v) {
    if (j.contains(k)) j.at(k).get_to(v);
  };
  get("depth", c.depth);
  get("base_channels", c.base_channels);
  get("stem_channels", c.stem_channels);
  get("output_stride", c.output_stride);
  get("plugin", c.plugin);
  get("ratio", c.ratio);
  get("plugin_stages", c.plugin_stages);
  get("head", c.head);
  get("head_ratio", c.head_ratio);
  get("head_channels", c.head_channels);
  get("aux_channels", c.aux_channels);
  get("aux", c.aux);
  get("num_classes", c.num_classes);
  get("dropout", c.dropout);
  get("align_corners", c.align_corners);
}

inline void check_segmentor_config(const SegmentorConfig& c) {
  const std::string who = "SegmentorConfig";
  GCNET_CHECK(c.depth == 18 || c.depth == 34 || c.depth == 50 || c.depth == 101 || c.depth == 152, who, ": depth ",
              c.depth, " is not one of 18, 34, 50, 101, 152");
  GCNET_CHECK(c.base_channels > 0 && c.stem_channels >= 2, who, ": base_channels must be positive and stem_channels "
              "at least 2, got ", c.base_channels, " and ", c.stem_channels);
  GCNET_CHECK(c.plugin == "none" || c.plugin == "se" || c.plugin == "gc" || c.plugin == "snl" || c.plugin == "nl", who,
              ": plugin '", c.plugin, "' is not one of none, se, gc, snl, nl");
  GCNET_CHECK(c.ratio > 0 && c.head_ratio > 0, who, ": ratios must be positive, got ", c.ratio, " and ", c.head_ratio);
  GCNET_CHECK(c.head == "fcn" || c.head == "gc" || c.head == "nl", who, ": head '", c.head,
              "' is not one of fcn, gc, nl");
  GCNET_CHECK(c.head_channels > 0 && c.aux_channels > 0, who, ": head channels must be positive");
  GCNET_CHECK(c.output_stride == 8 || c.output_stride == 16, who, ": output_stride must be 8 or 16, got ",
              c.output_stride);
  GCNET_CHECK(c.num_classes > 0, who, ": num_classes must be positive, got ", c.num_classes);
}

// The segmentor types: SyncBN everywhere, as mmseg's configs (with one process it is BatchNorm2d).
using SegNorm = SyncBatchNorm2d<float, Cpu>;
template <class Blocks>
using SegBackbone = ResNetBackbone<float, Cpu, SegNorm, void, /*DeepStem=*/true, Blocks>;
using SegHead = FCNHead<float, Cpu, SegNorm>;
template <class Blocks>
using GCNetSegmentor = EncoderDecoder<SegBackbone<Blocks>, SegHead, SegHead>;

// mmseg's ResNetV1c-D8 options for a config (strides 1,2,1,1; dilations 1,1,2,4; contracted), or
// D16 (strides 1,2,2,1; dilations 1,1,1,2, as mmseg's *-d16 configs): a quarter of the work in c4,
// c5 and the heads, for logits at 1/16 of the image.
inline ResNetOptions seg_backbone_options(const SegmentorConfig& c) {
  ResNetOptions o = resnet_depth(c.depth);
  o.base_channels = c.base_channels;
  o.stem_channels = c.stem_channels;
  o.strides = c.output_stride == 16 ? std::array<index_t, 4>{1, 2, 2, 1} : std::array<index_t, 4>{1, 2, 1, 1};
  o.dilations = c.output_stride == 16 ? std::array<index_t, 4>{1, 1, 1, 2} : std::array<index_t, 4>{1, 1, 2, 4};
  o.contract_dilation = true;
  const Position at = resnet_depth_is_basic(c.depth) ? Position::AfterConv2 : Position::AfterConv3;
  if (c.plugin == "gc") o.plugins.push_back({.block = gc_options(0, {1, c.ratio}), .position = at, .stages = c.plugin_stages});
  if (c.plugin == "se") o.plugins.push_back({.block = se_options(0, c.ratio), .position = at, .stages = c.plugin_stages});
  if (c.plugin == "snl") o.plugins.push_back({.block = snl_options(0), .position = at, .stages = c.plugin_stages});
  return o;
}

template <class Blocks>
GCNetSegmentor<Blocks> build_segmentor(const SegmentorConfig& c) {
  check_segmentor_config(c);
  std::vector<CustomPlugin<float, Cpu>> custom;
  if (c.plugin == "nl")  // mmcv NonLocal2d (reduction 2, embedded gaussian, identity at init)
    custom.push_back({.position = resnet_depth_is_basic(c.depth) ? Position::AfterConv2 : Position::AfterConv3,
                      .stages = c.plugin_stages, .make = [](index_t channels) -> PluginHandle<float, Cpu> {
                        return make_block_plugin("nonlocal_block", NonLocal2d<float, Cpu>({.in_channels = channels}));
                      }});
  SegBackbone<Blocks> backbone(seg_backbone_options(c), std::move(custom));
  const index_t c5 = backbone.stage_channels(3), c4 = backbone.stage_channels(2);
  const DecodeHeadOptions decode{.in_channels = c5, .channels = c.head_channels, .num_classes = c.num_classes,
                                 .in_index = 3, .dropout_ratio = c.dropout, .align_corners = c.align_corners};
  FCNHeadOptions head = c.head == "gc"   ? gc_head_options(decode, {1, c.head_ratio})
                        : c.head == "nl" ? nl_head_options(decode)
                                         : FCNHeadOptions{.head = decode};
  FCNHeadOptions aux{.head = {.in_channels = c4, .channels = c.aux_channels, .num_classes = c.num_classes,
                              .in_index = 2, .dropout_ratio = c.dropout, .align_corners = c.align_corners,
                              .loss_weight = 0.4},
                     .num_convs = 1, .concat_input = false};
  GCNetSegmentor<Blocks> seg(std::move(backbone), SegHead(head), SegHead(aux));
  if (!c.aux) seg.set_aux_enabled(false);
  return seg;
}

// Compile-once: a program that defines GCNET_EXTERN_SEGMENTORS includes
// gcnet/seg/segmentor_instances.hpp in exactly one unit (the examples' instance library does);
// every other unit only declares the segmentor types (what would otherwise be compiled again in
// each program that builds one).
#if defined(GCNET_EXTERN_SEGMENTORS)
extern template class ResBasicBlock<SegNorm>;
extern template class ResBottleneck<SegNorm, Conv2d<float, Cpu>>;
extern template class RepeatN<ResBasicBlock<SegNorm>>;
extern template class RepeatN<ResBottleneck<SegNorm, Conv2d<float, Cpu>>>;
extern template class ResNetBackbone<float, Cpu, SegNorm, void, true, BasicBlocks>;
extern template class ResNetBackbone<float, Cpu, SegNorm, void, true, BottleneckBlocks>;
extern template class FCNHead<float, Cpu, SegNorm>;
extern template class EncoderDecoder<SegBackbone<BasicBlocks>, SegHead, SegHead>;
extern template class EncoderDecoder<SegBackbone<BottleneckBlocks>, SegHead, SegHead>;
#endif

// Builds the segmentor of `c` (its backbone type follows the depth) and calls f(segmentor).
template <class F>
decltype(auto) with_segmentor(const SegmentorConfig& c, F&& f) {
  check_segmentor_config(c);
  if (resnet_depth_is_basic(c.depth)) {
    auto seg = build_segmentor<BasicBlocks>(c);
    return f(seg);
  }
  auto seg = build_segmentor<BottleneckBlocks>(c);
  return f(seg);
}

}  // namespace gcnet
