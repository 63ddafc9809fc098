// Eigen's GEMM compiled once for all of a test executable's units (GCNET_EXTERN_BLAS).
#include "gcnet/kernels/blas_instances.hpp"
