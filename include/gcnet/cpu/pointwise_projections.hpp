#pragma once
// PointwiseProjections: up to three 1x1 convolutions of the same input computed together
// (NonLocal2d's g / theta / phi; its conv_out as a single projection). CPU only: a fast path
// NonLocal2d takes on small maps (its seam is NonLocal2d::fused); the backend-generic path runs
// its Conv2d layers.
//   forward:  y_k = W_k x + b_k                       x [N, K, P], W_k [M_k, K], y_k [N, M_k, P]
//   backward: dW_k = sum_n dy_k x^T, db_k = row sums of dy_k (both assigned),
//             dx += sum_k W_k^T dy_k
// Why: at 14x14 and 7x7 a non-local block's time is these products. The images are stacked
// side by side once ([K, N P]) so every GEMM spans the batch; each thread runs serial GEMMs
// on its own rows of every W_k (its own columns of dx), one parallel region per pass, nothing
// shared; and dx is formed as (dx)^T = sum_k dy_k^T W_k, one accumulating product per
// projection into [N P, K] (Eigen multiplies a transposed weight markedly slower than this
// form), added to dx in one transposing pass.
#include <algorithm>
#include <array>
#include <cstring>

#include "gcnet/core/parallel.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/core/tensor.hpp"
#include "gcnet/kernels/blas.hpp"

namespace gcnet::cpu {

template <Scalar T>
class PointwiseProjections {
 public:
  static constexpr int kMax = 3;

  // Everything here is per-call state (pointers into the owner's weights, the stacked x kept for
  // backward): a copy starts empty, so a copied NonLocal2d never reads its original's weights.
  PointwiseProjections() = default;
  PointwiseProjections(const PointwiseProjections&) {}
  PointwiseProjections& operator=(const PointwiseProjections& o) {
    if (this != &o) *this = PointwiseProjections();
    return *this;
  }
  PointwiseProjections(PointwiseProjections&&) noexcept = default;
  PointwiseProjections& operator=(PointwiseProjections&&) noexcept = default;

  struct Projection {
    const T* weight = nullptr;  // [rows, K]
    const T* bias = nullptr;    // [rows] or null
    index_t rows = 0;
  };

  // Declares the projections (once per call pair; pointers must stay valid until backward).
  void set(std::initializer_list<Projection> projections) {
    count_ = 0;
    total_ = 0;
    for (const Projection& p : projections) {
      offset_[static_cast<std::size_t>(count_)] = total_;
      proj_[static_cast<std::size_t>(count_++)] = p;
      total_ += p.rows;
    }
  }

  // y[k] [N, rows_k, P] = W_k x + b_k. Keeps the stacked x for backward.
  void forward(index_t N, index_t K, index_t P, const T* x, const std::array<T*, kMax>& y) {
    N_ = N, K_ = K, P_ = P;
    const index_t NP = N * P;
    xs_.resize(Shape{K, NP});
    ys_.resize(Shape{total_, NP});
    stack(x, K, xs_.data());
    T* xs = xs_.data();
    T* ys = ys_.data();
    for_threads([&](index_t t, index_t threads) {
      for (int k = 0; k < count_; ++k) {
        const Projection& p = proj_[static_cast<std::size_t>(k)];
        const index_t lo = edge(p.rows, t, threads, 8), hi = edge(p.rows, t + 1, threads, 8);
        if (hi > lo)
          blas::gemm(Cpu{}, blas::Op::N, blas::Op::N, hi - lo, NP, K, T(1), p.weight + lo * K, K, xs, NP, T(0),
                     ys + (offset_[static_cast<std::size_t>(k)] + lo) * NP, NP);
      }
    });
    unstack_with_bias(y);
  }

  // Assigns dW[k] [rows_k, K] and db[k] [rows_k] (when the projection has a bias); dx += .
  // Reads the x stacked by the last forward.
  void backward(const std::array<const T*, kMax>& dy, const std::array<T*, kMax>& dw,
                const std::array<T*, kMax>& db, T* dx) {
    const index_t N = N_, K = K_, P = P_, NP = N * P;
    dys_.resize(Shape{total_, NP});
    dxt_.resize(Shape{NP, K});
    stack_gradients(dy);
    const T* xs = xs_.data();
    const T* dys = dys_.data();
    T* dxt = dxt_.data();
    for_threads([&](index_t t, index_t threads) {
      for (int k = 0; k < count_; ++k) {
        const Projection& p = proj_[static_cast<std::size_t>(k)];
        const T* d = dys + offset_[static_cast<std::size_t>(k)] * NP;
        const index_t lo = edge(p.rows, t, threads, 8), hi = edge(p.rows, t + 1, threads, 8);
        if (hi > lo) {
          blas::gemm(Cpu{}, blas::Op::N, blas::Op::T, hi - lo, K, NP, T(1), d + lo * NP, NP, xs, NP, T(0),
                     dw[static_cast<std::size_t>(k)] + lo * K, K);
          if (T* b = db[static_cast<std::size_t>(k)]; b && p.bias)
            for (index_t r = lo; r < hi; ++r) {
              const T* row = d + r * NP;
              T sum = 0;
#pragma omp simd reduction(+ : sum)
              for (index_t j = 0; j < NP; ++j) sum += row[j];
              b[r] = sum;
            }
        }
      }
      // (dx)^T [NP, columns c0..c1 of K] = sum_k dy_k^T W_k[:, c0..c1]
      const index_t c0 = edge(K, t, threads, 16), c1 = edge(K, t + 1, threads, 16);
      if (c1 > c0)
        for (int k = 0; k < count_; ++k) {
          const Projection& p = proj_[static_cast<std::size_t>(k)];
          blas::gemm(Cpu{}, blas::Op::T, blas::Op::N, NP, c1 - c0, p.rows, T(1),
                     dys + offset_[static_cast<std::size_t>(k)] * NP, NP, p.weight + c0, K, k == 0 ? T(0) : T(1),
                     dxt + c0, K);
        }
    });
    // dx[n, c, p] += dxt[n P + p, c]
    for_each_index_weighted(Cpu{}, N * K, P, [=](index_t i) {
      const index_t n = i / K, c = i % K;
      T* out = dx + i * P;
      const T* in = dxt + n * P * K + c;
      for (index_t q = 0; q < P; ++q) out[q] += in[q * K];
    });
  }

 private:
  // Start of part t of `total` in `parts` near-equal parts, on multiples of `align` where
  // that keeps the parts non-empty (whole registers of the GEMM micro-kernel).
  static index_t edge(index_t total, index_t t, index_t parts, index_t align) {
    if (t >= parts) return total;
    const index_t e = total * t / parts;
    return total >= 2 * align * parts ? std::min(total, (e + align / 2) / align * align) : e;
  }

  // f(thread, threads) on every thread, one parallel region (serial GEMMs inside).
  template <class F>
  static void for_threads(F&& f) {
    index_t threads = 1;
#if defined(_OPENMP)
    if (!omp_in_parallel()) threads = num_threads();
#endif
    if (threads <= 1) return f(index_t{0}, index_t{1});
    for_each_range(Cpu{}, threads, [&](index_t b, index_t e) {
      for (index_t t = b; t < e; ++t) f(t, threads);
    }, 2);
  }

  // xs[c, n P + p] = x[n, c, p] for `rows` channels.
  void stack(const T* x, index_t rows, T* xs) const {
    const index_t N = N_, P = P_, NP = N * P;
    for_each_index_weighted(Cpu{}, rows * N, P, [=](index_t i) {
      const index_t c = i / N, n = i % N;
      std::memcpy(xs + c * NP + n * P, x + (n * rows + c) * P, static_cast<std::size_t>(P) * sizeof(T));
    });
  }

  // y_k[n, r, p] = ys[offset_k + r, n P + p] + b_k[r]
  void unstack_with_bias(const std::array<T*, kMax>& y) {
    const index_t N = N_, P = P_, NP = N * P, total = total_;
    const T* ys = ys_.data();
    const auto proj = proj_;
    const auto offset = offset_;
    const int count = count_;
    for_each_index_weighted(Cpu{}, N * total, P, [=](index_t i) {
      const index_t n = i / total, row = i % total;
      int k = 0;
      while (k + 1 < count && row >= offset[static_cast<std::size_t>(k + 1)]) ++k;
      const Projection& p = proj[static_cast<std::size_t>(k)];
      const index_t r = row - offset[static_cast<std::size_t>(k)];
      const T bias = p.bias ? p.bias[r] : T(0);
      const T* in = ys + row * NP + n * P;
      T* out = y[static_cast<std::size_t>(k)] + (n * p.rows + r) * P;
#pragma omp simd
      for (index_t q = 0; q < P; ++q) out[q] = in[q] + bias;
    });
  }

  // dys[offset_k + r, n P + p] = dy_k[n, r, p]
  void stack_gradients(const std::array<const T*, kMax>& dy) {
    const index_t N = N_, P = P_, NP = N * P, total = total_;
    T* dys = dys_.data();
    const auto proj = proj_;
    const auto offset = offset_;
    const int count = count_;
    for_each_index_weighted(Cpu{}, N * total, P, [=](index_t i) {
      const index_t n = i / total, row = i % total;
      int k = 0;
      while (k + 1 < count && row >= offset[static_cast<std::size_t>(k + 1)]) ++k;
      const index_t rows = proj[static_cast<std::size_t>(k)].rows, r = row - offset[static_cast<std::size_t>(k)];
      std::memcpy(dys + row * NP + n * P, dy[static_cast<std::size_t>(k)] + (n * rows + r) * P,
                  static_cast<std::size_t>(P) * sizeof(T));
    });
  }

  std::array<Projection, kMax> proj_{};
  std::array<index_t, kMax> offset_{};
  int count_ = 0;
  index_t total_ = 0, N_ = 0, K_ = 0, P_ = 0;
  ScratchTensor<T, Cpu> xs_, ys_, dys_, dxt_;  // stacked x (kept for backward), outputs, output gradients; (dx)^T
};

}  // namespace gcnet::cpu
