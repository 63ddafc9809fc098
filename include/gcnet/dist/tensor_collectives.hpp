#pragma once
// Collectives over whole tensors (contiguous). A tensor's memory must be where the
// communicator reads: host tensors for host communicators (single-process, MPI), device
// tensors for NCCL. A CUDA tensor with a host communicator is staged through host memory
// (correct, not fast); a host tensor with a device communicator is an error.
#include <string>

#include "gcnet/core/tensor.hpp"
#include "gcnet/core/transfer.hpp"
#include "gcnet/dist/communicator.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::dist {

namespace detail {
template <class T, class B>
void check_tensor_for(const CommunicatorRef& comm, const Tensor<T, B>& t, const char* op) {
  GCNET_CHECK(t.is_contiguous(), "dist::", op, ": tensor of shape ", t.shape().str(), " must be contiguous");
  if constexpr (std::same_as<B, Cpu>)
    GCNET_CHECK(!comm.device_memory(), "dist::", op, ": communicator ", comm.name(),
                " works on device memory, got a host tensor of shape ", t.shape().str());
}
// Runs f(host-or-device pointer) on t's memory, staging a CUDA tensor through the host
// when the communicator needs host memory.
template <class T, class B, class F>
void with_comm_memory(const CommunicatorRef& comm, Tensor<T, B>& t, F&& f) {
  if constexpr (std::same_as<B, Cpu>) {
    f(t.data());
  } else {
    if (comm.device_memory()) {
      f(t.data());
    } else {
      Tensor<T, Cpu> host = clone(to_backend<Cpu>(t));
      f(host.data());
      Tensor<T, B> back = to_backend<B>(host);
      copy(back, t);
    }
  }
}
}  // namespace detail

template <CommElement T, class B>
void all_reduce(CommunicatorRef& comm, Tensor<T, B>& t, ReduceOp op = ReduceOp::Sum) {
  detail::check_tensor_for(comm, t, "all_reduce");
  detail::with_comm_memory(comm, t, [&](T* p) { comm.all_reduce(p, t.numel(), op); });
}

template <CommElement T, class B>
void broadcast(CommunicatorRef& comm, Tensor<T, B>& t, int root = 0) {
  detail::check_tensor_for(comm, t, "broadcast");
  detail::with_comm_memory(comm, t, [&](T* p) { comm.broadcast(p, t.numel(), root); });
}

// out = [size(), ...in.shape()]: rank r's tensor at out[r].
template <CommElement T, class B>
void all_gather(CommunicatorRef& comm, const Tensor<T, B>& in, Tensor<T, B>& out) {
  detail::check_tensor_for(comm, in, "all_gather");
  GCNET_CHECK(in.rank() < Shape::max_rank, "dist::all_gather: tensor of rank ", in.rank(), " is too large");
  Shape s{static_cast<index_t>(comm.size())};
  for (int d = 0; d < in.rank(); ++d) s.push_back(in.size(d));
  out.resize(s);
  if constexpr (std::same_as<B, Cpu>) {
    comm.all_gather(in.data(), in.numel(), out.data());
  } else {
    if (comm.device_memory()) {
      comm.all_gather(in.data(), in.numel(), out.data());
    } else {
      const Tensor<T, Cpu> hin = clone(to_backend<Cpu>(in));
      Tensor<T, Cpu> hout(s);
      comm.all_gather(hin.data(), hin.numel(), hout.data());
      copy(to_backend<B>(hout), out);
    }
  }
}

}  // namespace gcnet::dist
