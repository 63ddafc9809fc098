#pragma once
// Per-channel affine maps of NCHW tensors, one (image, channel) plane per index so the inner
// loop is contiguous and vectorizes (no per-element channel arithmetic). Used by the norms.
#include "gcnet/core/parallel.hpp"

namespace gcnet {

// y[n][c][p] = x[n][c][p] * scale[c] + shift[c]
template <class T, class B>
void channel_affine(B, const T* x, const T* scale, const T* shift, T* y, index_t batch, index_t channels,
                    index_t inner) {
  for_each_index_weighted(B{}, batch * channels, inner, [=] GCNET_HD(index_t plane) {
    const index_t c = plane % channels;
    const T s = scale[c], t = shift[c];
    const T* p = x + plane * inner;
    T* q = y + plane * inner;
    GCNET_SIMD
    for (index_t j = 0; j < inner; ++j) q[j] = p[j] * s + t;
  });
}

// d[n][c][p] += g[n][c][p] * scale[c]
template <class T, class B>
void channel_scale_add(B, const T* g, const T* scale, T* d, index_t batch, index_t channels, index_t inner) {
  for_each_index_weighted(B{}, batch * channels, inner, [=] GCNET_HD(index_t plane) {
    const T s = scale[plane % channels];
    const T* p = g + plane * inner;
    T* q = d + plane * inner;
    GCNET_SIMD
    for (index_t j = 0; j < inner; ++j) q[j] += p[j] * s;
  });
}

}  // namespace gcnet
