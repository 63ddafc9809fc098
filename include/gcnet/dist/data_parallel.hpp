#pragma once
// Data-parallel training over a communicator, as PyTorch's DistributedDataParallel does it:
//   broadcast_state(model): every rank starts from rank 0's parameters and buffers;
//   average_gradients(params): after backward, every gradient becomes the mean over ranks,
//     with ONE all-reduce per step on a flat buffer holding all gradients (one large message
//     instead of one per tensor).
// With losses that are means over the local batch, k ranks of batch b then take exactly the
// step of one process on the union batch k*b (up to summation order); SyncBatchNorm2d keeps
// that true for models with batch norm.
//
// The element counts are compared across ranks (once per buffer layout) so that ranks
// holding different models fail with an error on every rank instead of a hang.
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/core/param.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/dist/communicator.hpp"
#include "gcnet/dist/tensor_collectives.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::dist {

namespace detail {
// dst[i] = src[i]: one tensor to or from its slice of the flat buffer.
template <class T, class B>
void flat_copy(B, const T* src, T* dst, index_t n) {
  for_each_index(B{}, n, [=] GCNET_HD(index_t i) { dst[i] = src[i]; });
}
template <class T, class B>
void flat_scale(B, T* p, index_t n, T s) {
  for_each_index(B{}, n, [=] GCNET_HD(index_t i) { p[i] *= s; });
}
}  // namespace detail

template <Scalar T = float, Backend B = Cpu>
class DataParallel {
 public:
  using NamedParams = std::vector<std::pair<std::string, Param<T, B>*>>;

  explicit DataParallel(CommunicatorRef comm = default_communicator()) : comm_(std::move(comm)) {}

  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }
  bool active() const { return comm_.size() > 1; }
  CommunicatorRef& communicator() { return comm_; }

  // Copies rank `root`'s parameter values and buffers to every rank (one broadcast).
  // Model: anything with visit_parameters(prefix, f) / visit_buffers(prefix, f).
  template <class Model>
  void broadcast_state(Model& model, int root = 0) {
    std::vector<Tensor<T, B>*> tensors;
    if constexpr (requires { model.visit_parameters(std::string(), ParamVisitor<T, B>()); })
      model.visit_parameters("", [&](const std::string&, Param<T, B>& p) { tensors.push_back(&p.value); });
    if constexpr (requires { model.visit_buffers(std::string(), BufferVisitor<T, B>()); })
      model.visit_buffers("", [&](const std::string&, Tensor<T, B>& t) { tensors.push_back(&t); });
    if (comm_.size() == 1) return;
    pack(tensors, "parameters and buffers");
    broadcast(comm_, flat_, root);
    unpack(tensors);
  }

  // grad = mean over ranks of grad, for every parameter (one all-reduce of all of them).
  void average_gradients(const NamedParams& params) {
    if (comm_.size() == 1) return;
    grads_.clear();
    for (const auto& [name, p] : params) grads_.push_back(&p->grad);
    pack(grads_, "gradients");
    all_reduce(comm_, flat_, ReduceOp::Sum);
    detail::flat_scale(B{}, flat_.data(), flat_.numel(), static_cast<T>(1.0 / comm_.size()));
    unpack(grads_);
  }

 private:
  // Copies the tensors into flat_ (resized); checks once per layout that every rank has the
  // same total count.
  void pack(const std::vector<Tensor<T, B>*>& tensors, const char* what) {
    index_t total = 0;
    for (const Tensor<T, B>* t : tensors) {
      GCNET_CHECK(t->is_contiguous(), "DataParallel: a tensor of shape ", t->shape().str(), " among the ", what,
                  " is not contiguous");
      total += t->numel();
    }
    if (total != checked_total_) {
      agree_on_count(total, what);
      checked_total_ = total;
    }
    flat_.resize(Shape{total});
    index_t off = 0;
    for (const Tensor<T, B>* t : tensors) {
      detail::flat_copy(B{}, t->data(), flat_.data() + off, t->numel());
      off += t->numel();
    }
  }
  void unpack(const std::vector<Tensor<T, B>*>& tensors) {
    index_t off = 0;
    for (Tensor<T, B>* t : tensors) {
      detail::flat_copy(B{}, static_cast<const T*>(flat_.data() + off), t->data(), t->numel());
      off += t->numel();
    }
  }
  void agree_on_count(index_t total, const char* what) {
    const std::int64_t mine = total;
    std::vector<std::int64_t> all(static_cast<std::size_t>(comm_.size()));
    comm_.all_gather(&mine, 1, all.data());
    for (std::int64_t a : all) {
      if (a == mine) continue;
      std::ostringstream os;
      for (std::size_t r = 0; r < all.size(); ++r) os << (r ? ", " : "") << all[r];
      gcnet::detail::fail("DataParallel: ranks hold different numbers of ", what, " (per rank: ", os.str(),
                          "); this is rank ", comm_.rank());
    }
  }

  CommunicatorRef comm_;
  Tensor<T, B> flat_;  // scratch: all tensors of one collective, back to back
  std::vector<Tensor<T, B>*> grads_;
  index_t checked_total_ = -1;
};

}  // namespace gcnet::dist
