#pragma once
// SyncBatchNorm2d as torch.nn.SyncBatchNorm (PyTorch 1.13, gcnet-reference.md §8.1): in
// training with more than one rank, batch statistics are those of the batch concatenated
// over all ranks of the communicator.
//   forward:  per rank mean and invstd (biased) of each channel and the count N*H*W are
//             all-gathered and merged in rank order (Chan's parallel variance); the output is
//             normalized with the global mean and biased global variance; running_mean gets
//             the global mean, running_var the UNBIASED global variance.
//   backward: per rank [sum(dy), sum(dy*(x-mean))] are all-reduced in one call;
//             dx = (dy - sum_dy/N - (x-mean)*invstd^2*sum_dy_xmu/N) * weight * invstd.
//             grad_weight / grad_bias stay LOCAL, as in PyTorch: the data-parallel gradient
//             all-reduce (dist/data_parallel.hpp) averages them with every other gradient.
// A rank may hold an empty batch (N = 0): it contributes count 0 and still joins the
// collectives. With one rank or in eval mode it is BatchNorm2d (it holds one, which owns the
// parameters and buffers: the same state-dict names).
//
// Every rank must call forward and backward together. Before merging, the ranks compare
// their channel counts with a small all-gather and, if they differ, ALL of them throw an
// error naming the counts instead of blocking in a mismatched collective.
//
// The process group: the one given to the constructor, else the Context's communicator
// (core/context.hpp), which every module hands to the layers below it (use_context). A
// SyncBatchNorm2d that was given neither cannot train: its forward in training mode says so.
//
// Conversions keeping the parameters and buffers: to_sync_batch_norm(bn[, comm]),
// to_batch_norm(sync), to_frozen_batch_norm(sync), batch_norm_from_frozen(frozen).
#include <cmath>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/core/context.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/dist/communicator.hpp"
#include "gcnet/dist/tensor_collectives.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/kernels/channel_affine.hpp"
#include "gcnet/kernels/channel_stats.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/frozen_batch_norm2d.hpp"

namespace gcnet {

namespace detail {
// Per channel of x [N, C, HW]: stats = [mean(C), invstd(C), count]. Empty batch: zeros.
template <class T, class B>
void sync_bn_local_stats(B, const T* xp, index_t N, index_t C, index_t HW, double eps, T* stats) {
  const index_t M = N * HW;
  for_each_index_weighted(B{}, C, 2 * M + 1, [=] GCNET_HD(index_t c) {
    if (M == 0) {
      stats[c] = T(0);
      stats[C + c] = T(0);
      return;
    }
    const MeanVar st = channel_mean_var(xp, N, C, c, HW);
    stats[c] = static_cast<T>(st.mean);
    stats[C + c] = static_cast<T>(1.0 / std::sqrt(st.var + eps));
  });
  for_each_index(B{}, 1, [=] GCNET_HD(index_t) { stats[2 * C] = static_cast<T>(M); });
}

// Merges the gathered per-rank stats [K][2C+1] in rank order (PyTorch's
// batch_norm_gather_stats_with_counts), updates the running statistics and writes the
// normalization's mean / invstd and y = x*scale + shift coefficients.
template <class T, class B>
void sync_bn_merge(B, const T* gathered, index_t K, index_t C, double eps, double momentum, bool update, T* rm,
                   T* rv, const T* nbt, const T* w, const T* b, T* mean, T* invstd, T* scale, T* shift) {
  for_each_index(B{}, C, [=] GCNET_HD(index_t c) {
    double n = 0, avg = 0, var_n = 0;
    for (index_t r = 0; r < K; ++r) {
      const T* s = gathered + r * (2 * C + 1);
      const double cnt = s[2 * C];
      if (cnt <= 0) continue;  // an empty rank sent zeros
      const double m = s[c], is = s[C + c];
      const double v = (1.0 / (is * is) - eps) * cnt;
      const double f = 1.0 / (n + cnt);
      var_n += v + (avg - m) * (avg - m) * n * cnt * f;
      avg = n * f * avg + cnt * f * m;
      n += cnt;
    }
    const double istd = 1.0 / std::sqrt(var_n / n + eps);
    if (update) {
      const double f = momentum >= 0 ? momentum : 1.0 / (static_cast<double>(nbt[0]) + 1.0);
      rm[c] = static_cast<T>((1 - f) * rm[c] + f * avg);
      rv[c] = static_cast<T>((1 - f) * rv[c] + f * var_n / (n - 1));
    }
    mean[c] = static_cast<T>(avg);
    invstd[c] = static_cast<T>(istd);
    const double sc = (w ? static_cast<double>(w[c]) : 1.0) * istd;
    scale[c] = static_cast<T>(sc);
    shift[c] = static_cast<T>((b ? static_cast<double>(b[c]) : 0.0) - avg * sc);
  });
}

// red = [sum(dy) (C), sum(dy*(x-mean)) (C)] over this rank's batch.
template <class T, class B>
void sync_bn_backward_reduce(B, const T* xp, const T* g, const T* mean, index_t N, index_t C, index_t HW, T* red) {
  for_each_index_weighted(B{}, C, 2 * N * HW + 1, [=] GCNET_HD(index_t c) {
    const double m = mean[c];
    const GradSums gs = channel_grad_sums(g, xp, m, N, C, c, HW);
    const double sdy = gs.dy, sdyx = gs.dy_xmu;
    red[c] = static_cast<T>(sdy);
    red[C + c] = static_cast<T>(sdyx);
  });
}
}  // namespace detail

template <Scalar T = float, Backend B = Cpu>
class SyncBatchNorm2d {
 public:
  using value_type = T;
  using backend_type = B;
  // backward reads x, dy and what forward saved; of y only its shape (models/res_block.hpp relies
  // on it to run the ReLU after a norm in place).
  static constexpr bool backward_ignores_output = true;

  // Synchronizes over the Context's communicator.
  explicit SyncBatchNorm2d(index_t channels) : SyncBatchNorm2d(BatchNorm2dOptions{.channels = channels}) {}
  // With `comm`, over that group whatever the Context says.
  explicit SyncBatchNorm2d(const BatchNorm2dOptions& o, std::optional<dist::CommunicatorRef> comm = std::nullopt)
      : bn_(checked(o)), comm_(std::move(comm)), pinned_(comm_.has_value()), name_(make_name(o)) {}

  // The Context's process group (unless one was given to the constructor).
  void use_context(const Context& ctx) {
    if (!pinned_) comm_ = ctx.communicator;
  }

  Shape setup(const Shape& in) {
    check_input(in);
    // With a group of several ranks (or none yet), the count is checked over all ranks in forward.
    const bool may_sync = bn_.training() && (!comm_ || comm_->size() > 1 || force_sync_);
    if (!may_sync)
      GCNET_CHECK(!uses_batch_stats() || in.n() * in.h() * in.w() > 1, name_,
                  ": Expected more than 1 value per channel when training, got input of shape ", in.str());
    return in;
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    synced_ = synchronizes();
    if (!synced_) {
      setup(x.shape());
      bn_.forward(x, y);
      return;
    }
    agree_on_channels(x.shape());  // collective: before any local check that could throw on one rank only
    check_input(x.shape());
    GCNET_CHECK(x.is_contiguous(), name_, ": input of shape ", x.shape().str(), " must be contiguous");
    y.resize(x.shape());
    const BatchNorm2dOptions& o = bn_.options();
    const index_t C = o.channels, N = x.size(0), HW = x.size(2) * x.size(3), K = group().size();
    stats_.resize(Shape{2 * C + 1});
    detail::sync_bn_local_stats(B{}, x.data(), N, C, HW, o.eps, stats_.data());
    dist::all_gather(group(), stats_, gathered_);

    // The total count decides (identically on every rank) whether the batch is usable.
    const Tensor<T, Cpu> gathered_host = to_backend<Cpu>(gathered_);
    double total = 0;
    for (index_t r = 0; r < K; ++r) total += static_cast<double>(gathered_host.data()[r * (2 * C + 1) + 2 * C]);
    GCNET_CHECK(total > 1, name_, ": Expected more than 1 value per channel when training, got ", total,
                " values over ", K, " ranks (this rank's input has shape ", x.shape().str(), ")");
    total_count_ = total;

    for (Tensor<T, B>* t : {&mean_, &invstd_, &scale_, &shift_}) t->resize(Shape{C});
    const bool update = o.track_running_stats;
    T* rm = update ? bn_.running_mean().data() : nullptr;
    T* rv = update ? bn_.running_var().data() : nullptr;
    const T* nbt = update ? bn_.num_batches_tracked().data() : nullptr;
    const T* w = o.affine ? bn_.weight()->value.data() : nullptr;
    const T* b = o.affine ? bn_.bias()->value.data() : nullptr;
    detail::sync_bn_merge(B{}, gathered_.data(), K, C, o.eps, o.momentum.value_or(-1.0), update, rm, rv, nbt, w, b,
                          mean_.data(), invstd_.data(), scale_.data(), shift_.data());
    if (update) {
      T* cnt = bn_.num_batches_tracked().data();
      for_each_index(B{}, 1, [=] GCNET_HD(index_t) { cnt[0] += T(1); });
    }
    const T *xp = x.data(), *scale = scale_.data(), *shift = shift_.data();
    T* yp = y.data();
    channel_affine(B{}, xp, scale, shift, yp, N, C, HW);
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    if (!synced_) {
      bn_.backward(x, y, dy, dx);
      return;
    }
    check_backward_args(name_, x, y, dy, dx);
    const BatchNorm2dOptions& o = bn_.options();
    const index_t C = o.channels, N = x.size(0), HW = x.size(2) * x.size(3);
    GCNET_CHECK(mean_.numel() == C && x.rank() == 4 && x.size(1) == C, name_,
                ": backward needs the forward pass of this input first");
    red_.resize(Shape{2 * C});
    detail::sync_bn_backward_reduce(B{}, x.data(), dy.data(), mean_.data(), N, C, HW, red_.data());
    // Local parameter gradients, before the reduction overwrites red_.
    T* wg = o.affine ? bn_.weight()->grad.data() : nullptr;
    T* bg = o.affine ? bn_.bias()->grad.data() : nullptr;
    const T *red = red_.data(), *invstd = invstd_.data();
    for_each_index(B{}, C, [=] GCNET_HD(index_t c) {
      if (wg) wg[c] = red[C + c] * invstd[c];
      if (bg) bg[c] = red[c];
    });
    dist::all_reduce(group(), red_, dist::ReduceOp::Sum);  // [sum_dy, sum_dy_xmu] in one call

    const T* w = o.affine ? bn_.weight()->value.data() : nullptr;
    const T *xp = x.data(), *g = dy.data(), *mean = mean_.data(), *sums = red_.data();
    const T inv_total = static_cast<T>(1.0 / total_count_);
    T* d = dx.data();
    // One (image, channel) plane per index: contiguous, vectorizable inner loop.
    for_each_index_weighted(B{}, N * C, HW, [=] GCNET_HD(index_t plane) {
      const index_t c = plane % C;
      const T is = invstd[c];
      const T k = (w ? w[c] : T(1)) * is;
      const T a = -k * is * is * sums[C + c] * inv_total, b = -k * sums[c] * inv_total, mc = mean[c];
      const T* gp = g + plane * HW;
      const T* p = xp + plane * HW;
      T* q = d + plane * HW;
      GCNET_SIMD
      for (index_t j = 0; j < HW; ++j) q[j] += k * gp[j] + (p[j] - mc) * a + b;
    });
  }

  std::string describe() const { return name_; }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) { bn_.visit_parameters(prefix, f); }
  void visit_buffers(const std::string& prefix, const BufferVisitor<T, B>& f) { bn_.visit_buffers(prefix, f); }
  void set_training(bool training) { bn_.set_training(training); }
  bool training() const { return bn_.training(); }

  // Testing: run the collective code path with a single rank too (it computes BatchNorm2d).
  void force_sync(bool on) { force_sync_ = on; }

  const BatchNorm2dOptions& options() const { return bn_.options(); }
  index_t channels() const { return bn_.channels(); }
  double eps() const { return bn_.eps(); }
  dist::CommunicatorRef& communicator() { return group(); }
  bool has_communicator() const { return comm_.has_value(); }
  // The underlying BatchNorm2d that owns the parameters and buffers.
  BatchNorm2d<T, B>& batch_norm() { return bn_; }
  const BatchNorm2d<T, B>& batch_norm() const { return bn_; }

 private:
  static const BatchNorm2dOptions& checked(const BatchNorm2dOptions& o) {
    GCNET_CHECK(o.channels > 0, "SyncBatchNorm2d: the number of channels must be positive, got ", o.channels);
    return o;
  }
  static std::string make_name(const BatchNorm2dOptions& o) {
    std::ostringstream os;
    os << "SyncBatchNorm2d(" << o.channels << ", eps=" << o.eps << ", momentum=";
    if (o.momentum) os << *o.momentum; else os << "None";
    os << ", affine=" << (o.affine ? "True" : "False")
       << ", track_running_stats=" << (o.track_running_stats ? "True" : "False") << ")";
    return os.str();
  }

  bool uses_batch_stats() const { return bn_.training() || !bn_.options().track_running_stats; }
  // PyTorch synchronizes only in training with more than one rank.
  bool synchronizes() {
    if (!bn_.training()) return false;
    return group().size() > 1 || force_sync_;
  }
  dist::CommunicatorRef& group() {
    GCNET_CHECK(comm_.has_value(), name_,
                ": no process group: give one to the constructor, or run the layer inside a module (which hands it "
                "the Context's communicator) or after bind_context(layer, ctx)");
    return *comm_;
  }

  // NCHW with this layer's channels; a zero batch is allowed (an empty rank).
  void check_input(const Shape& in) const {
    GCNET_CHECK(in.rank() == 4, name_, ": expected a 4-d NCHW input, got shape ", in.str());
    GCNET_CHECK(in.c() > 0 && in.h() > 0 && in.w() > 0, name_, ": input shape ", in.str(), " has a zero extent");
    GCNET_CHECK(in.c() == bn_.channels(), name_, ": expected input with ", bn_.channels(), " channels, got shape ",
                in.str());
  }

  // All ranks gather (layer channels, input channels) and throw together if any differ.
  void agree_on_channels(const Shape& in) {
    const std::int64_t mine[2] = {bn_.channels(), in.rank() == 4 ? in.c() : -1};
    const int K = group().size();
    channel_counts_.resize(static_cast<std::size_t>(2 * K));
    group().all_gather(mine, 2, channel_counts_.data());
    bool agree = true;
    for (int r = 0; r < K; ++r)
      agree = agree && channel_counts_[2 * r] == mine[0] && channel_counts_[2 * r + 1] == mine[0];
    if (agree) return;
    std::ostringstream os;
    for (int r = 0; r < K; ++r) {
      os << (r ? ", " : "") << "rank " << r << ": layer " << channel_counts_[2 * r] << " / input ";
      if (channel_counts_[2 * r + 1] < 0) os << "not 4-d"; else os << channel_counts_[2 * r + 1];
    }
    gcnet::detail::fail(name_, ": ranks disagree on the channel count (", os.str(), "); this is rank ",
                        group().rank(), " with input shape ", in.str());
  }

  BatchNorm2d<T, B> bn_;
  std::optional<dist::CommunicatorRef> comm_;
  bool pinned_ = false;  // the constructor gave the group
  std::string name_;
  bool force_sync_ = false;
  bool synced_ = false;  // whether the last forward used the collective path
  double total_count_ = 0;
  // Saved by forward: global mean / invstd. Scratch: stats, gathered stats, coefficients, sums.
  ScratchTensor<T, B> mean_, invstd_, scale_, shift_, stats_, gathered_, red_;
  std::vector<std::int64_t> channel_counts_;
};

namespace detail {
template <class T, class B>
void copy_bn_state(const BatchNorm2d<T, B>& from, BatchNorm2d<T, B>& to) {
  if (from.weight()) {
    copy(from.weight()->value, to.weight()->value);
    copy(from.bias()->value, to.bias()->value);
  }
  if (from.options().track_running_stats) {
    copy(from.running_mean(), to.running_mean());
    copy(from.running_var(), to.running_var());
    copy(from.num_batches_tracked(), to.num_batches_tracked());
  }
}
}  // namespace detail

// BatchNorm2d -> SyncBatchNorm2d with the same options, parameters, buffers and mode (deep
// copies). Without `comm` the process group comes from the Context.
template <class T, class B>
SyncBatchNorm2d<T, B> to_sync_batch_norm(const BatchNorm2d<T, B>& bn,
                                         std::optional<dist::CommunicatorRef> comm = std::nullopt) {
  SyncBatchNorm2d<T, B> s(bn.options(), std::move(comm));
  detail::copy_bn_state(bn, s.batch_norm());
  s.set_training(bn.training());
  return s;
}

// SyncBatchNorm2d -> BatchNorm2d (deep copies).
template <class T, class B>
BatchNorm2d<T, B> to_batch_norm(const SyncBatchNorm2d<T, B>& sync) {
  BatchNorm2d<T, B> bn(sync.options());
  detail::copy_bn_state(sync.batch_norm(), bn);
  bn.set_training(sync.training());
  return bn;
}

// SyncBatchNorm2d -> FrozenBatchNorm2d with its running statistics and affine.
template <class T, class B>
FrozenBatchNorm2d<T, B> to_frozen_batch_norm(const SyncBatchNorm2d<T, B>& sync) {
  return FrozenBatchNorm2d<T, B>::from(sync.batch_norm());
}

// FrozenBatchNorm2d -> BatchNorm2d (affine, tracking; num_batches_tracked 0), e.g. to
// fine-tune a frozen backbone's norms; to_sync_batch_norm() of it gives the SyncBN.
template <class T, class B>
BatchNorm2d<T, B> batch_norm_from_frozen(FrozenBatchNorm2d<T, B>& frozen) {
  BatchNorm2d<T, B> bn(BatchNorm2dOptions{.channels = frozen.channels(), .eps = frozen.eps()});
  copy(frozen.weight(), bn.weight()->value);
  copy(frozen.bias(), bn.bias()->value);
  copy(frozen.running_mean(), bn.running_mean());
  copy(frozen.running_var(), bn.running_var());
  return bn;
}

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(SyncBatchNorm2d)
}  // namespace gcnet
