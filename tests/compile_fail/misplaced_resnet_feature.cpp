// Must NOT compile: two Norm features (the second would be ignored). The error must name the
// feature (tests/compile_fail/check.cmake looks for "misplaced_resnet_feature<gcnet::resnet::Norm<").
#include "gcnet/models/resnet.hpp"

using namespace gcnet::resnet;
gcnet::ResNet<Depth50, Norm<gcnet::FrozenBatchNorm2d<>>, Norm<gcnet::BatchNorm2d<>>> net;
