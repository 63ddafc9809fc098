#pragma once
// Backgrounds and clutter for the generated scenes. Both are labelled background (0), and
// both are made to look like the articles in brightness and color: a background spans dark
// to bright with its own edges (stripes, checks, sharp-edged patches), and clutter (strokes,
// blobs, rings, bars) has article-like colors and sharp, anti-aliased edges. So no intensity
// threshold, and no edge detector alone, separates articles from background: a model must
// learn the articles' shapes.
#include <cmath>
#include <numbers>
#include <vector>

#include "gcnet/data/scene_paint.hpp"

namespace gcnet::data::scene {

enum class Background { noise, stripes, gradient, checker, patches };
inline constexpr int background_kinds = 5;

// Fills the canvas with a two-color pattern of a random kind, plus a brightness modulation.
// `contrast` (0..1): how far the pattern's second color lies from its first, towards a random one.
inline void paint_background(Canvas& c, Rng& rng, float contrast = 1.0f) {
  const auto kind = static_cast<Background>(rng.below(background_kinds));
  const Rgb a = random_color(rng, 0.05, 1.0), b = mix(a, random_color(rng, 0.05, 1.0), contrast);
  const double angle = rng.uniform(0.0, std::numbers::pi);
  const auto ca = static_cast<float>(std::cos(angle)), sa = static_cast<float>(std::sin(angle));
  const auto period = static_cast<float>(rng.uniform(6.0, 28.0));
  const auto phase = static_cast<float>(rng.uniform(0.0, 2 * std::numbers::pi));
  const auto W = static_cast<float>(c.width), H = static_cast<float>(c.height);
  const ValueNoise coarse(rng, c.height, c.width, rng.uniform(10.0, 40.0));
  const ValueNoise shade(rng, c.height, c.width, rng.uniform(16.0, 48.0));
  const auto warp = static_cast<float>(rng.uniform(0.0, 8.0));  // stripes and checks wobble along the noise
  const auto shade_amount = static_cast<float>(rng.uniform(0.0, 0.35));
  constexpr float pi = std::numbers::pi_v<float>;
  std::vector<float> coarse_row(static_cast<std::size_t>(c.width)), shade_row(coarse_row.size());
  for (index_t y = 0; y < c.height; ++y) {
    coarse.row(y, coarse_row.data());
    shade.row(y, shade_row.data());
    for (index_t x = 0; x < c.width; ++x) {
      const float fx = static_cast<float>(x) + 0.5f, fy = static_cast<float>(y) + 0.5f;
      const float n = coarse_row[static_cast<std::size_t>(x)];
      const float u = fx * ca + fy * sa + warp * (n - 0.5f) * 2, v = -fx * sa + fy * ca;
      float t = 0;
      switch (kind) {
        case Background::noise: t = n; break;
        case Background::stripes: t = 0.5f + 0.5f * std::sin(2 * pi * u / period + phase); break;
        case Background::gradient: t = 0.5f + (u - 0.5f * (W * ca + H * sa)) / (W + H) + 0.3f * (n - 0.5f); break;
        case Background::checker:  // soft-edged squares
          t = 0.5f + 2.0f * std::sin(pi * u / period + phase) * std::sin(pi * v / period);
          break;
        case Background::patches: t = (n - 0.5f) * 12 + 0.5f; break;  // sharp-edged regions
      }
      const float s = 1.0f - shade_amount + 2 * shade_amount * shade_row[static_cast<std::size_t>(x)];
      c.set(y, x, scaled(mix(a, b, std::clamp(t, 0.0f, 1.0f)), s));
    }
  }
}

// One piece of clutter: a scribble (2-4 thick segments), a filled ellipse, a ring or a bar,
// opaque or half-transparent, with anti-aliased edges.
inline void paint_clutter_item(Canvas& c, Rng& rng) {
  const double W = static_cast<double>(c.width), H = static_cast<double>(c.height);
  const Rgb color = random_color(rng, 0.1, 1.0);
  const float opacity = static_cast<float>(rng.uniform() < 0.7 ? 1.0 : rng.uniform(0.4, 0.9));
  const double cx = rng.uniform(0.0, W), cy = rng.uniform(0.0, H);
  const double angle = rng.uniform(0.0, std::numbers::pi);
  const float ca = static_cast<float>(std::cos(angle)), sa = static_cast<float>(std::sin(angle));
  switch (rng.below(4)) {
    case 0: {  // scribble
      const float r = static_cast<float>(rng.uniform(0.8, 3.0));
      float ax = static_cast<float>(cx), ay = static_cast<float>(cy);
      const int segments = 2 + static_cast<int>(rng.below(3));
      double heading = angle * 2;
      for (int k = 0; k < segments; ++k) {
        heading += rng.uniform(-1.5, 1.5);
        const double len = rng.uniform(8.0, 30.0);
        const float bx = ax + static_cast<float>(len * std::cos(heading));
        const float by = ay + static_cast<float>(len * std::sin(heading));
        fill_shape(c, std::min(ax, bx) - r - 1, std::min(ay, by) - r - 1, std::max(ax, bx) + r + 1, std::max(ay, by) + r + 1,
                   color, opacity, [&](float px, float py) { return segment_distance(px, py, ax, ay, bx, by) - r; });
        ax = bx, ay = by;
      }
      break;
    }
    case 1:
    case 2: {  // filled ellipse (1) or ring (2)
      const float rx = static_cast<float>(rng.uniform(3.0, 16.0)), ry = static_cast<float>(rng.uniform(3.0, 16.0));
      const float ring = static_cast<float>(rng.uniform(1.0, 3.0));
      const bool filled = rng.below(2) == 0 || ring * 2 > std::min(rx, ry);
      const float x0 = static_cast<float>(cx), y0 = static_cast<float>(cy), m = std::max(rx, ry) + 2;
      fill_shape(c, cx - m, cy - m, cx + m, cy + m, color, opacity, [&](float px, float py) {
        const float dx = px - x0, dy = py - y0;
        const float u = (dx * ca + dy * sa) / rx, v = (-dx * sa + dy * ca) / ry;
        const float d = (std::sqrt(u * u + v * v) - 1.0f) * std::min(rx, ry);  // approximate distance
        return filled ? d : std::abs(d) - ring;
      });
      break;
    }
    default: {  // rotated bar
      const float hx = static_cast<float>(rng.uniform(4.0, 24.0)), hy = static_cast<float>(rng.uniform(1.0, 5.0));
      const float x0 = static_cast<float>(cx), y0 = static_cast<float>(cy), m = hx + hy + 2;
      fill_shape(c, cx - m, cy - m, cx + m, cy + m, color, opacity, [&](float px, float py) {
        const float dx = px - x0, dy = py - y0;
        const float u = std::abs(dx * ca + dy * sa) - hx, v = std::abs(-dx * sa + dy * ca) - hy;
        const float ou = std::max(u, 0.0f), ov = std::max(v, 0.0f);
        return std::sqrt(ou * ou + ov * ov) + std::min(std::max(u, v), 0.0f);
      });
      break;
    }
  }
}

// Per-pixel grain of +-amplitude levels (sensor-like noise on 2-pixel cells), over everything.
inline void add_grain(Canvas& c, Rng& rng, float amplitude) {
  if (amplitude <= 0) return;
  const ValueNoise grain(rng, c.height, c.width, 1.5);
  std::vector<float> row(static_cast<std::size_t>(c.width));
  for (index_t y = 0; y < c.height; ++y) {
    grain.row(y, row.data());
    float* p = c.at(y, 0);
    for (std::size_t x = 0; x < row.size(); ++x, p += 3) {
      const float g = (row[x] - 0.5f) * 2 * amplitude;
      p[0] += g, p[1] += g, p[2] += g;
    }
  }
}

}  // namespace gcnet::data::scene
