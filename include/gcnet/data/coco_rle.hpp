#pragma once
// COCO's uncompressed run-length encoding of a binary mask ({"counts": [...], "size": [h, w]}
// in instances.json): the mask is read in COLUMN-MAJOR order (down each column, columns left
// to right, as pycocotools' Fortran-ordered arrays), and counts alternate runs of 0s and 1s,
// starting with 0s (a mask whose first pixel is set starts with a count of 0).
#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/core/config.hpp"
#include "gcnet/core/error.hpp"

namespace gcnet::data {

// `mask`: height x width bytes in row-major order, nonzero = set.
inline std::vector<std::uint32_t> rle_encode(const std::vector<std::uint8_t>& mask, index_t height, index_t width) {
  GCNET_CHECK(height > 0 && width > 0 && mask.size() == static_cast<std::size_t>(height * width),
              "rle_encode: mask of ", mask.size(), " bytes for ", height, "x", width);
  std::vector<std::uint32_t> counts;
  std::uint8_t current = 0;
  std::uint32_t run = 0;
  for (index_t x = 0; x < width; ++x)
    for (index_t y = 0; y < height; ++y) {
      const std::uint8_t v = mask[static_cast<std::size_t>(y * width + x)] ? 1 : 0;
      if (v != current) {
        counts.push_back(run);
        current = v;
        run = 0;
      }
      ++run;
    }
  counts.push_back(run);
  return counts;
}

// The row-major 0/1 mask of an uncompressed RLE; errors name `where` (a file and annotation).
inline std::vector<std::uint8_t> rle_decode(const std::vector<std::uint32_t>& counts, index_t height, index_t width,
                                            const std::string& where = "rle_decode") {
  GCNET_CHECK(height > 0 && width > 0, where, ": RLE size ", height, "x", width, " is not positive");
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(height * width), 0);
  const std::uint64_t total = static_cast<std::uint64_t>(height * width);
  std::uint64_t pos = 0;
  std::uint8_t v = 0;
  for (const std::uint32_t n : counts) {
    GCNET_CHECK(pos + n <= total, where, ": RLE counts cover more than the ", total, " pixels of ", height, "x", width);
    for (std::uint64_t k = pos; k < pos + n; ++k) {
      const auto y = static_cast<index_t>(k % static_cast<std::uint64_t>(height));
      const auto x = static_cast<index_t>(k / static_cast<std::uint64_t>(height));
      mask[static_cast<std::size_t>(y * width + x)] = v;
    }
    pos += n;
    v ^= 1;
  }
  GCNET_CHECK(pos == total, where, ": RLE counts cover ", pos, " of the ", total, " pixels of ", height, "x", width);
  return mask;
}

}  // namespace gcnet::data
