#pragma once
// Writing label maps as palette PNGs (8-bit indexed, color type 3, with a PLTE chunk), the
// form mmseg's data sets use (PIL 'P' mode): image viewers show the classes in their palette
// colors while every reader that keeps indices (read_label_png, PIL) gets the class ids back.
// stb_image_write cannot write palette PNGs, so the few chunks are assembled here: IHDR, PLTE,
// one zlib-compressed IDAT (no row filters: label maps are long runs, which deflate takes
// well), IEND, each with its CRC-32.
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/core/error.hpp"
#include "gcnet/data/image.hpp"
#include "gcnet/data/seg_classes.hpp"
#include "gcnet/io/atomic_file.hpp"
#include "gcnet/io/crc32.hpp"

namespace gcnet::data {

namespace palette_png_detail {
inline void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}
inline void chunk(std::vector<std::uint8_t>& out, const char* type, const std::vector<std::uint8_t>& data) {
  put32(out, static_cast<std::uint32_t>(data.size()));
  const std::size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  put32(out, io::crc32_of(out.data() + start, out.size() - start));
}
}  // namespace palette_png_detail

// The PNG bytes of a 1-channel label map whose values index `palette`. Values past the
// palette's end (255 = ignore, typically) get palette entries too, so the file stays valid for
// strict decoders: white for 255, black for any other.
inline std::vector<std::uint8_t> encode_palette_png(const Image& label, const std::vector<PaletteColor>& palette) {
  using namespace palette_png_detail;
  GCNET_CHECK(label.channels == 1 && label.height > 0 && label.width > 0 &&
                  label.pixels.size() == static_cast<std::size_t>(label.height * label.width),
              "encode_palette_png: expected a non-empty 1-channel label map, got ", label.height, "x", label.width, "x",
              label.channels);
  GCNET_CHECK(!palette.empty() && palette.size() <= 256, "encode_palette_png: a palette has 1..256 colors, got ",
              palette.size());
  const std::size_t entries =
      std::max<std::size_t>(palette.size(), std::size_t{*std::max_element(label.pixels.begin(), label.pixels.end())} + 1);
  std::vector<std::uint8_t> plte;
  for (std::size_t k = 0; k < entries; ++k) {
    const PaletteColor c = k < palette.size() ? palette[k] : k == 255 ? PaletteColor{255, 255, 255} : PaletteColor{0, 0, 0};
    plte.insert(plte.end(), c.begin(), c.end());
  }
  const auto W = static_cast<std::size_t>(label.width), H = static_cast<std::size_t>(label.height);
  std::vector<std::uint8_t> raw((W + 1) * H);  // each row: filter byte 0, then the indices
  for (std::size_t y = 0; y < H; ++y) std::copy_n(label.pixels.data() + y * W, W, raw.data() + y * (W + 1) + 1);
  uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
  std::vector<std::uint8_t> idat(zlen);
  GCNET_CHECK(compress2(idat.data(), &zlen, raw.data(), static_cast<uLong>(raw.size()), 6) == Z_OK,
              "encode_palette_png: zlib compression failed");
  idat.resize(zlen);

  std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<std::uint8_t> ihdr;
  put32(ihdr, static_cast<std::uint32_t>(W));
  put32(ihdr, static_cast<std::uint32_t>(H));
  ihdr.insert(ihdr.end(), {8, 3, 0, 0, 0});  // 8 bits, palette, deflate, adaptive filters, no interlace
  chunk(out, "IHDR", ihdr);
  chunk(out, "PLTE", plte);
  chunk(out, "IDAT", idat);
  chunk(out, "IEND", {});
  return out;
}

// Writes the label map as a palette PNG atomically (a reader never sees half a file).
inline void write_palette_png(const std::string& path, const Image& label, const std::vector<PaletteColor>& palette) {
  std::vector<std::uint8_t> bytes;
  try {
    bytes = encode_palette_png(label, palette);
  } catch (const Error& e) {
    gcnet::detail::fail(path, ": cannot write the label PNG (", e.what(), ")");
  }
  io::write_file_atomically(path, [&](io::FileSink& out) { out.write(bytes.data(), bytes.size()); });
}

}  // namespace gcnet::data
