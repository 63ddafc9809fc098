#pragma once
// The compile-once instantiations of core/extern_instances.hpp: include this in exactly ONE
// translation unit of a program whose units define GCNET_EXTERN_LAYERS (this one may too: an
// explicit instantiation after its extern declaration defines it). Explicit instantiation
// compiles every member, so this unit takes a while; every other unit that builds these layers
// compiles in about half the time.
#include "gcnet/gcnet.hpp"

#define GCNET_INSTANCE_BOTH(Name)             \
  template class Name<float, ::gcnet::Cpu>;  \
  template class Name<double, ::gcnet::Cpu>;

namespace gcnet {
GCNET_INSTANCE_BOTH(AvgPool2d)
GCNET_INSTANCE_BOTH(BatchNorm2d)
GCNET_INSTANCE_BOTH(Conv2d)
GCNET_INSTANCE_BOTH(ConvGemm)
GCNET_INSTANCE_BOTH(ConvTranspose2d)
GCNET_INSTANCE_BOTH(DeformConv2d)
GCNET_INSTANCE_BOTH(ModulatedDeformConv2d)
GCNET_INSTANCE_BOTH(DeformConv2dPack)
GCNET_INSTANCE_BOTH(ModulatedDeformConv2dPack)
GCNET_INSTANCE_BOTH(Dropout2d)
GCNET_INSTANCE_BOTH(Flatten)
GCNET_INSTANCE_BOTH(FrozenBatchNorm2d)
GCNET_INSTANCE_BOTH(GlobalAvgPool2d)
GCNET_INSTANCE_BOTH(LayerNorm)
GCNET_INSTANCE_BOTH(Linear)
GCNET_INSTANCE_BOTH(MaxPool2d)
GCNET_INSTANCE_BOTH(ReLU)
GCNET_INSTANCE_BOTH(ResizeBilinear)
GCNET_INSTANCE_BOTH(Sigmoid)
GCNET_INSTANCE_BOTH(Softmax)
GCNET_INSTANCE_BOTH(SyncBatchNorm2d)
GCNET_INSTANCE_BOTH(UpsampleNearest)
GCNET_INSTANCE_BOTH(FPN)
GCNET_INSTANCE_BOTH(Sgd)
GCNET_INSTANCE_BOTH(GlobalContextBlock)
GCNET_INSTANCE_BOTH(NonLocal2d)
GCNET_INSTANCE_BOTH(blocks::ChannelTransform)
GCNET_INSTANCE_BOTH(blocks::ContextModeling)
GCNET_INSTANCE_BOTH(ResNetBackbone)
template class ResBottleneck<BatchNorm2d<float, Cpu>, Conv2d<float, Cpu>>;
template class ResBottleneck<BatchNorm2d<double, Cpu>, Conv2d<double, Cpu>>;
template class RepeatN<ResBottleneck<BatchNorm2d<float, Cpu>, Conv2d<float, Cpu>>>;
template class RepeatN<ResBottleneck<BatchNorm2d<double, Cpu>, Conv2d<double, Cpu>>>;
template class ResNetBackbone<float, Cpu, BatchNorm2d<float, Cpu>, void, false, BasicBlocks>;
template class ResNetBackbone<double, Cpu, BatchNorm2d<double, Cpu>, void, false, BasicBlocks>;
template class ResBasicBlock<BatchNorm2d<float, Cpu>>;
template class ResBasicBlock<BatchNorm2d<double, Cpu>>;
template class RepeatN<ResBasicBlock<BatchNorm2d<float, Cpu>>>;
template class RepeatN<ResBasicBlock<BatchNorm2d<double, Cpu>>>;
}  // namespace gcnet

#undef GCNET_INSTANCE_BOTH
