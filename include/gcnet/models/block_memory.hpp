#pragma once
// Memory planning of the residual blocks of a backbone: what a block keeps between forward and
// backward, and what it borrows only for the length of one call.
//  - Gradient scratch (BlockGradScratch): backward runs one block at a time, so all blocks of a
//    backbone share ONE set of gradient buffers instead of one per block.
//  - Forward scratch (BlockForwardScratch): what a forward needs only until the block's output is
//    written. An eval forward keeps nothing between blocks but each block's output, so the fused
//    eval forward (models/res_block_eval_fusion.hpp) of every block uses one shared set of
//    intermediate activations (freed by the backbone after the last block that ran by infer());
//    the training forward puts the shortcut's norm output there (read by the residual add only),
//    and the frozen-norm training forward (models/res_block_frozen_norms.hpp) conv3's and the
//    downsample's outputs; release_activations() drops what an earlier forward kept.
//  - The direct plugin: a plugin placed alone at the block's last position (after conv3 in a
//    Bottleneck, after conv2 in a BasicBlock) whose backward reads x and dy but not the values
//    of its output (the global-context family) writes straight into the block's output; the
//    residual add and ReLU then run there in place, and no copy of the plugin's output is kept
//    for backward.
// A copy of a block or backbone gets scratch of its own (OwnedScratch); sharing between the
// blocks of one backbone is explicit (share_with), set up by the backbone.
#include <cstddef>
#include <vector>

#include "gcnet/core/state.hpp"
#include "gcnet/models/block_plugin.hpp"
#include "gcnet/models/resnet_options.hpp"

namespace gcnet {

template <class T, class B>
struct BlockGradScratch {
  Tensor<T, B> gsum, gda, g, ga, gb, plugin_g;
};

template <class T, class B>
struct BlockForwardScratch {
  Tensor<T, B> r1, a2, r2, a3, da;  // the folded forwards (norms in place on the convs' outputs)
  Tensor<T, B> db;                   // the training forward: the shortcut's norm output
  std::vector<Tensor<T, B>> plugin_out;  // one per plugin of the block with the most
};

// A plugin and where it runs in the block.
template <Scalar T, Backend B>
struct PlacedPlugin {
  Position position = Position::AfterConv3;
  PluginHandle<T, B> plugin;
};

inline constexpr std::size_t kNoDirectPlugin = static_cast<std::size_t>(-1);

// The index of the direct plugin (see above) at the block's last position `last`, or
// kNoDirectPlugin.
template <Scalar T, Backend B>
std::size_t direct_plugin(const std::vector<PlacedPlugin<T, B>>& plugins, Position last = Position::AfterConv3) {
  std::size_t at = kNoDirectPlugin, count = 0;
  for (std::size_t i = 0; i < plugins.size(); ++i)
    if (plugins[i].position == last) {
      at = i;
      ++count;
    }
  if (count != 1 || !plugins[at].plugin->backward_ignores_output()) return kNoDirectPlugin;
  return at;
}

}  // namespace gcnet
