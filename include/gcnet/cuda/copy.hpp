#pragma once
// Host <-> device transfers for to_backend<To>(t): the result is a new contiguous tensor
// (a non-contiguous source is made contiguous first). Transfers run on the current stream
// and are synchronous with respect to the host, like torch's .to() without non_blocking:
// when to_backend returns, the source may be changed or freed and the result is ready.
// Cuda -> Cuda is the tensor itself (shallow), as Cpu -> Cpu is; clone() copies.
#include <cuda_runtime_api.h>

#include <vector>

#include "gcnet/core/transfer.hpp"
#include "gcnet/cuda/allocator.hpp"
#include "gcnet/cuda/stream.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

namespace cuda::detail {

// n elements from src to dst on the current stream; waits for the copy to finish.
template <class T>
void copy_and_wait(T* dst, const T* src, index_t n, cudaMemcpyKind kind) {
  if (n <= 0) return;
  GCNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(n) * sizeof(T), kind,
                                   current_stream()));
  synchronize();
}

template <class T>
Tensor<T, Cpu> download_contiguous(const Tensor<T, Cuda>& src) {
  Tensor<T, Cpu> out(src.shape());
  copy_and_wait(out.data(), src.data(), src.numel(), cudaMemcpyDeviceToHost);
  return out;
}

// A strided device view without a kernel (host compilers cannot launch one): downloads
// the span of storage the view covers and gathers on the host.
template <class T>
Tensor<T, Cpu> download_strided_via_host(const Tensor<T, Cuda>& src) {
  Tensor<T, Cpu> out(src.shape());
  if (src.numel() == 0) return out;
  index_t span = 1;
  for (int d = 0; d < src.rank(); ++d) span += (src.size(d) - 1) * src.stride(d);
  std::vector<T> covered(static_cast<std::size_t>(span));
  copy_and_wait(covered.data(), src.data(), span, cudaMemcpyDeviceToHost);
  const gcnet::detail::ViewGeometry g(src);
  for (index_t i = 0; i < out.numel(); ++i) out[i] = covered[static_cast<std::size_t>(g.offset(i))];
  return out;
}

}  // namespace cuda::detail

namespace detail {

template <>
struct Transfer<Cpu, Cuda> {
  template <class T>
  static Tensor<T, Cuda> run(const Tensor<T, Cpu>& host) {
    const Tensor<T, Cpu> src = host.is_contiguous() ? host : clone(host);
    Tensor<T, Cuda> out(src.shape());
    cuda::detail::copy_and_wait(out.data(), src.data(), src.numel(), cudaMemcpyHostToDevice);
    return out;
  }
};

template <>
struct Transfer<Cuda, Cpu> {
  template <class T>
  static Tensor<T, Cpu> run(const Tensor<T, Cuda>& dev) {
    if (dev.is_contiguous()) return cuda::detail::download_contiguous(dev);
    // nvcc gathers on the device; host compilers cannot launch, so they gather on the host.
    // Both give the same tensor, so whichever copy of run<T> the linker keeps is correct.
#if defined(__CUDACC__)
    return cuda::detail::download_contiguous(clone(dev));
#else
    return cuda::detail::download_strided_via_host(dev);
#endif
  }
};

template <>
struct Transfer<Cuda, Cuda> {
  template <class T>
  static Tensor<T, Cuda> run(const Tensor<T, Cuda>& t) { return t; }
};

}  // namespace detail

}  // namespace gcnet
