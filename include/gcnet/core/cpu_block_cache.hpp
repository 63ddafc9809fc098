#pragma once
// Reuse of large CPU allocations (the CPU Allocator's, core/storage.hpp).
//
// Why: glibc serves blocks above its mmap threshold with a fresh mmap and returns them with
// munmap, so every large tensor allocated again, iteration after iteration, costs a page fault and
// a zeroed page per 4 KB on first touch. The threshold adapts upwards to the blocks freed, but
// not past 32 MB: on Mask R-CNN at 800 x 1216 (feature maps of 62 MB, masks of 97 MB) the faults
// were 12% of an inference on the 2-core AMD machine (docs/performance.md). Blocks of at least
// kMinBytes are kept when freed and handed to a later request of nearly the same size (at most
// 1/16 larger). Smaller blocks stay with malloc, whose heap re-uses them better than exact-size
// lists would (caching from 1 MB made a small segmentor's training step 12% slower).
//
// Peak memory is not raised: on a miss, cached blocks totalling at least the request (the least
// recently freed first) are released before the new block is allocated, so the cached and live
// large blocks together never exceed the most that was ever live at once (plus the 1/16 slack of
// a reused block). GCNET_CPU_BLOCK_CACHE=0 in the environment turns the cache off (for leak
// checkers and memory studies).
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <list>
#include <map>
#include <mutex>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace gcnet::detail {

class CpuBlockCache {
 public:
  static constexpr std::size_t kMinBytes = std::size_t{32} << 20;  // glibc's largest mmap threshold
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;

  // The process-wide cache: created on first use and never destroyed (tensors in static storage
  // may be freed after any destructor would have run).
  static CpuBlockCache& instance() {
    static CpuBlockCache* cache = new CpuBlockCache();
    return *cache;
  }

  bool enabled() const { return enabled_; }

  // A block of at least `bytes`, 2 MB aligned, or nullptr when malloc fails even after the cache
  // was emptied.
  void* allocate(std::size_t bytes) {
    const std::size_t size = round_up(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = by_size_.lower_bound(size);
      if (it != by_size_.end() && it->first <= size + size / 16) {
        void* p = it->second->ptr;
        const std::size_t cached = it->first;
        block_size_[p] = cached;
        lru_.erase(it->second);
        by_size_.erase(it);
        cached_bytes_ -= cached;
        ++hits_;
        return p;
      }
      ++misses_;
      release_locked(size);
    }
    void* p = fresh(size);
    if (!p) {  // give everything back and try once more
      {
        std::lock_guard<std::mutex> lock(mutex_);
        release_locked(cached_bytes_);
      }
      p = fresh(size);
    }
    if (p) {
      std::lock_guard<std::mutex> lock(mutex_);
      block_size_[p] = size;
    }
    return p;
  }

  // Takes back a block from allocate().
  void deallocate(void* p) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = block_size_.find(p);
    if (it == block_size_.end()) return;  // not ours (cannot happen)
    const std::size_t size = it->second;
    block_size_.erase(it);
    try {
      lru_.push_back(Cached{p, {}});
      auto pos = by_size_.emplace(size, std::prev(lru_.end()));
      lru_.back().in_size_map = pos;
      cached_bytes_ += size;
    } catch (...) {  // no memory for the bookkeeping: give the block back instead
      if (!lru_.empty() && lru_.back().ptr == p) lru_.pop_back();
      std::free(p);
    }
  }

  // Frees every cached block (tests, and a program that wants its memory back).
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_locked(cached_bytes_);
  }

  struct Stats {
    std::size_t cached_bytes, hits, misses;
  };
  Stats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return {cached_bytes_, hits_, misses_};
  }

 private:
  struct Cached;
  using SizeMap = std::multimap<std::size_t, std::list<Cached>::iterator>;
  struct Cached {
    void* ptr;
    SizeMap::iterator in_size_map;
  };

  CpuBlockCache() {
    const char* env = std::getenv("GCNET_CPU_BLOCK_CACHE");
    enabled_ = !(env && std::strcmp(env, "0") == 0);
  }

  static std::size_t round_up(std::size_t bytes) { return (bytes + 4095) / 4096 * 4096; }

  // Aligned to 2 MB pages, so the kernel can back the block with them (one fault instead of 512)
  // where transparent huge pages are on "madvise".
  static void* fresh(std::size_t size) {
    void* p = std::aligned_alloc(kHugePage, (size + kHugePage - 1) / kHugePage * kHugePage);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p) madvise(p, size, MADV_HUGEPAGE);
#endif
    return p;
  }

  // Frees the least recently cached blocks until at least `bytes` were freed (or none is left).
  void release_locked(std::size_t bytes) {
    std::size_t freed = 0;
    while (freed < bytes && !lru_.empty()) {
      Cached& c = lru_.front();
      freed += c.in_size_map->first;
      cached_bytes_ -= c.in_size_map->first;
      by_size_.erase(c.in_size_map);
      std::free(c.ptr);
      lru_.pop_front();
    }
  }

  mutable std::mutex mutex_;
  std::list<Cached> lru_;                      // cached blocks, least recently freed first
  SizeMap by_size_;                            // the same blocks by size
  std::map<void*, std::size_t> block_size_;    // blocks handed out, with their sizes
  std::size_t cached_bytes_ = 0, hits_ = 0, misses_ = 0;
  bool enabled_ = true;
};

}  // namespace gcnet::detail
