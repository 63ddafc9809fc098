// The library's (float|double, Cpu) classes compiled once for the example programs
// (GCNET_EXTERN_LAYERS, core/extern_instances.hpp).
#include "gcnet/explicit_instances.hpp"
