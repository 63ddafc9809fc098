#pragma once
// softmax_exp: the exp of softmax rows and cross-entropy (NonLocal2d's attention, GC's attention
// pooling, the segmentation loss), written so that a loop of it vectorizes.
#include <bit>
#include <cmath>
#include <concepts>

#include "gcnet/core/config.hpp"

namespace gcnet {
namespace detail {
// float uses a branch-free Cephes-style polynomial that the compiler vectorizes (std::exp is a
// scalar call, about a third of NL's forward time at 56x56); ~1 ulp on [-87, 0], where a softmax
// evaluates it (below -87 it returns exp(-87) ~ 1.6e-38, not 0). double keeps std::exp.
// min(max(x, lo), hi) as bit selects on the comparisons' masks. GCC 12 does not if-convert a
// float ?: (nor std::clamp) whose result feeds arithmetic unless -fno-trapping-math, so the loop
// around it would stay scalar; this form vectorizes. NaN stays NaN.
GCNET_HD inline float clamp_by_mask(float x, float lo, float hi) {
  const int below = -static_cast<int>(x < lo), above = -static_cast<int>(x > hi);
  int bits = std::bit_cast<int>(x);
  bits = (bits & ~below) | (std::bit_cast<int>(lo) & below);
  bits = (bits & ~above) | (std::bit_cast<int>(hi) & above);
  return std::bit_cast<float>(bits);
}

template <class T>
GCNET_HD inline T softmax_exp(T x) {
  if constexpr (std::same_as<T, float>) {
    x = clamp_by_mask(x, -87.0f, 88.0f);
    // n = round(x / ln 2) by the 1.5 * 2^23 trick (no floor call, so the loop vectorizes)
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const float scale = std::bit_cast<float>((static_cast<int>(n) + 127) << 23);
    return p * scale;
  } else {
    return std::exp(x);
  }
}
}  // namespace detail
}  // namespace gcnet
