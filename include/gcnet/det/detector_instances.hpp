#pragma once
// The Mask R-CNN types of the example programs (gcnet_train_det, gcnet_test_det, gcnet_detect)
// and their compile-once declarations: a program whose units define GCNET_EXTERN_DETECTORS only
// declares these classes here (extern template), and exactly one unit defines
// GCNET_DETECTOR_INSTANCES before including this header, which compiles every member once
// (examples/det_instances.cpp). The types:
//   DetBasicSyncBN       mmdet family, BasicBlock ResNet (18/34), SyncBN backbone
//   DetBottleneckSyncBN  mmdet family, Bottleneck ResNet (50/101/152), SyncBN backbone
//   DetTorchvision       torchvision's maskrcnn_resnet50_fpn (FrozenBatchNorm2d)
// (SyncBN with one process is BatchNorm; under mpirun it syncs the statistics across ranks.)
// FPN<float, Cpu> is compiled once with the layers (GCNET_EXTERN_LAYERS).
#include "gcnet/det/mask_rcnn.hpp"

namespace gcnet {

using DetSyncNorm = SyncBatchNorm2d<float, Cpu>;
using DetFrozenNorm = FrozenBatchNorm2d<float, Cpu>;
using DetBasicSyncBN = MaskRCNN<ResNetBackbone<float, Cpu, DetSyncNorm, void, false, BasicBlocks>>;
using DetBottleneckSyncBN = MaskRCNN<ResNetBackbone<float, Cpu, DetSyncNorm, void, false, BottleneckBlocks>>;
using DetTorchvision = MaskRCNN<ResNetBackbone<float, Cpu, DetFrozenNorm, void, false, BottleneckBlocks>>;

#if defined(GCNET_DETECTOR_INSTANCES)
#define GCNET_DETECTOR_INSTANCE(...) template class __VA_ARGS__;
#elif defined(GCNET_EXTERN_DETECTORS)
#define GCNET_DETECTOR_INSTANCE(...) extern template class __VA_ARGS__;
#else
#define GCNET_DETECTOR_INSTANCE(...)
#endif

GCNET_DETECTOR_INSTANCE(ResNetBackbone<float, Cpu, DetSyncNorm, void, false, BasicBlocks>)
GCNET_DETECTOR_INSTANCE(ResNetBackbone<float, Cpu, DetSyncNorm, void, false, BottleneckBlocks>)
GCNET_DETECTOR_INSTANCE(ResNetBackbone<float, Cpu, DetFrozenNorm, void, false, BottleneckBlocks>)
GCNET_DETECTOR_INSTANCE(RPNHead<float>)
GCNET_DETECTOR_INSTANCE(StandardRoIHead<float>)
GCNET_DETECTOR_INSTANCE(MaskRCNN<ResNetBackbone<float, Cpu, DetSyncNorm, void, false, BasicBlocks>>)
GCNET_DETECTOR_INSTANCE(MaskRCNN<ResNetBackbone<float, Cpu, DetSyncNorm, void, false, BottleneckBlocks>>)
GCNET_DETECTOR_INSTANCE(MaskRCNN<ResNetBackbone<float, Cpu, DetFrozenNorm, void, false, BottleneckBlocks>>)

#undef GCNET_DETECTOR_INSTANCE

}  // namespace gcnet
