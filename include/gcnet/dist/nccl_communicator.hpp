#pragma once
// NcclCommunicator: the Communicator concept over NCCL, for the CUDA backend (one GPU per
// rank). Needs the gcnet::nccl CMake target (defined by cmake/gcnet_cuda.cmake when NCCL is
// found) and a CUDA build.
//
// Buffers are device memory (device_memory() is true): Tensor<T, Cuda> data goes straight to
// NCCL on gcnet's current stream. Small host buffers (the channel-count and parameter-count
// agreement checks) are staged through a device scratch buffer and synchronized, so the same
// layer code works with any communicator.
//
// Creation needs a way to share NCCL's unique id: bootstrap(host_comm, device) uses any host
// communicator (e.g. MpiCommunicator::world()); single(device) makes a one-rank communicator.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "gcnet/cuda/runtime.hpp"
#include "gcnet/cuda/stream.hpp"
#include "gcnet/dist/communicator.hpp"

namespace gcnet::dist {

namespace detail {
inline void nccl_check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) gcnet::detail::fail("NCCL ", what, " failed: ", ncclGetErrorString(r));
}
template <class E>
ncclDataType_t nccl_type() {
  if constexpr (std::same_as<E, float>) return ncclFloat32;
  else if constexpr (std::same_as<E, double>) return ncclFloat64;
  else return ncclInt64;
}
inline ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Max: return ncclMax;
    case ReduceOp::Min: return ncclMin;
  }
  return ncclSum;
}
inline bool is_device_pointer(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}
}  // namespace detail

class NcclCommunicator {
 public:
  // Every rank of `host_comm` calls this with its GPU: rank 0 creates NCCL's unique id and
  // broadcasts it over host_comm.
  static NcclCommunicator bootstrap(CommunicatorRef host_comm, int device) {
    GCNET_CHECK(!host_comm.device_memory(), "NcclCommunicator::bootstrap: needs a host communicator, got ",
                host_comm.name());
    ncclUniqueId id{};
    if (host_comm.rank() == 0) detail::nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    constexpr index_t words = (sizeof(ncclUniqueId) + 7) / 8;
    std::int64_t buf[words] = {};
    std::memcpy(buf, &id, sizeof id);
    host_comm.broadcast(buf, words, 0);
    std::memcpy(&id, buf, sizeof id);
    return NcclCommunicator(id, host_comm.rank(), host_comm.size(), device);
  }
  // One rank on `device` (tests, single-GPU runs through the same code path).
  static NcclCommunicator single(int device = 0) {
    ncclUniqueId id{};
    detail::nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    return NcclCommunicator(id, 0, 1, device);
  }

  NcclCommunicator(ncclUniqueId id, int rank, int size, int device) : rank_(rank), size_(size), device_(device) {
    GCNET_CUDA_CHECK(cudaSetDevice(device));
    ncclComm_t c = nullptr;
    detail::nccl_check(ncclCommInitRank(&c, size, id, rank), "ncclCommInitRank");
    comm_ = std::shared_ptr<ncclComm>(c, [](ncclComm_t p) { ncclCommDestroy(p); });
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }
  std::string name() const { return "nccl(rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ")"; }
  bool device_memory() const { return true; }
  ncclComm_t handle() const { return comm_.get(); }

  void barrier() {
    std::int64_t one = 1;
    all_reduce(&one, 1, ReduceOp::Sum);  // staged: synchronizes the stream too
  }

  template <CommElement E>
  void all_reduce(E* buf, index_t n, ReduceOp op) {
    check_count(n);
    if (n == 0) return;
    with_device(buf, n, n, [&](E* d, E*) {
      detail::nccl_check(ncclAllReduce(d, d, static_cast<std::size_t>(n), detail::nccl_type<E>(), detail::nccl_op(op),
                                       comm_.get(), cuda::current_stream()),
                         "ncclAllReduce");
    });
  }
  template <CommElement E>
  void all_gather(const E* in, index_t n, E* out) {
    check_count(n);
    if (n == 0) return;
    if (detail::is_device_pointer(in) && detail::is_device_pointer(out)) {
      detail::nccl_check(ncclAllGather(in, out, static_cast<std::size_t>(n), detail::nccl_type<E>(), comm_.get(),
                                       cuda::current_stream()),
                         "ncclAllGather");
      return;
    }
    // Host buffers: [in | out] staged in scratch.
    E* d = scratch<E>(n + n * size_);
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(E);
    GCNET_CUDA_CHECK(cudaMemcpyAsync(d, in, bytes, cudaMemcpyDefault, cuda::current_stream()));
    detail::nccl_check(ncclAllGather(d, d + n, static_cast<std::size_t>(n), detail::nccl_type<E>(), comm_.get(),
                                     cuda::current_stream()),
                       "ncclAllGather");
    GCNET_CUDA_CHECK(cudaMemcpyAsync(out, d + n, bytes * static_cast<std::size_t>(size_), cudaMemcpyDefault,
                                     cuda::current_stream()));
    GCNET_CUDA_CHECK(cudaStreamSynchronize(cuda::current_stream()));
  }
  template <CommElement E>
  void broadcast(E* buf, index_t n, int root) {
    check_count(n);
    if (n == 0) return;
    with_device(buf, n, n, [&](E* d, E*) {
      detail::nccl_check(ncclBroadcast(d, d, static_cast<std::size_t>(n), detail::nccl_type<E>(), root, comm_.get(),
                                       cuda::current_stream()),
                         "ncclBroadcast");
    });
  }

 private:
  static void check_count(index_t n) { GCNET_CHECK(n >= 0, "NcclCommunicator: negative element count ", n); }

  // Runs f on buf when it is device memory; else copies buf to scratch, runs f there,
  // copies back and synchronizes.
  template <class E, class F>
  void with_device(E* buf, index_t n, index_t scratch_n, F&& f) {
    if (detail::is_device_pointer(buf)) {
      f(buf, buf);
      return;
    }
    E* d = scratch<E>(scratch_n);
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(E);
    GCNET_CUDA_CHECK(cudaMemcpyAsync(d, buf, bytes, cudaMemcpyDefault, cuda::current_stream()));
    f(d, buf);
    GCNET_CUDA_CHECK(cudaMemcpyAsync(buf, d, bytes, cudaMemcpyDefault, cuda::current_stream()));
    GCNET_CUDA_CHECK(cudaStreamSynchronize(cuda::current_stream()));
  }
  template <class E>
  E* scratch(index_t n) {
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(E);
    if (!scratch_ || scratch_bytes_ < bytes) {
      void* p = nullptr;
      GCNET_CUDA_CHECK(cudaMalloc(&p, bytes));
      scratch_ = std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
      scratch_bytes_ = bytes;
    }
    return static_cast<E*>(scratch_.get());
  }

  int rank_ = 0, size_ = 1, device_ = 0;
  std::shared_ptr<ncclComm> comm_;
  std::shared_ptr<void> scratch_;  // device staging for host buffers (small)
  std::size_t scratch_bytes_ = 0;
};
static_assert(Communicator<NcclCommunicator>);

}  // namespace gcnet::dist
