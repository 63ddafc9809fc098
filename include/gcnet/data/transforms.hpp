#pragma once
// Transforms on a Sample (image and label together), following mmseg/mmdet's pipelines.
// Each is a small value type with `void operator()(Sample&, Rng&) const`; every random
// choice is drawn from the Rng passed in, so a sample's augmentation is a pure function of
// its Rng stream (the loader derives one per (seed, epoch, sample)). Compose chains them.
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/data/photometric.hpp"
#include "gcnet/data/resize.hpp"
#include "gcnet/data/sample.hpp"

namespace gcnet::data {

using Transform = std::function<void(Sample&, Rng&)>;

// Runs transforms in order.
class Compose {
 public:
  Compose() = default;
  Compose(std::initializer_list<Transform> ts) : ts_(ts) {}
  void push_back(Transform t) { ts_.push_back(std::move(t)); }
  void operator()(Sample& s, Rng& rng) const {
    for (const auto& t : ts_) t(s, rng);
  }
  std::size_t size() const { return ts_.size(); }

 private:
  std::vector<Transform> ts_;
};

namespace transform_detail {
inline void resize_sample(Sample& s, index_t h, index_t w) {
  if (h == s.height() && w == s.width()) return;
  s.image = resize_bilinear_hwc(s.image, h, w);
  if (s.label.defined()) s.label = resize_nearest_hw(s.label, h, w);
}
}  // namespace transform_detail

// mmcv imrescale: keep the aspect ratio, largest size fitting the (long, short) scale;
// bilinear for the image, nearest for the label.
struct Resize {
  index_t long_edge = 0, short_edge = 0;
  void operator()(Sample& s, Rng&) const {
    require_consistent(s, "Resize");
    const auto [h, w] = rescale_size(s.height(), s.width(), long_edge, short_edge);
    transform_detail::resize_sample(s, h, w);
  }
};

// mmseg Resize with ratio_range: ratio ~ U[ratio_min, ratio_max), the scale becomes
// (int(long * ratio), int(short * ratio)), then a keep-ratio Resize.
struct RandomResize {
  index_t long_edge = 0, short_edge = 0;
  double ratio_min = 0.5, ratio_max = 2.0;
  void operator()(Sample& s, Rng& rng) const {
    require_consistent(s, "RandomResize");
    GCNET_CHECK(ratio_min > 0 && ratio_min <= ratio_max, "RandomResize: bad ratio range (", ratio_min, ", ",
                ratio_max, ")");
    const double r = rng.uniform(ratio_min, ratio_max);
    const auto le = static_cast<index_t>(static_cast<double>(long_edge) * r);
    const auto se = static_cast<index_t>(static_cast<double>(short_edge) * r);
    Resize{le, se}(s, rng);
  }
};

// mmseg RandomCrop: a uniformly placed crop_h x crop_w window (clipped to smaller images).
// With cat_max_ratio < 1 it re-draws up to 10 times until the crop holds more than one
// non-ignored class and no class covers cat_max_ratio or more of the non-ignored pixels
// (after 10 failures the 11th draw is used unchecked, as mmseg does).
struct RandomCrop {
  index_t crop_h = 0, crop_w = 0;
  double cat_max_ratio = 1.0;
  std::int64_t ignore_index = ignore_label;

  struct Box {
    index_t y0, y1, x0, x1;
  };
  Box draw(const Sample& s, Rng& rng) const {
    const index_t mh = std::max<index_t>(s.height() - crop_h, 0), mw = std::max<index_t>(s.width() - crop_w, 0);
    const auto oy = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(mh + 1)));
    const auto ox = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(mw + 1)));
    return {oy, std::min(oy + crop_h, s.height()), ox, std::min(ox + crop_w, s.width())};
  }
  bool acceptable(const Sample& s, const Box& b) const {
    std::map<std::int64_t, index_t> counts;
    for (index_t y = b.y0; y < b.y1; ++y)
      for (index_t x = b.x0; x < b.x1; ++x) {
        const std::int64_t v = s.label[y * s.width() + x];
        if (v != ignore_index) ++counts[v];
      }
    if (counts.size() <= 1) return false;
    index_t total = 0, most = 0;
    for (const auto& [k, c] : counts) total += c, most = std::max(most, c);
    return static_cast<double>(most) / static_cast<double>(total) < cat_max_ratio;
  }
  void operator()(Sample& s, Rng& rng) const {
    require_consistent(s, "RandomCrop");
    GCNET_CHECK(crop_h > 0 && crop_w > 0, "RandomCrop: crop size must be positive, got ", crop_h, "x", crop_w);
    Box b = draw(s, rng);
    if (cat_max_ratio < 1.0 && s.has_label_map())
      for (int attempt = 0; attempt < 10 && !acceptable(s, b); ++attempt) b = draw(s, rng);
    const index_t h = b.y1 - b.y0, w = b.x1 - b.x0, W = s.width(), C = s.channels();
    Tensor<float> img(Shape{h, w, C});
    for (index_t y = 0; y < h; ++y)
      std::copy_n(s.image.data() + ((b.y0 + y) * W + b.x0) * C, w * C, img.data() + y * w * C);
    if (s.label.defined()) {
      Tensor<std::int64_t> lbl(Shape{h, w});
      for (index_t y = 0; y < h; ++y)
        std::copy_n(s.label.data() + (b.y0 + y) * W + b.x0, w, lbl.data() + y * w);
      s.label = lbl;
    }
    s.image = img;
  }
};

// mmseg RandomFlip (horizontal): flips image and label when U[0,1) < prob.
struct RandomFlip {
  double prob = 0.5;
  void operator()(Sample& s, Rng& rng) const {
    require_consistent(s, "RandomFlip");
    if (!(rng.uniform() < prob)) return;
    const index_t H = s.height(), W = s.width(), C = s.channels();
    float* im = s.image.data();
    for (index_t y = 0; y < H; ++y)
      for (index_t x = 0; x < W / 2; ++x)
        for (index_t c = 0; c < C; ++c) std::swap(im[(y * W + x) * C + c], im[(y * W + W - 1 - x) * C + c]);
    if (s.label.defined()) {
      std::int64_t* lb = s.label.data();
      for (index_t y = 0; y < H; ++y) std::reverse(lb + y * W, lb + (y + 1) * W);
    }
  }
};

// mmseg Pad with size_divisor: pads bottom and right up to multiples of `divisor`
// (image with pad_value, label with label_pad_value = 255 so padding is ignored by the loss).
struct PadToMultiple {
  index_t divisor = 32;
  float pad_value = 0;
  std::int64_t label_pad_value = ignore_label;
  void operator()(Sample& s, Rng&) const {
    require_consistent(s, "PadToMultiple");
    GCNET_CHECK(divisor > 0, "PadToMultiple: divisor must be positive, got ", divisor);
    const index_t H = s.height(), W = s.width(), C = s.channels();
    const index_t ph = (H + divisor - 1) / divisor * divisor, pw = (W + divisor - 1) / divisor * divisor;
    if (ph == H && pw == W) return;
    Tensor<float> img(Shape{ph, pw, C});
    std::fill_n(img.data(), img.numel(), pad_value);
    for (index_t y = 0; y < H; ++y) std::copy_n(s.image.data() + y * W * C, W * C, img.data() + y * pw * C);
    s.image = img;
    if (s.label.defined()) {
      Tensor<std::int64_t> lbl(Shape{ph, pw});
      std::fill_n(lbl.data(), lbl.numel(), label_pad_value);
      for (index_t y = 0; y < H; ++y) std::copy_n(s.label.data() + y * W, W, lbl.data() + y * pw);
      s.label = lbl;
    }
  }
};

// (x - mean[c]) / std[c] per channel. Images are read in RGB order, so the mean and std are
// in RGB order: mmdet's defaults (with its to_rgb=True, i.e. for RGB data) are the defaults here.
struct Normalize {
  std::vector<float> mean{123.675f, 116.28f, 103.53f};
  std::vector<float> std{58.395f, 57.12f, 57.375f};
  void operator()(Sample& s, Rng&) const {
    require_consistent(s, "Normalize");
    const index_t C = s.channels();
    GCNET_CHECK(static_cast<index_t>(mean.size()) == C && static_cast<index_t>(std.size()) == C,
                "Normalize: mean/std have ", mean.size(), "/", std.size(), " entries for an image with ", C,
                " channels");
    for (float v : std) GCNET_CHECK(v > 0, "Normalize: std entries must be positive, got ", v);
    float* im = s.image.data();
    const index_t n = s.image.numel();
    for (index_t i = 0; i < n; ++i) {
      const auto c = static_cast<std::size_t>(i % C);
      im[i] = (im[i] - mean[c]) / std[c];
    }
  }
};

}  // namespace gcnet::data
