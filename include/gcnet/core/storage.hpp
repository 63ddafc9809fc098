#pragma once
// Raw storage of a tensor, allocated by the backend's Allocator. The CPU allocator
// aligns to 64 bytes (one AVX-512 vector); the CUDA one lives in gcnet/cuda/allocator.hpp.
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

#include "gcnet/core/backend.hpp"

namespace gcnet {

template <class B>
struct Allocator;  // specialized per backend

template <>
struct Allocator<Cpu> {
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    std::size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    return p;
  }
  static void deallocate(void* p, std::size_t) noexcept { std::free(p); }
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
