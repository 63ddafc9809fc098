#pragma once
// CUDA runtime basics: GCNET_CUDA_CHECK turns a failed runtime call into a gcnet::Error
// naming the call, the place and the CUDA error; device_count()/available() answer
// "is there a usable GPU?" without throwing, so tests and programs can fall back or skip.
// Host code only: usable from .cpp files compiled by the host compiler too.
#include <cuda_runtime_api.h>

#include <array>
#include <atomic>
#include <string>

#include "gcnet/core/error.hpp"

namespace gcnet::cuda {

namespace detail {
[[noreturn]] inline void fail_call(cudaError_t err, const char* call, const char* file, int line) {
  // Clear the non-sticky error state, so a caller that catches this can go on.
  (void)cudaGetLastError();
  gcnet::detail::fail("CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") in ",
                      call, " at ", file, ":", line);
}

struct DeviceQuery {
  int count = 0;
  std::string reason;  // why count is 0, when it is
};
inline const DeviceQuery& device_query() {
  // Queried once: the set of visible devices does not change during a process.
  static const DeviceQuery q = [] {
    DeviceQuery r;
    const cudaError_t err = cudaGetDeviceCount(&r.count);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      r.count = 0;
      r.reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    } else if (r.count == 0) {
      r.reason = "the driver reports no device";
    }
    return r;
  }();
  return q;
}
}  // namespace detail

}  // namespace gcnet::cuda

// GCNET_CUDA_CHECK(cudaMalloc(&p, n)): throws gcnet::Error unless the call returns cudaSuccess.
#define GCNET_CUDA_CHECK(expr)                                                       \
  do {                                                                               \
    const cudaError_t gcnet_cuda_err_ = (expr);                                      \
    if (gcnet_cuda_err_ != cudaSuccess)                                              \
      ::gcnet::cuda::detail::fail_call(gcnet_cuda_err_, #expr, __FILE__, __LINE__);  \
  } while (0)

namespace gcnet::cuda {

// Number of usable CUDA devices; 0 (not an exception) without a device or a driver.
inline int device_count() { return detail::device_query().count; }
inline bool available() { return device_count() > 0; }
// Why available() is false ("" when it is true), e.g. for a test's skip message.
inline const std::string& unavailable_reason() { return detail::device_query().reason; }

inline int current_device() {
  int d = 0;
  GCNET_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}
inline void set_device(int device) {
  GCNET_CHECK(device >= 0 && device < device_count(), "cuda::set_device: device ", device,
              " out of range (", device_count(), " devices)");
  GCNET_CUDA_CHECK(cudaSetDevice(device));
}

// Upper bound on the devices gcnet keeps per-device state for (handles, SM counts).
inline constexpr int kMaxDevices = 64;

// Streaming multiprocessors of the current device, cached (sizes grid-stride launches).
inline int multiprocessor_count() {
  static std::array<std::atomic<int>, kMaxDevices> cache{};
  const int d = current_device();
  GCNET_CHECK(d < kMaxDevices, "cuda: device index ", d, " exceeds gcnet's limit of ", kMaxDevices);
  int n = cache[static_cast<std::size_t>(d)].load(std::memory_order_relaxed);
  if (n == 0) {
    GCNET_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, d));
    cache[static_cast<std::size_t>(d)].store(n, std::memory_order_relaxed);
  }
  return n;
}

// Waits for all work on the current device.
inline void device_synchronize() { GCNET_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace gcnet::cuda
