#pragma once
// Backend tags. Layers and tensors take one as a type parameter; kernels are
// dispatched on it (for_each_index, blas::gemm), so one layer body serves both.
#include <concepts>

namespace gcnet {

struct Cpu {
  static constexpr const char* name = "Cpu";
};
struct Cuda {
  static constexpr const char* name = "Cuda";
};

template <class B>
concept Backend = std::same_as<B, Cpu> || std::same_as<B, Cuda>;

template <class T>
concept Scalar = std::same_as<T, float> || std::same_as<T, double>;

}  // namespace gcnet
