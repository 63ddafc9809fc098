#pragma once
// A minimal PNG container reader: walks the chunks, validates that the file is complete
// (a truncated PNG is reported as such, naming the file and where it ends), verifies every
// chunk's CRC-32 (a flipped bit is an error, not a different image), validates the IHDR
// fields and gathers IDAT. expected_raw_size() is what the IDAT stream must inflate to.
// stb_image expands palette PNGs to RGB and gives no way to get the palette indices, so
// label PNGs in palette mode (PIL 'P', as mmseg writes them) are decoded here: inflate
// (zlib_inflate.hpp: bounded, Adler-32 checked), undo the scanline filters, unpack.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "gcnet/core/error.hpp"
#include "gcnet/io/crc32.hpp"
#include "gcnet/data/zlib_inflate.hpp"

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

// Samples per pixel of a PNG color type (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA).
inline int png_channels(int color_type) {
  switch (color_type) {
    case 0: return 1;
    case 2: return 3;
    case 3: return 1;
    case 4: return 2;
    case 6: return 4;
  }
  return 0;
}

namespace png_detail {
inline bool valid_depth(int color_type, int depth) {
  switch (color_type) {
    case 0: return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3: return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2: case 4: case 6: return depth == 8 || depth == 16;
  }
  return false;
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
    std::string type(reinterpret_cast<const char*>(&b[pos + 4]), 4);
    for (char& c : type)
      if (c < 32 || c > 126) c = '?';
    GCNET_CHECK(len <= 0x7fffffffu, path, ": corrupt PNG (chunk '", type, "' at byte ", pos, " claims ", len,
                " bytes, more than a PNG chunk can hold)");
    GCNET_CHECK(pos + 12 + std::size_t{len} <= b.size(), path, ": truncated PNG (chunk '", type,
                "' at byte ", pos, " needs ", std::size_t{len} + 12, " bytes, the file ends after ", b.size() - pos, ")");
    const std::uint8_t* data = &b[pos + 8];
    const std::uint32_t crc = io::crc32_of(&b[pos + 4], std::size_t{len} + 4);
    GCNET_CHECK(crc == be32(data + len), path, ": corrupt PNG (chunk '", type, "' at byte ", pos,
                " fails its CRC-32 check: the file was damaged)");
    if (!have_ihdr) {
      GCNET_CHECK(type == "IHDR" && len == 13, path, ": corrupt PNG (first chunk is '", type,
                  "', expected IHDR)");
      png.header = {be32(data), be32(data + 4), data[8], data[9], data[12]};
      const PngHeader& h = png.header;
      GCNET_CHECK(h.width > 0 && h.height > 0 && h.width <= 0x7fffffffu && h.height <= 0x7fffffffu, path,
                  ": corrupt PNG (image size ", h.width, "x", h.height, ")");
      GCNET_CHECK(png_detail::valid_depth(h.color_type, h.bit_depth), path, ": corrupt PNG (bit depth ", h.bit_depth,
                  " with color type ", h.color_type, ")");
      GCNET_CHECK(data[10] == 0 && data[11] == 0 && h.interlace <= 1, path,
                  ": corrupt PNG (unknown compression, filter or interlace method)");
      have_ihdr = true;
    } else if (type == "IDAT") {
      png.idat.insert(png.idat.end(), data, data + len);
    } else if (type == "IEND") {
      break;
    }
    pos += 12 + std::size_t{len};
  }
  GCNET_CHECK(!png.idat.empty(), path, ": corrupt PNG (no image data)");
  return png;
}

// The bytes the IDAT stream inflates to: each scanline's filter byte and packed samples, over
// the 7 Adam7 passes when interlaced. Throws if that does not fit in memory sizes.
inline std::size_t expected_raw_size(const PngHeader& h, const std::string& path) {
  const std::uint64_t bits = static_cast<std::uint64_t>(png_channels(h.color_type)) * h.bit_depth;
  bool overflow = false;
  auto rows_bytes = [&](std::uint64_t w, std::uint64_t rows) -> std::uint64_t {
    if (w == 0 || rows == 0) return 0;
    std::uint64_t n = 0;  // a row is at most 1 + 2^31 * 64 / 8 bytes; times 2^31 rows can overflow
    overflow |= __builtin_mul_overflow(rows, 1 + (w * bits + 7) / 8, &n);
    return n;
  };
  std::uint64_t total = 0;
  if (h.interlace == 0) {
    total = rows_bytes(h.width, h.height);
  } else {
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    for (int p = 0; p < 7; ++p) {
      const std::uint64_t w = h.width > std::uint32_t(x0[p]) ? (h.width - x0[p] + dx[p] - 1) / dx[p] : 0;
      const std::uint64_t r = h.height > std::uint32_t(y0[p]) ? (h.height - y0[p] + dy[p] - 1) / dy[p] : 0;
      overflow |= __builtin_add_overflow(total, rows_bytes(w, r), &total);
    }
  }
  GCNET_CHECK(!overflow && total <= (std::uint64_t{1} << 40), path, ": image of ", h.width, "x", h.height,
              " is too large to decode");
  return static_cast<std::size_t>(total);
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
  const std::size_t W = h.width, H = h.height;
  const std::size_t row_bytes = (W * static_cast<std::size_t>(h.bit_depth) + 7) / 8;
  const std::vector<std::uint8_t> raw = inflate_exactly(png.idat, (row_bytes + 1) * H, path);
  // Undo the per-row filters (bytes-per-pixel is 1 for every single-channel depth <= 8).
  std::vector<std::uint8_t> rows(row_bytes * H), prev(row_bytes, 0);
  const std::uint8_t* src = raw.data();
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
