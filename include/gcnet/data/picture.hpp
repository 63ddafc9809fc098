#pragma once
// Pictures of what a model attends to (gcnet_test_seg --show-dir, gcnet_ablate's attention.png):
// a gray image scaled up, an attention map over an image as a heatmap (bilinear,
// align_corners=False sampling of the h x w map, scaled to its maximum, blue (low) to red (high)
// blended over the image), a marker at a query point, and panels side by side / rows stacked with
// white gaps. Write the result with data::write_png (atomic).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gcnet/data/image.hpp"

namespace gcnet::data {

// A gray image [h, w] of 0..255 bytes, each pixel a scale x scale block of RGB.
inline Image upscale_gray(const std::uint8_t* gray, index_t h, index_t w, index_t scale) {
  GCNET_CHECK(gray && h > 0 && w > 0 && scale > 0, "upscale_gray: bad geometry ", h, "x", w, " scale ", scale);
  Image im{h * scale, w * scale, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(h * w * scale * scale * 3))};
  for (index_t y = 0; y < im.height; ++y)
    for (index_t x = 0; x < im.width; ++x)
      for (index_t c = 0; c < 3; ++c) im.at(y, x, c) = gray[(y / scale) * w + x / scale];
  return im;
}

// `map` [h, w] (any non-negative values) as a heatmap over `base`; `opacity` is the heatmap's
// share of each pixel.
inline Image heatmap_over(const Image& base, const double* map, index_t h, index_t w, double opacity = 0.65) {
  GCNET_CHECK(map && h > 0 && w > 0 && base.channels == 3, "heatmap_over: bad map ", h, "x", w, " or image channels ",
              base.channels);
  double mx = 0;
  for (index_t i = 0; i < h * w; ++i) mx = std::max(mx, map[i]);
  const index_t H = base.height, W = base.width;
  Image im = base;
  for (index_t y = 0; y < H; ++y)
    for (index_t x = 0; x < W; ++x) {
      const double sy = std::clamp((double(y) + 0.5) * double(h) / double(H) - 0.5, 0.0, double(h - 1));
      const double sx = std::clamp((double(x) + 0.5) * double(w) / double(W) - 0.5, 0.0, double(w - 1));
      const index_t y0 = static_cast<index_t>(sy), x0 = static_cast<index_t>(sx);
      const index_t y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
      const double fy = sy - double(y0), fx = sx - double(x0);
      auto a = [&](index_t yy, index_t xx) { return map[yy * w + xx]; };
      const double v = ((1 - fy) * ((1 - fx) * a(y0, x0) + fx * a(y0, x1)) + fy * ((1 - fx) * a(y1, x0) + fx * a(y1, x1))) /
                       std::max(mx, 1e-30);
      const double rgb[3] = {255 * std::clamp(1.5 - std::abs(4 * v - 3), 0.0, 1.0),
                             255 * std::clamp(1.5 - std::abs(4 * v - 2), 0.0, 1.0),
                             255 * std::clamp(1.5 - std::abs(4 * v - 1), 0.0, 1.0)};
      for (index_t c = 0; c < 3; ++c)
        im.at(y, x, c) = static_cast<std::uint8_t>(std::lround((1 - opacity) * im.at(y, x, c) + opacity * rgb[c]));
    }
  return im;
}

// A white-ringed black square marking the centre of map cell (cy, cx) of an h x w grid.
inline void mark_cell(Image& im, index_t cy, index_t cx, index_t h, index_t w) {
  const index_t y = static_cast<index_t>((double(cy) + 0.5) * double(im.height) / double(h));
  const index_t x = static_cast<index_t>((double(cx) + 0.5) * double(im.width) / double(w));
  for (index_t dy = -3; dy <= 3; ++dy)
    for (index_t dx = -3; dx <= 3; ++dx) {
      const index_t yy = y + dy, xx = x + dx;
      if (yy < 0 || yy >= im.height || xx < 0 || xx >= im.width) continue;
      const bool ring = std::max(std::abs(dy), std::abs(dx)) == 3;
      for (index_t c = 0; c < 3; ++c) im.at(yy, xx, c) = ring ? 255 : 0;
    }
}

// Panels of one height side by side, 4-pixel white gaps.
inline Image side_by_side(const std::vector<Image>& panels, index_t gap = 4) {
  GCNET_CHECK(!panels.empty(), "side_by_side: no panels");
  const index_t H = panels[0].height;
  index_t W = 0;
  for (const auto& p : panels) {
    GCNET_CHECK(p.height == H && p.channels == 3, "side_by_side: panels must be RGB of one height");
    W += p.width + (W ? gap : 0);
  }
  Image out{H, W, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(H * W * 3), 255)};
  index_t x0 = 0;
  for (const auto& p : panels) {
    for (index_t y = 0; y < H; ++y)
      for (index_t x = 0; x < p.width; ++x)
        for (index_t c = 0; c < 3; ++c) out.at(y, x0 + x, c) = p.at(y, x, c);
    x0 += p.width + gap;
  }
  return out;
}

// Rows of one width stacked, 4-pixel white gaps.
inline Image stack_rows(const std::vector<Image>& rows, index_t gap = 4) {
  GCNET_CHECK(!rows.empty(), "stack_rows: no rows");
  const index_t W = rows[0].width;
  index_t H = 0;
  for (const auto& r : rows) {
    GCNET_CHECK(r.width == W && r.channels == 3, "stack_rows: rows must be RGB of one width");
    H += r.height + (H ? gap : 0);
  }
  Image out{H, W, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(H * W * 3), 255)};
  index_t y0 = 0;
  for (const auto& r : rows) {
    std::copy(r.pixels.begin(), r.pixels.end(), out.pixels.begin() + static_cast<std::ptrdiff_t>(y0 * W * 3));
    y0 += r.height + gap;
  }
  return out;
}

}  // namespace gcnet::data
