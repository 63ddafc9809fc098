#pragma once
// Single-precision GEMM for AVX2 + FMA CPUs (no AVX-512), serial: row-major
// C = alpha op(A) op(B) + beta C. The same BLIS blocking as cpu/sgemm_avx512.hpp, at half the
// vector width: B packed in [KC x NC] blocks of 16-column panels, A in [MC x KC] blocks of 6-row
// panels, and a 6 x 16 micro-kernel holding its C tile in 12 ymm accumulators (per k: 2 vector
// loads of B, 6 broadcasts of A, 12 FMAs; 15 of the 16 ymm registers).
// Why not Eigen's product: on the project's 2-core AMD EPYC (Zen 3, no AVX-512) Eigen 3.4 reaches
// 55-64 GFLOP/s per core of the 102 the FMA units give (docs/performance.md); this kernel, with its
// blocks sized for Zen's 32 KB L1 and 512 KB L2, runs at 80-93.
// With beta == 0, C is never read. blas::gemm (kernels/blas.hpp) calls this for float when
// cpu::isa() is Avx2, and adds the threading; compiled in every unit under GCNET_CPU_AVX2_BEGIN
// (cpu/isa.hpp explains why), so only callers that asked isa() may run it.
#include "gcnet/cpu/isa.hpp"

#if GCNET_CPU_AVX512_KERNELS
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>

#include "gcnet/core/config.hpp"

namespace gcnet::cpu::isa_avx2::sgemm {
GCNET_CPU_AVX2_BEGIN
inline constexpr index_t kMR = 6, kNR = 16;                          // micro-tile of C
inline constexpr index_t kMaxKC = 512, kMaxMC = 480, kMaxNC = 2048;  // packing buffer capacity
// Packed A panels are kMR = 6 floats per k, written 8 at a time: the last store of a block may
// run 2 floats past it.
inline constexpr index_t kPackSlack = 8;

// Cache blocks (runtime values so that tests can run the multi-block paths on small sizes). The
// defaults were the fastest of those tried on Zen 3 (10 blockings on 11 shapes, 1 thread: 80-93
// GFLOP/s of the 102 peak, against Eigen's 55-64): an A block of 144 x 384 (216 KB) in the 512 KB
// L2, each 384 x 16 B panel (24 KB) in L1 while the 6-row A panels stream past it (BLIS's order),
// and B blocks of 384 x 1536 (2.3 MB) in L3, so that a product over up to 1536 columns packs A once.
struct Blocking {
  index_t kc = 384, mc = 144, nc = 1536;
  bool a_panel_in_l1 = false;  // inner loop over B panels (true) or over A panels (false)
};

// Per-thread packing buffers, allocated on first use.
struct PackBuffers {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> a{
      static_cast<float*>(std::aligned_alloc(64, sizeof(float) * (kMaxMC * kMaxKC + kPackSlack)))};
  std::unique_ptr<float, Free> b{static_cast<float*>(std::aligned_alloc(64, sizeof(float) * kMaxKC * kMaxNC))};
  PackBuffers() {
    if (!a || !b) throw std::bad_alloc();
  }
};
inline PackBuffers& pack_buffers() {
  thread_local PackBuffers buffers;
  return buffers;
}

// Lane mask for _mm256_maskload_ps: the first `count` lanes (clamped to 0..8).
inline __m256i lanes(index_t count) {
  const int c = static_cast<int>(std::clamp<index_t>(count, 0, 8));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// r[j] <- column j of the 8 x 8 block whose rows are r[0..7].
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int q = 0; q < 2; ++q) {  // u[4q + e], 128-bit lane L: rows 4q..4q+3 at column 4L + e
    u[4 * q] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
    u[4 * q + 1] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
    u[4 * q + 2] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
    u[4 * q + 3] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
  }
  for (int e = 0; e < 4; ++e) {
    r[e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
    r[4 + e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
  }
}

// Packs `rows` (<= 8) source rows, contiguous along k (row i at src + i * ld), as columns:
// out[p * width + i] = src[i * ld + p] for p < kc, i < 8 (rows past `rows` are 0). Each column is
// stored as 8 floats, in increasing p: with width < 8 a store runs into the next column's start,
// which the next store rewrites, and the last one runs 8 - width floats past the block.
inline void pack_transposed(const float* src, index_t ld, index_t rows, index_t kc, float* out, index_t width) {
  for (index_t p0 = 0; p0 < kc; p0 += 8) {
    const index_t len = std::min<index_t>(8, kc - p0);
    const __m256i load = lanes(len);
    __m256 r[8];
    for (index_t i = 0; i < 8; ++i)
      r[i] = i < rows ? (len == 8 ? _mm256_loadu_ps(src + i * ld + p0) : _mm256_maskload_ps(src + i * ld + p0, load))
                      : _mm256_setzero_ps();
    transpose8(r);
    for (index_t p = 0; p < len; ++p) _mm256_storeu_ps(out + (p0 + p) * width, r[p]);
  }
}

// A block [mc x kc] at op(A)(i0, p0) -> panels of kMR rows: panel q holds
// out[q * kMR * kc + p * kMR + i] = op(A)(i0 + q * kMR + i, p0 + p), zero past mc. Writes up to
// 2 floats past the block (kPackSlack).
inline void pack_a(bool trans, const float* a, index_t lda, index_t i0, index_t mc, index_t p0, index_t kc,
                   float* out) {
  for (index_t q = 0; q * kMR < mc; ++q) {
    const index_t rows = std::min(kMR, mc - q * kMR), i = i0 + q * kMR;
    float* dst = out + q * kMR * kc;
    if (!trans) {  // A(i, p) = a[i * lda + p]: rows are contiguous along k
      pack_transposed(a + i * lda + p0, lda, rows, kc, dst, kMR);
    } else {  // A(i, p) = a[p * lda + i]: each k holds the panel's rows side by side
      const __m256i m = lanes(rows);
      for (index_t p = 0; p < kc; ++p) _mm256_storeu_ps(dst + p * kMR, _mm256_maskload_ps(a + (p0 + p) * lda + i, m));
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
      if (cols == kNR) {
        for (index_t p = 0; p < kc; ++p) {
          const float* s = b + (p0 + p) * ldb + j;
          _mm256_store_ps(dst + p * kNR, _mm256_loadu_ps(s));
          _mm256_store_ps(dst + p * kNR + 8, _mm256_loadu_ps(s + 8));
        }
      } else {
        const __m256i m0 = lanes(cols), m1 = lanes(cols - 8);
        for (index_t p = 0; p < kc; ++p) {
          const float* s = b + (p0 + p) * ldb + j;
          _mm256_store_ps(dst + p * kNR, _mm256_maskload_ps(s, m0));
          _mm256_store_ps(dst + p * kNR + 8, cols > 8 ? _mm256_maskload_ps(s + 8, m1) : _mm256_setzero_ps());
        }
      }
    } else {  // B(p, j) = b[j * ldb + p]: columns are contiguous along k
      pack_transposed(b + j * ldb + p0, ldb, std::min<index_t>(8, cols), kc, dst, kNR);
      if (cols > 8) pack_transposed(b + (j + 8) * ldb + p0, ldb, cols - 8, kc, dst + 8, kNR);
      else
        for (index_t p = 0; p < kc; ++p) _mm256_store_ps(dst + p * kNR + 8, _mm256_setzero_ps());
    }
  }
}

// C[0..mr, 0..nr) = alpha * (Ap . Bp) + beta * C over one packed A panel and one B panel.
// NV is the number of 8-column vectors computed (1 when nr <= 8), R the number of rows (mr
// rounded up to 2, 4 or 6).
template <int NV, int R>
inline void micro_kernel(index_t kc, const float* GCNET_RESTRICT ap, const float* GCNET_RESTRICT bp, float* c,
                         index_t ldc, index_t mr, index_t nr, float alpha, float beta) {
  // C's tile is written at the end: fetch its lines now, so the stores do not wait on memory.
GCNET_UNROLL(6)
  for (int i = 0; i < R; ++i) {
    if (i >= mr) break;
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 8 * NV - 1), _MM_HINT_T0);
  }
  __m256 acc[R][NV];
GCNET_UNROLL(6)
  for (int i = 0; i < R; ++i)
GCNET_UNROLL(2)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
GCNET_UNROLL(4)
  for (index_t p = 0; p < kc; ++p) {
    __m256 bv[NV];
GCNET_UNROLL(2)
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_load_ps(bp + 8 * v);
GCNET_UNROLL(6)
    for (int i = 0; i < R; ++i) {
      const __m256 av = _mm256_broadcast_ss(ap + i);
GCNET_UNROLL(2)
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
    }
    ap += kMR;  // panels are packed kMR rows wide whatever R is
    bp += kNR;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (mr == R && nr == 8 * NV) {  // a whole tile: plain loads and stores
GCNET_UNROLL(6)
    for (int i = 0; i < R; ++i) {
      float* cr = c + i * ldc;
GCNET_UNROLL(2)
      for (int v = 0; v < NV; ++v) {
        __m256 r = _mm256_mul_ps(acc[i][v], va);
        if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8 * v), r);
        _mm256_storeu_ps(cr + 8 * v, r);
      }
    }
    return;
  }
  // An edge tile: through a buffer, element by element (masked stores are slow on AMD). The loops
  // over the accumulators are unrolled so that they stay registers (an index known only at run
  // time would put acc in memory, and the k loop with it).
GCNET_UNROLL(6)
  for (int i = 0; i < R; ++i) {
    if (i >= mr) break;
    float* cr = c + i * ldc;
    alignas(32) float row[8 * NV];
GCNET_UNROLL(2)
    for (int v = 0; v < NV; ++v) _mm256_store_ps(row + 8 * v, _mm256_mul_ps(acc[i][v], va));
    if (beta != 0.0f)
      for (index_t j = 0; j < nr; ++j) cr[j] = row[j] + beta * cr[j];
    else
      for (index_t j = 0; j < nr; ++j) cr[j] = row[j];
  }
}

template <int NV>
inline void micro_kernel_rows(index_t kc, const float* ap, const float* bp, float* c, index_t ldc, index_t mr,
                              index_t nr, float alpha, float beta) {
  if (mr > 4) micro_kernel<NV, 6>(kc, ap, bp, c, ldc, mr, nr, alpha, beta);
  else if (mr > 2) micro_kernel<NV, 4>(kc, ap, bp, c, ldc, mr, nr, alpha, beta);
  else micro_kernel<NV, 2>(kc, ap, bp, c, ldc, mr, nr, alpha, beta);
}

// The serial product, m, n, k > 0.
inline void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, float alpha, const float* a,
                 index_t lda, const float* b, index_t ldb, float beta, float* c, index_t ldc,
                 Blocking blk = Blocking{}) {
  blk.kc = std::clamp<index_t>(blk.kc, 1, kMaxKC);
  blk.mc = std::clamp<index_t>(blk.mc / kMR * kMR, kMR, kMaxMC / kMR * kMR);
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
          if (nr > 8) micro_kernel_rows<2>(kc, pa + ir * kc, pb + jr * kc, ct, ldc, mr, nr, alpha, beta_block);
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

// ---- A packed once, for many products against it (a convolution's weight, one product per band) ----
// Layout: for each k block [pc, pc + kc) of blk.kc, all of op(A)'s rows as pack_a lays out one
// block (panels of kMR rows, zero past m), the blocks one after another.
inline index_t packed_a_rows(index_t m) { return (m + kMR - 1) / kMR * kMR; }
// Floats pack_a_whole writes (including the slack of its last store).
inline index_t packed_a_size(index_t m, index_t k) { return packed_a_rows(m) * k + kPackSlack; }

inline void pack_a_whole(bool trans, const float* a, index_t lda, index_t m, index_t k, float* out,
                         Blocking blk = Blocking{}) {
  const index_t kc_max = std::clamp<index_t>(blk.kc, 1, kMaxKC), rows = packed_a_rows(m);
  for (index_t pc = 0; pc < k; pc += kc_max) pack_a(trans, a, lda, 0, m, pc, std::min(kc_max, k - pc), out + pc * rows);
}

// gemm() with op(A) [m x k] already packed by pack_a_whole (with the same blk.kc).
inline void gemm_packed_a(const float* packed_a, index_t m, index_t n, index_t k, float alpha, bool trans_b,
                          const float* b, index_t ldb, float beta, float* c, index_t ldc, Blocking blk = Blocking{}) {
  blk.kc = std::clamp<index_t>(blk.kc, 1, kMaxKC);
  blk.mc = std::clamp<index_t>(blk.mc / kMR * kMR, kMR, kMaxMC / kMR * kMR);
  blk.nc = std::clamp<index_t>(blk.nc / kNR * kNR, kNR, kMaxNC);
  const index_t rows = packed_a_rows(m);
  float* pb = pack_buffers().b.get();
  for (index_t jc = 0; jc < n; jc += blk.nc) {
    const index_t nc = std::min(blk.nc, n - jc);
    for (index_t pc = 0; pc < k; pc += blk.kc) {
      const index_t kc = std::min(blk.kc, k - pc);
      const float beta_block = pc == 0 ? beta : 1.0f;
      pack_b(trans_b, b, ldb, pc, kc, jc, nc, pb);
      const float* block = packed_a + pc * rows;  // this k block's panels, all rows
      for (index_t ic = 0; ic < m; ic += blk.mc)    // mc rows at a time stay in L2, as in gemm()
        for (index_t jr = 0; jr < nc; jr += kNR)
          for (index_t ir = ic; ir < std::min(m, ic + blk.mc); ir += kMR) {
            const index_t mr = std::min(kMR, m - ir), nr = std::min(kNR, nc - jr);
            float* ct = c + ir * ldc + jc + jr;
            const float* ap = block + ir * kc;
            if (nr > 8) micro_kernel_rows<2>(kc, ap, pb + jr * kc, ct, ldc, mr, nr, alpha, beta_block);
            else micro_kernel_rows<1>(kc, ap, pb + jr * kc, ct, ldc, mr, nr, alpha, beta_block);
          }
    }
  }
}

GCNET_CPU_AVX2_END
}  // namespace gcnet::cpu::isa_avx2::sgemm
#endif
