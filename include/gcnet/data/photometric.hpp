#pragma once
// mmseg PhotoMetricDistortion on a float HWC RGB image (values 0..255):
//   brightness (p=0.5, delta ~ U[-32, 32]) ->
//   mode ~ {0, 1}; if mode == 1: contrast (p=0.5, alpha ~ U[0.5, 1.5]) ->
//   saturation (p=0.5, S *= U[0.5, 1.5] in HSV) -> hue (p=0.5, H += randint[-18, 18] mod 180) ->
//   if mode == 0: contrast.
// Each intensity step clips to [0, 255] and truncates as mmseg's astype(uint8) does. HSV is
// computed in float with mmcv/OpenCV's conventions (H in [0, 180), S and V in [0, 255]); the
// HSV values themselves are not quantized as OpenCV's 8-bit bgr2hsv does (documented difference),
// but the RGB result of each HSV step is rounded to integers as mmcv.hsv2bgr's uint8 output is.
#include <algorithm>
#include <cmath>

#include "gcnet/core/rng.hpp"
#include "gcnet/data/sample.hpp"

namespace gcnet::data {

namespace photometric_detail {
inline float to_u8(double v) { return static_cast<float>(std::floor(std::clamp(v, 0.0, 255.0))); }

// r, g, b in [0, 255] -> h in [0, 180), s in [0, 255], v in [0, 255].
inline void rgb_to_hsv(float r, float g, float b, float& h, float& s, float& v) {
  const float mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
  v = mx;
  s = mx > 0 ? 255.f * d / mx : 0.f;
  float deg = 0;
  if (d > 0) {
    if (mx == r) deg = 60.f * (g - b) / d;
    else if (mx == g) deg = 120.f + 60.f * (b - r) / d;
    else deg = 240.f + 60.f * (r - g) / d;
    if (deg < 0) deg += 360.f;
  }
  h = deg / 2.f;
}
inline void hsv_to_rgb(float h, float s, float v, float& r, float& g, float& b) {
  const float sat = s / 255.f;
  float hh = h * 2.f / 60.f;  // sector units in [0, 6)
  hh = std::fmod(hh, 6.f);
  if (hh < 0) hh += 6.f;
  const int sector = std::min(static_cast<int>(hh), 5);
  const float f = hh - static_cast<float>(sector);
  const float p = v * (1 - sat), q = v * (1 - sat * f), t = v * (1 - sat * (1 - f));
  switch (sector) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
}
}  // namespace photometric_detail

struct PhotoMetricDistortion {
  double brightness_delta = 32;
  double contrast_lower = 0.5, contrast_upper = 1.5;
  double saturation_lower = 0.5, saturation_upper = 1.5;
  int hue_delta = 18;

  void operator()(Sample& s, Rng& rng) const {
    require_consistent(s, "PhotoMetricDistortion");
    GCNET_CHECK(s.channels() == 3, "PhotoMetricDistortion: expected a 3-channel image, got shape ",
                s.image.shape().str());
    float* im = s.image.data();
    const index_t n = s.image.numel();
    // Applies f(h, s) to every pixel in HSV space.
    const auto map_hsv = [&](auto&& f) {
      for (index_t p = 0; p < n / 3; ++p) {
        float* px = im + 3 * p;
        float h, sat, v;
        photometric_detail::rgb_to_hsv(px[0], px[1], px[2], h, sat, v);
        f(h, sat);
        photometric_detail::hsv_to_rgb(h, sat, v, px[0], px[1], px[2]);
        // Back to the 8-bit grid, as mmcv.hsv2bgr returns uint8 (rounded): later steps truncate,
        // and a float round trip landing at 99.9999 must not become 99.
        for (int c = 0; c < 3; ++c) px[c] = std::clamp(std::nearbyint(px[c]), 0.f, 255.f);
      }
    };
    const auto affine = [&](double alpha, double beta) {
      for (index_t i = 0; i < n; ++i) im[i] = photometric_detail::to_u8(im[i] * alpha + beta);
    };
    if (rng.below(2)) affine(1.0, rng.uniform(-brightness_delta, brightness_delta));
    const auto contrast = [&] {
      if (rng.below(2)) affine(rng.uniform(contrast_lower, contrast_upper), 0.0);
    };
    const bool contrast_first = rng.below(2) == 1;
    if (contrast_first) contrast();
    if (rng.below(2)) {
      const double alpha = rng.uniform(saturation_lower, saturation_upper);
      map_hsv([&](float& h, float& sat) {
        (void)h;
        sat = std::clamp(sat * static_cast<float>(alpha), 0.f, 255.f);  // float HSV: clip, no truncation
      });
    }
    if (rng.below(2)) {
      const auto delta = static_cast<float>(static_cast<int>(rng.below(static_cast<std::uint64_t>(2 * hue_delta + 1))) - hue_delta);
      map_hsv([&](float& h, float&) {
        h = std::fmod(h + delta, 180.f);
        if (h < 0) h += 180.f;
      });
    }
    if (!contrast_first) contrast();
  }
};

}  // namespace gcnet::data
