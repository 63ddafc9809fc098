#pragma once
// NLHead: mmseg's NLHead, an FCNHead (two convs) with a Non-local block between them:
//   out = convs[1](nl_block(convs[0](x))); conv_cat(cat([x, out])); conv_seg
// NonLocal2d(reduction 2, use_scale, embedded gaussian) with a norm after conv_out (mmseg hands
// the head's norm_cfg to it; here that norm is a BatchNorm2d, see docs/segmentation.md).
//   NLHead<>({.in_channels = 2048, .channels = 512, .num_classes = 19})
#include "gcnet/seg/fcn_head.hpp"

namespace gcnet {

inline FCNHeadOptions nl_head_options(const DecodeHeadOptions& head, index_t reduction = 2, bool use_scale = true,
                                      NonLocalMode mode = NonLocalMode::EmbeddedGaussian) {
  FCNHeadOptions o;
  o.head = head;
  o.num_convs = 2;
  o.block = HeadBlock::NonLocal;
  o.nl = NonLocal2dOptions{.reduction = reduction, .use_scale = use_scale, .mode = mode, .norm = true};
  return o;
}

template <Scalar T = float, Backend B = Cpu, class Norm = BatchNorm2d<T, B>>
class NLHead : public FCNHead<T, B, Norm> {
 public:
  explicit NLHead(const DecodeHeadOptions& head, index_t reduction = 2, bool use_scale = true,
                  NonLocalMode mode = NonLocalMode::EmbeddedGaussian)
      : FCNHead<T, B, Norm>(nl_head_options(head, reduction, use_scale, mode)) {}
};

}  // namespace gcnet
