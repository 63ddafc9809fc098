#pragma once
// COCO's run-length encoding of a binary mask, with pycocotools' semantics (maskApi.c):
// the mask is read in COLUMN-MAJOR order (down each column, columns left to right, as
// pycocotools' Fortran-ordered arrays), and counts alternate runs of 0s and 1s, starting with
// 0s (a mask whose first pixel is set starts with a count of 0).
//
// Two layers:
//  - rle_encode / rle_decode: the bare counts of an uncompressed RLE ({"counts": [...],
//    "size": [h, w]} in instances.json), as the scene writer and tests use them;
//  - Rle {h, w, counts}: the mask API (encode, decode, area, bbox here; the compressed string
//    form in coco_rle_string.hpp; merge and IoU in coco_mask_ops.hpp; polygons and boxes in
//    coco_polygon.hpp; coco_mask.hpp includes them all).
// Masks handed to and returned by these functions are row-major h x w bytes (the library's
// image layout), nonzero = set, unless a function says "column_major".
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
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

// ---------------------------------------------------------------------------------------------
// Rle: pycocotools' RLE object ({"size": [h, w], "counts": ...} once encoded). Counts are uint32
// as in maskApi.c; the functions that build an Rle keep sum(counts) == h * w, and rle_check
// verifies it for one read from a file.
struct Rle {
  index_t h = 0, w = 0;
  std::vector<std::uint32_t> counts;

  bool operator==(const Rle&) const = default;
};

// Throws unless `r` has a positive size and its counts cover exactly h * w pixels (an RLE from
// a file whose counts do not add up is damaged, or was made for another image size).
inline void rle_check(const Rle& r, const std::string& where = "rle_check") {
  GCNET_CHECK(r.h > 0 && r.w > 0, where, ": RLE size ", r.h, "x", r.w, " is not positive");
  std::uint64_t sum = 0;
  for (const std::uint32_t c : r.counts) sum += c;
  const auto total = static_cast<std::uint64_t>(r.h) * static_cast<std::uint64_t>(r.w);
  GCNET_CHECK(sum == total, where, ": RLE counts sum to ", sum, " but its size ", r.h, "x", r.w, " has ", total,
              " pixels");
}

namespace rle_detail {
// Copies a row-major h x w mask into column-major order as 0/1 bytes, in square tiles so both
// sides stay in cache (a plain column walk over a row-major mask strides by w every byte).
inline void to_column_major01(const std::uint8_t* src, index_t h, index_t w, std::uint8_t* dst) {
  constexpr index_t T = 64;
  for (index_t y0 = 0; y0 < h; y0 += T)
    for (index_t x0 = 0; x0 < w; x0 += T) {
      const index_t y1 = std::min(h, y0 + T), x1 = std::min(w, x0 + T);
      for (index_t x = x0; x < x1; ++x) {
        std::uint8_t* d = dst + x * h;
        for (index_t y = y0; y < y1; ++y) d[y] = src[y * w + x] != 0;
      }
    }
}

// The inverse: a column-major h x w buffer to row-major.
inline void to_row_major(const std::uint8_t* src, index_t h, index_t w, std::uint8_t* dst) {
  constexpr index_t T = 64;
  for (index_t y0 = 0; y0 < h; y0 += T)
    for (index_t x0 = 0; x0 < w; x0 += T) {
      const index_t y1 = std::min(h, y0 + T), x1 = std::min(w, x0 + T);
      for (index_t y = y0; y < y1; ++y) {
        std::uint8_t* d = dst + y * w;
        for (index_t x = x0; x < x1; ++x) d[x] = src[x * h + y];
      }
    }
}

// The first index in [from, n) whose byte differs from v (0 or 1), else n; 8 bytes at a time.
inline index_t next_change(const std::uint8_t* p, index_t from, index_t n, std::uint8_t v) {
  const std::uint64_t pattern = v ? 0x0101010101010101ull : 0;
  index_t i = from;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, p + i, 8);
    if (const std::uint64_t diff = word ^ pattern) return i + __builtin_ctzll(diff) / 8;  // little-endian
  }
  for (; i < n; ++i)
    if (p[i] != v) return i;
  return n;
}

// A per-thread scratch buffer of n bytes: a fresh mask-sized allocation each call would be
// mapped and page-faulted anew every time (glibc mmaps blocks this large).
inline std::uint8_t* scratch(std::size_t n) {
  thread_local std::vector<std::uint8_t> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// rleEncode of a column-major 0/1 buffer of n bytes.
inline std::vector<std::uint32_t> runs01(const std::uint8_t* p, index_t n) {
  std::vector<std::uint32_t> counts;
  std::uint8_t v = 0;
  for (index_t pos = 0;;) {
    const index_t next = next_change(p, pos, n, v);
    counts.push_back(static_cast<std::uint32_t>(next - pos));
    if (next == n) break;
    pos = next;
    v ^= 1;
  }
  return counts;
}
}  // namespace rle_detail

// maskApi.c's rleEncode on a column-major mask (pixel (y, x) at x * h + y; nonzero = set).
inline Rle rle_encode_column_major(const std::uint8_t* mask, index_t h, index_t w) {
  GCNET_CHECK(h > 0 && w > 0, "rle_encode_column_major: mask size ", h, "x", w, " is not positive");
  std::vector<std::uint8_t> m01(mask, mask + h * w);
  for (auto& v : m01) v = v != 0;
  return Rle{h, w, rle_detail::runs01(m01.data(), h * w)};
}

// pycocotools.mask.encode of one row-major h x w mask (nonzero = set).
inline Rle rle_from_mask(const std::uint8_t* mask, index_t h, index_t w) {
  GCNET_CHECK(h > 0 && w > 0, "rle_from_mask: mask size ", h, "x", w, " is not positive");
  std::uint8_t* cm = rle_detail::scratch(static_cast<std::size_t>(h * w));
  rle_detail::to_column_major01(mask, h, w, cm);
  return Rle{h, w, rle_detail::runs01(cm, h * w)};
}

inline Rle rle_from_mask(const std::vector<std::uint8_t>& mask, index_t h, index_t w) {
  GCNET_CHECK(h > 0 && w > 0 && mask.size() == static_cast<std::size_t>(h * w), "rle_from_mask: mask of ",
              mask.size(), " bytes for ", h, "x", w);
  return rle_from_mask(mask.data(), h, w);
}

// pycocotools.mask.decode into `out` (h * w bytes, row-major, 0/1). Checks the counts first.
// Runs are filled column-major (memset), then transposed in tiles.
inline void rle_to_mask(const Rle& r, std::uint8_t* out, const std::string& where = "rle_to_mask") {
  rle_check(r, where);
  std::uint8_t* cm = rle_detail::scratch(static_cast<std::size_t>(r.h * r.w));
  std::size_t pos = 0;
  std::uint8_t v = 0;
  for (const std::uint32_t c : r.counts) {
    std::memset(cm + pos, v, c);
    pos += c;
    v ^= 1;
  }
  rle_detail::to_row_major(cm, r.h, r.w, out);
}

inline std::vector<std::uint8_t> rle_to_mask(const Rle& r, const std::string& where = "rle_to_mask") {
  rle_check(r, where);
  std::vector<std::uint8_t> m(static_cast<std::size_t>(r.h * r.w));
  rle_to_mask(r, m.data(), where);
  return m;
}

// pycocotools.mask.area: the number of set pixels (sum of the odd-index counts).
inline std::uint64_t rle_area(const Rle& r) {
  std::uint64_t a = 0;
  for (std::size_t j = 1; j < r.counts.size(); j += 2) a += r.counts[j];
  return a;
}

// pycocotools.mask.toBbox: [x, y, w, h] of the set pixels, as doubles; [0, 0, 0, 0] when empty.
// Exactly maskApi.c's rleToBbox: a trailing run of 0s is dropped (an even number of runs is
// walked); when one run of 1s starts and ends in different columns, the box spans the whole
// height; the arithmetic is uint32 as there.
inline std::array<double, 4> rle_to_bbox(const Rle& r) {
  const auto h = static_cast<std::uint32_t>(r.h), w = static_cast<std::uint32_t>(r.w);
  const std::size_t m = r.counts.size() / 2 * 2;
  if (m == 0 || h == 0) return {0, 0, 0, 0};
  std::uint32_t xs = w, ys = h, xe = 0, ye = 0, cc = 0, first_x = 0;
  for (std::size_t j = 0; j < m; ++j) {
    cc += r.counts[j];
    // Even j: cc is the first pixel of a run of 1s; odd j: cc - 1 is its last pixel.
    const std::uint32_t t = cc - static_cast<std::uint32_t>(j % 2), y = t % h, x = t / h;
    if (j % 2 == 0) {
      first_x = x;
    } else if (first_x < x) {
      ys = 0;
      ye = h - 1;
    }
    xs = std::min(xs, x);
    xe = std::max(xe, x);
    ys = std::min(ys, y);
    ye = std::max(ye, y);
  }
  return {static_cast<double>(xs), static_cast<double>(ys), static_cast<double>(xe - xs + 1),
          static_cast<double>(ye - ys + 1)};
}

}  // namespace gcnet::data
