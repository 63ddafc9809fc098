# CUDA backend build support (tests and programs that use Tensor<T, Cuda>).
# Placeholder until the CUDA skeleton lands.
