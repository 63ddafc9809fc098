#pragma once
// A row-major h x w binary mask with rows [y0, y1) and columns [x0, x1) set: the hand-made masks of
// the COCO mask, dataset and results tests.
#include <cstdint>
#include <vector>

#include "gcnet/core/shape.hpp"

namespace gcnet::test {

inline std::vector<std::uint8_t> mask_block(index_t h, index_t w, index_t y0, index_t y1, index_t x0, index_t x1) {
  std::vector<std::uint8_t> m(static_cast<std::size_t>(h * w), 0);
  for (index_t y = y0; y < y1; ++y)
    for (index_t x = x0; x < x1; ++x) m[static_cast<std::size_t>(y * w + x)] = 1;
  return m;
}

}  // namespace gcnet::test
