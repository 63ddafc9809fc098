// The library's (float|double, Cpu) classes compiled once for all of a test executable's units
// (GCNET_EXTERN_LAYERS, core/extern_instances.hpp).
#include "gcnet/explicit_instances.hpp"
