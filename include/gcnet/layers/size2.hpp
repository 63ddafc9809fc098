#pragma once
// Size2: a (height, width) pair for kernel sizes, strides, paddings and dilations.
// Converts from one integer (both sides equal), as PyTorch's int-or-tuple arguments:
// Conv2d<>({.in = 3, .out = 8, .kernel = 3, .stride = {2, 1}}).
#include <string>

#include "gcnet/core/config.hpp"

namespace gcnet {

struct Size2 {
  index_t h = 0, w = 0;

  constexpr Size2() = default;
  constexpr Size2(index_t both) : h(both), w(both) {}  // NOLINT: implicit by design
  constexpr Size2(index_t height, index_t width) : h(height), w(width) {}

  constexpr bool square() const { return h == w; }
  friend constexpr bool operator==(const Size2&, const Size2&) = default;

  // "3" when square, else "3x5"; always_pair gives "3x3".
  std::string str(bool always_pair = false) const {
    if (square() && !always_pair) return std::to_string(h);
    return std::to_string(h) + "x" + std::to_string(w);
  }
};

}  // namespace gcnet
