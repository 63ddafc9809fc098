#pragma once
// The embedded default data of the demo: generated images of oriented gratings.
// Class k is a sinusoidal grating at angle k * 45 degrees, with random frequency, phase
// and colour, plus Gaussian noise. Deterministic for a given seed.
#include <cmath>
#include <cstdint>

#include "gcnet/core/rng.hpp"
#include "gcnet/core/tensor.hpp"

namespace toy {

inline constexpr int kClasses = 4;

// One sample as the data pipeline holds it: an HWC image [S, S, 3] and its class.
inline gcnet::Tensor<float> make_image(gcnet::Rng& rng, int k, gcnet::index_t size) {
  gcnet::Tensor<float> image(gcnet::Shape{size, size, 3});
  const double angle = k * M_PI / 4, freq = rng.uniform(0.25, 0.6), phase = rng.uniform(0, 2 * M_PI);
  const double ca = std::cos(angle), sa = std::sin(angle);
  double colour[3];
  for (double& c : colour) c = rng.uniform(0.3, 1.0);
  for (gcnet::index_t y = 0; y < size; ++y)
    for (gcnet::index_t x = 0; x < size; ++x) {
      const double v = std::sin(freq * (x * ca + y * sa) + phase);
      for (int c = 0; c < 3; ++c) image.at({y, x, c}) = static_cast<float>(colour[c] * v + 0.3 * rng.normal());
    }
  return image;
}

// Fills images [N, 3, S, S] and labels [N].
inline void make_batch(gcnet::Rng& rng, gcnet::Tensor<float>& images, gcnet::Tensor<std::int64_t>& labels,
                       gcnet::index_t n, gcnet::index_t size) {
  images.resize(gcnet::Shape{n, 3, size, size});
  labels.resize(gcnet::Shape{n});
  for (gcnet::index_t b = 0; b < n; ++b) {
    const int k = static_cast<int>(rng.below(kClasses));
    labels[b] = k;
    const double angle = k * M_PI / 4, freq = rng.uniform(0.25, 0.6), phase = rng.uniform(0, 2 * M_PI);
    const double ca = std::cos(angle), sa = std::sin(angle);
    double colour[3];
    for (double& c : colour) c = rng.uniform(0.3, 1.0);
    for (gcnet::index_t y = 0; y < size; ++y)
      for (gcnet::index_t x = 0; x < size; ++x) {
        const double v = std::sin(freq * (x * ca + y * sa) + phase);
        for (int c = 0; c < 3; ++c)
          images.at({b, c, y, x}) = static_cast<float>(colour[c] * v + 0.3 * rng.normal());
      }
  }
}

}  // namespace toy
