#pragma once
// Softmax cross-entropy over the class dim (dim 1) of logits [N, K] or [N, K, H, W], with
// integer targets [N] or [N, H, W] (torch.nn.CrossEntropyLoss, reduction 'mean' over the
// non-ignored elements; elements whose target is ignore_index contribute nothing).
// forward() returns the loss and keeps the softmax; backward() adds dloss/dlogits.
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "gcnet/core/tensor.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class CrossEntropyLoss {
 public:
  struct Options {
    std::int64_t ignore_index = -100;
  };
  CrossEntropyLoss() = default;
  explicit CrossEntropyLoss(Options o) : opt_(o) {}

  T forward(const Tensor<T, B>& logits, const Tensor<std::int64_t, B>& target) {
    const Shape& s = logits.shape();
    GCNET_CHECK(s.rank() >= 2 && !s.has_zero(), "CrossEntropyLoss: logits must be [N, K, ...], got shape ", s.str());
    Shape ts{s[0]};
    for (int d = 2; d < s.rank(); ++d) ts.push_back(s[d]);
    require_shape(target, ts, "CrossEntropyLoss", "target");
    require_contiguous(logits, "CrossEntropyLoss", "logits");
    const index_t n = s[0], k = s[1], inner = s.numel() / (n * k), rows = n * inner;
    prob_.resize(s);
    row_loss_.resize(Shape{rows});
    const T* x = logits.data();
    const std::int64_t* t = target.data();
    T* p = prob_.data();
    T* rl = row_loss_.data();
    const std::int64_t ignore = opt_.ignore_index;
    // One row = the K logits of one (sample, pixel); classes are `inner` apart.
    for_each_index(B{}, rows, [=] GCNET_HD(index_t r) {
      const index_t b = r / inner, j = r % inner;
      const T* xr = x + b * k * inner + j;
      T* pr = p + b * k * inner + j;
      T m = xr[0];
      for (index_t c = 1; c < k; ++c) m = xr[c * inner] > m ? xr[c * inner] : m;
      T sum = 0;
      for (index_t c = 0; c < k; ++c) sum += std::exp(xr[c * inner] - m);
      const T lse = m + std::log(sum);
      for (index_t c = 0; c < k; ++c) pr[c * inner] = std::exp(xr[c * inner] - lse);
      const std::int64_t label = t[r];
      if (label == ignore) {
        rl[r] = T(0);
      } else if (label < 0 || label >= k) {
        rl[r] = T(0);  // reported below
      } else {
        rl[r] = lse - xr[label * inner];
      }
    }, 256);
    target_ = target;
    count_ = 0;
    T total = 0;
    // The reduction runs on the host: the CUDA loss arrives with the CUDA layers.
    static_assert(std::is_same_v<B, Cpu>, "CrossEntropyLoss: only the CPU backend is implemented so far");
    for (index_t r = 0; r < rows; ++r) {
      GCNET_CHECK(t[r] == ignore || (t[r] >= 0 && t[r] < k), "CrossEntropyLoss: target ", t[r], " at element ", r,
                  " is outside [0, ", k, ") and is not ignore_index ", ignore);
      count_ += t[r] != ignore;
      total += rl[r];
    }
    return count_ ? total / static_cast<T>(count_) : T(0);
  }

  // dlogits += scale * dloss/dlogits (dlogits shaped like the logits).
  void backward(Tensor<T, B>& dlogits, T scale = T(1)) const {
    require_shape(dlogits, prob_.shape(), "CrossEntropyLoss", "dlogits");
    if (!count_) return;
    const Shape& s = prob_.shape();
    const index_t k = s[1], inner = s.numel() / (s[0] * k), rows = s[0] * inner;
    const T* p = prob_.data();
    const std::int64_t* t = target_.data();
    T* d = dlogits.data();
    const T w = scale / static_cast<T>(count_);
    const std::int64_t ignore = opt_.ignore_index;
    for_each_index(B{}, rows, [=] GCNET_HD(index_t r) {
      if (t[r] == ignore) return;
      const index_t b = r / inner, j = r % inner, base = b * k * inner + j;
      for (index_t c = 0; c < k; ++c) d[base + c * inner] += w * (p[base + c * inner] - (c == t[r] ? T(1) : T(0)));
    }, 256);
  }

  const Tensor<T, B>& probabilities() const { return prob_; }

 private:
  Options opt_;
  Tensor<T, B> prob_, row_loss_;
  Tensor<std::int64_t, B> target_;
  index_t count_ = 0;
};

}  // namespace gcnet
