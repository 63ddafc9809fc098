#pragma once
// The largest image the readers decode, in pixels (width x height), checked from the file's
// header before anything is inflated or allocated: a 195 KB PNG can claim 40000 x 40000
// pixels (1.8 GB decoded). The default is PIL's decompression-bomb error threshold,
// 2 * 1024^3 / 4 / 3 = 178956970 pixels (about 13400 x 13400). Process-wide, like PIL's
// Image.MAX_IMAGE_PIXELS; set_max_image_pixels(0) removes the limit.
#include <atomic>
#include <cstdint>
#include <string>

#include "gcnet/core/error.hpp"

namespace gcnet::data {

inline constexpr std::uint64_t kDefaultMaxImagePixels = 178956970;

namespace detail {
inline std::atomic<std::uint64_t>& max_image_pixels_setting() {
  static std::atomic<std::uint64_t> limit{kDefaultMaxImagePixels};
  return limit;
}
}  // namespace detail

inline std::uint64_t max_image_pixels() { return detail::max_image_pixels_setting().load(std::memory_order_relaxed); }
inline void set_max_image_pixels(std::uint64_t pixels) {
  detail::max_image_pixels_setting().store(pixels, std::memory_order_relaxed);
}

// Throws unless width x height is within the limit (0: no limit).
inline void check_pixel_limit(std::uint64_t width, std::uint64_t height, const std::string& path) {
  const std::uint64_t limit = max_image_pixels();
  std::uint64_t pixels = 0;
  const bool overflow = __builtin_mul_overflow(width, height, &pixels);
  GCNET_CHECK(limit == 0 || (!overflow && pixels <= limit), path, ": image of ", width, "x", height,
              " pixels exceeds the limit of ", limit,
              " pixels (a decompression bomb? raise it with gcnet::data::set_max_image_pixels)");
}

}  // namespace gcnet::data
