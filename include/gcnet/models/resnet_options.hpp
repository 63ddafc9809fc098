#pragma once
// ResNetOptions: everything about a ResNet / ResNeXt / ResNetV1c backbone that is a VALUE (sizes,
// depth, strides and dilations, which stages are deformable, which global-context blocks are
// plugged where, outputs, frozen stages). One compiled backbone type (models/resnet.hpp) runs
// every combination; the type expressions ResNet<Depth50, Plugin<GCBlock<...>, ...>> only fill
// these in (models/resnet_features.hpp).
//   ResNetOptions o = resnet_depth(50);
//   o.plugins.push_back({.block = gc_options(0, {1, 16}), .position = Position::AfterConv3,
//                        .stages = {false, true, true, true}});       // GCNet r16 on c3-c5
#include <array>
#include <string>
#include <vector>

#include "gcnet/blocks/global_context.hpp"
#include "gcnet/core/error.hpp"

namespace gcnet {

// Where in a residual block a plugin runs. In a Bottleneck: after conv1's ReLU, after conv2's
// ReLU, or after the last norm (before the residual add), as mmdet's 'after_conv1' /
// 'after_conv2' / 'after_conv3'. In a BasicBlock (models/res_basic_block.hpp): AfterConv1 after
// conv1's ReLU, AfterConv2 after bn2 (its last norm, before the residual add: where GCNet puts
// GC in a BasicBlock); AfterConv3 does not exist there and is refused.
enum class Position { AfterConv1, AfterConv2, AfterConv3 };

inline const char* position_name(Position p) {
  return p == Position::AfterConv1 ? "after_conv1" : p == Position::AfterConv2 ? "after_conv2" : "after_conv3";
}

// A block of the global-context family (GC of any ratio, pooling and fusion, SE, simplified NL)
// in every block of the chosen stages; `block.channels` is ignored (each block gets its own).
struct ContextPlugin {
  GlobalContextOptions block = gc_options(0);
  Position position = Position::AfterConv3;
  std::array<bool, 4> stages{false, true, true, true};
  std::string postfix{};  // appended to the state-dict name (two plugins of one kind in a block)
};

// The state-dict name of a global-context plugin: mmdet's "context_block" for GC, and ours for
// SE ("se_block") and the simplified NL ("simplified_nl_block"), which mmdet has no plugin of.
inline const char* plugin_name(const GlobalContextOptions& o) {
  switch (o.kind) {
    case GlobalContextKind::SE: return "se_block";
    case GlobalContextKind::SNL: return "simplified_nl_block";
    default: return "context_block";
  }
}

struct ResNetOptions {
  index_t in_channels = 3;
  index_t stem_channels = 64;
  index_t base_channels = 64;           // planes of layer1 (doubling per stage)
  std::vector<int> out_indices{0, 1, 2, 3};
  int frozen_stages = -1;               // -1: none; 0: the stem; k: the stem and layer1..layerk
  bool norm_eval = false;               // norms in eval mode even when training
  int depth = 0;                        // resnet_depth(d) sets d: the backbone checks that its block family has
                                        // that depth (18/34 BasicBlock, 50/101/152 Bottleneck); 0: blocks given
  std::array<index_t, 4> blocks{3, 4, 6, 3};  // blocks per stage (depth 50)
  index_t groups = 1, base_width = 64;  // ResNeXt: 3x3 convs of width int(planes * base_width / 64) * groups
  std::array<index_t, 4> strides{1, 2, 2, 2};
  std::array<index_t, 4> dilations{1, 1, 1, 1};
  bool contract_dilation = false;       // mmseg: block 0 of a dilated stage uses half the dilation
  std::array<bool, 4> dcn_stages{};     // conv2 deformable in these stages (a backbone type with Dcn)
  std::vector<ContextPlugin> plugins{};  // global-context blocks, in order
};

// mmdet/mmseg's depths (arch_settings): 18 and 34 are BasicBlock ResNets (BasicResNetBackbone),
// 50/101/152 Bottleneck ones (ResNetBackbone, the default).
inline std::array<index_t, 4> resnet_blocks(int depth) {
  switch (depth) {
    case 18: return {2, 2, 2, 2};
    case 34: return {3, 4, 6, 3};
    case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
    case 152: return {3, 8, 36, 3};
    default:
      detail::fail("ResNet: depth ", depth, " is not one of 18, 34 (BasicBlock: BasicResNetBackbone) or 50, 101, 152 ",
                   "(Bottleneck: ResNetBackbone)");
  }
}
// Whether a depth of resnet_blocks() is a BasicBlock ResNet (18, 34).
inline bool resnet_depth_is_basic(int depth) { return depth == 18 || depth == 34; }
// The options of a named depth: its blocks, and `depth` set so that a backbone of the other
// block family refuses them (ResNet-34 and ResNet-50 have the same blocks per stage).
inline ResNetOptions resnet_depth(int depth) {
  ResNetOptions o;
  o.blocks = resnet_blocks(depth);
  o.depth = depth;
  return o;
}

// A command line's stage set: four 0/1 digits for c2..c5, e.g. "0111" (the GCNet paper's c3-c5);
// `option` names the flag in the error.
inline std::array<bool, 4> parse_stage_digits(const std::string& s, const std::string& option) {
  GCNET_CHECK(s.size() == 4 && s.find_first_not_of("01") == std::string::npos, option,
              ": expected four 0/1 digits for c2..c5 (e.g. 0111 for c3-c5), got '", s, "'");
  return {s[0] == '1', s[1] == '1', s[2] == '1', s[3] == '1'};
}

}  // namespace gcnet
