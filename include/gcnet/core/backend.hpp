#pragma once
// Backend tags. Layers and tensors take one as a type parameter; kernels are
// dispatched on it (for_each_index, blas::gemm), so one layer body serves both.
#include <concepts>
#include <cstdint>

namespace gcnet {

struct Cpu {
  static constexpr const char* name = "Cpu";
};
struct Cuda {
  static constexpr const char* name = "Cuda";
};

template <class B>
concept Backend = std::same_as<B, Cpu> || std::same_as<B, Cuda>;

// Floating types layers compute in (float32 by default, double for gradient checks).
template <class T>
concept Scalar = std::same_as<T, float> || std::same_as<T, double>;

// Element types a tensor may hold: the scalars, plus integers for labels and indices.
template <class T>
concept Element = Scalar<T> || std::same_as<T, std::int64_t> || std::same_as<T, std::int32_t> ||
                  std::same_as<T, std::uint8_t>;

}  // namespace gcnet
