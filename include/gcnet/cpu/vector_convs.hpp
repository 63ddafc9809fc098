#pragma once
// A 1x1 Conv2d applied to [N, C, 1, 1] (the GC transform's context vectors), on the CPU: N
// matrix-vector products with the layer's own weight ([out, in, 1, 1] read as an [out, in]
// matrix) and bias, forward and backward. The CPU fast path of blocks::ChannelTransform, which
// otherwise runs the layer itself (its generic path, the only one on other backends).
// Why: the layer's GEMM engine stacks the images, and a GEMM library packs the whole weight
// before multiplying, which costs more than the product when N (the batch) is 2: Conv2d on
// [2, 2048, 1, 1] -> 128 took 25-50 us forward and backward on one thread, these loops 5-10.
#include <algorithm>

#include "gcnet/blocks/portable_reductions.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/layers/conv2d.hpp"

namespace gcnet::cpu {

// y[n, out] = W x[n, :] + b (assigned; y is resized to [N, out, 1, 1]).
template <Scalar T>
void conv1x1_vectors_forward(Conv2d<T, Cpu>& conv, const Tensor<T, Cpu>& x, Tensor<T, Cpu>& y) {
  const index_t n = x.size(0), in = conv.options().in, out = conv.options().out;
  y.resize(Shape{n, out, 1, 1});
  const T *xp = x.data(), *w = conv.weight().value.data();
  const T* b = conv.bias() ? conv.bias()->value.data() : nullptr;
  T* yp = y.data();
  // Four weight rows per task (dot_rows4: independent accumulators), the rest one by one.
  const index_t quads = out / 4;
  for_each_index_weighted(Cpu{}, quads + out % 4, 4 * n * in, [=](index_t t) {
    const index_t o = t < quads ? 4 * t : 4 * quads + (t - quads), rows = t < quads ? 4 : 1;
    for (index_t k = 0; k < n; ++k) {
      T r[4];
      if (rows == 4) blocks::dot_rows4(w + o * in, in, xp + k * in, in, r);
      else r[0] = blocks::dot(w + o * in, xp + k * in, in);
      for (index_t q = 0; q < rows; ++q) yp[k * out + o + q] = b ? r[q] + b[o + q] : r[q];
    }
  });
}

// Assigns dW = dy^T x and db = sum_n dy; dx += dy W.
template <Scalar T>
void conv1x1_vectors_backward(Conv2d<T, Cpu>& conv, const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& dy,
                              Tensor<T, Cpu>& dx) {
  const index_t n = x.size(0), in = conv.options().in, out = conv.options().out;
  const T *xp = x.data(), *g = dy.data(), *w = conv.weight().value.data();
  T *dw = conv.weight().grad.data(), *d = dx.data();
  T* db = conv.bias() ? conv.bias()->grad.data() : nullptr;
  for_each_index_weighted(Cpu{}, out, n * in, [=](index_t o) {
    T* dwr = dw + o * in;
    T sb = 0;
    for (index_t i = 0; i < in; ++i) dwr[i] = T(0);
    for (index_t k = 0; k < n; ++k) {
      const T gk = g[k * out + o];
      sb += gk;
      const T* xr = xp + k * in;
#pragma omp simd
      for (index_t i = 0; i < in; ++i) dwr[i] += gk * xr[i];
    }
    if (db) db[o] = sb;
  });
  // dx[k, i0:i0+64] += sum_o dy[k, o] W[o, i0:i0+64]: contiguous rows of W per task.
  constexpr index_t kBlock = 64;
  const index_t tiles = (in + kBlock - 1) / kBlock;
  for_each_index_weighted(Cpu{}, n * tiles, out * kBlock, [=](index_t t) {
    const index_t k = t / tiles, i0 = (t % tiles) * kBlock, len = std::min(kBlock, in - i0);
    T acc[kBlock], chunk[kBlock];  // the sum over the output channels in chunks (blocks::kSumChunk)
    for (index_t j = 0; j < len; ++j) acc[j] = T(0);
    for (index_t o0 = 0; o0 < out; o0 += blocks::kSumChunk) {
      const index_t o1 = std::min(out, o0 + blocks::kSumChunk);
      for (index_t j = 0; j < len; ++j) chunk[j] = T(0);
      for (index_t o = o0; o < o1; ++o) {
        const T gk = g[k * out + o];
        const T* wr = w + o * in + i0;
#pragma omp simd
        for (index_t j = 0; j < len; ++j) chunk[j] += gk * wr[j];
      }
      for (index_t j = 0; j < len; ++j) acc[j] += chunk[j];
    }
    for (index_t j = 0; j < len; ++j) d[k * in + i0 + j] += acc[j];
  });
}

}  // namespace gcnet::cpu
