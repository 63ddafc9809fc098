#pragma once
// The kinds of step 3 of the GC framework (fusion): how the transformed context re-enters every
// position. This file names them; the fusion itself is computed in global_context.hpp (and in the
// CPU single region, cpu/global_context_team.hpp).
//   Fusion::Add     y = x + a[n,c]                      (mmcv 'channel_add')
//   Fusion::Mul     y = x * sigmoid(m[n,c])             (mmcv 'channel_mul', SE's scale)
//   Fusion::MulAdd  y = x * sigmoid(m[n,c]) + a[n,c]    (both; multiply first, as mmcv)
// A runtime value of GlobalContextBlock (global_context.hpp). The tags fusion::Add / Mul / MulAdd
// spell the same values as types, for the compile-time aliases (GCBlock<Ratio, fusion::Add>).
#include <concepts>

namespace gcnet {

enum class Fusion { Add, Mul, MulAdd };

inline bool has_add(Fusion f) { return f != Fusion::Mul; }
inline bool has_mul(Fusion f) { return f != Fusion::Add; }
inline const char* fusion_name(Fusion f) {
  switch (f) {
    case Fusion::Add: return "add";
    case Fusion::Mul: return "mul";
    case Fusion::MulAdd: return "mul+add";
  }
  return "invalid";
}

namespace fusion {

struct Add {
  static constexpr Fusion value = Fusion::Add;
};
struct Mul {
  static constexpr Fusion value = Fusion::Mul;
};
struct MulAdd {
  static constexpr Fusion value = Fusion::MulAdd;
};

// A fusion tag: a type naming one Fusion value.
template <class F>
concept Tag = requires {
  { F::value } -> std::convertible_to<Fusion>;
};

}  // namespace fusion
}  // namespace gcnet
