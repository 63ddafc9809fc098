#pragma once
// Per-channel bias of NCHW tensors: y[n][c][p] += bias[c], and its gradient
// db[c] = sum over n and p of dy[n][c][p]. Bodies written once for both backends.
#include <algorithm>

#include "gcnet/core/parallel.hpp"

namespace gcnet {

// y[(n * channels + c) * inner + p] += bias[c]
template <class T, class B>
void add_channel_bias(B, T* y, const T* bias, index_t batch, index_t channels, index_t inner) {
  for_each_index_weighted(B{}, batch * channels, inner, [=] GCNET_HD(index_t t) {
    const T b = bias[t % channels];
    T* row = y + t * inner;
    for (index_t p = 0; p < inner; ++p) row[p] += b;
  });
}

// db[c] = sum over n, p of dy[(n * channels + c) * inner + p] (assigned).
template <class T, class B>
void channel_sum(B, const T* dy, T* db, index_t batch, index_t channels, index_t inner) {
  for_each_index_weighted(B{}, channels, batch * inner, [=] GCNET_HD(index_t c) {
    // Eight partial sums: lets the compiler vectorize without reordering a single chain.
    T acc[8] = {};
    for (index_t n = 0; n < batch; ++n) {
      const T* row = dy + (n * channels + c) * inner;
      index_t p = 0;
      for (; p + 8 <= inner; p += 8)
        for (int k = 0; k < 8; ++k) acc[k] += row[p + k];
      for (; p < inner; ++p) acc[p % 8] += row[p];
    }
    db[c] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  });
}

}  // namespace gcnet
