#pragma once
// Raw storage of a tensor, allocated by the backend's Allocator. The CPU allocator
// aligns to 64 bytes (one AVX-512 vector); the CUDA one lives in gcnet/cuda/allocator.hpp.
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

#include "gcnet/core/backend.hpp"
#include "gcnet/core/cpu_block_cache.hpp"

namespace gcnet {

template <class B>
struct Allocator;  // specialized per backend

// Blocks of 32 MB and more go through a cache that keeps them for the next request of about the
// same size (core/cpu_block_cache.hpp: no page faults on re-use, peak memory not raised).
template <>
struct Allocator<Cpu> {
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    std::size_t rounded = (bytes + 63) / 64 * 64;
    detail::CpuBlockCache& cache = detail::CpuBlockCache::instance();
    void* p = rounded >= detail::CpuBlockCache::kMinBytes && cache.enabled() ? cache.allocate(rounded)
                                                                               : std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    return p;
  }
  static void deallocate(void* p, std::size_t bytes) noexcept {
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    detail::CpuBlockCache& cache = detail::CpuBlockCache::instance();
    if (p && rounded >= detail::CpuBlockCache::kMinBytes && cache.enabled()) cache.deallocate(p);
    else std::free(p);
  }
};

template <class T, class B>
class Storage {
 public:
  explicit Storage(std::size_t count)
      : data_(static_cast<T*>(Allocator<B>::allocate(count * sizeof(T)))), capacity_(count) {}
  ~Storage() { Allocator<B>::deallocate(data_, capacity_ * sizeof(T)); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  T* data() const { return data_; }
  std::size_t capacity() const { return capacity_; }

 private:
  T* data_;
  std::size_t capacity_;
};

}  // namespace gcnet
