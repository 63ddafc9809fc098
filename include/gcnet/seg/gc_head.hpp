#pragma once
// GCHead: mmseg's GCHead, an FCNHead (two convs) with a GC block between them:
//   out = convs[1](gc_block(convs[0](x))); conv_cat(cat([x, out])); conv_seg
// GCHead(ratio = 1/4, pooling 'att', fusion 'channel_add') as mmseg's defaults.
//   GCHead<>({.in_channels = 2048, .channels = 512, .num_classes = 19})
// attention_map() gives the GC block's attention of the last forward: the softmax of conv_mask
// over the H*W positions of each image (what gcnet_test_seg --show-dir draws).
#include "gcnet/seg/fcn_head.hpp"

namespace gcnet {

inline FCNHeadOptions gc_head_options(const DecodeHeadOptions& head, PlanesRatio ratio = {1, 4},
                                      Pooling pooling = Pooling::Attention, Fusion fusion = Fusion::Add) {
  FCNHeadOptions o;
  o.head = head;
  o.num_convs = 2;
  o.block = HeadBlock::GlobalContext;
  o.gc = gc_options(0, ratio, pooling, fusion);
  return o;
}

template <Scalar T = float, Backend B = Cpu, class Norm = BatchNorm2d<T, B>>
class GCHead : public FCNHead<T, B, Norm> {
 public:
  explicit GCHead(const DecodeHeadOptions& head, PlanesRatio ratio = {1, 4}, Pooling pooling = Pooling::Attention,
                  Fusion fusion = Fusion::Add)
      : FCNHead<T, B, Norm>(gc_head_options(head, ratio, pooling, fusion)) {}
};

// The attention of a head's GC block in its last forward, [N, 1, H, W] (sums to 1 per image);
// an error for a head without an attention-pooling GC block.
template <Scalar T, Backend B, class Norm>
Tensor<T, B> attention_map(FCNHead<T, B, Norm>& head) {
  BlockPlugin<T, B>* p = head.block();
  auto* gc = p ? plugin_layer<GlobalContextBlock<T, B>>(*p) : nullptr;
  GCNET_CHECK(gc && gc->options().pooling == Pooling::Attention, head.describe(),
              ": attention_map needs a head with an attention-pooling GC block");
  const Tensor<T, B>& prob = gc->context().probabilities();
  const Tensor<T, B>& in = head.features();  // any map of the head: same H, W as the block's
  GCNET_CHECK(prob.defined() && prob.rank() == 2 && prob.size(1) == in.size(2) * in.size(3), head.describe(),
              ": attention_map needs a forward of the head first");
  return clone(prob).reshape(Shape{prob.size(0), 1, in.size(2), in.size(3)});
}

}  // namespace gcnet
