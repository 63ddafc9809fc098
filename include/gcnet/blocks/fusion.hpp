#pragma once
// Step 3 of the GC framework (fusion): how the transformed context re-enters every position.
//   fusion::Add     y = x + a[n,c]                      (mmcv 'channel_add')
//   fusion::Mul     y = x * sigmoid(m[n,c])             (mmcv 'channel_mul', SE's scale)
//   fusion::MulAdd  y = x * sigmoid(m[n,c]) + a[n,c]    (both; multiply first, as mmcv)
// The tags only say which branches exist; the fused kernels live in global_context.hpp.
#include <concepts>

namespace gcnet::fusion {

struct Add {
  static constexpr bool add = true, mul = false;
  static constexpr const char* name = "add";
};
struct Mul {
  static constexpr bool add = false, mul = true;
  static constexpr const char* name = "mul";
};
struct MulAdd {
  static constexpr bool add = true, mul = true;
  static constexpr const char* name = "mul+add";
};

template <class F>
concept Fusion = requires {
  { F::add } -> std::convertible_to<bool>;
  { F::mul } -> std::convertible_to<bool>;
};

}  // namespace gcnet::fusion
