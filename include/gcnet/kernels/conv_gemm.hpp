#pragma once
// ConvGemm<T, B>: convolution as GEMMs over unfolded images, shared by Conv2d and
// ConvTranspose2d (one's forward is the other's input gradient).
//
// Two sides: the "image" side has geometry g (C = groups * Cg channels, H x W), the
// "matrix" side has M = groups * Mg channels over the P = out_h * out_w window positions
// (both NCHW, batch n). The weight is [groups][Mg][Kg], Kg = Cg * kh * kw, row-major.
// Per image and group q:
//   unfold_multiply:  mat_q (= or +=) W_q . im2col(img)_q       Conv2d y;  ConvTranspose2d dx
//   multiply_fold:    img  += col2im(W_q^T . mat_q)              Conv2d dx; ConvTranspose2d y
// and the backward passes, each one sweep over the batch computing the weight gradient
// dW_q = sum over images of mat_q . im2col(img)_q^T with one of the above:
//   weight_grad_and_fold    (Conv2d)           weight_grad_and_unfold (ConvTranspose2d)
//
// CPU scheduling (why): each pass is one parallel region in which the threads work on
// their own data with single-threaded GEMMs, nothing shared until the end (fork/join
// points and spinning hand-offs, as in Eigen's threaded GEMM, stall badly when the cores
// are shared with other work):
//  - by band, when the window grid is large: tasks are bands of window rows of one image
//    (unfolded into a column buffer that stays in L2) or, to fold, ranges of an image's
//    channels; threads take tasks one at a time, so none waits on a slowed sibling, and
//    each keeps its own weight-gradient accumulator (summed at the end);
//  - by channel, when the grid is small (deep layers, where per-image GEMMs are thin and
//    weights large): each thread unfolds all images side by side and computes its share
//    of the matrix-side channels (output rows, weight-gradient rows) and of the image
//    channels (folded gradients); the unfolding is repeated per thread, which is cheap
//    when there are many channels.
// A 1x1 stride-1 convolution multiplies the image directly, without im2col.
#include <algorithm>
#include <atomic>
#include <vector>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/core/tensor.hpp"
#include "gcnet/kernels/gemm_across_threads.hpp"
#include "gcnet/kernels/im2col.hpp"
#include "gcnet/kernels/image_stack.hpp"

namespace gcnet {

// Blocking choices (measured on a 2-core AVX-512 machine, the band's minimum width on a 2-core
// AVX2 one; see docs/performance.md).
struct ConvGemmTuning {
  // Elements of one band of the column buffer: 768 KB, inside L2 with the packed panels,
  // and wide enough (a few hundred columns) for an efficient GEMM ...
  index_t band_elements = 192 * 1024;
  // ... but never fewer columns than this (while the image has them): each band's GEMMs re-pack
  // the whole weight, and the weight gradient of a band is a product over its columns, so a
  // band of a few dozen columns (one window row of a 64-wide map under a 512 x 4608 weight)
  // spends more time moving the weight and the gradient through memory than multiplying.
  index_t min_band_columns = 384;
  // Window grids smaller than this are split by channel rather than by image.
  index_t split_channels_below_positions = 128;
  // Columns (images x positions) unfolded at once when splitting by channel.
  index_t stack_columns = 2048;
};

namespace detail {
// Kernels of ConvGemm as free functions: nvcc accepts device lambdas only in functions
// that are not private members.

// Serial on the CPU (called inside image tasks, or on sizes below a parallel region's cost).
template <class T, class B>
void conv_zero_serial(B, T* p, index_t count) {
  for_each_index(B{}, count, [=] GCNET_HD(index_t k) { p[k] = T(0); }, index_t{1} << 40);
}
template <class T, class B>
void conv_add_mostly_serial(B, T* dst, const T* src, index_t count) {
  for_each_index(B{}, count, [=] GCNET_HD(index_t k) { dst[k] += src[k]; }, index_t{1} << 22);
}
}  // namespace detail

template <Scalar T, Backend B>
class ConvGemm {
  using Op = blas::Op;

 public:
  ConvGemmTuning& tuning() { return tuning_; }

  void configure(const ConvGeometry& g, index_t groups, index_t mat_channels) {
    g_ = g;
    groups_ = groups;
    m_ = mat_channels;
    mg_ = mat_channels / groups;
    kg_ = g.rows() / groups;
  }
  const ConvGeometry& geometry() const { return g_; }

  void unfold_multiply(const T* w, const T* img, index_t n, T* mat, bool accumulate) {
    if (by_channel()) return channel_split(w, nullptr, img, n, mat, accumulate, nullptr, nullptr);
    const index_t nb = num_bands();
    pack_weight(w, n * nb);
    for_each_task(n * nb, [&](index_t t, index_t slot) {
      band_unfold_multiply(w, img + t / nb * img_size(), mat + t / nb * mat_size(), t % nb, accumulate, slot);
    });
    packed_w_ = nullptr;
  }

  void multiply_fold(const T* w, const T* mat, index_t n, T* img) {
    if (by_channel()) return channel_split(w, mat, nullptr, n, nullptr, false, nullptr, img);
    const index_t nf = num_fold_parts(n);
    for_each_task(n * nf, [&](index_t t, index_t slot) {
      fold_part(w, mat + t / nf * mat_size(), img + t / nf * img_size(), t % nf, nf, slot);
    });
  }

  // dW = sum over images of mat . im2col(img)^T (assigned, groups * Mg * Kg entries), and
  // img_grad += col2im(W^T . mat): Conv2d's backward (mat = dy, img = x).
  void weight_grad_and_fold(const T* w, const T* mat, const T* img, index_t n, T* dw, T* img_grad) {
    sweep(w, mat, img, n, dw, img_grad, nullptr);
  }
  // The same dW, and mat_grad += W . im2col(img): ConvTranspose2d's backward (mat = x,
  // img = dy), sharing each unfolded band between the two products.
  void weight_grad_and_unfold(const T* w, const T* mat, const T* img, index_t n, T* dw, T* mat_grad) {
    sweep(w, mat, img, n, dw, nullptr, mat_grad);
  }

 private:
  index_t img_size() const { return g_.channels * g_.image_size(); }
  index_t mat_size() const { return m_ * g_.positions(); }
  index_t P() const { return g_.positions(); }
  index_t HW() const { return g_.image_size(); }
  index_t weight_size() const { return groups_ * mg_ * kg_; }
  const T* w_group(const T* w, index_t q) const { return w + q * mg_ * kg_; }

  // ---- split by image band ----
  // A task is one band of window rows of one image (unfold, weight gradient) or one part
  // of an image's channels (fold: col2im from several bands would race on shared rows).

  // Bands of window rows: as few as keep each under band_elements column entries, of
  // near-equal heights; band b is rows [band_edge(b), band_edge(b + 1)).
  index_t num_bands() const {
    const index_t out_w = std::max<index_t>(1, g_.out_w);
    const index_t by_size = tuning_.band_elements / std::max<index_t>(1, g_.rows() * out_w);
    const index_t by_columns = (tuning_.min_band_columns + out_w - 1) / out_w;
    const index_t rows = std::clamp<index_t>(std::max(by_size, by_columns), 1, g_.out_h);
    return (g_.out_h + rows - 1) / rows;
  }
  index_t band_edge(index_t b) const { return b * g_.out_h / num_bands(); }
  index_t band_rows() const { return (g_.out_h + num_bands() - 1) / num_bands(); }  // the tallest
  // Fold tasks per image: enough for every thread to have one, no more (each part
  // re-packs the image's matrix side for its GEMMs).
  index_t num_fold_parts(index_t n) const {
    if (g_.is_pointwise()) return num_bands();  // no col2im: column bands never overlap
    return std::clamp<index_t>((num_slots() + n - 1) / n, 1, g_.channels);
  }

  // y[:, band] (= or +=) W . im2col(x)[:, band]
  void band_unfold_multiply(const T* w, const T* x, T* y, index_t band, bool accumulate, index_t slot) {
    const index_t oh0 = band_edge(band), oh1 = band_edge(band + 1);
    const index_t cols = (oh1 - oh0) * g_.out_w, off = oh0 * g_.out_w;
    const T beta = accumulate ? T(1) : T(0);
    const T* col = x + off;  // a 1x1 stride-1 convolution multiplies the image itself
    index_t ld = HW();
    if (!g_.is_pointwise()) {
      T* buf = slot_col(slot);
      im2col(B{}, g_, x, oh0, oh1, buf, cols);
      col = buf;
      ld = cols;
    }
    for (index_t q = 0; q < groups_; ++q) {
#if GCNET_CPU_AVX512_KERNELS
      if constexpr (std::is_same_v<T, float> && std::same_as<B, Cpu>) {
        if (packed_w_) {
          blas::gemm_packed_lhs(packed_w_ + q * blas::packed_lhs_size(mg_, kg_), mg_, cols, kg_, T(1), Op::N,
                                col + q * kg_ * ld, ld, beta, y + q * mg_ * P() + off, P());
          continue;
        }
      }
#endif
      gemm(Op::N, Op::N, mg_, cols, kg_, T(1), w_group(w, q), kg_, col + q * kg_ * ld, ld, beta,
           y + q * mg_ * P() + off, P());
    }
  }

  // Before `tasks` band products with the weight on several threads: packs each group's weight
  // once (blas::pack_lhs) where the GEMM supports it, instead of once per band. Sets packed_w_.
  void pack_weight(const T* w, index_t tasks) {
    packed_w_ = nullptr;
#if GCNET_CPU_AVX512_KERNELS
    if constexpr (std::is_same_v<T, float> && std::same_as<B, Cpu>) {
      if (tasks < 2 || !blas::packs_lhs<T>() || in_parallel()) return;
      const index_t stride = blas::packed_lhs_size(mg_, kg_);
      thread_local Tensor<T, B> packed;  // the caller's, like the column scratch
      if (packed.numel() < groups_ * stride) packed = Tensor<T, B>(Shape{groups_ * stride});
      for (index_t q = 0; q < groups_; ++q) blas::pack_lhs(Op::N, w_group(w, q), kg_, mg_, kg_, packed.data() + q * stride);
      packed_w_ = packed.data();
    }
#else
    (void)w, (void)tasks;
#endif
  }

  // acc += mat[:, band] . im2col(img)[:, band]^T, and with mat_grad also
  // mat_grad[:, band] += W . im2col(img)[:, band] from the same unfolded band.
  void band_weight_grad(const T* w, const T* mat, const T* img, index_t band, T* acc, T* mat_grad, index_t slot) {
    const index_t oh0 = band_edge(band), oh1 = band_edge(band + 1);
    const index_t cols = (oh1 - oh0) * g_.out_w, off = oh0 * g_.out_w;
    const T* col = img + off;
    index_t ld = HW();
    if (!g_.is_pointwise()) {
      T* buf = slot_col(slot);
      im2col(B{}, g_, img, oh0, oh1, buf, cols);
      col = buf;
      ld = cols;
    }
    for (index_t q = 0; q < groups_; ++q) {
      gemm(Op::N, Op::T, mg_, kg_, cols, T(1), mat + q * mg_ * P() + off, P(), col + q * kg_ * ld, ld, T(1),
           acc + q * mg_ * kg_, kg_);
      if (mat_grad)
        gemm(Op::N, Op::N, mg_, cols, kg_, T(1), w_group(w, q), kg_, col + q * kg_ * ld, ld, T(1),
             mat_grad + q * mg_ * P() + off, P());
    }
  }

  // img += col2im(W^T . mat) for part `part` of `parts`: a band of columns (pointwise) or
  // a range of image channels over all bands.
  void fold_part(const T* w, const T* mat, T* img, index_t part, index_t parts, index_t slot) {
    if (g_.is_pointwise()) {
      const index_t oh0 = band_edge(part), oh1 = band_edge(part + 1);
      const index_t cols = (oh1 - oh0) * g_.out_w, off = oh0 * g_.out_w;
      for (index_t q = 0; q < groups_; ++q)
        gemm(Op::T, Op::N, kg_, cols, mg_, T(1), w_group(w, q), kg_, mat + q * mg_ * P() + off, P(), T(1),
             img + q * kg_ * HW() + off, HW());
      return;
    }
    const index_t c0 = part_edge(g_.channels, part, parts), c1 = part_edge(g_.channels, part + 1, parts);
    if (c1 <= c0) return;
    const index_t area = g_.kernel_area(), cg = g_.channels / groups_;
    ConvGeometry part_geometry = g_;  // the image channels [c0, c1)
    part_geometry.channels = c1 - c0;
    T* dcol = slot_col(slot);
    for (index_t b = 0, nb = num_bands(); b < nb; ++b) {
      const index_t oh0 = band_edge(b), oh1 = band_edge(b + 1), cols = (oh1 - oh0) * g_.out_w;
      // Column-matrix rows of channel c are [c * kh * kw, (c + 1) * kh * kw).
      for (index_t q = c0 / cg; q < groups_ && q * cg < c1; ++q) {
        const index_t lo = std::max(c0, q * cg), hi = std::min(c1, (q + 1) * cg);
        gemm(Op::T, Op::N, (hi - lo) * area, cols, mg_, T(1), w_group(w, q) + (lo - q * cg) * area, kg_,
             mat + q * mg_ * P() + oh0 * g_.out_w, P(), T(0), dcol + (lo - c0) * area * cols, cols);
      }
      col2im_add(B{}, part_geometry, dcol, oh0, oh1, img + c0 * HW(), cols);
    }
  }

  // The backward sweep: dw, and img_grad (fold) or mat_grad (unfold), in one parallel region.
  void sweep(const T* w, const T* mat, const T* img, index_t n, T* dw, T* img_grad, T* mat_grad) {
    if (by_channel()) return channel_split(w, mat, img, n, mat_grad, true, dw, img_grad);
    // One weight-gradient accumulator per thread slot: slot 0 is dw itself, the others are
    // summed into it at the end. A slot is zeroed before its first band.
    const index_t slots = num_slots(), wsize = weight_size();
    Tensor<T, B>& partial_buf = partial();
    partial_buf.resize(Shape{std::max<index_t>(1, slots - 1), wsize});
    T* partial = partial_buf.data();
    char* used = slot_used(slots);
    const index_t nb = num_bands(), nf = img_grad ? num_fold_parts(n) : 0, wtasks = n * nb;
    for_each_task(wtasks + n * nf, [&](index_t t, index_t slot) {
      if (t >= wtasks) {
        t -= wtasks;
        fold_part(w, mat + t / nf * mat_size(), img_grad + t / nf * img_size(), t % nf, nf, slot);
        return;
      }
      T* acc = slot == 0 ? dw : partial + (slot - 1) * wsize;
      if (!used[slot]) {
        detail::conv_zero_serial(B{}, acc, wsize);
        used[slot] = 1;
      }
      const index_t i = t / nb;
      band_weight_grad(w, mat + i * mat_size(), img + i * img_size(), t % nb, acc,
                       mat_grad ? mat_grad + i * mat_size() : nullptr, slot);
    }, /*ordered=*/true);
    if (!used[0]) detail::conv_zero_serial(B{}, dw, wsize);
    for (index_t s = 1; s < slots; ++s) {
      // Small sums stay serial: a parallel region costs more than adding a few MB.
      if (used[s]) detail::conv_add_mostly_serial(B{}, dw, partial + (s - 1) * wsize, wsize);
    }
  }

  // ---- split by channel ----

  bool by_channel() const { return P() < tuning_.split_channels_below_positions; }

  // One pass split by channel (see the note at the top); each output is optional:
  //   mat_out[rows of part] (= or +=) W . im2col(img)
  //   dw[rows of part]       = sum over images of mat . im2col(img)^T
  //   img_out[channels of part] += col2im(W^T . mat)
  void channel_split(const T* w, const T* mat, const T* img, index_t n, T* mat_out, bool accumulate, T* dw,
                     T* img_out) {
    const index_t per = std::max<index_t>(1, tuning_.stack_columns / P());  // images per stack
    const index_t kernel_area = g_.kernel_area();
    for_each_part([&](index_t part, index_t parts, index_t slot) {
      const index_t r0 = part_edge(m_, part, parts), r1 = part_edge(m_, part + 1, parts);
      const index_t c0 = part_edge(g_.channels, part, parts), c1 = part_edge(g_.channels, part + 1, parts);
      ThreadBuffers& s = (*active_)[static_cast<std::size_t>(slot)];
      for (index_t n0 = 0; n0 < n; n0 += per) {
        const index_t k = std::min(n, n0 + per) - n0, cols = k * P();
        T* col = nullptr;
        if (mat_out || dw) {  // the unfolded images
          s.col.resize(Shape{g_.rows(), cols});
          col = s.col.data();
          im2col(B{}, g_, img + n0 * img_size(), index_t{0}, g_.out_h, col, cols, k);
        }
        // The matrix side, side by side: this part's rows for dw, all rows to fold.
        const index_t b0 = img_out ? 0 : r0, b1 = img_out ? m_ : r1;
        T* buf = nullptr;
        if ((dw || img_out) && b1 > b0) {
          s.mat.resize(Shape{b1 - b0, cols});
          buf = s.mat.data();
          gather_image_stack(B{}, mat + n0 * mat_size() + b0 * P(), b1 - b0, P(), mat_size(), k, buf);
        }
        for_each_group_rows(r0, r1, [&](index_t q, index_t lo, index_t hi) {
          if (dw)
            gemm(Op::N, Op::T, hi - lo, kg_, cols, T(1), buf + (lo - b0) * cols, cols, col + q * kg_ * cols, cols,
                 n0 == 0 ? T(0) : T(1), dw + lo * kg_, kg_);
        });
        if (mat_out && r1 > r0) {
          s.out.resize(Shape{r1 - r0, cols});
          T* out = s.out.data();
          for_each_group_rows(r0, r1, [&](index_t q, index_t lo, index_t hi) {
            gemm(Op::N, Op::N, hi - lo, cols, kg_, T(1), w + lo * kg_, kg_, col + q * kg_ * cols, cols, T(0),
                 out + (lo - r0) * cols, cols);
          });
          scatter_image_stack(B{}, out, r1 - r0, P(), mat_size(), k, mat_out + n0 * mat_size() + r0 * P(),
                                      accumulate);
        }
        if (img_out && c1 > c0) {
          // Rows of the column matrix for image channels [c0, c1): [c0 * kh * kw, c1 * kh * kw).
          s.out.resize(Shape{(c1 - c0) * kernel_area, cols});
          T* dcol = s.out.data();
          const index_t cg = g_.channels / groups_;
          for (index_t q = c0 / cg; q < groups_ && q * cg < c1; ++q) {
            const index_t lo = std::max(c0, q * cg), hi = std::min(c1, (q + 1) * cg);
            gemm(Op::T, Op::N, (hi - lo) * kernel_area, cols, mg_, T(1), w_group(w, q) + (lo - q * cg) * kernel_area,
                 kg_, buf + q * mg_ * cols, cols, T(0), dcol + (lo - c0) * kernel_area * cols, cols);
          }
          ConvGeometry part_geometry = g_;
          part_geometry.channels = c1 - c0;
          for (index_t i = 0; i < k; ++i)
            col2im_add(B{}, part_geometry, dcol + i * P(), index_t{0}, g_.out_h,
                       img_out + (n0 + i) * img_size() + c0 * HW(), cols);
        }
      }
    });
  }

  // f(group, lo, hi) for the matrix-side rows [r0, r1) cut at group boundaries.
  template <class F>
  void for_each_group_rows(index_t r0, index_t r1, F&& f) const {
    for (index_t q = r0 / std::max<index_t>(1, mg_); q < groups_ && q * mg_ < r1; ++q) {
      const index_t lo = std::max(r0, q * mg_), hi = std::min(r1, (q + 1) * mg_);
      if (hi > lo) f(q, lo, hi);
    }
  }
  // Start of part `part` of `total` items in `parts` near-equal parts (multiples of 8 rows
  // where that keeps the parts non-empty, for the GEMM micro-kernel).
  static index_t part_edge(index_t total, index_t part, index_t parts) {
    if (part >= parts) return total;
    const index_t e = total * part / parts;
    return total >= 16 * parts ? std::min(total, (e + 4) / 8 * 8) : e;
  }

  // ---- scheduling ----

  static index_t num_slots() {
    if constexpr (std::same_as<B, Cpu>) return num_threads();
    return 1;
  }

  // task(t, slot) for t in [0, tasks) on all threads; tasks are handed out one at a time,
  // so a thread slowed by other work on its core simply takes fewer. slot < num_slots()
  // names the calling thread's scratch.
  template <class F>
  // ordered: slot s runs tasks s, s + slots, ... in that order (not first come, first
  // served), so per-slot sums, and the weight gradient summed from them, are the same in
  // every run: a resumed training run reproduces an uninterrupted one bit for bit.
  void for_each_task(index_t tasks, F&& task, bool ordered = false) {
    index_t slots = 1;
    if constexpr (std::same_as<B, Cpu>) slots = in_parallel() ? 1 : std::min(num_slots(), tasks);
    slots = std::max<index_t>(1, slots);
    ensure_band_buffers(slots);
    std::atomic<index_t> next{0};
    for_each_range(Cpu{}, slots, [&](index_t b, index_t e) {
      if (ordered) {
        for (index_t s = b; s < e; ++s)
          for (index_t t = s; t < tasks; t += slots) task(t, s);
        return;
      }
      for (index_t t = next.fetch_add(1, std::memory_order_relaxed); t < tasks;
           t = next.fetch_add(1, std::memory_order_relaxed))
        task(t, b);
    }, 2);
  }

  // Per-thread buffers, sized before a parallel region.
  struct ThreadBuffers {
    Tensor<T, B> col, mat, out;
  };
  // The scratch lives only during one call, so on the CPU all convolutions run by a thread
  // share one set (thread_local: callers on other threads get theirs) instead of one per
  // layer, which kept ~1.5 MB of columns and a weight-sized gradient partial per conv resident.
  std::vector<ThreadBuffers>& scratch() {
    if constexpr (std::same_as<B, Cpu>) {
      thread_local std::vector<ThreadBuffers> shared;
      return shared;
    } else {
      return *scratch_;
    }
  }
  Tensor<T, B>& partial() {
    if constexpr (std::same_as<B, Cpu>) {
      thread_local Tensor<T, B> shared;
      return shared;
    } else {
      return partial_;
    }
  }
  // On the calling thread, before a parallel region: the tasks reach the caller's scratch
  // through active_ (a worker's thread_local would be another one).
  void ensure_scratch(index_t slots) {
    active_ = &scratch();
    if (static_cast<index_t>(active_->size()) < slots) active_->resize(static_cast<std::size_t>(slots));
  }
  void ensure_band_buffers(index_t slots) {
    ensure_scratch(slots);
    if (g_.is_pointwise()) return;  // multiplies the image itself
    const Shape s{g_.rows(), band_rows() * g_.out_w};
    for (index_t k = 0; k < slots; ++k) (*active_)[static_cast<std::size_t>(k)].col.resize(s);
  }
  T* slot_col(index_t slot) { return (*active_)[static_cast<std::size_t>(slot)].col.data(); }

  // f(part, parts, slot) for each part of a pass split by channel: one part per thread.
  template <class F>
  void for_each_part(F&& f) {
    index_t parts = 1;
    if constexpr (std::same_as<B, Cpu>) parts = in_parallel() ? 1 : num_threads();
    ensure_scratch(parts);
    for_each_range(Cpu{}, parts, [&](index_t b, index_t e) {
      for (index_t p = b; p < e; ++p) f(p, parts, b);
    }, 2);
  }
  char* slot_used(index_t slots) {
    used_.assign(static_cast<std::size_t>(slots), 0);
    return used_.data();
  }

  static void gemm(Op op_a, Op op_b, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda, const T* b,
                   index_t ldb, T beta, T* c, index_t ldc) {
    gemm_across_threads(B{}, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  static bool in_parallel() {
#if defined(_OPENMP)
    return omp_in_parallel();
#else
    return false;
#endif
  }

  ConvGemmTuning tuning_;
  ConvGeometry g_;
  index_t groups_ = 1, m_ = 0, mg_ = 0, kg_ = 0;
  ScratchValue<std::vector<ThreadBuffers>> scratch_;  // per thread (non-CPU backends; see scratch())
  ScratchTensor<T, B> partial_;   // per-thread weight gradients (slots 1..; non-CPU backends)
  std::vector<ThreadBuffers>* active_ = nullptr;  // the scratch of the current call (ensure_scratch)
  std::vector<char> used_;        // which slots saw an image
  const T* packed_w_ = nullptr;   // the weight packed for this call's band products (pack_weight)
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(ConvGemm)
}  // namespace gcnet
