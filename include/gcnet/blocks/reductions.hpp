#pragma once
// Sums and dot products for the blocks' kernels. Without -ffast-math a compiler keeps a
// floating-point reduction in source order, one dependent add per element (scalar and
// latency-bound); `omp simd reduction` allows the reassociation, so it vectorizes.
// dot_rows_batch (CPU) computes many short dot products at once; on AVX-512 builds it keeps 16
// accumulators in registers and sums them all in one transposing tree at the end.
#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>

#include "gcnet/core/config.hpp"

#if defined(__AVX512F__) && !defined(__CUDACC__)
#define GCNET_BLOCKS_AVX512 1
#include <immintrin.h>
#endif

namespace gcnet {
namespace detail {
// exp for softmax rows (NonLocal2d's attention, GC's attention pooling): float uses a
// branch-free Cephes-style polynomial that the compiler vectorizes (std::exp is a scalar
// call, about a third of NL's forward time at 56x56); ~1 ulp on [-87, 0], where a softmax
// evaluates it (below -87 it returns exp(-87) ~ 1.6e-38, not 0). double keeps std::exp.
template <class T>
GCNET_HD inline T softmax_exp(T x) {
  if constexpr (std::same_as<T, float>) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    // n = round(x / ln 2) by the 1.5 * 2^23 trick (no floor call, so the loop vectorizes)
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const float scale = std::bit_cast<float>((static_cast<int>(n) + 127) << 23);
    return p * scale;
  } else {
    return std::exp(x);
  }
}
}  // namespace detail
}  // namespace gcnet

namespace gcnet::blocks {

template <class T>
GCNET_HD inline T dot(const T* a, const T* b, index_t n) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (index_t j = 0; j < n; ++j) acc += a[j] * b[j];
  return acc;
}

// out[r] = rows[r * stride : + n] . v for r < 4: four independent accumulators sharing each
// load of v. A single dot's accumulator is one dependent chain of vector FMAs (latency-bound
// on short rows and on the transforms' weight rows); four chains run about twice as fast.
template <class T>
GCNET_HD inline void dot_rows4(const T* rows, index_t stride, const T* v, index_t n, T* out) {
  const T *r0 = rows, *r1 = rows + stride, *r2 = rows + 2 * stride, *r3 = rows + 3 * stride;
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
  for (index_t j = 0; j < n; ++j) {
    const T x = v[j];
    s0 += r0[j] * x;
    s1 += r1[j] * x;
    s2 += r2[j] * x;
    s3 += r3[j] * x;
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

// out[j] = bias[j] (when given) + sum_{t < count} parts[t * stride + j] for j < len: a team's
// partial sums of one product, reduced in the same order by every member, so all agree bitwise.
template <class T>
inline void sum_partials(const T* parts, index_t count, index_t stride, index_t len, const T* bias, T* out) {
  for (index_t j = 0; j < len; ++j) {
    T acc = parts[j];
    for (index_t t = 1; t < count; ++t) acc += parts[t * stride + j];
    out[j] = bias ? acc + bias[j] : acc;
  }
}

#if defined(GCNET_BLOCKS_AVX512)
// GCC 12 warns inside the shuffle intrinsics it inlines (the `__Y = __Y` of
// _mm512_undefined_ps, GCC bug 105593); nothing here is uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
namespace detail {
// Lane i of the result = the sum of the 16 lanes of v[i]: four levels of shuffles and adds
// (15 adds for 16 sums, instead of 4 dependent steps per sum). The inputs are taken in the
// order v[4 (a % 4) + a / 4] so that the tree leaves the sums in natural order.
inline __m512 sum_lanes16(const __m512 (&v)[16]) {
  auto in = [&](int a) { return v[4 * (a % 4) + a / 4]; };
  __m512 l1[8], l2[4], l3[2];
  for (int i = 0; i < 8; ++i)  // 256-bit halves: [v(2i) 8 partials | v(2i+1) 8 partials]
    l1[i] = _mm512_add_ps(_mm512_shuffle_f32x4(in(2 * i), in(2 * i + 1), 0x44),
                          _mm512_shuffle_f32x4(in(2 * i), in(2 * i + 1), 0xEE));
  for (int i = 0; i < 4; ++i)  // 128-bit block j: 4 partials of v(4i + j)
    l2[i] = _mm512_add_ps(_mm512_shuffle_f32x4(l1[2 * i], l1[2 * i + 1], 0x88),
                          _mm512_shuffle_f32x4(l1[2 * i], l1[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)
    l3[i] = _mm512_add_ps(_mm512_shuffle_ps(l2[2 * i], l2[2 * i + 1], 0x44),
                          _mm512_shuffle_ps(l2[2 * i], l2[2 * i + 1], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(l3[0], l3[1], 0x88), _mm512_shuffle_ps(l3[0], l3[1], 0xDD));
}

// y[k * ldy + r] = w[r * ldw : + len] . x[k * ldx : + len] for r < R, k < V (R * V <= 16): every
// load of w feeds V products and every load of x feeds R; the tail is masked.
template <int R, int V>
inline void dot_block_avx512(const float* w, index_t ldw, const float* x, index_t ldx, index_t len, float* y,
                             index_t ldy) {
  static_assert(R * V <= 16);
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  auto step = [&](index_t j, __mmask16 m) {
    __m512 xv[V];
    for (int k = 0; k < V; ++k) xv[k] = _mm512_maskz_loadu_ps(m, x + k * ldx + j);
    for (int r = 0; r < R; ++r) {
      const __m512 wv = _mm512_maskz_loadu_ps(m, w + r * ldw + j);
      for (int k = 0; k < V; ++k) acc[k * R + r] = _mm512_fmadd_ps(wv, xv[k], acc[k * R + r]);
    }
  };
  index_t j = 0;
  for (; j + 16 <= len; j += 16) step(j, __mmask16(0xFFFF));
  if (j < len) step(j, static_cast<__mmask16>((1u << (len - j)) - 1));
  alignas(64) float sums[16];
  _mm512_store_ps(sums, sum_lanes16(acc));
  for (int k = 0; k < V; ++k)
    for (int r = 0; r < R; ++r) y[k * ldy + r] = sums[k * R + r];
}

// e[j] = sum_{r < rows} w[r] x[r * ldx + j] for j < len, 16 (L - 1) < len <= 16 L: the sums stay
// in L registers while x streams past once, one load and one FMA per 16 values. With few
// registers in use, even and odd rows go to two sets of sums, so that two FMA chains overlap.
template <int L>
inline void weighted_row_sum_avx512(const float* x, index_t ldx, const float* w, index_t rows, index_t len,
                                    float* e) {
  constexpr bool kTwoSets = L <= 8;
  const __mmask16 last = static_cast<__mmask16>(len % 16 ? (1u << (len % 16)) - 1 : 0xFFFFu);
  __m512 a[L], b[L];
  for (int i = 0; i < L; ++i) a[i] = b[i] = _mm512_setzero_ps();
  auto add_row = [&](__m512 (&acc)[L], const float* row, float wr) {
    const __m512 wv = _mm512_set1_ps(wr);
    for (int i = 0; i + 1 < L; ++i) acc[i] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(row + 16 * i), acc[i]);
    acc[L - 1] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(last, row + 16 * (L - 1)), acc[L - 1]);
  };
  index_t r = 0;
  if constexpr (kTwoSets)
    for (; r + 2 <= rows; r += 2) {
      add_row(a, x + r * ldx, w[r]);
      add_row(b, x + (r + 1) * ldx, w[r + 1]);
    }
  for (; r < rows; ++r) add_row(a, x + r * ldx, w[r]);
  for (int i = 0; i < L; ++i) {
    const __m512 v = kTwoSets ? _mm512_add_ps(a[i], b[i]) : a[i];
    if (i + 1 < L) _mm512_storeu_ps(e + 16 * i, v);
    else _mm512_mask_storeu_ps(e + 16 * i, last, v);
  }
}
}  // namespace detail
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

// e[j] = sum_{r < rows} w[r] x[r * ldx + j] for j < len (zeros when rows is 0): a weighted sum of
// rows, e.g. the attention logits over a range of channels. Serial. AVX-512 builds take 256
// positions at a time with their sums in registers; elsewhere four rows per sweep over e.
template <class T>
inline void weighted_row_sum(const T* x, index_t ldx, const T* w, index_t rows, index_t len, T* e) {
#if defined(GCNET_BLOCKS_AVX512)
  if constexpr (std::same_as<T, float>) {
    using Kernel = void (*)(const float*, index_t, const float*, index_t, index_t, float*);
    static constexpr Kernel kernels[16] = {
        detail::weighted_row_sum_avx512<1>,  detail::weighted_row_sum_avx512<2>,  detail::weighted_row_sum_avx512<3>,
        detail::weighted_row_sum_avx512<4>,  detail::weighted_row_sum_avx512<5>,  detail::weighted_row_sum_avx512<6>,
        detail::weighted_row_sum_avx512<7>,  detail::weighted_row_sum_avx512<8>,  detail::weighted_row_sum_avx512<9>,
        detail::weighted_row_sum_avx512<10>, detail::weighted_row_sum_avx512<11>, detail::weighted_row_sum_avx512<12>,
        detail::weighted_row_sum_avx512<13>, detail::weighted_row_sum_avx512<14>, detail::weighted_row_sum_avx512<15>,
        detail::weighted_row_sum_avx512<16>};
    for (index_t j = 0; j < len; j += 256) {
      const index_t chunk = std::min<index_t>(256, len - j);
      kernels[(chunk + 15) / 16 - 1](x + j, ldx, w, rows, chunk, e + j);
    }
    return;
  }
#endif
  for (index_t j = 0; j < len; ++j) e[j] = T(0);
  index_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const T *r0 = x + r * ldx, *r1 = r0 + ldx, *r2 = r1 + ldx, *r3 = r2 + ldx;
    const T w0 = w[r], w1 = w[r + 1], w2 = w[r + 2], w3 = w[r + 3];
#pragma omp simd
    for (index_t j = 0; j < len; ++j) e[j] += w0 * r0[j] + w1 * r1[j] + w2 * r2[j] + w3 * r3[j];
  }
  for (; r < rows; ++r) {
    const T* row = x + r * ldx;
    const T wr = w[r];
#pragma omp simd
    for (index_t j = 0; j < len; ++j) e[j] += wr * row[j];
  }
}

// y[k * ldy + r] = bias[r] (when given) + w[r * ldw : + len] . x[k * ldx : + len] for r < rows,
// k < n: a block of rows of a matrix times a few vectors (a team member's share of a 1x1 conv
// on [N, C] vectors, or of the context's dot products with the softmax). Serial.
template <class T>
inline void dot_rows_batch(const T* w, index_t ldw, index_t rows, const T* x, index_t ldx, index_t n, index_t len,
                           const T* bias, T* y, index_t ldy) {
  index_t r = 0;
#if defined(GCNET_BLOCKS_AVX512)
  if constexpr (std::same_as<T, float>) {
    // Two vectors at a time share each load of 8 weight rows; a single vector takes 16 rows.
    for (; r + 16 <= rows && n == 1; r += 16) detail::dot_block_avx512<16, 1>(w + r * ldw, ldw, x, ldx, len, y + r, ldy);
    for (; r + 8 <= rows; r += 8) {
      index_t k = 0;
      for (; k + 2 <= n; k += 2)
        detail::dot_block_avx512<8, 2>(w + r * ldw, ldw, x + k * ldx, ldx, len, y + k * ldy + r, ldy);
      if (k < n) detail::dot_block_avx512<8, 1>(w + r * ldw, ldw, x + k * ldx, ldx, len, y + k * ldy + r, ldy);
    }
    if (bias)
      for (index_t k = 0; k < n; ++k)
        for (index_t q = 0; q < r; ++q) y[k * ldy + q] += bias[q];
  }
#endif
  for (; r + 4 <= rows; r += 4)
    for (index_t k = 0; k < n; ++k) {
      T out[4];
      dot_rows4(w + r * ldw, ldw, x + k * ldx, len, out);
      for (index_t q = 0; q < 4; ++q) y[k * ldy + r + q] = bias ? out[q] + bias[r + q] : out[q];
    }
  for (; r < rows; ++r)
    for (index_t k = 0; k < n; ++k) {
      const T d = dot(w + r * ldw, x + k * ldx, len);
      y[k * ldy + r] = bias ? d + bias[r] : d;
    }
}

// Per-member stride of team scratch holding `len` values: whole 64-byte lines, so no two
// members write the same cache line.
inline index_t team_stride(index_t len) { return (len + 15) / 16 * 16; }

template <class T>
GCNET_HD inline T sum(const T* a, index_t n) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (index_t j = 0; j < n; ++j) acc += a[j];
  return acc;
}

}  // namespace gcnet::blocks
