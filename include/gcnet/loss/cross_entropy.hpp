#pragma once
// Softmax cross-entropy over the class dim (dim 1) of logits [N, K] or [N, K, H, W], with
// integer targets [N] or [N, H, W] (torch.nn.CrossEntropyLoss and mmseg's cross_entropy).
// Per element r with target t:  l[r] = w[t] * (logsumexp(x[r, :]) - x[r, t]),  where w is
// Options::class_weight (all 1 when empty); elements whose target is ignore_index give 0.
// Reductions (see reduction.hpp):
//   mean      PyTorch: sum(l) / sum(w[t]) over non-ignored elements (0 when all are
//             ignored, where PyTorch gives NaN: a crop of only ignored pixels must not stop
//             training).
//   mean_all  mmseg's default (avg_non_ignore=False): sum(l) / number of all elements.
//   sum, none as PyTorch (none: losses() holds l shaped like the target).
// The result and the gradient are multiplied by Options::loss_weight (mmseg aux head: 0.4).
// forward() returns the loss and keeps the softmax; backward() adds scale * dloss/dlogits.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "gcnet/core/state.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/core/tensor.hpp"
#include "gcnet/core/transfer.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/kernels/softmax_exp.hpp"
#include "gcnet/loss/reduction.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class CrossEntropyLoss {
 public:
  struct Options {
    std::int64_t ignore_index = -100;
    Reduction reduction = Reduction::mean;
    std::vector<double> class_weight = {};  // one per class; empty: all 1
    double loss_weight = 1.0;
  };
  CrossEntropyLoss() : CrossEntropyLoss(Options{}) {}
  explicit CrossEntropyLoss(Options o) : opt_(std::move(o)) {
    for (double v : opt_.class_weight)
      GCNET_CHECK(std::isfinite(v) && v >= 0, describe(), ": class_weight entries must be finite and >= 0, got ", v);
    if (!opt_.class_weight.empty()) {
      Tensor<T, Cpu> h(Shape{static_cast<index_t>(opt_.class_weight.size())});
      for (index_t i = 0; i < h.numel(); ++i) h[i] = static_cast<T>(opt_.class_weight[static_cast<std::size_t>(i)]);
      class_weight_ = to_backend<B>(h);
    }
  }

  std::string describe() const {
    std::ostringstream os;
    os << "CrossEntropyLoss(ignore_index=" << opt_.ignore_index << ", reduction=" << reduction_name(opt_.reduction);
    if (!opt_.class_weight.empty()) os << ", class_weight=" << opt_.class_weight.size() << " entries";
    if (opt_.loss_weight != 1.0) os << ", loss_weight=" << opt_.loss_weight;
    os << ")";
    return os.str();
  }

  T forward(const Tensor<T, B>& logits, const Tensor<std::int64_t, B>& target) {
    const Shape& s = logits.shape();
    GCNET_CHECK(s.rank() >= 2 && !s.has_zero(), "CrossEntropyLoss: logits must be [N, K, ...], got shape ", s.str());
    Shape ts{s[0]};
    for (int d = 2; d < s.rank(); ++d) ts.push_back(s[d]);
    require_shape(target, ts, "CrossEntropyLoss", "target");
    require_contiguous(logits, "CrossEntropyLoss", "logits");
    require_contiguous(target, "CrossEntropyLoss", "target");
    const index_t n = s[0], k = s[1], inner = s.numel() / (n * k), rows = n * inner;
    GCNET_CHECK(opt_.class_weight.empty() || static_cast<index_t>(opt_.class_weight.size()) == k, describe(),
                ": class_weight has ", opt_.class_weight.size(), " entries, logits have ", k, " classes (shape ",
                s.str(), ")");
    // Targets are validated first so that a bad label never reads outside the class dim.
    static_assert(std::is_same_v<B, Cpu>, "CrossEntropyLoss: only the CPU backend is implemented so far");
    const std::int64_t* t = target.data();
    const std::int64_t ignore = opt_.ignore_index;
    for (index_t r = 0; r < rows; ++r)
      GCNET_CHECK(t[r] == ignore || (t[r] >= 0 && t[r] < k), "CrossEntropyLoss: target ", t[r], " at element ", r,
                  " is outside [0, ", k, ") and is not ignore_index ", ignore);
    prob_.resize(s);
    row_loss_.resize(ts);
    row_weight_.resize(Shape{rows});
    const T* x = logits.data();
    const T* cw = class_weight_.defined() ? class_weight_.data() : nullptr;
    T* p = prob_.data();
    T* rl = row_loss_.data();
    T* rw = row_weight_.data();
    const T lw = static_cast<T>(opt_.loss_weight);
    // One row = the K logits of one (sample, pixel); classes are `inner` apart. The loops run
    // over a tile of kTile consecutive pixels of one sample, class by class, so that every inner
    // loop is contiguous and vectorizes (softmax_exp is branch-free).
    const index_t tiles_per_sample = (inner + kTile - 1) / kTile;
    for_each_index(Cpu{}, n * tiles_per_sample, [=](index_t tile) {
      const index_t b = tile / tiles_per_sample, j0 = (tile % tiles_per_sample) * kTile;
      const index_t len = std::min(kTile, inner - j0);
      const T* xb = x + b * k * inner + j0;
      T* pb = p + b * k * inner + j0;
      T m[kTile], sum[kTile], inv[kTile];
      for (index_t j = 0; j < len; ++j) m[j] = xb[j];
      for (index_t c = 1; c < k; ++c)
        for (index_t j = 0; j < len; ++j) m[j] = xb[c * inner + j] > m[j] ? xb[c * inner + j] : m[j];
      for (index_t j = 0; j < len; ++j) sum[j] = T(0);
      for (index_t c = 0; c < k; ++c) {
        const T* xc = xb + c * inner;
        T* pc = pb + c * inner;
#pragma omp simd
        for (index_t j = 0; j < len; ++j) {
          const T e = detail::softmax_exp(xc[j] - m[j]);
          pc[j] = e;
          sum[j] += e;
        }
      }
      for (index_t j = 0; j < len; ++j) inv[j] = T(1) / sum[j];
      for (index_t c = 0; c < k; ++c)
        for (index_t j = 0; j < len; ++j) pb[c * inner + j] *= inv[j];
      for (index_t j = 0; j < len; ++j) {
        const index_t r = b * inner + j0 + j;
        const std::int64_t label = t[r];
        if (label == ignore) {
          rl[r] = T(0);
          rw[r] = T(0);
        } else {  // -log p[label] = logsumexp - x[label]
          rw[r] = cw ? cw[label] : T(1);
          rl[r] = lw * rw[r] * (m[j] + std::log(sum[j]) - xb[label * inner + j]);
        }
      }
    }, tile_grain(k));
    target_ = target;
    double total = 0, weight_sum = 0;
    count_ = 0;
    for (index_t r = 0; r < rows; ++r) {
      total += static_cast<double>(rl[r]);
      weight_sum += static_cast<double>(rw[r]);
      count_ += t[r] != ignore;
    }
    switch (opt_.reduction) {
      case Reduction::mean: divisor_ = weight_sum; break;
      case Reduction::mean_all: divisor_ = static_cast<double>(rows); break;
      default: divisor_ = 1; break;
    }
    return divisor_ > 0 ? static_cast<T>(total / divisor_) : T(0);
  }

  // dlogits += scale * dloss/dlogits (dlogits shaped like the logits); for reduction none
  // the gradient of the sum of the per-element losses.
  void backward(Tensor<T, B>& dlogits, T scale = T(1)) const {
    require_shape(dlogits, prob_.shape(), "CrossEntropyLoss", "dlogits");
    if (!(divisor_ > 0)) return;
    accumulate(dlogits, nullptr, static_cast<T>(static_cast<double>(scale) * opt_.loss_weight / divisor_));
  }
  // Reduction none: dlogits += sum over elements of dlosses[r] * dl[r]/dlogits.
  void backward(Tensor<T, B>& dlogits, const Tensor<T, B>& dlosses) const {
    GCNET_CHECK(opt_.reduction == Reduction::none, describe(),
                ": backward with per-element gradients needs reduction none");
    require_shape(dlogits, prob_.shape(), "CrossEntropyLoss", "dlogits");
    require_shape(dlosses, row_loss_.shape(), "CrossEntropyLoss", "dlosses");
    accumulate(dlogits, dlosses.data(), static_cast<T>(opt_.loss_weight));
  }

  const Tensor<T, B>& probabilities() const { return prob_; }
  // Per-element losses of the last forward, shaped like the target (weights applied).
  const Tensor<T, B>& losses() const { return row_loss_; }
  // Number of non-ignored elements in the last forward.
  index_t count() const { return count_; }

 private:
  // d[r, c] += coef * upstream[r] * w[t] * (p[r, c] - [c == t]).
  void accumulate(Tensor<T, B>& dlogits, const T* upstream, T coef) const {
    require_contiguous(dlogits, "CrossEntropyLoss", "dlogits");
    const Shape& s = prob_.shape();
    const index_t n = s[0], k = s[1], inner = s.numel() / (n * k);
    const T* p = prob_.data();
    const T* rw = row_weight_.data();
    const std::int64_t* t = target_.data();
    T* d = dlogits.data();
    const index_t tiles_per_sample = (inner + kTile - 1) / kTile;
    for_each_index(Cpu{}, n * tiles_per_sample, [=](index_t tile) {
      const index_t b = tile / tiles_per_sample, j0 = (tile % tiles_per_sample) * kTile;
      const index_t len = std::min(kTile, inner - j0), r0 = b * inner + j0;
      T w[kTile];  // 0 for an ignored element (or a zero weight)
      for (index_t j = 0; j < len; ++j) w[j] = coef * rw[r0 + j] * (upstream ? upstream[r0 + j] : T(1));
      for (index_t c = 0; c < k; ++c) {
        const T* pc = p + (b * k + c) * inner + j0;
        T* dc = d + (b * k + c) * inner + j0;
        for (index_t j = 0; j < len; ++j) dc[j] += w[j] * pc[j];
      }
      T* db = d + b * k * inner + j0;
      for (index_t j = 0; j < len; ++j)  // the target's -1 (w is 0 where the target is ignored)
        if (w[j] != T(0)) db[t[r0 + j] * inner + j] -= w[j];
    }, tile_grain(k));
  }

  // Pixels per tile of the CPU loops (a tile's row maxima and sums stay on the stack).
  static constexpr index_t kTile = 256;
  // Tiles worth a parallel region.
  static index_t tile_grain(index_t k) { return std::max<index_t>(1, kParallelGrain / (kTile * k)); }

  Options opt_;
  StateTensor<T, B> class_weight_;
  ScratchTensor<T, B> prob_, row_loss_, row_weight_;
  ScratchTensor<std::int64_t, B> target_;
  index_t count_ = 0;
  double divisor_ = 0;
};

}  // namespace gcnet
