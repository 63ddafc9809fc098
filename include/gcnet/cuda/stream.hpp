#pragma once
// Streams. Every gcnet launch, copy and cuBLAS call goes to the calling thread's current
// stream: the default (legacy) stream unless a StreamGuard sets another. Keeping the notion
// per thread lets threads (e.g. one per GPU) work independently without passing streams
// through every layer call.
#include <cuda_runtime_api.h>

#include <utility>

#include "gcnet/cuda/runtime.hpp"

namespace gcnet::cuda {

namespace detail {
inline cudaStream_t& current_stream_slot() {
  thread_local cudaStream_t s = nullptr;  // nullptr: the default stream
  return s;
}
}  // namespace detail

inline cudaStream_t current_stream() { return detail::current_stream_slot(); }
inline void set_current_stream(cudaStream_t s) { detail::current_stream_slot() = s; }

// Waits for the work queued on the current stream.
inline void synchronize() { GCNET_CUDA_CHECK(cudaStreamSynchronize(current_stream())); }

// An owned stream on the current device (synchronized and destroyed with the object; movable).
// The default flags keep it ordered with the legacy default stream, so code that mixes
// it with default-stream work stays correct; pass cudaStreamNonBlocking to opt out.
class Stream {
 public:
  explicit Stream(unsigned flags = cudaStreamDefault) {
    GCNET_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, flags));
  }
  ~Stream() { release(); }
  Stream(Stream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept {
    if (this != &o) {
      release();
      stream_ = std::exchange(o.stream_, nullptr);
    }
    return *this;
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return stream_; }
  void synchronize() const { GCNET_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  // Waits for the queued work before destroying: the caching allocator keys free blocks by
  // stream handle, and a new stream may get this handle back while old work still runs.
  void release() noexcept {
    if (!stream_) return;
    (void)cudaStreamSynchronize(stream_);
    (void)cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }

  cudaStream_t stream_ = nullptr;
};

// Makes `s` the current stream of this thread for the guard's lifetime.
class StreamGuard {
 public:
  explicit StreamGuard(cudaStream_t s) : previous_(current_stream()) { set_current_stream(s); }
  explicit StreamGuard(const Stream& s) : StreamGuard(s.get()) {}
  ~StreamGuard() { set_current_stream(previous_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  cudaStream_t previous_;
};

}  // namespace gcnet::cuda
