#pragma once
// The GC block's CPU fast path: its whole forward in ONE parallel region (a team), for inputs
// small enough that each step of the generic forward (a few microseconds) would cost about what
// its fork/join does. GlobalContextBlock::forward (blocks/global_context.hpp) calls forward()
// below first; it returns false, and the block runs its generic forward, unless the path
// applies (the CPU, and ForwardPath::Auto with a small x, or ForwardPath::SingleRegion).
//
// What the team computes is what the generic forward computes, from the same parameters (the
// mask weight of ContextModeling, the Conv2d and LayerNorm layers of each ChannelTransform; a
// Conv2d weight [out, in, 1, 1] is an [out, in] matrix), and it leaves the same saved state for
// the generic backward: the softmax, ctx, each transform's output and hidden activations (its
// LayerNorm and ReLU run as layers, by one member), and the scale.
//
// Split: with a batch that is a multiple of the team, each member pools whole images over every
// channel (the logits in one pass over its image, sums in registers on AVX-512, then the weighted
// sum from its core's cache) and later writes those images' output; else each member owns a
// range of channels of every image, and the logits' partial sums are exchanged after a barrier.
// The transforms are split by channels either way: a member reads only its slices of the weights
// (the first conv's columns, the last conv's rows), so across calls they stay in its cache; one
// barrier after the first conv's partial sums, one after the hidden vector. Results agree with
// the generic forward to rounding and are deterministic for a given thread count.
#include <algorithm>
#include <limits>

#include "gcnet/blocks/channel_transform.hpp"
#include "gcnet/blocks/context_modeling.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/cpu/reductions.hpp"
#include "gcnet/kernels/softmax_exp.hpp"
#include "gcnet/layers/sigmoid.hpp"

namespace gcnet::cpu {

// How GlobalContextBlock::forward runs on the CPU (other backends: always Generic).
//   Generic       the backend-generic forward: one parallel loop per step (context tiles, their
//                 combination, each layer of the transform, the fused output write); x is read
//                 from memory once, in tiles re-read from cache.
//   SingleRegion  this file's team forward. It reads its part of x three times (logits, context,
//                 output write); what a thread touches stays in its core's cache between calls.
//   Auto          SingleRegion when each thread's share of x is at most kSingleRegionMaxBytes,
//                 about one core's L2 (2 MB here), so the second and third reads of x come mostly
//                 from cache, else Generic. (Measured on 2 threads, batch 2: 512@28, 1.6 MB per
//                 thread, is faster in one region; 256@56, 3.2 MB, generic.)
enum class ForwardPath { Auto, SingleRegion, Generic };
inline constexpr index_t kSingleRegionMaxBytes = index_t{2} << 20;

// Channels [c0, c1) of a team member: equal shares, edges on multiples of 16 channels so that
// members write disjoint cache lines of the [N, C] vectors (with few channels some get none).
inline std::pair<index_t, index_t> channel_share(index_t channels, const TeamMember& me) {
  auto edge = [&](int r) {
    return r >= me.size ? channels : std::min(channels, (channels * r / me.size + 8) / 16 * 16);
  };
  return {edge(me.rank), edge(me.rank + 1)};
}

// The block's parts and the state its backward reads (all [N, C, 1, 1] but scale [N, C]).
template <Scalar T>
struct GlobalContextParts {
  blocks::ContextModeling<T, Cpu>& context;
  blocks::ChannelTransform<T, Cpu>* add;  // nullptr when the fusion has no add branch
  blocks::ChannelTransform<T, Cpu>* mul;  // nullptr when the fusion has no mul branch
  Tensor<T, Cpu>& pooled;  // the pooled context ctx
  Tensor<T, Cpu>& add_out;
  Tensor<T, Cpu>& mul_out;
  Tensor<T, Cpu>& scale;
};

template <Scalar T>
class GlobalContextTeam {
 public:
  // Runs the forward when the path applies and returns true; false leaves everything to the
  // generic forward. x is contiguous and y sized (the block checked both).
  bool forward(ForwardPath path, const Tensor<T, Cpu>& x, Tensor<T, Cpu>& y, const GlobalContextParts<T>& b) {
    if (path == ForwardPath::Generic) return false;
    const int team = team_size(Cpu{});
    const bool small = static_cast<std::size_t>(x.numel()) * sizeof(T) <=
                       static_cast<std::size_t>(kSingleRegionMaxBytes) * static_cast<std::size_t>(team);
    if (path == ForwardPath::Auto && !small) return false;
    run(x, y, b, team);
    return true;
  }

 private:
  void run(const Tensor<T, Cpu>& x, Tensor<T, Cpu>& y, const GlobalContextParts<T>& b, int team) {
    const index_t n = x.size(0), c = x.size(1), s = x.size(2) * x.size(3), stride = team_stride(n * s);
    const bool attention = b.context.pooling() == Pooling::Attention;
    b.pooled.resize(Shape{n, c, 1, 1});
    b.scale.resize(Shape{n, c});
    if (attention) {
      b.context.probabilities().resize(Shape{n, s});
      logit_parts_.resize(Shape{team, stride});
      probs_.resize(Shape{std::max(team - 1, 1), stride});
    } else {
      average_.resize(Shape{s});
      fill(average_, T(1) / T(s));
    }
    prepare(b.add, b.add_out, 0, n, c, team);
    prepare(b.mul, b.mul_out, 1, n, c, team);
    const T* xp = x.data();
    T *yp = y.data(), *cx = b.pooled.data(), *sc = b.scale.data();
    const T* shift = b.add ? b.add_out.data() : nullptr;
    const T* mp = b.mul ? b.mul_out.data() : nullptr;
    auto fuse_rows = [=](index_t k, index_t ch0, index_t ch1) {
      for (index_t ch = ch0; ch < ch1; ++ch) {
        const index_t row = k * c + ch;
        const T a = mp ? stable_sigmoid(mp[row]) : T(1), add = shift ? shift[row] : T(0);
        sc[row] = a;
        const T* xr = xp + row * s;
        T* yr = yp + row * s;
        for (index_t j = 0; j < s; ++j) yr[j] = xr[j] * a + add;
      }
    };
    // Image split when every member gets as many whole images: the context then needs no
    // exchange of partial logits, and x[k] is read by one core only (twice for the context, once
    // for the output), so it stays in that core's cache. Else the channel split.
    const bool by_image = n % team == 0;
    run_team(Cpu{}, team, [&](const TeamMember& me) {
      const auto [c0, c1] = channel_share(c, me);
      if (by_image) {
        context_images(b.context, xp, n, c, s, cx, me);
        me.barrier();
      } else {
        context_channels(b.context, xp, n, c, s, cx, c0, c1, me);
      }
      if (b.add) transform(*b.add, 0, cx, n, b.add_out.data(), c0, c1, me);
      if (b.mul) transform(*b.mul, 1, cx, n, b.mul_out.data(), c0, c1, me);
      if (by_image) {
        me.barrier();  // every channel of the member's images has its transform outputs
        for (index_t k = me.rank; k < n; k += me.size) fuse_rows(k, 0, c);
      } else {
        for (index_t k = 0; k < n; ++k) fuse_rows(k, c0, c1);
      }
    });
  }

  // Sizes what a transform's team form writes: the output, the first conv's output (bottleneck)
  // and the partial sums of each member.
  void prepare(blocks::ChannelTransform<T, Cpu>* t, Tensor<T, Cpu>& out, int slot, index_t n, index_t c, int team) {
    if (!t) return;
    out.resize(Shape{n, c, 1, 1});
    const index_t rows = t->first().options().out;
    if (t->bottleneck()) t->first_output().resize(Shape{n, rows, 1, 1});
    parts_[slot].resize(Shape{team, team_stride(n * rows)});
  }

  // Attention or average pooling of whole images k = rank, rank + size, ... over every channel:
  // attention takes the logits in one pass over x[k], their softmax (kept for backward), then the
  // weighted sum in a second pass, from cache when x[k] fits the core's L2. No barrier: the
  // caller waits before reading ctx rows of other members.
  void context_images(blocks::ContextModeling<T, Cpu>& context, const T* x, index_t n, index_t c, index_t s, T* ctx,
                      const TeamMember& me) {
    const bool attention = context.pooling() == Pooling::Attention;
    for (index_t k = me.rank; k < n; k += me.size) {
      const T* xk = x + k * c * s;
      const T* pk = average_.data();
      if (attention) {
        T* p = context.probabilities().data() + k * s;
        weighted_row_sum(xk, s, context.mask_weight_param().value.data(), c, s, p);
        softmax_row(p, s, context.mask_bias_param().value.data()[0]);
        pk = p;
      }
      dot_rows_batch(xk, s, c, pk, s, 1, s, static_cast<const T*>(nullptr), ctx + k * c, c);
    }
  }

  // ctx[:, c0:c1] for the member's own channels. Attention needs every channel for the logits:
  // each member sums its channels' share of them, and after a barrier every member reduces the
  // shares and takes the softmax itself (n*s values; member 0's copy is kept for backward) and
  // dots it with its own rows of x. Average pooling needs no barrier. Both pool with
  // dot_rows_batch, average pooling as the dot with 1/s: it keeps 16 rows' sums in flight, where a
  // plain row sum is one dependent chain of adds.
  void context_channels(blocks::ContextModeling<T, Cpu>& context, const T* x, index_t n, index_t c, index_t s, T* ctx,
                        index_t c0, index_t c1, const TeamMember& me) {
    if (context.pooling() == Pooling::Average) {
      for (index_t k = 0; k < n; ++k)
        dot_rows_batch(x + (k * c + c0) * s, s, c1 - c0, average_.data(), s, 1, s, static_cast<const T*>(nullptr),
                       ctx + k * c + c0, c);
      return;
    }
    const index_t stride = team_stride(n * s);
    T* part = logit_parts_.data() + me.rank * stride;
    for (index_t k = 0; k < n; ++k)
      weighted_row_sum(x + (k * c + c0) * s, s, context.mask_weight_param().value.data() + c0, c1 - c0, s,
                       part + k * s);
    me.barrier();
    T* p = me.rank == 0 ? context.probabilities().data() : probs_.data() + (me.rank - 1) * stride;
    const T bias = context.mask_bias_param().value.data()[0];
    for (index_t k = 0; k < n; ++k) {
      T* pk = p + k * s;
      sum_partials(logit_parts_.data() + k * s, me.size, stride, s, static_cast<const T*>(nullptr), pk);
      softmax_row(pk, s, bias);
      dot_rows_batch(x + (k * c + c0) * s, s, c1 - c0, pk, s, 1, s, static_cast<const T*>(nullptr), ctx + k * c + c0,
                     c);
    }
  }

  // One member's share of a transform: it reads ctx[:, c0:c1] (its own channels) and writes
  // out[:, c0:c1]. The first conv's partial sums over the member's input channels go to its row
  // of parts; after a barrier, a bottleneck's member 0 reduces them into the first conv's output
  // and runs the LayerNorm and ReLU layers (finish_hidden), and after a second barrier every
  // member multiplies the hidden vector by its rows of the last conv. A single conv needs no
  // hidden vector: each member reduces the partial sums of its own output channels.
  void transform(blocks::ChannelTransform<T, Cpu>& t, int slot, const T* ctx, index_t n, T* out, index_t c0, index_t c1,
                 const TeamMember& me) {
    Conv2d<T, Cpu>& first = t.first();
    const index_t in = first.options().in, rows = first.options().out, stride = team_stride(n * rows);
    T* parts = parts_[slot].data();
    const T* w1 = first.weight().value.data();  // [rows, in]
    const T* b1 = first.bias()->value.data();
    dot_rows_batch(w1 + c0, in, rows, ctx + c0, in, n, c1 - c0, static_cast<const T*>(nullptr),
                   parts + me.rank * stride, rows);
    me.barrier();
    if (!t.bottleneck()) {
      for (index_t k = 0; k < n; ++k)
        sum_partials(parts + k * rows + c0, me.size, stride, c1 - c0, b1 + c0, out + k * rows + c0);
      return;
    }
    if (me.rank == 0) {
      sum_partials(parts, me.size, stride, n * rows, static_cast<const T*>(nullptr), t.first_output().data());
      T* h1 = t.first_output().data();
      for (index_t k = 0; k < n; ++k)
        for (index_t o = 0; o < rows; ++o) h1[k * rows + o] += b1[o];
      t.finish_hidden();  // LayerNorm and ReLU, as layers (serial inside the region)
    }
    me.barrier();
    Conv2d<T, Cpu>& second = *t.second();
    const index_t planes = second.options().in, channels = second.options().out;
    dot_rows_batch(second.weight().value.data() + c0 * planes, planes, c1 - c0, t.hidden().data(), planes, n, planes,
                   second.bias()->value.data() + c0, out + c0, channels);
  }

  // row = softmax(row + bias) in place. Sequential max and sum, so every member computing the
  // same row gets the same bits. A NaN logit makes the row NaN, as in PyTorch.
  static void softmax_row(T* row, index_t s, T bias) {
    T m = std::numeric_limits<T>::lowest();
    for (index_t j = 0; j < s; ++j) {
      row[j] += bias;
      m = row[j] > m ? row[j] : m;
    }
    for (index_t j = 0; j < s; ++j) row[j] = gcnet::detail::softmax_exp(row[j] - m);
    T z = 0;
    for (index_t j = 0; j < s; ++j) z += row[j];
    const T inv = T(1) / z;
    for (index_t j = 0; j < s; ++j) row[j] *= inv;
  }

  ScratchTensor<T, Cpu> logit_parts_;  // attention, channel split: each member's share of the logits
  ScratchTensor<T, Cpu> probs_;        // attention, channel split: the softmax of members > 0
  ScratchTensor<T, Cpu> average_;      // average pooling: 1 / s
  ScratchTensor<T, Cpu> parts_[2];     // add and mul transforms: each member's partial sums
};

}  // namespace gcnet::cpu
