#pragma once
// The compile-once instantiations of the segmentor types (segmentor_config.hpp,
// GCNET_EXTERN_SEGMENTORS): include this in exactly ONE unit of a program whose other units define
// GCNET_EXTERN_SEGMENTORS. Explicit instantiation compiles every member of these classes once.
#include "gcnet/seg/segmentor_config.hpp"

namespace gcnet {
template class ResBasicBlock<SegNorm>;
template class ResBottleneck<SegNorm, Conv2d<float, Cpu>>;
template class RepeatN<ResBasicBlock<SegNorm>>;
template class RepeatN<ResBottleneck<SegNorm, Conv2d<float, Cpu>>>;
template class ResNetBackbone<float, Cpu, SegNorm, void, true, BasicBlocks>;
template class ResNetBackbone<float, Cpu, SegNorm, void, true, BottleneckBlocks>;
template class FCNHead<float, Cpu, SegNorm>;
template class EncoderDecoder<SegBackbone<BasicBlocks>, SegHead, SegHead>;
template class EncoderDecoder<SegBackbone<BottleneckBlocks>, SegHead, SegHead>;
}  // namespace gcnet
