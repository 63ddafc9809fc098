// Must NOT compile: a type that is no ResNet feature. The error must name it
// (tests/compile_fail/check.cmake looks for "unknown_resnet_feature<NotAFeature>").
#include "gcnet/models/resnet.hpp"

struct NotAFeature {};
gcnet::ResNet<gcnet::resnet::Depth50, NotAFeature> net;
