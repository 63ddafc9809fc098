#pragma once
// Helpers shared by the distributed tests: BatchNorm2d / SyncBatchNorm2d with the same random
// state, and slices of a batch along N.
#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/core/rng.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/sync_batch_norm2d.hpp"

namespace gcnet::test {

// Random affine and running statistics (running_var positive), the same for a given seed.
template <class T>
void randomize_bn(BatchNorm2d<T>& bn, std::uint64_t seed) {
  Rng rng(seed, 0x626eull);
  for (index_t c = 0; c < bn.channels(); ++c) {
    if (bn.weight()) {
      bn.weight()->value[c] = static_cast<T>(rng.uniform(0.5, 1.5));
      bn.bias()->value[c] = static_cast<T>(rng.normal());
    }
    if (bn.options().track_running_stats) {
      bn.running_mean()[c] = static_cast<T>(rng.normal());
      bn.running_var()[c] = static_cast<T>(rng.uniform(0.5, 2.0));
    }
  }
}

// Rows [begin, end) along dim 0, copied (an empty range gives a zero first extent).
template <class T>
Tensor<T> rows(const Tensor<T>& t, index_t begin, index_t end) {
  Shape s = t.shape();
  s[0] = end - begin;
  Tensor<T> out(s);
  const index_t per = t.numel() / t.size(0);
  for (index_t i = 0; i < out.numel(); ++i) out[i] = t[begin * per + i];
  return out;
}

// ||a - b|| / max(||b||, tiny) over the elements.
template <class T>
double rel_err(const Tensor<T>& a, const Tensor<T>& b) {
  REQUIRE(a.shape() == b.shape());
  double d = 0, n = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    const double e = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    d += e * e;
    n += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return std::sqrt(d) / std::max(std::sqrt(n), 1e-300);
}

}  // namespace gcnet::test
