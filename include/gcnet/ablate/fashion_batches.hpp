#pragma once
// Fashion-MNIST for the classification ablation: a fixed training subset (the first n images of
// the train split, which Zalando ships shuffled) and the first m of t10k, normalised with the
// training set's mean and std, and batches whose order and augmentation depend only on the seed,
// the epoch and the position, never on the model: every variant of one seed sees exactly the
// same batches.
//   order       epoch e: a Fisher-Yates permutation from Philox stream (seed ^ kOrderKey, e)
//   augment     sample at (e, position): a shift of -2..2 pixels in x and y (zero padding, in
//               the raw image's 0) and a horizontal flip with probability 1/2, from stream
//               (seed ^ kAugmentKey, e * 2^32 + position)
#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/core/tensor.hpp"
#include "gcnet/data/fashion_mnist.hpp"

namespace gcnet::ablate {

inline constexpr float kFashionMean = 0.2860f, kFashionStd = 0.3530f;  // of the 60000 training images
inline constexpr std::uint64_t kOrderKey = 0x6f72646572ull, kAugmentKey = 0x6175676d656eull;

struct FashionSubset {
  std::shared_ptr<const data::FashionMnist> train, test;
  index_t train_count = 0, test_count = 0;
};

inline FashionSubset load_fashion_subset(index_t train_count, index_t test_count, const std::string& dir = {}) {
  FashionSubset d;
  d.train = data::shared_fashion_mnist(data::FashionSplit::train, dir);
  d.test = data::shared_fashion_mnist(data::FashionSplit::test, dir);
  GCNET_CHECK(train_count > 0 && train_count <= d.train->count, "ablation: --train-images must be in [1, ",
              d.train->count, "], got ", train_count);
  GCNET_CHECK(test_count > 0 && test_count <= d.test->count, "ablation: --test-images must be in [1, ",
              d.test->count, "], got ", test_count);
  d.train_count = train_count;
  d.test_count = test_count;
  return d;
}

inline std::vector<index_t> epoch_permutation(index_t n, std::uint64_t seed, std::int64_t epoch) {
  std::vector<index_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), index_t(0));
  Rng rng(seed ^ kOrderKey, static_cast<std::uint64_t>(epoch));
  for (index_t i = n - 1; i > 0; --i)
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
  return p;
}

// Image `index` of `fm` into out[28 * 28], normalised, shifted by (dy, dx), flipped if asked.
inline void put_image(const data::FashionMnist& fm, index_t index, int dy, int dx, bool flip, float* out) {
  const index_t S = data::fashion_mnist_side;
  const std::uint8_t* im = fm.image(index);
  const float zero = (0.0f - kFashionMean) / kFashionStd;
  for (index_t y = 0; y < S; ++y)
    for (index_t x = 0; x < S; ++x) {
      const index_t sy = y - dy, sx0 = x - dx, sx = flip ? S - 1 - sx0 : sx0;
      out[y * S + x] = sy >= 0 && sy < S && sx >= 0 && sx < S
                           ? (float(im[sy * S + sx]) / 255.0f - kFashionMean) / kFashionStd
                           : zero;
    }
}

// Training batch: positions [start, start + count) of epoch `epoch`'s order.
inline void training_batch(const FashionSubset& d, const std::vector<index_t>& order, std::uint64_t seed,
                           std::int64_t epoch, index_t start, index_t count, bool augment, Tensor<float>& images,
                           Tensor<std::int64_t>& labels) {
  const index_t S = data::fashion_mnist_side;
  images.resize(Shape{count, 1, S, S});
  labels.resize(Shape{count});
  for (index_t i = 0; i < count; ++i) {
    const index_t pos = start + i, idx = order[static_cast<std::size_t>(pos)];
    int dy = 0, dx = 0;
    bool flip = false;
    if (augment) {
      Rng rng(seed ^ kAugmentKey, (static_cast<std::uint64_t>(epoch) << 32) | static_cast<std::uint64_t>(pos));
      dy = static_cast<int>(rng.below(5)) - 2;
      dx = static_cast<int>(rng.below(5)) - 2;
      flip = rng.below(2) == 1;
    }
    put_image(*d.train, idx, dy, dx, flip, images.data() + i * S * S);
    labels[i] = d.train->label(idx);
  }
}

// Test images [start, start + count) of the t10k subset, unaugmented.
inline void test_batch(const FashionSubset& d, index_t start, index_t count, Tensor<float>& images,
                       Tensor<std::int64_t>& labels) {
  const index_t S = data::fashion_mnist_side;
  images.resize(Shape{count, 1, S, S});
  labels.resize(Shape{count});
  for (index_t i = 0; i < count; ++i) {
    put_image(*d.test, start + i, 0, 0, false, images.data() + i * S * S);
    labels[i] = d.test->label(start + i);
  }
}

}  // namespace gcnet::ablate
