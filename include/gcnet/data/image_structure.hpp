#pragma once
// Completeness checks for the JPEG and BMP files read_image accepts, done before stb_image
// sees them: stb decodes a file that lost its tail without complaint (a truncated BMP or
// JPEG loads, its missing part filled with zeros or garbage). Neither format has a
// checksum, so a flipped bit inside the pixel data cannot be detected; what can be checked
// is that the file holds all the bytes its header promises.
#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/core/error.hpp"

namespace gcnet::data {

inline bool has_jpeg_signature(const std::vector<std::uint8_t>& b) {
  return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}
inline bool has_bmp_signature(const std::vector<std::uint8_t>& b) { return b.size() >= 2 && b[0] == 'B' && b[1] == 'M'; }

namespace detail {
// A DHT segment's tables (class/id byte, 16 code counts, the symbols) must fit the segment
// and hold at most 256 codes each: stb_image 2.27 (Debian 12's libstb) writes past its
// 257-entry table when a corrupt DHT declares more (found by tests/fuzz).
inline void check_jpeg_dht(const std::uint8_t* p, std::size_t len, std::size_t at, const std::string& path) {
  std::size_t i = 0;
  while (i < len) {
    GCNET_CHECK(i + 17 <= len, path, ": corrupt JPEG (Huffman table at byte ", at, " is cut short)");
    GCNET_CHECK((p[i] >> 4) <= 1 && (p[i] & 15) <= 3, path, ": corrupt JPEG (Huffman table class/id ",
                int(p[i]), " at byte ", at, ")");
    std::size_t codes = 0;
    for (int k = 1; k <= 16; ++k) codes += p[i + static_cast<std::size_t>(k)];
    GCNET_CHECK(codes <= 256 && i + 17 + codes <= len, path, ": corrupt JPEG (Huffman table at byte ", at,
                " declares ", codes, " codes)");
    i += 17 + codes;
  }
}
}  // namespace detail

// Walks the JPEG's marker segments (and the entropy-coded data after each start-of-scan)
// up to the end-of-image marker; a file that ends first is truncated. Huffman table
// segments are checked too (detail::check_jpeg_dht).
inline void check_jpeg_complete(const std::vector<std::uint8_t>& b, const std::string& path) {
  const std::size_t n = b.size();
  std::size_t pos = 2;  // after SOI
  auto truncated = [&](const char* where) {
    gcnet::detail::fail(path, ": truncated JPEG (the file ends at byte ", n, " ", where,
                        ", before the end-of-image marker)");
  };
  for (;;) {
    if (pos >= n) truncated("between segments");
    GCNET_CHECK(b[pos] == 0xFF, path, ": corrupt JPEG (expected a marker at byte ", pos, ")");
    while (pos < n && b[pos] == 0xFF) ++pos;  // fill bytes
    if (pos >= n) truncated("inside a marker");
    const std::uint8_t m = b[pos++];
    if (m == 0xD9) return;                                  // EOI
    if ((m >= 0xD0 && m <= 0xD7) || m == 0x01) continue;   // RSTn, TEM: no length
    GCNET_CHECK(m != 0x00 && m != 0xD8, path, ": corrupt JPEG (marker ", int(m), " at byte ", pos - 1, ")");
    if (pos + 2 > n) truncated("inside a segment length");
    const std::size_t len = (std::size_t{b[pos]} << 8) | b[pos + 1];
    GCNET_CHECK(len >= 2, path, ": corrupt JPEG (segment length ", len, " at byte ", pos, ")");
    if (pos + len > n) truncated("inside a segment");
    if (m == 0xC4) detail::check_jpeg_dht(&b[pos + 2], len - 2, pos + 2, path);
    pos += len;
    if (m != 0xDA) continue;
    // After SOS: entropy-coded data up to the next marker that is not a stuffed 0xFF00 or RSTn.
    for (;;) {
      while (pos < n && b[pos] != 0xFF) ++pos;
      if (pos + 1 >= n) truncated("inside the image data");
      const std::uint8_t next = b[pos + 1];
      if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
        pos += 2;
      } else if (next == 0xFF) {
        ++pos;
      } else {
        break;  // a marker: the outer loop reads it
      }
    }
  }
}

// An uncompressed BMP (the kinds stb decodes: BI_RGB, BI_BITFIELDS) must hold every row of
// pixels its header declares: offset + |height| rows of 4-byte-aligned width * bpp bits.
inline void check_bmp_complete(const std::vector<std::uint8_t>& b, const std::string& path) {
  auto le = [&](std::size_t at, int bytes) {
    std::uint32_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | b[at + static_cast<std::size_t>(i)];
    return v;
  };
  GCNET_CHECK(b.size() >= 26, path, ": truncated BMP (", b.size(), " bytes, less than its headers)");
  const std::uint32_t offset = le(10, 4), dib = le(14, 4);
  std::uint64_t width = 0, height = 0;
  std::uint32_t bpp = 0, compression = 0;
  if (dib == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit sizes
    width = le(18, 2);
    height = le(20, 2);
    bpp = le(24, 2);
  } else {
    GCNET_CHECK(dib >= 40 && b.size() >= 14 + std::size_t{40}, path, ": truncated or corrupt BMP (header of ", dib,
                " bytes in a file of ", b.size(), ")");
    const auto w = static_cast<std::int32_t>(le(18, 4)), h = static_cast<std::int32_t>(le(22, 4));
    // stb negates a negative height as an int: INT_MIN would overflow there.
    GCNET_CHECK(w > 0 && h != 0 && h != INT32_MIN, path, ": corrupt BMP (image size ", w, "x", h, ")");
    width = std::uint64_t(w);
    height = h < 0 ? std::uint64_t(-std::int64_t{h}) : std::uint64_t(h);  // negative: top-down rows
    bpp = le(28, 2);
    compression = le(30, 4);
  }
  if (compression != 0 && compression != 3 && compression != 6) return;  // RLE etc.: stb refuses them itself
  const std::uint64_t stride = (width * bpp + 31) / 32 * 4;  // < 2^32 * 2^16: fits
  std::uint64_t need = 0;
  const bool overflow = __builtin_mul_overflow(stride, height, &need) || __builtin_add_overflow(need, offset, &need);
  GCNET_CHECK(!overflow && need <= b.size(), path, ": truncated BMP (", width, "x", height, " at ", bpp,
              " bits per pixel needs ", overflow ? std::string("more than 2^64") : std::to_string(need),
              " bytes, the file has ", b.size(), ")");
}

}  // namespace gcnet::data
