#pragma once
// Blocked pairwise attention of one image, the core of NonLocal2d:
//   y[c, i] = sum_j f(i, j) g[c, j]      i < P query positions, j < P' key positions
// with theta [D, P], phi [D, P'], g [Ci, P'] stored channel-major (an NCHW image), and f:
//   Softmax:  softmax_j(scale * theta_i . phi_j)           (gaussian, embedded gaussian)
//   Linear:   scale * theta_i . phi_j                      (dot product, scale = 1 / P';
//             computed without the matrix, by associativity)
//   Concat:   scale * ReLU(w_t . theta_i + w_p . phi_j)    (concatenation, scale = 1 / P')
// Why blocked: the P x P' matrix is computed `rows` query rows at a time (scores by GEMM,
// the row transform, then the product with g), so only rows x P' scores ever exist. The
// backward recomputes each block, unless forward_batch was asked to store the softmax.
// Threads take whole blocks (each with its own scratch and serial GEMMs): one GEMM of
// 128 rows split across threads costs more in synchronization than it gains; the backward's
// sums over query rows (dg, dphi) go to per-thread partials, added at the end.
#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>

#include "gcnet/blocks/portable_reductions.hpp"
#include "gcnet/kernels/softmax_exp.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/core/tensor.hpp"
#include "gcnet/kernels/blas.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {


enum class PairwiseKind { Softmax, Linear, Concat };

// One row of a softmax's backward, in place: d = scale * a * (d - a . d), a = softmax(scores).
// a . d is refined once, d - (t + a . (d - t)) with t = a . d: where the softmax is peaked, d at
// the peak nearly equals a . d, and the difference of the two as first rounded would keep only
// the rounding of t (PyTorch's formula; 4x its error on NonLocal2d's theta and phi gradients
// with a loaded mmcv model, issue 13). The second sum is of small terms and exact enough.
template <class T>
GCNET_HD inline void softmax_backward_row(const T* a, T* d, index_t n, T scale) {
  T t = 0;
#pragma omp simd reduction(+ : t)
  for (index_t j = 0; j < n; ++j) t += a[j] * d[j];
  T correction = 0;
#pragma omp simd reduction(+ : correction)
  for (index_t j = 0; j < n; ++j) correction += a[j] * (d[j] - t);
#pragma omp simd
  for (index_t j = 0; j < n; ++j) d[j] = scale * a[j] * ((d[j] - t) - correction);
}

struct PairwiseGeometry {
  index_t D = 0;   // channels of theta / phi
  index_t Ci = 0;  // channels of g
  index_t P = 0;   // query positions
  index_t Pp = 0;  // key positions
};

template <Scalar T = float, Backend B = Cpu>
class BlockedPairwiseAttention {
 public:
  // Query rows per block, at most: P is split into ceil(P / kMaxRows) blocks of equal height
  // (3136 rows as 4 x 784, not 24 x 128 + 64), so no block is a thin sliver. Why this tall: each
  // GEMM of a block packs a whole P'-wide operand (phi, g) again, so fewer, taller blocks pack
  // less (a one-thread sweep at 256@56 under load pointed to 15-25% less CPU time than 128
  // rows; back-to-back runs did not confirm it above the noise, docs/performance.md). The
  // cost is scratch: rows x P' scores per thread (9.8 MB at 56x56) when the softmax is not stored.
  static constexpr index_t kMaxRows = 800;

  BlockedPairwiseAttention(PairwiseKind kind, T scale) : kind_(kind), scale_(scale) {}
  void set_scale(T scale) { scale_ = scale; }
  // At most this many query rows per block (tests use small values to get many blocks).
  void set_max_block_rows(index_t rows) { max_rows_ = std::max<index_t>(rows, 1); }

  // y [Ci, P] = g . f^T; w: the concat projection [2D] (Concat only).
  void forward(const PairwiseGeometry& s, const T* theta, const T* phi, const T* g, const T* w, T* y) {
    reserve(s);
    if (kind_ == PairwiseKind::Linear) return linear_forward(s, theta, phi, g, y);
    if (kind_ == PairwiseKind::Concat) project(s, theta, phi, w);
    for_each_block(s, [&](index_t i0, index_t r, int slot) {
      T* A = scores_.data() + slot * rows_ * s.Pp;
      attention_block(s, theta, phi, i0, r, A);
      blas::gemm(B{}, blas::Op::N, blas::Op::T, s.Ci, r, s.Pp, T(1), g, s.Pp, A, s.Pp, T(0), y + i0, s.P);
    });
  }

  // A batch of N images (each argument points at image 0; images are contiguous). Softmax
  // runs every (image, block of rows) pair in one parallel region with serial GEMMs: at
  // P <= kMaxRows one image is one block, and a per-image call would leave the GEMM to Eigen's
  // own threads (mostly spin-waiting at these sizes). With `store` (training), the softmax
  // probabilities [N, P, P'] are kept so the backward skips recomputing them.
  void forward_batch(index_t N, const PairwiseGeometry& s, const T* theta, const T* phi, const T* g, const T* w,
                     T* y, bool store) {
    *stored_ = store && kind_ == PairwiseKind::Softmax;
    if (kind_ != PairwiseKind::Softmax) {
      for (index_t n = 0; n < N; ++n)
        forward(s, theta + n * s.D * s.P, phi + n * s.D * s.Pp, g + n * s.Ci * s.Pp, w, y + n * s.Ci * s.P);
      return;
    }
    reserve(s, N, !*stored_);
    if (*stored_) probs_.resize(Shape{N, s.P, s.Pp});
    for_each_item(s, N, [&](index_t n, index_t i0, index_t r, int slot) {
      T* A = *stored_ ? probs_.data() + (n * s.P + i0) * s.Pp : scores_.data() + slot * rows_ * s.Pp;
      attention_block(s, theta + n * s.D * s.P, phi + n * s.D * s.Pp, i0, r, A);
      blas::gemm(B{}, blas::Op::N, blas::Op::T, s.Ci, r, s.Pp, T(1), g + n * s.Ci * s.Pp, s.Pp, A, s.Pp, T(0),
                 y + n * s.Ci * s.P + i0, s.P);
    });
  }

  // The backward of forward_batch (reads its stored probabilities when it kept them).
  void backward_batch(index_t N, const PairwiseGeometry& s, const T* theta, const T* phi, const T* g, const T* w,
                      const T* dy, T* dtheta, T* dphi, T* dg, T* dw) {
    if (kind_ != PairwiseKind::Softmax) {
      for (index_t n = 0; n < N; ++n)
        backward(s, theta + n * s.D * s.P, phi + n * s.D * s.Pp, g + n * s.Ci * s.Pp, w, dy + n * s.Ci * s.P,
                 dtheta + n * s.D * s.P, dphi + n * s.D * s.Pp, dg + n * s.Ci * s.Pp, dw);
      return;
    }
    reserve(s, N, !*stored_);
    const index_t Pp = s.Pp, P = s.P, D = s.D, Ci = s.Ci, slots = slots_;
    const T scale = scale_;
    // Partial sums over query rows, per (thread, image).
    fill(part_g_, T(0));
    fill(part_phi_, T(0));
    T* part_g = part_g_.data();
    T* part_phi = part_phi_.data();
    const bool stored = *stored_;
    for_each_item(s, N, [&](index_t n, index_t i0, index_t r, int slot) {
      const T* th = theta + n * D * P;
      const T* gn = g + n * Ci * Pp;
      const T* dyn = dy + n * Ci * P;
      T* A = stored ? probs_.data() + (n * P + i0) * Pp : scores_.data() + slot * rows_ * Pp;
      T* dA = grad_.data() + slot * rows_ * Pp;
      T* pg = part_g + (slot * N + n) * Ci * Pp;
      T* pphi = part_phi + (slot * N + n) * D * Pp;
      if (!stored) attention_block(s, th, phi + n * D * Pp, i0, r, A);  // A, recomputed
      // dA = dy_blk^T . g ; dg += dy_blk . A
      blas::gemm(B{}, blas::Op::T, blas::Op::N, r, Pp, Ci, T(1), dyn + i0, P, gn, Pp, T(0), dA, Pp);
      blas::gemm(B{}, blas::Op::N, blas::Op::N, Ci, Pp, r, T(1), dyn + i0, P, A, Pp, T(1), pg, Pp);
      // dA -> dS (gradient of the softmax's input), in place.
      for_each_index_weighted(B{}, r, Pp, [=] GCNET_HD(index_t i) { softmax_backward_row(A + i * Pp, dA + i * Pp, Pp, scale); });
      // dtheta_blk = phi . dS^T ; dphi += theta_blk . dS
      blas::gemm(B{}, blas::Op::N, blas::Op::T, D, r, Pp, T(1), phi + n * D * Pp, Pp, dA, Pp, T(0),
                 dtheta + n * D * P + i0, P);
      blas::gemm(B{}, blas::Op::N, blas::Op::N, D, Pp, r, T(1), th + i0, P, dA, Pp, T(1), pphi, Pp);
    });
    const index_t ng = N * Ci * Pp, nphi = N * D * Pp;
    for_each_index(B{}, ng, [=] GCNET_HD(index_t k) {
      T sum = 0;
      for (index_t t = 0; t < slots; ++t) sum += part_g[t * ng + k];
      dg[k] = sum;
    });
    for_each_index(B{}, nphi, [=] GCNET_HD(index_t k) {
      T sum = 0;
      for (index_t t = 0; t < slots; ++t) sum += part_phi[t * nphi + k];
      dphi[k] = sum;
    });
  }

  // Assigns dtheta [D, P], dphi [D, P'], dg [Ci, P']; adds to dw [2D] (Concat only).
  void backward(const PairwiseGeometry& s, const T* theta, const T* phi, const T* g, const T* w, const T* dy,
                T* dtheta, T* dphi, T* dg, T* dw) {
    reserve(s);
    if (kind_ == PairwiseKind::Linear) return linear_backward(s, theta, phi, g, dy, dtheta, dphi, dg);
    const index_t Pp = s.Pp;
    const T scale = scale_;
    const PairwiseKind kind = kind_;
    if (kind == PairwiseKind::Concat) project(s, theta, phi, w);
    // Per-thread partial sums over query rows.
    fill(part_g_, T(0));
    fill(part_phi_, T(0));
    T* part_g = part_g_.data();
    T* part_phi = part_phi_.data();
    T* drow = drow_.data();
    for_each_block(s, [&](index_t i0, index_t r, int slot) {
      T* A = scores_.data() + slot * rows_ * Pp;
      T* dA = grad_.data() + slot * rows_ * Pp;
      T* pg = part_g + slot * s.Ci * Pp;
      T* pphi = part_phi + slot * s.D * Pp;
      attention_block(s, theta, phi, i0, r, A);  // A, recomputed
      // dA = dy_blk^T . g ; dg += dy_blk . A
      blas::gemm(B{}, blas::Op::T, blas::Op::N, r, Pp, s.Ci, T(1), dy + i0, s.P, g, Pp, T(0), dA, Pp);
      blas::gemm(B{}, blas::Op::N, blas::Op::N, s.Ci, Pp, r, T(1), dy + i0, s.P, A, Pp, T(1), pg, Pp);
      // dA -> dS (gradient of the pre-transform scores), in place.
      if (kind == PairwiseKind::Softmax) {
        for_each_index_weighted(B{}, r, Pp, [=] GCNET_HD(index_t i) {
          softmax_backward_row(A + i * Pp, dA + i * Pp, Pp, scale);
        });
      } else if (kind == PairwiseKind::Linear) {
        for_each_index_weighted(B{}, r, Pp, [=] GCNET_HD(index_t i) {
          T* d = dA + i * Pp;
          for (index_t j = 0; j < Pp; ++j) d[j] *= scale;
        });
      } else {
        // Concat: dS = dA * scale where the ReLU passed; its row sums are d(w_t . theta_i),
        // its column sums (into the thread's partial, first row of pphi) d(w_p . phi_j).
        for_each_index_weighted(B{}, r, Pp, [=] GCNET_HD(index_t i) {
          const T* a = A + i * Pp;
          T* d = dA + i * Pp;
          double sum = 0;  // in double: the theta gradients sum these rows again, and they cancel
          for (index_t j = 0; j < Pp; ++j) {
            d[j] = a[j] <= T(0) ? T(0) : d[j] * scale;  // as threshold_backward: NaN passes
            sum += d[j];
          }
          drow[i0 + i] = static_cast<T>(sum);
        });
        for_each_index_weighted(B{}, Pp, r, [=] GCNET_HD(index_t j) {
          double sum = 0;
          for (index_t i = 0; i < r; ++i) sum += dA[i * Pp + j];
          pphi[j] += static_cast<T>(sum);
        });
        return;
      }
      // dtheta_blk = phi . dS^T ; dphi += theta_blk . dS
      blas::gemm(B{}, blas::Op::N, blas::Op::T, s.D, r, Pp, T(1), phi, Pp, dA, Pp, T(0), dtheta + i0, s.P);
      blas::gemm(B{}, blas::Op::N, blas::Op::N, s.D, Pp, r, T(1), theta + i0, s.P, dA, Pp, T(1), pphi, Pp);
    });
    const index_t slots = slots_, ng = s.Ci * Pp, nphi = kind == PairwiseKind::Concat ? Pp : s.D * Pp;
    for_each_index(B{}, ng, [=] GCNET_HD(index_t k) {
      T sum = 0;
      for (index_t t = 0; t < slots; ++t) sum += part_g[t * ng + k];
      dg[k] = sum;
    });
    T* dphi_sum = kind == PairwiseKind::Concat ? dcol_.data() : dphi;
    const index_t stride = s.D * Pp;
    for_each_index(B{}, nphi, [=] GCNET_HD(index_t k) {
      T sum = 0;
      for (index_t t = 0; t < slots; ++t) sum += part_phi[t * stride + k];
      dphi_sum[k] = sum;
    });
    if (kind == PairwiseKind::Concat) concat_backward(s, theta, phi, w, dtheta, dphi, dw);
  }

 private:
  // Linear (dot product) needs no P x P' matrix at all: y = scale * g . (phi^T theta)
  // = scale * (g . phi^T) . theta, with the small M = g . phi^T [Ci, D] (O(P D Ci) work).
  void linear_forward(const PairwiseGeometry& s, const T* theta, const T* phi, const T* g, T* y) {
    T* M = small_.data();
    blas::gemm(B{}, blas::Op::N, blas::Op::T, s.Ci, s.D, s.Pp, T(1), g, s.Pp, phi, s.Pp, T(0), M, s.D);
    blas::gemm(B{}, blas::Op::N, blas::Op::N, s.Ci, s.P, s.D, scale_, M, s.D, theta, s.P, T(0), y, s.P);
  }
  // dM = scale * dy . theta^T, dtheta = scale * M^T . dy, dg = dM . phi, dphi = dM^T . g.
  void linear_backward(const PairwiseGeometry& s, const T* theta, const T* phi, const T* g, const T* dy, T* dtheta,
                       T* dphi, T* dg) {
    T* M = small_.data();
    T* dM = small_.data() + s.Ci * s.D;
    blas::gemm(B{}, blas::Op::N, blas::Op::T, s.Ci, s.D, s.Pp, T(1), g, s.Pp, phi, s.Pp, T(0), M, s.D);
    blas::gemm(B{}, blas::Op::N, blas::Op::T, s.Ci, s.D, s.P, scale_, dy, s.P, theta, s.P, T(0), dM, s.D);
    blas::gemm(B{}, blas::Op::T, blas::Op::N, s.D, s.P, s.Ci, scale_, M, s.D, dy, s.P, T(0), dtheta, s.P);
    blas::gemm(B{}, blas::Op::N, blas::Op::N, s.Ci, s.Pp, s.D, T(1), dM, s.D, phi, s.Pp, T(0), dg, s.Pp);
    blas::gemm(B{}, blas::Op::T, blas::Op::N, s.D, s.Pp, s.Ci, T(1), dM, s.D, g, s.Pp, T(0), dphi, s.Pp);
  }

  // Runs f(image, first_row, rows, slot) for every block of query rows of N images.
  template <class F>
  void for_each_item(const PairwiseGeometry& s, index_t N, F&& f) {
    const index_t rows = rows_, blocks = (s.P + rows - 1) / rows, items = N * blocks;
    auto run = [&](index_t k, int slot) {
      const index_t n = k / blocks, i0 = (k % blocks) * rows;
      f(n, i0, std::min(rows, s.P - i0), slot);
    };
#if defined(_OPENMP)
    if constexpr (std::same_as<B, Cpu>) {
      if (slots_ > 1 && items > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(slots_))
        for (index_t k = 0; k < items; ++k) run(k, omp_get_thread_num());
        return;
      }
    }
#endif
    for (index_t k = 0; k < items; ++k) run(k, 0);
  }

  // Runs f(first_row, rows, slot) for every block of query rows; slot < slots_ names the
  // calling thread's scratch.
  template <class F>
  void for_each_block(const PairwiseGeometry& s, F&& f) {
    const index_t rows = rows_, blocks = (s.P + rows - 1) / rows;
#if defined(_OPENMP)
    if constexpr (std::same_as<B, Cpu>) {
      if (slots_ > 1 && blocks > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(slots_))
        for (index_t b = 0; b < blocks; ++b)
          f(b * rows, std::min(rows, s.P - b * rows), omp_get_thread_num());
        return;
      }
    }
#endif
    for (index_t b = 0; b < blocks; ++b) f(b * rows, std::min(rows, s.P - b * rows), 0);
  }

  // N: images per call (forward_batch / backward_batch); partial sums are per (thread, image).
  // `scores`: whether the per-thread score blocks are needed (not when the softmax is stored).
  void reserve(const PairwiseGeometry& s, index_t N = 1, bool scores = true) {
    if (kind_ == PairwiseKind::Linear) {
      small_.resize(Shape{2, s.Ci, s.D});
      return;
    }
    const index_t threads = std::same_as<B, Cpu> ? num_threads() : 1;
    index_t blocks = std::max<index_t>(1, (s.P + max_rows_ - 1) / max_rows_);
    // Enough items for every thread (a batch of one small map), but no block under 32 rows.
    if (N * blocks < threads) blocks = std::max(blocks, std::min((threads + N - 1) / N, (s.P + 31) / 32));
    rows_ = (s.P + blocks - 1) / blocks;
    const index_t items = N * blocks;
    slots_ = std::max<index_t>(1, std::min<index_t>(threads, items));
    if (scores) scores_.resize(Shape{slots_, rows_, s.Pp});
    grad_.resize(Shape{slots_, rows_, s.Pp});
    part_g_.resize(Shape{slots_ * N, s.Ci, s.Pp});
    part_phi_.resize(Shape{slots_ * N, s.D, s.Pp});
    if (kind_ == PairwiseKind::Concat) {
      rowp_.resize(Shape{s.P});
      colp_.resize(Shape{s.Pp});
      drow_.resize(Shape{s.P});
      dcol_.resize(Shape{s.Pp});
    }
  }

  // The pieces below hold device lambdas: public only because nvcc rejects extended lambdas in
  // private member functions.
 public:
  // rowp = w_t . theta [P], colp = w_p . phi [P'].
  void project(const PairwiseGeometry& s, const T* theta, const T* phi, const T* w) {
    blas::gemm(B{}, blas::Op::N, blas::Op::N, index_t{1}, s.P, s.D, T(1), w, s.D, theta, s.P, T(0), rowp_.data(),
               s.P);
    blas::gemm(B{}, blas::Op::N, blas::Op::N, index_t{1}, s.Pp, s.D, T(1), w + s.D, s.D, phi, s.Pp, T(0),
               colp_.data(), s.Pp);
  }

  // S [r, P'] = f(i0 + i, j) for the block's rows.
  void attention_block(const PairwiseGeometry& s, const T* theta, const T* phi, index_t i0, index_t r, T* S) {
    const index_t Pp = s.Pp;
    const T scale = scale_;
    if (kind_ == PairwiseKind::Concat) {
      const T* a = rowp_.data();
      const T* b = colp_.data();
      for_each_index_weighted(B{}, r, Pp, [=] GCNET_HD(index_t i) {
        const T ai = a[i0 + i];
        T* row = S + i * Pp;
        for (index_t j = 0; j < Pp; ++j) {
          const T v = ai + b[j];
          row[j] = v < T(0) ? T(0) : v * scale;  // ReLU; NaN stays NaN
        }
      });
      return;
    }
    blas::gemm(B{}, blas::Op::T, blas::Op::N, r, Pp, s.D, scale, theta + i0,
               s.P, phi, Pp, T(0), S, Pp);
    if (kind_ == PairwiseKind::Softmax) {
      for_each_index_weighted(B{}, r, Pp, [=] GCNET_HD(index_t i) {
        T* row = S + i * Pp;
        T m = row[0];
#pragma omp simd reduction(max : m)
        for (index_t j = 1; j < Pp; ++j) m = row[j] > m ? row[j] : m;
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (index_t j = 0; j < Pp; ++j) {
          row[j] = detail::softmax_exp(row[j] - m);
          sum += row[j];
        }
        const T inv = T(1) / sum;
#pragma omp simd
        for (index_t j = 0; j < Pp; ++j) row[j] *= inv;
      });
    }
  }

  // dtheta = w_t (x) drow, dphi = w_p (x) dcol; dw += [theta . drow ; phi . dcol].
  void concat_backward(const PairwiseGeometry& s, const T* theta, const T* phi, const T* w, T* dtheta, T* dphi,
                       T* dw) {
    const index_t P = s.P, Pp = s.Pp, D = s.D;
    const T* drow = drow_.data();
    const T* dcol = dcol_.data();
    for_each_index(B{}, D * P, [=] GCNET_HD(index_t k) { dtheta[k] = w[k / P] * drow[k % P]; });
    for_each_index(B{}, D * Pp, [=] GCNET_HD(index_t k) { dphi[k] = w[D + k / Pp] * dcol[k % Pp]; });
    blas::gemm(B{}, blas::Op::N, blas::Op::N, D, index_t{1}, P, T(1), theta, P, drow, index_t{1}, T(1), dw,
               index_t{1});
    blas::gemm(B{}, blas::Op::N, blas::Op::N, D, index_t{1}, Pp, T(1), phi, Pp, dcol, index_t{1}, T(1), dw + D,
               index_t{1});
  }

 private:
  PairwiseKind kind_;
  T scale_;
  index_t slots_ = 1;                       // threads working on blocks
  index_t max_rows_ = kMaxRows;
  index_t rows_ = kMaxRows;                 // query rows per block (reserve)
  ScratchTensor<T, B> scores_, grad_;              // per thread: one block of A and of dA / dS
  ScratchTensor<T, B> part_g_, part_phi_;          // per thread: partial dg and dphi
  ScratchTensor<T, B> small_;                      // Linear: M and dM
  ScratchTensor<T, B> rowp_, colp_, drow_, dcol_;  // Concat projections and their gradients
  ScratchTensor<T, B> probs_;                      // forward_batch's stored softmax [N, P, P']
  ScratchValue<bool> stored_;                      // whether probs_ holds the last forward's (a copy: no)
};

}  // namespace gcnet
