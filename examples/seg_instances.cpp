// The segmentor types (SyncBN, BasicBlock and Bottleneck backbones, FCN-family heads) compiled
// once for the example programs (GCNET_EXTERN_SEGMENTORS, seg/segmentor_config.hpp).
#include "gcnet/seg/segmentor_instances.hpp"
