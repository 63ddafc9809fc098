#pragma once
// A minimal PNG container reader: walks the chunks, validates that the file is complete
// (a truncated PNG is reported as such, naming the file and where it ends), reads the
// IHDR fields and gathers IDAT. stb_image expands palette PNGs to RGB and gives no way
// to get the palette indices, so label PNGs in palette mode (PIL 'P', as mmseg writes
// them) are decoded here: inflate via stb's zlib, undo the scanline filters, unpack.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <stb_image.h>

#include "gcnet/core/error.hpp"

namespace gcnet::data {

struct PngHeader {
  std::uint32_t width = 0, height = 0;
  int bit_depth = 0;
  int color_type = 0;  // 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA
  int interlace = 0;
};

struct PngFile {
  PngHeader header;
  std::vector<std::uint8_t> idat;  // concatenated compressed image data
};

inline bool has_png_signature(const std::vector<std::uint8_t>& b) {
  static const std::uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  return b.size() >= 8 && std::equal(sig, sig + 8, b.begin());
}

namespace png_detail {
inline std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
inline int paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
}
}  // namespace png_detail

// Parses the chunk structure of a PNG held in `b`; every problem is an Error naming `path`.
inline PngFile parse_png(const std::vector<std::uint8_t>& b, const std::string& path) {
  using png_detail::be32;
  GCNET_CHECK(has_png_signature(b), path, ": not a PNG file (bad signature)");
  PngFile png;
  bool have_ihdr = false;
  std::size_t pos = 8;
  for (;;) {
    GCNET_CHECK(pos + 8 <= b.size(), path, ": truncated PNG (the file ends at byte ", b.size(),
                " before the IEND chunk)");
    const std::uint32_t len = be32(&b[pos]);
    const std::string type(reinterpret_cast<const char*>(&b[pos + 4]), 4);
    GCNET_CHECK(pos + 12 + std::size_t{len} <= b.size(), path, ": truncated PNG (chunk '", type,
                "' at byte ", pos, " needs ", std::size_t{len} + 12, " bytes, the file ends after ", b.size() - pos, ")");
    const std::uint8_t* data = &b[pos + 8];
    if (!have_ihdr) {
      GCNET_CHECK(type == "IHDR" && len == 13, path, ": corrupt PNG (first chunk is '", type,
                  "', expected IHDR)");
      png.header = {be32(data), be32(data + 4), data[8], data[9], data[12]};
      have_ihdr = true;
    } else if (type == "IDAT") {
      png.idat.insert(png.idat.end(), data, data + len);
    } else if (type == "IEND") {
      break;
    }
    pos += 12 + std::size_t{len};
  }
  GCNET_CHECK(png.header.width > 0 && png.header.height > 0, path, ": corrupt PNG (zero width or height)");
  GCNET_CHECK(!png.idat.empty(), path, ": corrupt PNG (no image data)");
  return png;
}

// One byte per pixel: the palette index (color type 3) or the gray value (color type 0) of
// a non-interlaced PNG of bit depth 1, 2, 4 or 8; values are NOT rescaled (indices stay indices).
inline std::vector<std::uint8_t> decode_png_samples(const PngFile& png, const std::string& path) {
  const PngHeader& h = png.header;
  GCNET_CHECK(h.color_type == 0 || h.color_type == 3, path, ": internal: decode_png_samples needs a "
              "single-channel PNG");
  GCNET_CHECK(h.bit_depth == 1 || h.bit_depth == 2 || h.bit_depth == 4 || h.bit_depth == 8, path,
              ": unsupported bit depth ", h.bit_depth, " for a label PNG (expected 8-bit or less)");
  GCNET_CHECK(h.interlace == 0, path, ": interlaced label PNGs are not supported; save it without interlacing");
  int raw_len = 0;
  char* raw = stbi_zlib_decode_malloc(reinterpret_cast<const char*>(png.idat.data()),
                                      static_cast<int>(png.idat.size()), &raw_len);
  GCNET_CHECK(raw != nullptr, path, ": corrupt PNG (image data does not inflate: ", stbi_failure_reason(), ")");
  const std::size_t W = h.width, H = h.height;
  const std::size_t row_bytes = (W * static_cast<std::size_t>(h.bit_depth) + 7) / 8;
  if (static_cast<std::size_t>(raw_len) < (row_bytes + 1) * H) {
    stbi_image_free(raw);
    detail::fail(path, ": truncated PNG (image data holds ", raw_len, " bytes, ", (row_bytes + 1) * H,
                 " expected)");
  }
  // Undo the per-row filters (bytes-per-pixel is 1 for every single-channel depth <= 8).
  std::vector<std::uint8_t> rows(row_bytes * H), prev(row_bytes, 0);
  const auto* src = reinterpret_cast<const std::uint8_t*>(raw);
  int bad_filter = -1;
  for (std::size_t y = 0; y < H && bad_filter < 0; ++y) {
    const int filter = src[y * (row_bytes + 1)];
    const std::uint8_t* in = src + y * (row_bytes + 1) + 1;
    std::uint8_t* out = &rows[y * row_bytes];
    for (std::size_t x = 0; x < row_bytes; ++x) {
      const int a = x ? out[x - 1] : 0, up = prev[x], c = x ? prev[x - 1] : 0;
      int pred = 0;
      switch (filter) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = up; break;
        case 3: pred = (a + up) / 2; break;
        case 4: pred = png_detail::paeth(a, up, c); break;
        default: bad_filter = filter; break;
      }
      out[x] = static_cast<std::uint8_t>(in[x] + pred);
    }
    std::copy(out, out + row_bytes, prev.begin());
  }
  stbi_image_free(raw);
  GCNET_CHECK(bad_filter < 0, path, ": corrupt PNG (unknown scanline filter ", bad_filter, ")");
  if (h.bit_depth == 8) return rows;
  // Unpack sub-byte samples, most significant bits first.
  std::vector<std::uint8_t> out(W * H);
  const int bits = h.bit_depth, per_byte = 8 / bits, mask = (1 << bits) - 1;
  for (std::size_t y = 0; y < H; ++y)
    for (std::size_t x = 0; x < W; ++x) {
      const std::uint8_t byte = rows[y * row_bytes + x / per_byte];
      const int shift = 8 - bits * (static_cast<int>(x % per_byte) + 1);
      out[y * W + x] = static_cast<std::uint8_t>((byte >> shift) & mask);
    }
  return out;
}

}  // namespace gcnet::data
