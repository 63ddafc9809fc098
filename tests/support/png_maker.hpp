#pragma once
// Hand-made PNG files for the tests and the fuzz target: any IHDR (including lies about the
// size), any scanline bytes compressed with zlib, real chunk CRCs. Also a BMP writer.
#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gcnet::test {

using Bytes = std::vector<std::uint8_t>;

inline void put_be32(Bytes& v, std::uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<std::uint8_t>(x >> s));
}
inline void put_le(Bytes& v, std::uint32_t x, int bytes) {
  for (int i = 0; i < bytes; ++i) v.push_back(static_cast<std::uint8_t>(x >> (8 * i)));
}

// Appends one chunk (length, type, data, CRC of type + data).
inline void png_chunk(Bytes& png, const char* type, const Bytes& data) {
  put_be32(png, static_cast<std::uint32_t>(data.size()));
  Bytes td(type, type + 4);
  td.insert(td.end(), data.begin(), data.end());
  png.insert(png.end(), td.begin(), td.end());
  put_be32(png, static_cast<std::uint32_t>(::crc32(0, td.data(), static_cast<uInt>(td.size()))));
}

inline Bytes zlib_compress(const Bytes& raw, int level = 9) {
  uLongf n = compressBound(static_cast<uLong>(raw.size()));
  Bytes z(n);
  compress2(z.data(), &n, raw.data(), static_cast<uLong>(raw.size()), level);
  z.resize(n);
  return z;
}

// A PNG whose IHDR says w x h (depth, color type, interlace) and whose IDAT is `raw`
// (scanlines WITH their filter bytes) compressed, or `idat` as given; a palette of
// `palette_size` entries.
inline Bytes make_png_raw(std::uint32_t w, std::uint32_t h, int depth, int color_type, const Bytes& raw,
                          int palette_size = 0, int interlace = 0, const Bytes* idat = nullptr) {
  Bytes png = {137, 80, 78, 71, 13, 10, 26, 10}, ihdr;
  put_be32(ihdr, w);
  put_be32(ihdr, h);
  ihdr.insert(ihdr.end(), {static_cast<std::uint8_t>(depth), static_cast<std::uint8_t>(color_type), 0, 0,
                           static_cast<std::uint8_t>(interlace)});
  png_chunk(png, "IHDR", ihdr);
  if (palette_size > 0) {
    Bytes plte;
    for (int i = 0; i < palette_size; ++i)
      plte.insert(plte.end(), {static_cast<std::uint8_t>(i * 37), static_cast<std::uint8_t>(i * 11), 7});
    png_chunk(png, "PLTE", plte);
  }
  png_chunk(png, "IDAT", idat ? *idat : zlib_compress(raw));
  png_chunk(png, "IEND", {});
  return png;
}

// An 8-bit image with `channels` samples per pixel (1 gray, 3 RGB, 4 RGBA; color type from
// it) or a palette image (palette = true, 1 channel of indices); pixels HWC, filter 0 rows.
inline Bytes make_png(std::uint32_t w, std::uint32_t h, int channels, const Bytes& pixels, bool palette = false) {
  const int color_type = palette ? 3 : channels == 1 ? 0 : channels == 2 ? 4 : channels == 3 ? 2 : 6;
  Bytes raw;
  const std::size_t row = std::size_t{w} * static_cast<std::size_t>(channels);
  for (std::uint32_t y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), pixels.begin() + static_cast<long>(y * row), pixels.begin() + static_cast<long>((y + 1) * row));
  }
  return make_png_raw(w, h, 8, color_type, raw, palette ? 256 : 0);
}

// A zlib stream that inflates to 1 + 258 * matches zero bytes in about matches * 13 / 8 bytes
// (one fixed-Huffman block: a literal 0, then length-258 distance-1 copies): a decompression
// bomb built without compressing gigabytes. Its Adler-32 is right.
inline Bytes zlib_zero_bomb(std::size_t matches) {
  Bytes z = {0x78, 0x01};
  std::uint32_t acc = 0;
  int used = 0;
  auto bit = [&](std::uint32_t b) {
    acc |= (b & 1u) << used;
    if (++used == 8) z.push_back(static_cast<std::uint8_t>(acc)), acc = 0, used = 0;
  };
  auto code = [&](std::uint32_t c, int n) {  // Huffman codes go most significant bit first
    for (int i = n - 1; i >= 0; --i) bit(c >> i);
  };
  bit(1), bit(1), bit(0);  // BFINAL, BTYPE = 01 (fixed Huffman), low bit first
  code(0x30, 8);           // literal 0
  for (std::size_t m = 0; m < matches; ++m) code(0xC5, 8), code(0, 5);  // length 258, distance 1
  code(0, 7);              // end of block
  if (used) z.push_back(static_cast<std::uint8_t>(acc));
  const std::uint64_t total = 1 + 258 * std::uint64_t{matches};
  put_be32(z, static_cast<std::uint32_t>(((total % 65521) << 16) | 1));
  return z;
}

// A 24-bit uncompressed bottom-up BMP (rows padded to 4 bytes), pixels RGB HWC.
inline Bytes make_bmp(std::uint32_t w, std::uint32_t h, const Bytes& rgb) {
  const std::uint32_t stride = (w * 3 + 3) / 4 * 4, data = stride * h;
  Bytes b = {'B', 'M'};
  put_le(b, 54 + data, 4);
  put_le(b, 0, 4);
  put_le(b, 54, 4);
  put_le(b, 40, 4);
  put_le(b, w, 4);
  put_le(b, h, 4);
  put_le(b, 1, 2);
  put_le(b, 24, 2);
  put_le(b, 0, 4);
  put_le(b, data, 4);
  put_le(b, 2835, 4);
  put_le(b, 2835, 4);
  put_le(b, 0, 4);
  put_le(b, 0, 4);
  for (std::uint32_t y = h; y-- > 0;) {
    for (std::uint32_t x = 0; x < w; ++x)
      for (int c = 2; c >= 0; --c) b.push_back(rgb[(std::size_t{y} * w + x) * 3 + static_cast<std::size_t>(c)]);
    for (std::uint32_t p = w * 3; p < stride; ++p) b.push_back(0);
  }
  return b;
}

}  // namespace gcnet::test
