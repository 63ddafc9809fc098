// Eigen's GEMM compiled once for the example programs (GCNET_EXTERN_BLAS).
#include "gcnet/kernels/blas_instances.hpp"
