// The CPU allocator's cache of large blocks (core/cpu_block_cache.hpp): re-use of a freed block
// by a request of about its size, release of cached blocks on a miss (so cached + live blocks
// never exceed the most ever live), and tensors going through it.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>

#include "gcnet/core/cpu_block_cache.hpp"
#include "gcnet/core/tensor.hpp"

using namespace gcnet;
using detail::CpuBlockCache;

namespace {
constexpr std::size_t U = std::size_t{16} << 20;  // sizes in units of 16 MiB: 2 U is the least cached block
}

TEST_CASE("cpu block cache: a freed block serves the next request of about its size" *
          doctest::skip(!CpuBlockCache::instance().enabled())) {
  CpuBlockCache& cache = CpuBlockCache::instance();
  cache.clear();
  void* a = cache.allocate(3 * U);
  REQUIRE(a != nullptr);
  CHECK(reinterpret_cast<std::uintptr_t>(a) % 64 == 0);
  std::memset(a, 1, 3 * U);  // writable over its whole size
  cache.deallocate(a);
  CHECK(cache.stats().cached_bytes == 3 * U);
  // Up to 1/16 smaller asks get the same block; the block leaves the cache.
  const auto hits = cache.stats().hits;
  void* b = cache.allocate(3 * U - U / 32);
  CHECK(b == a);
  CHECK(cache.stats().hits == hits + 1);
  CHECK(cache.stats().cached_bytes == 0);
  cache.deallocate(b);
  // A request much smaller (or larger) misses, and the miss releases cached blocks worth at least
  // the request first: nothing stays cached here.
  const auto misses = cache.stats().misses;
  void* c = cache.allocate(2 * U);
  CHECK(cache.stats().misses == misses + 1);
  CHECK(cache.stats().cached_bytes == 0);
  cache.deallocate(c);
  CHECK(cache.stats().cached_bytes == 2 * U);
  cache.clear();
  CHECK(cache.stats().cached_bytes == 0);
}

TEST_CASE("cpu block cache: cached and live blocks never exceed the most ever live" *
          doctest::skip(!CpuBlockCache::instance().enabled())) {
  CpuBlockCache& cache = CpuBlockCache::instance();
  cache.clear();
  // Live peak: 4 blocks of 2 U. Then requests of other sizes, one at a time.
  void* blocks[4];
  for (auto& p : blocks) p = cache.allocate(2 * U);
  for (auto& p : blocks) cache.deallocate(p);
  CHECK(cache.stats().cached_bytes == 8 * U);
  void* big = cache.allocate(5 * U);  // releases >= 5 U of cache (three blocks) before allocating
  CHECK(cache.stats().cached_bytes == 2 * U);
  CHECK(cache.stats().cached_bytes + 5 * U <= 8 * U);
  cache.deallocate(big);
  void* again = cache.allocate(2 * U);  // the remaining 2 U block is re-used
  CHECK(cache.stats().cached_bytes == 5 * U);
  cache.deallocate(again);
  cache.clear();
}

TEST_CASE("cpu block cache: tensors of 32 MiB and more go through it, smaller ones do not" *
          doctest::skip(!CpuBlockCache::instance().enabled())) {
  CpuBlockCache& cache = CpuBlockCache::instance();
  cache.clear();
  const float* first = nullptr;
  {
    Tensor<float> t(Shape{4096, 2048});  // 32 MiB
    t.data()[0] = 1.0f;
    first = t.data();
  }
  CHECK(cache.stats().cached_bytes == 2 * U);
  {
    Tensor<float> t(Shape{2048, 4096});  // the same size: the same block
    CHECK(t.data() == first);
  }
  {
    Tensor<float> small(Shape{1024, 1024});  // 4 MiB: malloc's
    CHECK(cache.stats().cached_bytes == 2 * U);  // untouched by a smaller tensor
  }
  cache.clear();
}
