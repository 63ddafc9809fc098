#pragma once
// Painting primitives for the generated scenes (fashion_scenes.hpp): a float RGB canvas with
// alpha blending, random colors, value noise, and anti-aliased shapes drawn from signed
// distances. All randomness comes from the Rng passed in, so a scene is a pure function of
// its Rng stream. Values are 0..255 floats until the scene is quantized to 8 bits.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gcnet/core/config.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/data/image.hpp"

namespace gcnet::data::scene {

struct Rgb {
  float r = 0, g = 0, b = 0;
};
inline Rgb mix(Rgb a, Rgb b, float t) { return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t}; }
inline Rgb scaled(Rgb c, float k) { return {c.r * k, c.g * k, c.b * k}; }
inline float gray(Rgb c) { return (c.r + c.g + c.b) / 3.0f; }
inline float distance(Rgb a, Rgb b) {
  return std::sqrt((a.r - b.r) * (a.r - b.r) + (a.g - b.g) * (a.g - b.g) + (a.b - b.b) * (a.b - b.b));
}

// HSV (each 0..1) to RGB 0..255.
inline Rgb hsv(double h, double s, double v) {
  const double hh = (h - std::floor(h)) * 6.0, f = hh - std::floor(hh);
  const double p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  double r = v, g = t, b = p;
  switch (static_cast<int>(hh) % 6) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    case 5: r = v, g = p, b = q; break;
  }
  return {static_cast<float>(255 * r), static_cast<float>(255 * g), static_cast<float>(255 * b)};
}

// A color of any hue, saturation 0..1 (grays included), brightness value_min..value_max.
inline Rgb random_color(Rng& rng, double value_min, double value_max) {
  const double h = rng.uniform(), s = rng.uniform(), v = rng.uniform(value_min, value_max);
  return hsv(h, s, v);
}

// H x W RGB, HWC floats.
struct Canvas {
  index_t height = 0, width = 0;
  std::vector<float> px;
  Canvas(index_t h, index_t w) : height(h), width(w), px(static_cast<std::size_t>(h * w * 3), 0.0f) {}

  float* at(index_t y, index_t x) { return px.data() + (y * width + x) * 3; }
  void set(index_t y, index_t x, Rgb c) {
    float* p = at(y, x);
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void blend(index_t y, index_t x, Rgb c, float a) {
    float* p = at(y, x);
    p[0] += (c.r - p[0]) * a, p[1] += (c.g - p[1]) * a, p[2] += (c.b - p[2]) * a;
  }
  // Mean color over [y0, y1) x [x0, x1) (clipped), sampled every `step` pixels.
  Rgb mean(index_t y0, index_t y1, index_t x0, index_t x1, index_t step = 3) {
    y0 = std::clamp<index_t>(y0, 0, height), y1 = std::clamp<index_t>(y1, 0, height);
    x0 = std::clamp<index_t>(x0, 0, width), x1 = std::clamp<index_t>(x1, 0, width);
    double s[3] = {0, 0, 0};
    index_t n = 0;
    for (index_t y = y0; y < y1; y += step)
      for (index_t x = x0; x < x1; x += step, ++n)
        for (int c = 0; c < 3; ++c) s[c] += at(y, x)[c];
    if (n == 0) return {127, 127, 127};
    return {static_cast<float>(s[0] / n), static_cast<float>(s[1] / n), static_cast<float>(s[2] / n)};
  }
  // Rounded and clipped to 8-bit RGB.
  Image to_image() const {
    Image img{height, width, 3, std::vector<std::uint8_t>(px.size())};
    for (std::size_t i = 0; i < px.size(); ++i)
      img.pixels[i] = static_cast<std::uint8_t>(std::clamp(px[i] + 0.5f, 0.0f, 255.0f));
    return img;
  }
};

// Value noise: random values on a grid of `cell`-pixel squares, interpolated with a smoothstep,
// giving 0..1. Only the grid is drawn from the Rng (a few hundred draws), not every pixel.
class ValueNoise {
 public:
  ValueNoise(Rng& rng, index_t height, index_t width, double cell)
      : inv_cell_(static_cast<float>(1.0 / cell)),
        gw_(static_cast<index_t>(std::ceil(static_cast<double>(width) / cell)) + 2),
        gh_(static_cast<index_t>(std::ceil(static_cast<double>(height) / cell)) + 2),
        grid_(static_cast<std::size_t>(gw_ * gh_)) {
    // The words of Rng(rng.seed(), stream), a stream named by two draws from rng, taken four
    // per Philox block (Rng::next_u32() computes a block per word: 4x the cost for the grain).
    const std::uint64_t stream = (static_cast<std::uint64_t>(rng.next_u32()) << 32) | rng.next_u32();
    for (std::size_t i = 0; i < grid_.size(); i += 4) {
      std::uint32_t ctr[4] = {static_cast<std::uint32_t>(i >> 2), 0, static_cast<std::uint32_t>(stream),
                              static_cast<std::uint32_t>(stream >> 32)};
      Philox::block(ctr, static_cast<std::uint32_t>(rng.seed()), static_cast<std::uint32_t>(rng.seed() >> 32));
      for (std::size_t k = 0; k < 4 && i + k < grid_.size(); ++k)
        grid_[i + k] = static_cast<float>(ctr[k] >> 8) * (1.0f / 16777216.0f);
    }
    for (index_t x = 0; x < width; ++x) {  // the columns' cells and weights, shared by every row
      const float gx = (static_cast<float>(x) + 0.5f) * inv_cell_;
      col_.push_back(static_cast<index_t>(gx));
      frac_.push_back(smooth(gx - static_cast<float>(col_.back())));
    }
  }
  // The values at the pixel centers of row y (x + 0.5, y + 0.5 for x in [0, width)).
  void row(index_t y, float* out) const {
    const float gy = (static_cast<float>(y) + 0.5f) * inv_cell_;
    const auto iy = static_cast<index_t>(gy);
    const float fy = smooth(gy - static_cast<float>(iy));
    const float* r0 = grid_.data() + iy * gw_;
    const float* r1 = r0 + gw_;
    for (std::size_t x = 0; x < col_.size(); ++x) {
      const index_t ix = col_[x];
      const float fx = frac_[x];
      const float top = r0[ix] + (r0[ix + 1] - r0[ix]) * fx, bottom = r1[ix] + (r1[ix + 1] - r1[ix]) * fx;
      out[x] = top + (bottom - top) * fy;
    }
  }

 private:
  static float smooth(float t) { return t * t * (3.0f - 2.0f * t); }
  float inv_cell_;
  index_t gw_, gh_;
  std::vector<float> grid_;
  std::vector<index_t> col_;
  std::vector<float> frac_;
};

// Coverage of a pixel whose center is at signed distance d (pixels, negative inside) from a
// shape's edge: a one-pixel linear ramp, which anti-aliases the edge.
inline float coverage(float d) { return std::clamp(0.5f - d, 0.0f, 1.0f); }

// Blends `color` into the pixels of the box [x0, x1) x [y0, y1) (clipped) with opacity
// `opacity` x coverage(sdf(px, py)), sdf taking pixel-center coordinates.
template <class Sdf>
void fill_shape(Canvas& c, double x0, double y0, double x1, double y1, Rgb color, float opacity, const Sdf& sdf) {
  const index_t ya = std::max<index_t>(0, static_cast<index_t>(std::floor(y0)));
  const index_t yb = std::min<index_t>(c.height, static_cast<index_t>(std::ceil(y1)) + 1);
  const index_t xa = std::max<index_t>(0, static_cast<index_t>(std::floor(x0)));
  const index_t xb = std::min<index_t>(c.width, static_cast<index_t>(std::ceil(x1)) + 1);
  for (index_t y = ya; y < yb; ++y)
    for (index_t x = xa; x < xb; ++x) {
      const float a = coverage(sdf(static_cast<float>(x) + 0.5f, static_cast<float>(y) + 0.5f));
      if (a > 0) c.blend(y, x, color, a * opacity);
    }
}

// Distance from p to the segment a-b.
inline float segment_distance(float px, float py, float ax, float ay, float bx, float by) {
  const float dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
  const float t = len2 > 0 ? std::clamp(((px - ax) * dx + (py - ay) * dy) / len2, 0.0f, 1.0f) : 0.0f;
  const float ex = px - ax - t * dx, ey = py - ay - t * dy;
  return std::sqrt(ex * ex + ey * ey);
}

}  // namespace gcnet::data::scene
