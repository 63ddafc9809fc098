// Must NOT compile: the first argument is not a depth (check.cmake looks for "not_a_depth<").
#include "gcnet/models/resnet.hpp"

using namespace gcnet::resnet;
gcnet::ResNet<DeepStem, Depth50> net;
