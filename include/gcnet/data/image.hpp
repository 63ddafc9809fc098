#pragma once
// Image files: read_image (PNG, JPEG, BMP; 8-bit only), read_label_png (single-channel
// label maps, palette indices kept as indices), and write_png (atomic). stb comes from
// Debian's libstb (pkg-config stb), which compiles the implementation; this header only
// declares it, so STB_*_IMPLEMENTATION is never defined.
//
// What the readers guarantee (docs/data.md): a file is decoded only after its structure
// was checked, so damage is an Error naming the file, never a crash or other pixels where
// the format allows detecting it: PNG chunk CRCs and the image data's Adler-32 are
// verified, and the data must inflate to exactly the size the header implies (inflating
// stops there: no decompression bombs); JPEG and BMP must hold everything their headers
// promise (they have no checksums). Images above max_image_pixels() (image_limits.hpp)
// are refused from their header, before any allocation.
//
// Layout: Image holds 8-bit pixels in HWC order (row-major, channels interleaved), with
// channels 1 (gray) or 3 (RGB, in R, G, B order; alpha is dropped).
#include <climits>
#include <cstdlib>
#include <cstdint>
#include <string>
#include <vector>

#include <stb_image.h>
#include <stb_image_write.h>

#include "gcnet/core/config.hpp"
#include "gcnet/core/error.hpp"
#include "gcnet/data/file_bytes.hpp"
#include "gcnet/data/image_limits.hpp"
#include "gcnet/data/image_structure.hpp"
#include "gcnet/data/png_chunks.hpp"
#include "gcnet/io/atomic_file.hpp"

namespace gcnet::data {

struct Image {
  index_t height = 0, width = 0, channels = 0;
  std::vector<std::uint8_t> pixels;  // HWC, height * width * channels bytes

  std::uint8_t& at(index_t y, index_t x, index_t c) {
    return pixels[static_cast<std::size_t>((y * width + x) * channels + c)];
  }
  std::uint8_t at(index_t y, index_t x, index_t c) const {
    return pixels[static_cast<std::size_t>((y * width + x) * channels + c)];
  }
};

// Decodes an 8-bit PNG, JPEG or BMP: gray (and gray+alpha) gives 1 channel, anything else
// 3 (RGB). Errors name the file: missing file, not one of those formats, truncated or
// damaged file, too many pixels, 16-bit data.
inline Image read_image(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  GCNET_CHECK(!bytes.empty(), path, ": empty file, not an image");
  GCNET_CHECK(bytes.size() <= INT_MAX, path, ": ", bytes.size(), " bytes is too large for an image file");
  // The structure is checked before stb sees the file: stb decodes a truncated file's first
  // rows without complaint, ignores CRCs and checksums, and inflates without bound.
  if (has_png_signature(bytes)) {
    const PngFile png = parse_png(bytes, path);
    const PngHeader& h = png.header;
    GCNET_CHECK(h.bit_depth <= 8, path, ": unsupported bit depth ", h.bit_depth,
                " (only 8-bit images are supported)");
    check_pixel_limit(h.width, h.height, path);
    inflate_exactly(png.idat.data(), png.idat.size(), nullptr, expected_raw_size(h, path), path);
  } else if (has_jpeg_signature(bytes)) {
    check_jpeg_complete(bytes, path);
  } else if (has_bmp_signature(bytes)) {
    check_bmp_complete(bytes, path);
  } else {
    gcnet::detail::fail(path, ": not an image gcnet reads (not a PNG, JPEG or BMP file: unknown signature)");
  }
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, n = 0;
  GCNET_CHECK(stbi_info_from_memory(data, len, &w, &h, &n), path, ": not an image stb_image can read (",
              stbi_failure_reason(), ")");
  // stb's info reports a top-down BMP's height as negative.
  check_pixel_limit(static_cast<std::uint64_t>(std::llabs(w)), static_cast<std::uint64_t>(std::llabs(h)), path);
  GCNET_CHECK(!stbi_is_16_bit_from_memory(data, len), path,
              ": unsupported bit depth 16 (only 8-bit images are supported)");
  const int want = (n == 1 || n == 2) ? 1 : 3;
  stbi_uc* px = stbi_load_from_memory(data, len, &w, &h, &n, want);
  GCNET_CHECK(px != nullptr, path, ": cannot decode image (", stbi_failure_reason(), ")");
  Image img{h, w, want, std::vector<std::uint8_t>(px, px + static_cast<std::size_t>(w) * h * want)};
  stbi_image_free(px);
  return img;
}

// A label map (1 channel, one class index per pixel; 255 conventionally means "ignore").
// 8-bit grayscale PNGs give their values; palette PNGs give their palette INDICES (as
// PIL's 'P' mode, which mmseg uses), not colors. Anything else is an error.
inline Image read_label_png(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  GCNET_CHECK(!bytes.empty(), path, ": empty file, not a PNG");
  GCNET_CHECK(has_png_signature(bytes), path, ": not a PNG file (label maps must be PNG)");
  const PngFile png = parse_png(bytes, path);
  const PngHeader& h = png.header;
  GCNET_CHECK(h.bit_depth <= 8, path, ": unsupported bit depth ", h.bit_depth,
              " for a label PNG (expected 8-bit)");
  GCNET_CHECK(h.color_type == 0 || h.color_type == 3, path,
              ": a label PNG must be single-channel (grayscale or palette), got ",
              h.color_type == 2 ? "RGB" : h.color_type == 6 ? "RGBA" : "gray+alpha",
              " (color type ", h.color_type, ")");
  // Gray below 8 bits would be rescaled to 0..255 by every decoder; refuse rather than guess.
  GCNET_CHECK(h.color_type == 3 || h.bit_depth == 8, path, ": unsupported bit depth ", h.bit_depth,
              " for a grayscale label PNG (expected 8-bit)");
  check_pixel_limit(h.width, h.height, path);
  return Image{h.height, h.width, 1, decode_png_samples(png, path)};
}

// Writes an 8-bit PNG (1, 2, 3 or 4 channels, HWC) atomically (io/atomic_file.hpp: a
// temporary file, fsync, rename), so a reader never sees half an image.
inline void write_png(const std::string& path, const Image& img) {
  GCNET_CHECK(img.height > 0 && img.width > 0 && img.channels >= 1 && img.channels <= 4, path,
              ": write_png: bad image geometry ", img.height, "x", img.width, "x", img.channels);
  GCNET_CHECK(img.pixels.size() == static_cast<std::size_t>(img.height * img.width * img.channels), path,
              ": write_png: ", img.pixels.size(), " pixel bytes for a ", img.height, "x", img.width, "x",
              img.channels, " image");
  std::vector<std::uint8_t> encoded;
  auto append = [](void* ctx, void* data, int size) {
    auto* out = static_cast<std::vector<std::uint8_t>*>(ctx);
    out->insert(out->end(), static_cast<std::uint8_t*>(data), static_cast<std::uint8_t*>(data) + size);
  };
  const int ok = stbi_write_png_to_func(append, &encoded, static_cast<int>(img.width), static_cast<int>(img.height),
                                        static_cast<int>(img.channels), img.pixels.data(),
                                        static_cast<int>(img.width * img.channels));
  GCNET_CHECK(ok && !encoded.empty(), path, ": cannot write PNG (encoding failed)");
  try {
    io::write_file_atomically(path, [&](io::FileSink& out) { out.write(encoded.data(), encoded.size()); });
  } catch (const Error& e) {
    gcnet::detail::fail(path, ": cannot write PNG (", e.what(), ")");
  }
}

}  // namespace gcnet::data
