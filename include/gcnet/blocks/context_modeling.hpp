#pragma once
// Step 1 of the GC framework (context modeling): pool x [N, C, H, W] into one context vector
// per sample, ctx [N, C, 1, 1] (mmcv's shape, so the transform's 1x1 convolutions take it as is).
//   Pooling::Attention  ctx[n,c] = sum_s softmax_s(w . x[n,:,s] + b) x[n,c,s]   (mmcv 'att';
//                       conv_mask C->1 with bias; the bias cancels in the softmax)
//   Pooling::Average    ctx[n,c] = mean_s x[n,c,s]                              (mmcv 'avg', SE)
// Backend-generic. Forward reads x once from memory (tiles of positions: logits, a per-tile
// softmax, the partial weighted sum from cache; then the tiles are combined as in an online
// softmax). The attention's backward is fused with the block's dx write (global_context.hpp):
// this class keeps the softmax p [N, S] it needs and assigns the conv_mask gradients.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/blocks/portable_reductions.hpp"
#include "gcnet/core/init.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/kernels/softmax_exp.hpp"

namespace gcnet {

enum class Pooling { Attention, Average };

inline const char* pooling_name(Pooling p) { return p == Pooling::Attention ? "attention" : "average"; }

namespace blocks {

// Positions per task in the passes over x: a [C, block] tile stays within ~256 KB of cache,
// so a task can read its tile a second time from cache instead of memory.
inline constexpr index_t kMaxPositionBlock = 256;
inline index_t position_block(index_t channels) {
  const index_t b = index_t{65536} / (channels > 0 ? channels : 1);
  return b < 16 ? 16 : (b > kMaxPositionBlock ? kMaxPositionBlock : b);
}

template <Scalar T = float, Backend B = Cpu>
class ContextModeling {
 public:
  ContextModeling(index_t channels, Pooling pooling) : channels_(channels), pooling_(pooling) {
    if (pooling == Pooling::Attention) {
      // mmcv kaiming_init(conv_mask, mode='fan_in'): N(0, sqrt(2 / C)), bias 0.
      Tensor<T, Cpu> w(Shape{1, channels, 1, 1});
      init::kaiming(w, 0.0, init::FanMode::FanIn, "relu", init::Distribution::Normal);
      mask_weight_.set(w);
      mask_bias_.set(zeros<T>(Shape{1}));
    }
  }
  Pooling pooling() const { return pooling_; }
  index_t channels() const { return channels_; }

  // ctx [N, C, 1, 1] from x [N, C, H, W] (contiguous, shape already validated).
  void forward(const Tensor<T, B>& x, Tensor<T, B>& ctx) {
    const index_t n = x.size(0), c = channels_, s = x.size(2) * x.size(3);
    ctx.resize(Shape{n, c, 1, 1});
    const T* xp = x.data();
    T* cp = ctx.data();
    if (pooling_ == Pooling::Average) {
      const T inv = T(1) / T(s);
      for_each_index_weighted(B{}, n * c, s, [=] GCNET_HD(index_t row) {
        cp[row] = sum(xp + row * s, s) * inv;
      });
      return;
    }
    // Attention, one pass over x from memory (an online softmax): each task takes a tile of
    // positions, computes their logits, its own max m_b and sum z_b of exp(l - m_b), and the
    // partial context sum_j exp(l_j - m_b) x[c, j], re-reading the tile from cache.
    p_.resize(Shape{n, s});
    T* u = p_.data();
    const index_t block = position_block(c), blocks = (s + block - 1) / block;
    partial_.resize(Shape{n, blocks, c});
    stats_.resize(Shape{n, blocks, 2});
    T *part = partial_.data(), *st = stats_.data();
    const T *w = mask_weight_.value.data(), *bias = mask_bias_.value.data();
    for_each_index_weighted(B{}, n * blocks, 2 * c * block, [=] GCNET_HD(index_t t) {
      const index_t k = t / blocks, s0 = (t % blocks) * block, len = std::min(block, s - s0);
      // Logits summed over the channels in chunks (see blocks::kSumChunk): a partial per chunk.
      T e[kMaxPositionBlock], chunk[kMaxPositionBlock];
      for (index_t j = 0; j < len; ++j) e[j] = bias[0];
      const T* xk = xp + k * c * s + s0;
      for (index_t c0 = 0; c0 < c; c0 += kSumChunk) {
        const index_t c1 = c - c0 < kSumChunk ? c : c0 + kSumChunk;
        for (index_t j = 0; j < len; ++j) chunk[j] = T(0);
        for (index_t ch = c0; ch < c1; ++ch) {
          const T wc = w[ch];
          const T* row = xk + ch * s;
          for (index_t j = 0; j < len; ++j) chunk[j] += wc * row[j];
        }
        for (index_t j = 0; j < len; ++j) e[j] += chunk[j];
      }
      T m = std::numeric_limits<T>::lowest();
      for (index_t j = 0; j < len; ++j) {
        u[k * s + s0 + j] = e[j];  // logits, normalized below
        m = e[j] > m ? e[j] : m;
      }
      T z = 0;
      for (index_t j = 0; j < len; ++j) {
        e[j] = gcnet::detail::softmax_exp(e[j] - m);
        z += e[j];
      }
      st[2 * t] = m;
      st[2 * t + 1] = z;
      T* pt = part + t * c;
      index_t ch = 0;
      for (; ch + 4 <= c; ch += 4) dot_rows4(xk + ch * s, s, e, len, pt + ch);
      for (; ch < c; ++ch) pt[ch] = dot(e, xk + ch * s, len);
    });
    // Per image: M = max m_b, Z = sum z_b exp(m_b - M), the tile weights exp(m_b - M) / Z, and
    // the probabilities kept for backward, p = exp(l - M) / Z (an [N, S] pass, not over x).
    // Then ctx = sum_b part_b * weight_b. (The weights are per image, not per channel: the
    // exponentials are computed once, not once per channel.)
    tile_w_.resize(Shape{n, blocks});
    T* tw = tile_w_.data();
    for_each_index_weighted(B{}, n, 2 * s, [=] GCNET_HD(index_t k) {
      const T* sk = st + 2 * k * blocks;
      T mx = sk[0];
      for (index_t b = 1; b < blocks; ++b) mx = sk[2 * b] > mx ? sk[2 * b] : mx;
      T z = 0;
      for (index_t b = 0; b < blocks; ++b) {
        tw[k * blocks + b] = std::exp(sk[2 * b] - mx);
        z += sk[2 * b + 1] * tw[k * blocks + b];
      }
      const T inv = T(1) / z;
      for (index_t b = 0; b < blocks; ++b) tw[k * blocks + b] *= inv;
      T* r = u + k * s;
      for (index_t j = 0; j < s; ++j) r[j] = gcnet::detail::softmax_exp(r[j] - mx) * inv;
    });
    for_each_index_weighted(B{}, n * c, blocks, [=] GCNET_HD(index_t row) {
      const index_t k = row / c, ch = row % c;
      const T* wk = tw + k * blocks;
      T acc = 0;
      for (index_t b = 0; b < blocks; ++b) acc += part[(k * blocks + b) * c + ch] * wk[b];
      cp[row] = acc;
    });
  }

  // The softmax over positions of the last forward, [N, S] (attention pooling): backward reads
  // it, the CPU single-region forward (cpu/global_context_team.hpp) writes it in forward's place.
  Tensor<T, B>& probabilities() { return p_; }
  const Tensor<T, B>& probabilities() const { return p_; }

  // Assigns the conv_mask gradients from partial sums dw_rows[r, c] (summed over r), e.g. one
  // row per (sample, tile) of sum_s dlogit[s] x[c, s].
  // The bias gradient is exactly 0 (softmax is shift invariant), so it is written as 0.
  void assign_mask_gradients(const Tensor<T, B>& dw_rows) {
    if (pooling_ != Pooling::Attention) return;
    const index_t rows = dw_rows.size(0), c = channels_;
    const T* r = dw_rows.data();
    T* dw = mask_weight_.grad.data();
    for_each_index(B{}, c, [=] GCNET_HD(index_t ch) {
      T acc = 0;
      for (index_t k = 0; k < rows; ++k) acc += r[k * c + ch];
      dw[ch] = acc;
    });
    fill(mask_bias_.grad, T(0));
  }

  Param<T, B>& mask_weight_param() { return mask_weight_; }
  Param<T, B>& mask_bias_param() { return mask_bias_; }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    if (pooling_ != Pooling::Attention) return;
    f(prefix + "conv_mask.weight", mask_weight_);
    f(prefix + "conv_mask.bias", mask_bias_);
  }
  index_t parameter_count() const { return pooling_ == Pooling::Attention ? channels_ + 1 : 0; }
  // Attention: logits 2CS+S, softmax ~3S, weighted sum 2CS. Average: CS adds + C divisions.
  double flops(index_t n, index_t s) const {
    const double c = static_cast<double>(channels_), sd = static_cast<double>(s), nd = static_cast<double>(n);
    return pooling_ == Pooling::Attention ? nd * (4.0 * c * sd + 4.0 * sd) : nd * (c * sd + c);
  }

 private:
  index_t channels_;
  Pooling pooling_;
  Param<T, B> mask_weight_, mask_bias_;
  ScratchTensor<T, B> p_;                          // the softmax, saved for backward
  ScratchTensor<T, B> partial_, stats_, tile_w_;  // per tile: partial contexts, max and sum; tile weights
};

}  // namespace blocks
}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet::blocks {
GCNET_EXTERN_CLASS(ContextModeling)
}  // namespace gcnet::blocks
