#pragma once
// Serial reduction kernels of the CPU fast paths (the GC block's single-region forward):
//   weighted_row_sum  e[j] = sum_r w[r] x[r, j]              (attention logits over a range of rows)
//   dot_rows_batch    y[k, r] = bias[r] + w[r, :] . x[k, :]  (a block of a matrix times a few vectors)
//   sum_partials      a team's partial sums of one product, reduced identically by every member
// The first two have an AVX-512 form (cpu::isa_avx512) and a portable one (cpu::isa_generic);
// the functions in gcnet::cpu pick one at run time (cpu/isa.hpp). Float only takes AVX-512.
#include <algorithm>
#include <concepts>

#include "gcnet/blocks/portable_reductions.hpp"
#include "gcnet/core/config.hpp"
#include "gcnet/cpu/isa.hpp"

namespace gcnet::cpu {

// Per-member stride of team scratch holding `len` values: whole 64-byte lines, so no two
// members write the same cache line.
inline index_t team_stride(index_t len) { return (len + 15) / 16 * 16; }

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

namespace isa_generic {

// Four rows per sweep over e (one load and store of e per four rows).
template <class T>
inline void weighted_row_sum(const T* x, index_t ldx, const T* w, index_t rows, index_t len, T* e) {
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

// Four rows at a time (blocks::dot_rows4: four accumulators), then single rows.
template <class T>
inline void dot_rows_batch(const T* w, index_t ldw, index_t rows, const T* x, index_t ldx, index_t n, index_t len,
                           const T* bias, T* y, index_t ldy) {
  index_t r = 0;
  for (; r + 4 <= rows; r += 4)
    for (index_t k = 0; k < n; ++k) {
      T out[4];
      blocks::dot_rows4(w + r * ldw, ldw, x + k * ldx, len, out);
      for (index_t q = 0; q < 4; ++q) y[k * ldy + r + q] = bias ? out[q] + bias[r + q] : out[q];
    }
  for (; r < rows; ++r)
    for (index_t k = 0; k < n; ++k) {
      const T d = blocks::dot(w + r * ldw, x + k * ldx, len);
      y[k * ldy + r] = bias ? d + bias[r] : d;
    }
}

}  // namespace isa_generic

#if GCNET_CPU_AVX512_KERNELS
namespace isa_avx512 {
GCNET_CPU_AVX512_BEGIN

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
inline void dot_block(const float* w, index_t ldw, const float* x, index_t ldx, index_t len, float* y, index_t ldy) {
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
inline void weighted_row_sum_chunk(const float* x, index_t ldx, const float* w, index_t rows, index_t len, float* e) {
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

// 256 positions at a time with their sums in registers.
inline void weighted_row_sum(const float* x, index_t ldx, const float* w, index_t rows, index_t len, float* e) {
  using Kernel = void (*)(const float*, index_t, const float*, index_t, index_t, float*);
  static constexpr Kernel kernels[16] = {
      weighted_row_sum_chunk<1>,  weighted_row_sum_chunk<2>,  weighted_row_sum_chunk<3>,  weighted_row_sum_chunk<4>,
      weighted_row_sum_chunk<5>,  weighted_row_sum_chunk<6>,  weighted_row_sum_chunk<7>,  weighted_row_sum_chunk<8>,
      weighted_row_sum_chunk<9>,  weighted_row_sum_chunk<10>, weighted_row_sum_chunk<11>, weighted_row_sum_chunk<12>,
      weighted_row_sum_chunk<13>, weighted_row_sum_chunk<14>, weighted_row_sum_chunk<15>, weighted_row_sum_chunk<16>};
  for (index_t j = 0; j < len; j += 256) {
    const index_t chunk = std::min<index_t>(256, len - j);
    kernels[(chunk + 15) / 16 - 1](x + j, ldx, w, rows, chunk, e + j);
  }
}

// Blocks of 8 rows times two vectors (each load of the weights feeds both), a single vector 16
// rows at a time; the rows left over take the portable form.
inline void dot_rows_batch(const float* w, index_t ldw, index_t rows, const float* x, index_t ldx, index_t n,
                           index_t len, const float* bias, float* y, index_t ldy) {
  index_t r = 0;
  for (; r + 16 <= rows && n == 1; r += 16) dot_block<16, 1>(w + r * ldw, ldw, x, ldx, len, y + r, ldy);
  for (; r + 8 <= rows; r += 8) {
    index_t k = 0;
    for (; k + 2 <= n; k += 2) dot_block<8, 2>(w + r * ldw, ldw, x + k * ldx, ldx, len, y + k * ldy + r, ldy);
    if (k < n) dot_block<8, 1>(w + r * ldw, ldw, x + k * ldx, ldx, len, y + k * ldy + r, ldy);
  }
  if (bias)
    for (index_t k = 0; k < n; ++k)
      for (index_t q = 0; q < r; ++q) y[k * ldy + q] += bias[q];
  if (r < rows)
    isa_generic::dot_rows_batch(w + r * ldw, ldw, rows - r, x, ldx, n, len, bias ? bias + r : nullptr, y + r, ldy);
}

GCNET_CPU_AVX512_END
}  // namespace isa_avx512
#endif

// e[j] = sum_{r < rows} w[r] x[r * ldx + j] for j < len (zeros when rows is 0): a weighted sum of
// rows, e.g. the attention logits over a range of channels. Serial.
template <class T>
inline void weighted_row_sum(const T* x, index_t ldx, const T* w, index_t rows, index_t len, T* e) {
#if GCNET_CPU_AVX512_KERNELS
  if constexpr (std::same_as<T, float>)
    if (isa() == Isa::Avx512) return isa_avx512::weighted_row_sum(x, ldx, w, rows, len, e);
#endif
  isa_generic::weighted_row_sum(x, ldx, w, rows, len, e);
}

// y[k * ldy + r] = bias[r] (when given) + w[r * ldw : + len] . x[k * ldx : + len] for r < rows,
// k < n: a block of rows of a matrix times a few vectors (a team member's share of a 1x1 conv
// on [N, C] vectors, or of the context's dot products with the softmax). Serial.
template <class T>
inline void dot_rows_batch(const T* w, index_t ldw, index_t rows, const T* x, index_t ldx, index_t n, index_t len,
                           const T* bias, T* y, index_t ldy) {
#if GCNET_CPU_AVX512_KERNELS
  if constexpr (std::same_as<T, float>)
    if (isa() == Isa::Avx512) return isa_avx512::dot_rows_batch(w, ldw, rows, x, ldx, n, len, bias, y, ldy);
#endif
  isa_generic::dot_rows_batch(w, ldw, rows, x, ldx, n, len, bias, y, ldy);
}

}  // namespace gcnet::cpu
