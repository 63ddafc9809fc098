#pragma once
// Single-precision GEMM for AVX-512 CPUs, serial: row-major C = alpha op(A) op(B) + beta C.
// BLIS's blocking: B is packed in [KC x NC] blocks of 32-column panels (kept in L2), A in
// [MC x KC] blocks of 12-row panels; one A panel stays in L1 while the B panels stream past
// it, and a 12 x 32 micro-kernel keeps its C tile in 24 zmm accumulators (one packed B row =
// 2 vector loads, 12 broadcasts of A, 24 FMAs per k).
// Why not Eigen's product: Eigen 3.4's AVX-512 float kernel is 48 x 4, reaching about 70% of
// the FMA peak at best and less on this project's shapes (docs/performance.md, "Suite
// blocks"); NonLocal2d and the convolutions are mostly GEMM. Transposed operands are packed with
// 16 x 16 in-register transposes, so every op combination costs the same.
// With beta == 0, C is never read. blas::gemm (kernels/blas.hpp) calls this for float when
// cpu::isa() is AVX-512, and adds the threading. Compiled in every translation unit under
// GCNET_CPU_AVX512_BEGIN (cpu/isa.hpp explains why), so only callers that asked isa() may run it.
#include "gcnet/cpu/isa.hpp"

#if GCNET_CPU_AVX512_KERNELS
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>

#include "gcnet/core/config.hpp"

namespace gcnet::cpu::isa_avx512::sgemm {
GCNET_CPU_AVX512_BEGIN
inline constexpr index_t kMR = 12, kNR = 32;              // micro-tile of C
inline constexpr index_t kMaxKC = 512, kMaxMC = 480, kMaxNC = 1024;  // packing buffer capacity

// Cache blocks. Runtime values so that tests can run the multi-block paths on small sizes;
// the default was the fastest of those tried on NonLocal2d's and the convolutions' shapes.
struct Blocking {
  index_t kc = 256, mc = 240, nc = 1024;
  bool a_panel_in_l1 = true;  // inner loop over B panels (true) or over A panels (false)
};

// Per-thread packing buffers, allocated on first use.
struct PackBuffers {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> a{static_cast<float*>(std::aligned_alloc(64, sizeof(float) * kMaxMC * kMaxKC))};
  std::unique_ptr<float, Free> b{static_cast<float*>(std::aligned_alloc(64, sizeof(float) * kMaxKC * kMaxNC))};
  PackBuffers() {
    if (!a || !b) throw std::bad_alloc();
  }
};
inline PackBuffers& pack_buffers() {
  thread_local PackBuffers buffers;
  return buffers;
}

inline __mmask16 lanes(index_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1u);
}

// r[j] <- column j of the 16 x 16 block whose rows are r[0..15].
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  auto lo64 = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  auto hi64 = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  __m512 u[16];  // u[4q + e], 128-bit lane L: rows 4q..4q+3 at column 4L + e
  for (int q = 0; q < 4; ++q) {
    u[4 * q] = lo64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 1] = hi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 2] = lo64(t[4 * q + 1], t[4 * q + 3]);
    u[4 * q + 3] = hi64(t[4 * q + 1], t[4 * q + 3]);
  }
  for (int e = 0; e < 4; ++e) {  // 4 x 4 transpose of 128-bit lanes
    const __m512 v0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x44), v1 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x44);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xEE);
    r[e] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[4 + e] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    r[8 + e] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[12 + e] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}

// Packs `rows` (<= 16) source rows, contiguous along k (row i at src + i * ld), as columns:
// out[p * width + i] = src[i * ld + p] for p < kc, i < 16 (rows past `rows` are 0; only
// the first `width` lanes are stored).
inline void pack_transposed(const float* src, index_t ld, index_t rows, index_t kc, float* out, index_t width) {
  const __mmask16 store = lanes(width);
  for (index_t p0 = 0; p0 < kc; p0 += 16) {
    const index_t len = std::min<index_t>(16, kc - p0);
    const __mmask16 load = lanes(len);
    __m512 r[16];
    for (index_t i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_maskz_loadu_ps(load, src + i * ld + p0) : _mm512_setzero_ps();
    transpose16(r);
    for (index_t p = 0; p < len; ++p) _mm512_mask_storeu_ps(out + (p0 + p) * width, store, r[p]);
  }
}

// A block [mc x kc] at op(A)(i0, p0) -> panels of kMR rows: panel q holds
// out[q * kMR * kc + p * kMR + i] = op(A)(i0 + q * kMR + i, p0 + p), zero past mc.
inline void pack_a(bool trans, const float* a, index_t lda, index_t i0, index_t mc, index_t p0, index_t kc,
                   float* out) {
  for (index_t q = 0; q * kMR < mc; ++q) {
    const index_t rows = std::min(kMR, mc - q * kMR), i = i0 + q * kMR;
    float* dst = out + q * kMR * kc;
    if (!trans) {  // A(i, p) = a[i * lda + p]: rows are contiguous along k
      pack_transposed(a + i * lda + p0, lda, rows, kc, dst, kMR);
    } else {  // A(i, p) = a[p * lda + i]: each k holds the panel's rows side by side
      const __mmask16 m = lanes(rows);
      for (index_t p = 0; p < kc; ++p)
        _mm512_mask_storeu_ps(dst + p * kMR, __mmask16(0x0FFF), _mm512_maskz_loadu_ps(m, a + (p0 + p) * lda + i));
    }
  }
}

// B block [kc x nc] at op(B)(p0, j0) -> panels of kNR columns: panel q holds
// out[q * kNR * kc + p * kNR + j] = op(B)(p0 + p, j0 + q * kNR + j), zero past nc.
inline void pack_b(bool trans, const float* b, index_t ldb, index_t p0, index_t kc, index_t j0, index_t nc,
                   float* out) {
  for (index_t q = 0; q * kNR < nc; ++q) {
    const index_t cols = std::min(kNR, nc - q * kNR), j = j0 + q * kNR;
    float* dst = out + q * kNR * kc;
    if (!trans) {  // B(p, j) = b[p * ldb + j]
      const __mmask16 m0 = lanes(cols), m1 = lanes(cols - 16);
      for (index_t p = 0; p < kc; ++p) {
        const float* s = b + (p0 + p) * ldb + j;
        _mm512_store_ps(dst + p * kNR, _mm512_maskz_loadu_ps(m0, s));
        _mm512_store_ps(dst + p * kNR + 16, _mm512_maskz_loadu_ps(m1, s + 16));
      }
    } else {  // B(p, j) = b[j * ldb + p]: columns are contiguous along k
      pack_transposed(b + j * ldb + p0, ldb, std::min<index_t>(16, cols), kc, dst, kNR);
      if (cols > 16) pack_transposed(b + (j + 16) * ldb + p0, ldb, cols - 16, kc, dst + 16, kNR);
      else
        for (index_t p = 0; p < kc; ++p) _mm512_store_ps(dst + p * kNR + 16, _mm512_setzero_ps());
    }
  }
}

// C[0..mr, 0..nr) = alpha * (Ap . Bp) + beta * C over one packed A panel and one B panel.
// NV is the number of 16-column vectors computed (1 when nr <= 16), R the number of rows
// (mr rounded up to 4: an edge panel of 4 rows, say 64 = 5 x 12 + 4, does not pay for 12).
template <int NV, int R>
inline void micro_kernel(index_t kc, const float* GCNET_RESTRICT ap, const float* GCNET_RESTRICT bp, float* c,
                         index_t ldc, index_t mr, index_t nr, float alpha, float beta) {
  // C's tile is written at the end: fetch its lines now, so the stores do not wait on memory.
GCNET_UNROLL(12)
  for (int i = 0; i < R; ++i) {
    if (i >= mr) break;
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * NV - 1), _MM_HINT_T0);
  }
  __m512 acc[R][NV];
GCNET_UNROLL(12)
  for (int i = 0; i < R; ++i)
GCNET_UNROLL(2)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (index_t p = 0; p < kc; ++p) {
    __m512 bv[NV];
GCNET_UNROLL(2)
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(bp + 16 * v);
GCNET_UNROLL(12)
    for (int i = 0; i < R; ++i) {
      const __m512 av = _mm512_set1_ps(ap[i]);
GCNET_UNROLL(2)
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
    ap += kMR;  // panels are packed kMR rows wide whatever R is
    bp += kNR;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __mmask16 mask[2] = {lanes(nr), lanes(nr - 16)};
GCNET_UNROLL(12)
  for (int i = 0; i < R; ++i) {
    if (i >= mr) break;
    float* cr = c + i * ldc;
GCNET_UNROLL(2)
    for (int v = 0; v < NV; ++v) {
      __m512 r = _mm512_mul_ps(acc[i][v], va);
      if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[v], cr + 16 * v), r);
      _mm512_mask_storeu_ps(cr + 16 * v, mask[v], r);
    }
  }
}

template <int NV>
inline void micro_kernel_rows(index_t kc, const float* ap, const float* bp, float* c, index_t ldc, index_t mr,
                              index_t nr, float alpha, float beta) {
  if (mr > 8) micro_kernel<NV, 12>(kc, ap, bp, c, ldc, mr, nr, alpha, beta);
  else if (mr > 4) micro_kernel<NV, 8>(kc, ap, bp, c, ldc, mr, nr, alpha, beta);
  else micro_kernel<NV, 4>(kc, ap, bp, c, ldc, mr, nr, alpha, beta);
}

// The serial product, m, n, k > 0.
inline void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, float alpha, const float* a,
                 index_t lda, const float* b, index_t ldb, float beta, float* c, index_t ldc,
                 Blocking blk = Blocking{}) {
  blk.kc = std::clamp<index_t>(blk.kc, 1, kMaxKC);
  blk.mc = std::clamp<index_t>(blk.mc / kMR * kMR, kMR, kMaxMC);
  blk.nc = std::clamp<index_t>(blk.nc / kNR * kNR, kNR, kMaxNC);
  PackBuffers& buf = pack_buffers();
  float *pa = buf.a.get(), *pb = buf.b.get();
  for (index_t jc = 0; jc < n; jc += blk.nc) {
    const index_t nc = std::min(blk.nc, n - jc);
    for (index_t pc = 0; pc < k; pc += blk.kc) {
      const index_t kc = std::min(blk.kc, k - pc);
      const float beta_block = pc == 0 ? beta : 1.0f;  // later k blocks accumulate
      pack_b(trans_b, b, ldb, pc, kc, jc, nc, pb);
      for (index_t ic = 0; ic < m; ic += blk.mc) {
        const index_t mc = std::min(blk.mc, m - ic);
        pack_a(trans_a, a, lda, ic, mc, pc, kc, pa);
        auto tile = [&](index_t ir, index_t jr) {
          const index_t mr = std::min(kMR, mc - ir), nr = std::min(kNR, nc - jr);
          float* ct = c + (ic + ir) * ldc + jc + jr;
          if (nr > 16) micro_kernel_rows<2>(kc, pa + ir * kc, pb + jr * kc, ct, ldc, mr, nr, alpha, beta_block);
          else micro_kernel_rows<1>(kc, pa + ir * kc, pb + jr * kc, ct, ldc, mr, nr, alpha, beta_block);
        };
        if (blk.a_panel_in_l1) {
          for (index_t ir = 0; ir < mc; ir += kMR)
            for (index_t jr = 0; jr < nc; jr += kNR) tile(ir, jr);
        } else {
          for (index_t jr = 0; jr < nc; jr += kNR)
            for (index_t ir = 0; ir < mc; ir += kMR) tile(ir, jr);
        }
      }
    }
  }
}

GCNET_CPU_AVX512_END
}  // namespace gcnet::cpu::isa_avx512::sgemm
#endif
