#pragma once
// The GCNet paper's statistic (its Table 1): the average cosine distance, 1 - cos(v_i, v_j),
// over all pairs i < j of the vectors at different positions of one map. Near 0: every position
// holds nearly the same vector (what the paper finds for Non-local attention maps, which is why
// one query-independent map suffices).
// The vectors are read with strides, so both layouts work without a copy:
//   a feature map [C, P] (channel-major): vector i = column i   -> pos_stride 1, dim_stride P
//   attention rows [P, P']:               vector i = row i      -> pos_stride P', dim_stride 1
// A zero vector has no direction: pairs with one are left out (and counted in `skipped`).
// Accumulates in double.
#include <cmath>
#include <vector>

#include "gcnet/core/config.hpp"
#include "gcnet/core/error.hpp"

namespace gcnet::ablate {

struct CosineDistance {
  double mean = 0;     // over the pairs used (NaN when none)
  index_t pairs = 0;   // pairs used
  index_t skipped = 0; // pairs left out for a zero vector
};

template <class T>
CosineDistance mean_pairwise_cosine_distance(const T* data, index_t positions, index_t dims, index_t pos_stride,
                                             index_t dim_stride) {
  GCNET_CHECK(data != nullptr && positions >= 2 && dims >= 1, "mean_pairwise_cosine_distance: needs at least 2 ",
              "positions of at least 1 dimension, got ", positions, " x ", dims);
  std::vector<double> norm(static_cast<std::size_t>(positions));
  for (index_t i = 0; i < positions; ++i) {
    double s = 0;
    for (index_t d = 0; d < dims; ++d) {
      const double v = double(data[i * pos_stride + d * dim_stride]);
      s += v * v;
    }
    GCNET_CHECK(std::isfinite(s), "mean_pairwise_cosine_distance: position ", i, " holds a non-finite value");
    norm[static_cast<std::size_t>(i)] = std::sqrt(s);
  }
  CosineDistance r;
  double sum = 0;
  for (index_t i = 0; i < positions; ++i)
    for (index_t j = i + 1; j < positions; ++j) {
      const double ni = norm[static_cast<std::size_t>(i)], nj = norm[static_cast<std::size_t>(j)];
      if (ni == 0 || nj == 0) {
        ++r.skipped;
        continue;
      }
      double dot = 0;
      for (index_t d = 0; d < dims; ++d)
        dot += double(data[i * pos_stride + d * dim_stride]) * double(data[j * pos_stride + d * dim_stride]);
      const double cosine = std::fmax(-1.0, std::fmin(1.0, dot / (ni * nj)));
      sum += 1.0 - cosine;
      ++r.pairs;
    }
  r.mean = r.pairs ? sum / double(r.pairs) : std::nan("");
  return r;
}

}  // namespace gcnet::ablate
