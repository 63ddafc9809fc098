#pragma once
// Fashion-MNIST scenes: real Fashion-MNIST articles composed into RGB images for semantic
// segmentation (and, through the per-instance masks, detection). A scene is a textured
// background (scene_background.hpp) with clutter, then 2-6 articles, each upscaled 1.5-4x
// (bilinear), tinted, placed at random (partly outside the image is allowed) and drawn in
// order, later ones on top. The scene is a pure function of (seed, split, index): one Rng
// stream per scene, nothing shared, so any order and any number of threads give the same.
//
// An article's pixels: its 28x28 image upscaled bilinearly to intensity i in 0..1 at each
// scene pixel. It is drawn with alpha = clamp((i - 0.05) / 0.20, 0, 1) (edges stay
// anti-aliased) in color tint * (0.35 + 0.65 i) (its own folds and prints stay visible), and
// its mask is i >= 0.15, where the alpha reaches 1/2: the pixels where it is at least half
// opaque. A later article's mask covers earlier ones; what stays is each article's VISIBLE
// mask, from which its box and area come. The label map is 0 (background, clutter
// included) or category_id = Fashion-MNIST class + 1 on every visible-mask pixel, so labels
// and instance masks agree exactly. Articles covered completely (area 0) are dropped from
// the instances (they stay in `articles`).
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/data/fashion_mnist.hpp"
#include "gcnet/data/image.hpp"
#include "gcnet/data/scene_background.hpp"
#include "gcnet/data/seg_classes.hpp"

namespace gcnet::data {

// Train scenes take their articles from Fashion-MNIST's train split, val scenes from t10k.
enum class SceneSplit { train, val };
inline const char* split_name(SceneSplit s) { return s == SceneSplit::train ? "train" : "val"; }
inline FashionSplit source_split(SceneSplit s) { return s == SceneSplit::train ? FashionSplit::train : FashionSplit::test; }

struct SceneOptions {
  index_t height = 128, width = 128;
  int min_articles = 2, max_articles = 6;  // placed per scene (before occlusion), uniform
  double min_scale = 1.5, max_scale = 4.0;  // article side = 28 * scale pixels, log-uniform
  int min_clutter = 1, max_clutter = 4;     // background strokes, blobs, rings, bars
  double background_contrast = 0.4;         // 0..1: the background pattern's second color, from its first
  float grain = 6;                          // per-pixel noise amplitude, in 0..255 levels
  double min_contrast = 60;  // an article's tint differs at least this much (RGB distance) from the
                             // mean background under it, when 8 draws allow (keeps articles visible)
};

inline constexpr float article_alpha_low = 0.05f, article_alpha_high = 0.25f;
inline constexpr float article_mask_threshold = 0.15f;  // where the alpha is 1/2

// x, y of the top-left pixel, w, h in pixels (COCO's bbox).
struct SceneBox {
  index_t x = 0, y = 0, w = 0, h = 0;
  bool operator==(const SceneBox&) const = default;
};

// An article as placed, in drawing order (later ones on top).
struct SceneArticle {
  std::int64_t category_id = 0;  // 1..10: Fashion-MNIST class + 1, the label value
  index_t source_index = 0;      // image index in the source split
  double scale = 1;              // drawn at 28 * scale pixels a side
  double x = 0, y = 0;           // top-left corner of the scaled 28x28 square (may be outside)
  scene::Rgb tint;
};

// An article with at least one visible pixel.
struct SceneInstance {
  std::int64_t category_id = 0;
  index_t source_index = 0;
  FashionSplit source_split = FashionSplit::train;
  int article = 0;                 // its index in Scene::articles
  SceneBox box;                    // tight box of the visible mask
  index_t area = 0;                // visible pixels
  std::vector<std::uint8_t> mask;  // height x width, 1 on visible pixels
};

struct Scene {
  SceneSplit split = SceneSplit::train;
  index_t index = 0;
  Image image;  // RGB, 8-bit
  Image label;  // 1 channel: 0 background, 1..10 article classes
  std::vector<SceneArticle> articles;    // all placed, in drawing order
  std::vector<SceneInstance> instances;  // visible ones, in drawing order
};

// The scenes' classes: background, then Fashion-MNIST's ten, with a fixed palette.
inline SegClasses fashion_scene_classes() {
  SegClasses c;
  c.names.push_back("background");
  for (const auto& n : fashion_mnist_class_names()) c.names.push_back(n);
  c.palette = {{0, 0, 0},     {220, 20, 60},  {255, 140, 0},  {255, 215, 0},  {50, 205, 50},  {0, 128, 128},
               {30, 144, 255}, {138, 43, 226}, {255, 105, 180}, {139, 69, 19},  {240, 240, 240}};
  return c;
}

// The Rng stream of a scene: splits get disjoint streams, so train scene i and val scene i differ.
inline std::uint64_t scene_stream(SceneSplit split, index_t index) {
  GCNET_CHECK(index >= 0, "scene_stream: negative scene index ", index);
  return (split == SceneSplit::val ? std::uint64_t{1} << 62 : 0) | static_cast<std::uint64_t>(index);
}

inline void check_scene_options(const SceneOptions& o) {
  GCNET_CHECK(o.height >= 32 && o.width >= 32 && o.height <= 4096 && o.width <= 4096,
              "SceneOptions: scenes are 32..4096 pixels a side, got ", o.height, "x", o.width);
  GCNET_CHECK(o.min_articles >= 1 && o.min_articles <= o.max_articles && o.max_articles <= 250,
              "SceneOptions: need 1 <= min_articles <= max_articles <= 250, got ", o.min_articles, "..", o.max_articles);
  GCNET_CHECK(o.min_scale > 0 && o.min_scale <= o.max_scale, "SceneOptions: need 0 < min_scale <= max_scale, got ",
              o.min_scale, "..", o.max_scale);
  GCNET_CHECK(o.min_clutter >= 0 && o.min_clutter <= o.max_clutter, "SceneOptions: need 0 <= min_clutter <= max_clutter, got ",
              o.min_clutter, "..", o.max_clutter);
}

namespace scene {
// Draws Fashion-MNIST image `src` (28x28) scaled by `a.scale` at (a.x, a.y), and writes `id`
// into `ids` wherever the article's mask holds (covering earlier articles).
inline void draw_article(Canvas& c, std::vector<std::uint8_t>& ids, const std::uint8_t* src, const SceneArticle& a,
                         std::uint8_t id) {
  constexpr index_t S = fashion_mnist_side;
  const double size = S * a.scale;
  const index_t x0 = std::max<index_t>(0, static_cast<index_t>(std::floor(a.x)));
  const index_t x1 = std::min<index_t>(c.width, static_cast<index_t>(std::ceil(a.x + size)));
  const index_t y0 = std::max<index_t>(0, static_cast<index_t>(std::floor(a.y)));
  const index_t y1 = std::min<index_t>(c.height, static_cast<index_t>(std::ceil(a.y + size)));
  if (x0 >= x1 || y0 >= y1) return;
  // The image in 0..1 with a border of zeros (what it is outside), so sampling needs no tests.
  constexpr index_t P = S + 2;
  float pad[P * P] = {};
  for (index_t r = 0; r < S; ++r)
    for (index_t q = 0; q < S; ++q) pad[(r + 1) * P + q + 1] = src[r * S + q] * (1.0f / 255.0f);
  // Bilinear with half-pixel centers: the padded source cell and weight of every scene column.
  auto cell = [&](index_t p, double origin, float& w) {
    const double u = (static_cast<double>(p) + 0.5 - origin) / a.scale - 0.5, fu = std::floor(u);
    w = static_cast<float>(u - fu);
    return std::clamp<index_t>(static_cast<index_t>(fu) + 1, 0, P - 2);
  };
  std::vector<index_t> col(static_cast<std::size_t>(x1 - x0));
  std::vector<float> wx(col.size());
  for (index_t x = x0; x < x1; ++x) col[static_cast<std::size_t>(x - x0)] = cell(x, a.x, wx[static_cast<std::size_t>(x - x0)]);
  const float ramp = 1.0f / (article_alpha_high - article_alpha_low);
  for (index_t y = y0; y < y1; ++y) {
    float wy = 0;
    const index_t r = cell(y, a.y, wy);
    const float* top_row = pad + r * P;
    const float* bottom_row = top_row + P;
    for (index_t x = x0; x < x1; ++x) {
      const auto k = static_cast<std::size_t>(x - x0);
      const index_t q = col[k];
      const float top = top_row[q] + (top_row[q + 1] - top_row[q]) * wx[k];
      const float bottom = bottom_row[q] + (bottom_row[q + 1] - bottom_row[q]) * wx[k];
      const float i = top + (bottom - top) * wy;
      const float alpha = std::clamp((i - article_alpha_low) * ramp, 0.0f, 1.0f);
      if (alpha <= 0) continue;
      c.blend(y, x, scaled(a.tint, 0.35f + 0.65f * i), alpha);
      if (i >= article_mask_threshold) ids[static_cast<std::size_t>(y * c.width + x)] = id;
    }
  }
}
}  // namespace scene

// Scene `index` of the split `source` belongs to (train -> train scenes, test -> val scenes).
inline Scene generate_fashion_scene(const FashionMnist& source, const SceneOptions& o, std::uint64_t seed,
                                    index_t index) {
  using namespace scene;
  check_scene_options(o);
  Scene s;
  s.split = source.split == FashionSplit::train ? SceneSplit::train : SceneSplit::val;
  s.index = index;
  Rng rng(seed, scene_stream(s.split, index));
  Canvas c(o.height, o.width);
  paint_background(c, rng, static_cast<float>(o.background_contrast));
  const auto clutter = o.min_clutter + static_cast<int>(rng.below(static_cast<std::uint64_t>(o.max_clutter - o.min_clutter + 1)));
  for (int k = 0; k < clutter; ++k) paint_clutter_item(c, rng);

  const int n = o.min_articles + static_cast<int>(rng.below(static_cast<std::uint64_t>(o.max_articles - o.min_articles + 1)));
  std::vector<std::uint8_t> ids(static_cast<std::size_t>(o.height * o.width), 0);  // article + 1, 0 = none
  const double W = static_cast<double>(o.width), H = static_cast<double>(o.height);
  for (int k = 0; k < n; ++k) {
    SceneArticle a;
    a.source_index = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(source.count)));
    a.category_id = source.label(a.source_index) + 1;
    a.scale = o.min_scale * std::pow(o.max_scale / o.min_scale, rng.uniform());  // log-uniform
    const double size = fashion_mnist_side * a.scale;
    // At least about half of the article inside the image; centered when the image is too small.
    const double lox = -0.25 * size, hix = W - 0.75 * size, loy = -0.25 * size, hiy = H - 0.75 * size;
    const double ux = rng.uniform(), uy = rng.uniform();
    a.x = hix > lox ? lox + (hix - lox) * ux : (W - size) / 2;
    a.y = hiy > loy ? loy + (hiy - loy) * uy : (H - size) / 2;
    const Rgb under = c.mean(static_cast<index_t>(a.y), static_cast<index_t>(a.y + size), static_cast<index_t>(a.x),
                             static_cast<index_t>(a.x + size));
    for (int tries = 0; tries < 8; ++tries) {
      a.tint = random_color(rng, 0.25, 1.0);
      if (distance(a.tint, under) >= o.min_contrast) break;
    }
    draw_article(c, ids, source.image(a.source_index), a, static_cast<std::uint8_t>(k + 1));
    s.articles.push_back(a);
  }
  add_grain(c, rng, o.grain);
  s.image = c.to_image();

  // Label map, visible masks, boxes and areas, all from the one id map.
  s.label = Image{o.height, o.width, 1, std::vector<std::uint8_t>(ids.size(), 0)};
  std::vector<SceneInstance> all(static_cast<std::size_t>(n));
  std::vector<index_t> xmin(all.size(), o.width), xmax(all.size(), -1), ymin(all.size(), o.height), ymax(all.size(), -1);
  for (index_t y = 0; y < o.height; ++y)
    for (index_t x = 0; x < o.width; ++x) {
      const auto p = static_cast<std::size_t>(y * o.width + x);
      if (ids[p] == 0) continue;
      const std::size_t k = ids[p] - 1u;
      s.label.pixels[p] = static_cast<std::uint8_t>(s.articles[k].category_id);
      if (all[k].mask.empty()) all[k].mask.assign(ids.size(), 0);
      all[k].mask[p] = 1;
      ++all[k].area;
      xmin[k] = std::min(xmin[k], x), xmax[k] = std::max(xmax[k], x);
      ymin[k] = std::min(ymin[k], y), ymax[k] = std::max(ymax[k], y);
    }
  for (std::size_t k = 0; k < all.size(); ++k) {
    if (all[k].area == 0) continue;  // covered by later articles
    SceneInstance& inst = all[k];
    inst.category_id = s.articles[k].category_id;
    inst.source_index = s.articles[k].source_index;
    inst.source_split = source.split;
    inst.article = static_cast<int>(k);
    inst.box = {xmin[k], ymin[k], xmax[k] - xmin[k] + 1, ymax[k] - ymin[k] + 1};
    s.instances.push_back(std::move(inst));
  }
  return s;
}

}  // namespace gcnet::data
