#pragma once
// Detections drawn on their image (gcnet_test_det / gcnet_detect --show-dir), as mmdet's
// DetLocalVisualizer: each instance's mask blended in its colour, its box outlined, and a tag
// "class score" at the box's top-left (inside the image). The picture can be enlarged first
// (nearest, integer factor) so that tags stay readable on small images such as the 128x128
// scenes. Colours: the class palette when given, else a fixed spread of hues.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "gcnet/data/picture_text.hpp"
#include "gcnet/det/det_types.hpp"

namespace gcnet::data {

struct DrawDetectionsOptions {
  double score_thr = 0.3;     // instances below are not drawn
  double mask_alpha = 0.5;    // the mask colour's share of a masked pixel
  index_t upscale = 1;        // enlarge the picture this many times first (nearest)
  index_t line = 0;           // box outline width; 0: 1 + picture side / 400
  index_t text_scale = 0;     // font scale; 0: 1 + picture side / 500
  bool show_scores = true;    // false: tags carry the class only (ground truth)
  bool draw_masks = true;
};

// A distinct colour for class k when no palette is given (golden-angle hues, full saturation).
inline Rgb8 class_color(index_t k) {
  const double h = std::fmod(static_cast<double>(k) * 137.508, 360.0) / 60.0;
  const double x = 1 - std::fabs(std::fmod(h, 2.0) - 1);
  double r = 0, g = 0, b = 0;
  switch (static_cast<int>(h)) {
    case 0: r = 1, g = x; break;
    case 1: r = x, g = 1; break;
    case 2: g = 1, b = x; break;
    case 3: g = x, b = 1; break;
    case 4: r = x, b = 1; break;
    default: r = 1, b = x; break;
  }
  const auto q = [](double v) { return static_cast<std::uint8_t>(std::lround(40 + 215 * v)); };
  return {q(r), q(g), q(b)};
}

// `im` enlarged `k` times (each pixel a k x k block); 1- or 3-channel in, RGB out.
inline Image enlarge_rgb(const Image& im, index_t k) {
  GCNET_CHECK(k > 0, "enlarge_rgb: factor must be positive, got ", k);
  GCNET_CHECK(im.channels == 1 || im.channels == 3, "enlarge_rgb: expected 1 or 3 channels, got ", im.channels);
  Image out{im.height * k, im.width * k, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(im.height * k * im.width * k * 3))};
  for (index_t y = 0; y < out.height; ++y)
    for (index_t x = 0; x < out.width; ++x)
      for (index_t c = 0; c < 3; ++c) out.at(y, x, c) = im.at(y / k, x / k, im.channels == 3 ? c : 0);
  return out;
}

// The tag text of one instance: "Bag 0.93" (class name, or the label number without names).
inline std::string detection_tag(std::int64_t label, double score, const std::vector<std::string>& names,
                                 bool show_score) {
  std::string t = label >= 0 && label < static_cast<std::int64_t>(names.size()) ? names[static_cast<std::size_t>(label)]
                                                                              : "class " + std::to_string(label);
  if (show_score) {
    char s[16];
    std::snprintf(s, sizeof s, " %.2f", score);
    t += s;
  }
  return t;
}

// Draws `det` (boxes in `base`'s pixels; masks [n, H, W] at base's size, or undefined) on a copy
// of `base` and returns it. `names[label]` names the classes, `palette[label]` colours them
// (either may be empty). Instances are drawn lowest score first, so the best are on top.
inline Image draw_detections(const Image& base, const Detections<float>& det, const std::vector<std::string>& names,
                             const std::vector<Rgb8>& palette = {}, const DrawDetectionsOptions& o = {}) {
  GCNET_CHECK(o.upscale > 0, "draw_detections: upscale must be positive, got ", o.upscale);
  GCNET_CHECK(o.mask_alpha >= 0 && o.mask_alpha <= 1, "draw_detections: mask_alpha must be in [0, 1], got ", o.mask_alpha);
  const index_t n = det.size();
  GCNET_CHECK(n == 0 || (det.scores.defined() && det.scores.numel() == n && det.labels.defined() &&
                         det.labels.numel() == n),
              "draw_detections: ", n, " boxes need as many scores and labels");
  const bool masks = o.draw_masks && n > 0 && det.masks.defined() && det.masks.numel() > 0;
  if (masks)
    GCNET_CHECK(det.masks.rank() == 3 && det.masks.size(0) == n && det.masks.size(1) == base.height &&
                    det.masks.size(2) == base.width,
                "draw_detections: masks of shape ", det.masks.shape().str(), " for ", n, " detections on a ",
                base.height, "x", base.width, " image");
  const index_t k = o.upscale;
  Image im = enlarge_rgb(base, k);
  const index_t side = std::max(im.height, im.width);
  const index_t line = o.line > 0 ? o.line : 1 + side / 400;
  const index_t ts = o.text_scale > 0 ? o.text_scale : 1 + side / 500;

  std::vector<index_t> order;
  for (index_t i = 0; i < n; ++i)
    if (det.scores[i] >= o.score_thr) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) { return det.scores[a] < det.scores[b]; });
  const auto color_of = [&](std::int64_t label) {
    return label >= 0 && label < static_cast<std::int64_t>(palette.size()) ? palette[static_cast<std::size_t>(label)]
                                                                         : class_color(static_cast<index_t>(label));
  };
  if (masks)  // all masks first, so no mask covers another instance's box or tag
    for (const index_t i : order) {
      const Rgb8 c = color_of(det.labels[i]);
      const std::uint8_t* m = det.masks.data() + i * base.height * base.width;
      for (index_t y = 0; y < im.height; ++y)
        for (index_t x = 0; x < im.width; ++x)
          if (m[(y / k) * base.width + x / k])
            for (index_t ch = 0; ch < 3; ++ch) {
              const double v = (1 - o.mask_alpha) * im.at(y, x, ch) + o.mask_alpha * c[static_cast<std::size_t>(ch)];
              im.at(y, x, ch) = static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0, 255.0)));
            }
    }
  for (const index_t i : order) {
    const Rgb8 c = color_of(det.labels[i]);
    const float* b = det.boxes.data() + 4 * i;
    const auto px = [&](float v, index_t hi) {
      return std::clamp<index_t>(static_cast<index_t>(std::floor(static_cast<double>(v) * static_cast<double>(k))), 0, hi - 1);
    };
    const index_t x0 = px(b[0], im.width), y0 = px(b[1], im.height), x1 = px(b[2], im.width), y1 = px(b[3], im.height);
    fill_rect(im, x0, y0, x1 + 1, y0 + line, c);
    fill_rect(im, x0, y1 + 1 - line, x1 + 1, y1 + 1, c);
    fill_rect(im, x0, y0, x0 + line, y1 + 1, c);
    fill_rect(im, x1 + 1 - line, y0, x1 + 1, y1 + 1, c);
    const std::string tag = detection_tag(det.labels[i], det.scores[i], names, o.show_scores);
    // Above the box when there is room, else just inside it; kept inside the picture.
    const index_t th = text_height(ts) + 2, tw = text_width(tag, ts) + 2;
    const index_t ty = y0 - th >= 0 ? y0 - th : y0;
    const index_t tx = std::max<index_t>(0, std::min(x0, im.width - tw));
    draw_tag(im, tx, ty, tag, c, ts);
  }
  return im;
}

}  // namespace gcnet::data
