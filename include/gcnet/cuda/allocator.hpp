#pragma once
// Device memory for Tensor<T, Cuda>: a caching allocator, because cudaMalloc/cudaFree are
// slow and synchronize the device, while a training step frees and reallocates the same
// sizes every iteration. Requests are rounded up to a size class; a freed block goes on
// the free list of its (device, stream, size class) and the next request of that class on
// that stream takes it back without touching the driver.
//
// Why the stream is part of the key: a block freed on the host may still be in use by
// queued work on its stream. Handing it out again on the same stream is safe (the new
// work is ordered after the old); on another stream it would not be. A tensor used on a
// stream other than the one it was allocated on must be synchronized by the user.
//
// empty_cache() returns the cached blocks to the driver; it also happens automatically
// once when cudaMalloc runs out of memory. Thread-safe (one mutex; the driver is only
// called on a cache miss).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "gcnet/core/storage.hpp"
#include "gcnet/cuda/runtime.hpp"
#include "gcnet/cuda/stream.hpp"

namespace gcnet::cuda {

struct CacheStats {
  std::size_t allocated_bytes = 0;       // in blocks held by tensors (rounded sizes)
  std::size_t cached_bytes = 0;          // in free blocks kept for reuse
  std::size_t peak_allocated_bytes = 0;
  std::size_t device_allocations = 0;    // cudaMalloc calls (cache misses)
  std::size_t cache_hits = 0;            // requests served from a free list
};

// The size class of a request: at least 512 bytes, then four classes per power of two
// (2^k * {1, 1.25, 1.5, 1.75}), so at most 25% is wasted and similar sizes share blocks.
inline std::size_t round_size(std::size_t bytes) {
  constexpr std::size_t kMinBlock = 512;
  if (bytes <= kMinBlock) return kMinBlock;
  const std::size_t step = std::bit_floor(bytes) / 4;
  return (bytes + step - 1) / step * step;
}

class CachingAllocator {
 public:
  // The process-wide instance. Deliberately never destroyed: tensors with static storage
  // may be freed during exit, after the CUDA runtime has shut down.
  static CachingAllocator& instance() {
    static CachingAllocator* a = new CachingAllocator;
    return *a;
  }

  void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    const Key key{current_device(), current_stream(), round_size(bytes)};
    std::lock_guard<std::mutex> lock(mutex_);
    void* p = take_cached(key);
    if (p) {
      ++stats_.cache_hits;
    } else {
      p = device_malloc(key);
      ++stats_.device_allocations;
    }
    live_.emplace(p, key);
    stats_.allocated_bytes += key.size;
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
    return p;
  }

  void deallocate(void* p) noexcept {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours: nothing sensible to do in a destructor
    const Key key = it->second;
    live_.erase(it);
    stats_.allocated_bytes -= key.size;
    stats_.cached_bytes += key.size;
    free_[key].push_back(p);
  }

  // Frees every cached block (all devices and streams) back to the driver.
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached(-1);
  }

  CacheStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  struct Key {
    int device;
    cudaStream_t stream;
    std::size_t size;
    friend bool operator<(const Key& a, const Key& b) {
      return std::tie(a.device, a.stream, a.size) < std::tie(b.device, b.stream, b.size);
    }
  };

  CachingAllocator() = default;

  void* take_cached(const Key& key) {
    const auto it = free_.find(key);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    stats_.cached_bytes -= key.size;
    return p;
  }

  void* device_malloc(const Key& key) {
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, key.size);
    if (err == cudaErrorMemoryAllocation) {
      // Out of memory: give the cache of this device back and try once more.
      (void)cudaGetLastError();
      release_cached(key.device);
      err = cudaMalloc(&p, key.size);
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      gcnet::detail::fail("CUDA out of memory: tried to allocate ", key.size, " bytes on device ",
                          key.device, " (", stats_.allocated_bytes, " bytes held by tensors, ",
                          stats_.cached_bytes, " cached)");
    }
    GCNET_CUDA_CHECK(err);
    return p;
  }

  // Frees the cached blocks of `device` (all devices when -1). Caller holds the mutex.
  void release_cached(int device) {
    int saved = -1;
    GCNET_CUDA_CHECK(cudaGetDevice(&saved));
    for (auto it = free_.begin(); it != free_.end();) {
      if (device >= 0 && it->first.device != device) {
        ++it;
        continue;
      }
      if (it->first.device != saved) GCNET_CUDA_CHECK(cudaSetDevice(it->first.device));
      for (void* p : it->second) {
        GCNET_CUDA_CHECK(cudaFree(p));
        stats_.cached_bytes -= it->first.size;
      }
      it = free_.erase(it);
    }
    GCNET_CUDA_CHECK(cudaSetDevice(saved));
  }

  mutable std::mutex mutex_;
  std::map<Key, std::vector<void*>> free_;
  std::unordered_map<void*, Key> live_;
  CacheStats stats_;
};

inline CacheStats memory_stats() { return CachingAllocator::instance().stats(); }
inline void empty_cache() { CachingAllocator::instance().empty_cache(); }

}  // namespace gcnet::cuda

namespace gcnet {

template <>
struct Allocator<Cuda> {
  static void* allocate(std::size_t bytes) { return cuda::CachingAllocator::instance().allocate(bytes); }
  static void deallocate(void* p, std::size_t) noexcept { cuda::CachingAllocator::instance().deallocate(p); }
};

}  // namespace gcnet
