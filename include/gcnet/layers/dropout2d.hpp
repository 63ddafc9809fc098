#pragma once
// Dropout2d as torch.nn.Dropout2d on NCHW input: in training each (n, c) channel is zeroed
// with probability p and kept ones are scaled by 1/(1-p); in eval it is the identity.
// The mask comes from Philox stream (seed, forward counter): the k-th channel of forward
// number t draws words 2k and 2k+1 of that stream, so a mask is reproducible from the seed
// on any backend and thread count, and reseed() lets tests repeat the same mask.
#include <cstdint>
#include <optional>
#include <sstream>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/core/context.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class Dropout2d {
 public:
  using value_type = T;
  using backend_type = B;

  // Without a seed, one is drawn from global_rng() (reproducible via manual_seed).
  explicit Dropout2d(double p = 0.5, std::optional<std::uint64_t> seed = std::nullopt) : p_(p) {
    GCNET_CHECK(p >= 0 && p < 1, "Dropout2d: dropout probability p must be in [0, 1), got ", p);
    std::ostringstream os;
    os << "Dropout2d(p=" << p << ")";
    name_ = os.str();
    if (seed) {
      seed_ = *seed;
    } else {
      const std::uint64_t hi = global_rng().next_u32();
      seed_ = (hi << 32) | global_rng().next_u32();
    }
  }

  Shape setup(const Shape& in) {
    require_nchw(in, name_);
    return in;
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    GCNET_CHECK(x.is_contiguous(), name_, ": input of shape ", x.shape().str(), " must be contiguous");
    y.resize(setup(x.shape()));
    masked_ = training_ && p_ > 0;
    const T* xp = x.data();
    T* yp = y.data();
    if (!masked_) {
      for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) { yp[i] = xp[i]; });
      return;
    }
    const index_t HW = x.size(2) * x.size(3);
    mask_.resize(Shape{x.size(0), x.size(1)});
    T* m = mask_.data();
    const std::uint64_t seed = seed_, stream = next_stream();
    const double p = p_;
    const T keep = static_cast<T>(1.0 / (1.0 - p_));
    for_each_index(B{}, mask_.numel(), [=] GCNET_HD(index_t k) {
      const std::uint64_t w = 2 * static_cast<std::uint64_t>(k);
      const double u = Philox::uniform01(Philox::at(seed, stream, w), Philox::at(seed, stream, w + 1));  // (0, 1]
      m[k] = u > p ? keep : T(0);
    });
    for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) { yp[i] = xp[i] * m[i / HW]; });
  }

  // dx += dy * mask of the last forward (dx += dy when it did not drop).
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(name_, x, y, dy, dx);
    const T* g = dy.data();
    T* d = dx.data();
    if (!masked_) {
      for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) { d[i] += g[i]; });
      return;
    }
    GCNET_CHECK(mask_.shape() == Shape({x.size(0), x.size(1)}), name_,
                ": backward needs the forward pass of this input first");
    const index_t HW = x.size(2) * x.size(3);
    const T* m = mask_.data();
    for_each_index(B{}, x.numel(), [=] GCNET_HD(index_t i) { d[i] += g[i] * m[i / HW]; });
  }

  std::string describe() const { return name_; }
  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }

  // The Context's random stream (core/context.hpp): masks then follow (ctx seed, step), so a
  // resumed training run draws the same ones; without one the layer's own counter does.
  void use_context(const Context& ctx) {
    if (!ctx.rng) {
      step_ = std::nullopt;
      return;
    }
    if (!step_ || step_->seed != ctx.rng->seed || step_->step != ctx.rng->step) in_step_ = 0;
    step_ = ctx.rng;
  }

  double p() const { return p_; }
  // Restarts the mask stream: the next training forward uses the first mask of `seed`.
  void reseed(std::uint64_t seed) {
    seed_ = seed;
    counter_ = 0;
  }
  std::uint64_t seed() const { return seed_; }
  std::uint64_t counter() const { return counter_; }  // training forwards since (re)seeding
  // The [N, C] channel multipliers (0 or 1/(1-p)) of the last training forward.
  const Tensor<T, B>& mask() const { return mask_; }

 private:
  double p_;
  std::string name_;
  // The mask stream of the next training forward: from the Context's step (and the forwards
  // already made in it), else the counter.
  std::uint64_t next_stream() {
    if (!step_) return counter_++;
    std::uint64_t z = step_->seed * 0x9E3779B97F4A7C15ull ^ (step_->step + 0x632BE59BD9B4E019ull) ^ (in_step_++ << 48);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) | (1ull << 63);  // the counter's streams stay below 2^63
  }

  std::uint64_t seed_ = 0, counter_ = 0;
  std::optional<RngStream> step_;
  std::uint64_t in_step_ = 0;
  bool training_ = true;
  bool masked_ = false;  // whether the last forward applied a mask
  ScratchTensor<T, B> mask_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(Dropout2d)
}  // namespace gcnet
