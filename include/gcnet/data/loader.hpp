#pragma once
// DataLoader: batches of a Dataset, prepared by background worker threads.
//
// Reproducibility: everything a batch contains is a pure function of (seed, global batch
// index). The global batch index g maps to epoch g / batches_per_epoch() and a position in
// that epoch's order; the order is a Fisher-Yates shuffle drawn from Rng(seed, stream = epoch);
// each sample's augmentation Rng is Rng(seed, sample_stream(epoch, dataset index)). So the
// batches do not depend on the number of workers or on timing, every epoch reshuffles
// differently, and seek(g) resumes exactly where an uninterrupted run would be.
//
// Threads: workers claim batch indices in order and build whole batches; finished batches
// wait in a bounded buffer (workers * prefetch batches ahead of the consumer); next() hands
// them out in order. An exception in a worker (e.g. a missing file) is rethrown by the
// next() that would have returned that batch. Destruction or seek() stops the workers (a
// worker in the middle of a batch stops at the next sample) and joins them.
#include <algorithm>
#include <atomic>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <iterator>
#include <numeric>
#include <optional>
#include <thread>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/data/batch.hpp"
#include "gcnet/data/sample.hpp"

namespace gcnet::data {

// size() samples; get(i, rng) loads sample i and augments it with randomness from rng only.
// get() is called concurrently from several threads, so it must be const-safe.
template <class D>
concept Dataset = requires(const D& d, index_t i, Rng& rng) {
  { d.size() } -> std::convertible_to<index_t>;
  { d.get(i, rng) } -> std::same_as<Sample>;
};

struct LoaderOptions {
  index_t batch_size = 1;
  bool shuffle = true;
  std::uint64_t seed = 0;
  int workers = 0;         // 0: batches are built in next() on the calling thread
  index_t prefetch = 2;    // batches buffered per worker
  bool drop_last = true;   // drop the last incomplete batch of each epoch (mmseg's infinite sampler style)
};

// The augmentation stream of dataset sample `index` in `epoch` (disjoint from shuffle streams).
inline std::uint64_t sample_stream(std::int64_t epoch, index_t index) {
  GCNET_CHECK(index >= 0 && index < (index_t{1} << 32) && epoch >= 0 && epoch < (std::int64_t{1} << 31),
              "sample_stream: epoch ", epoch, " / index ", index, " out of range");
  return (std::uint64_t{1} << 63) | (static_cast<std::uint64_t>(epoch) << 32) | static_cast<std::uint64_t>(index);
}

// The order of dataset indices in `epoch`.
inline std::vector<index_t> epoch_order(index_t n, std::uint64_t seed, std::int64_t epoch, bool shuffle) {
  std::vector<index_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), index_t{0});
  if (!shuffle) return order;
  Rng rng(seed, static_cast<std::uint64_t>(epoch));
  for (index_t i = n - 1; i > 0; --i)
    std::swap(order[static_cast<std::size_t>(i)], order[rng.below(static_cast<std::uint64_t>(i + 1))]);
  return order;
}

template <Dataset D>
class DataLoader {
 public:
  DataLoader(D dataset, LoaderOptions opt) : dataset_(std::move(dataset)), opt_(opt) {
    GCNET_CHECK(opt_.batch_size > 0, "DataLoader: batch_size must be positive, got ", opt_.batch_size);
    GCNET_CHECK(opt_.workers >= 0, "DataLoader: workers must be >= 0, got ", opt_.workers);
    GCNET_CHECK(opt_.prefetch > 0, "DataLoader: prefetch must be positive, got ", opt_.prefetch);
    n_ = static_cast<index_t>(dataset_.size());
    GCNET_CHECK(n_ > 0, "DataLoader: the dataset is empty");
    bpe_ = opt_.drop_last ? n_ / opt_.batch_size : (n_ + opt_.batch_size - 1) / opt_.batch_size;
    GCNET_CHECK(bpe_ > 0, "DataLoader: dataset of ", n_, " samples is smaller than batch_size ",
                opt_.batch_size, " with drop_last");
  }
  ~DataLoader() { stop_workers(); }
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  index_t batches_per_epoch() const { return bpe_; }
  // Global index of the batch the next call to next() returns.
  std::int64_t position() const { return cursor_; }
  std::int64_t epoch() const { return cursor_ / bpe_; }
  const D& dataset() const { return dataset_; }

  Batch next() {
    if (opt_.workers == 0) return *build(cursor_++, nullptr);
    if (workers_.empty()) start_workers();
    std::unique_lock lock(mu_);
    ready_cv_.wait(lock, [&] { return ready_.count(cursor_) != 0; });
    auto node = ready_.extract(cursor_);
    ++cursor_;
    lock.unlock();
    space_cv_.notify_all();
    Slot& slot = node.mapped();
    if (slot.error) std::rethrow_exception(slot.error);
    return std::move(slot.batch);
  }

  // The next call to next() returns global batch `global_batch_index`, exactly as if the
  // loader had produced every batch before it.
  void seek(std::int64_t global_batch_index) {
    GCNET_CHECK(global_batch_index >= 0, "DataLoader::seek: negative batch index ", global_batch_index);
    stop_workers();
    cursor_ = global_batch_index;
  }

  // Builds batch g directly (no threads); what next() returns for it.
  Batch batch_at(std::int64_t g) const { return *build(g, nullptr); }

  // Data parallel: from now on this process builds only its shard of every global batch,
  // rank r of k taking samples [r*b/k, (r+1)*b/k) of it (b = batch_size, a multiple of k),
  // so k ranks together see exactly the batches of the unsharded loader. Batch indices,
  // epochs and seek() stay global. shard(0, 1) undoes it.
  void shard(int rank, int world_size) {
    GCNET_CHECK(world_size > 0 && rank >= 0 && rank < world_size, "DataLoader::shard: rank ", rank,
                " out of range for ", world_size, " ranks");
    GCNET_CHECK(opt_.batch_size % world_size == 0, "DataLoader::shard: the global batch_size ", opt_.batch_size,
                " is not a multiple of the ", world_size, " ranks");
    stop_workers();
    shard_rank_ = rank;
    shards_ = world_size;
  }
  int shard_rank() const { return shard_rank_; }
  int shards() const { return shards_; }

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };

  // Batch g, or nothing when `stop` was raised part way.
  std::optional<Batch> build(std::int64_t g, const std::atomic<bool>* stop) const {
    const std::int64_t epoch = g / bpe_;
    index_t first = (g % bpe_) * opt_.batch_size, last = std::min(first + opt_.batch_size, n_);
    if (shards_ > 1) {  // this rank's part of the global batch
      const index_t len = last - first;
      last = first + len * (shard_rank_ + 1) / shards_;
      first += len * shard_rank_ / shards_;
    }
    const auto order_ptr = epoch_order_cached(epoch);
    const std::vector<index_t>& order = *order_ptr;
    std::vector<Sample> samples;
    std::vector<index_t> indices;
    for (index_t k = first; k < last; ++k) {
      if (stop && stop->load(std::memory_order_relaxed)) return std::nullopt;
      const index_t i = order[static_cast<std::size_t>(k)];
      Rng rng(opt_.seed, sample_stream(epoch, i));
      samples.push_back(dataset_.get(i, rng));
      indices.push_back(i);
    }
    Batch b = collate(samples);
    b.indices = std::move(indices);
    return b;
  }

  // Shuffling is O(n): workers share one order per epoch (two kept: workers straddle epochs).
  std::shared_ptr<const std::vector<index_t>> epoch_order_cached(std::int64_t epoch) const {
    std::lock_guard lock(order_mu_);
    auto it = orders_.find(epoch);
    if (it != orders_.end()) return it->second;
    auto order = std::make_shared<const std::vector<index_t>>(epoch_order(n_, opt_.seed, epoch, opt_.shuffle));
    orders_[epoch] = order;
    for (auto e = orders_.begin(); orders_.size() > 2 && e != orders_.end();)
      e = e->first == epoch ? std::next(e) : orders_.erase(e);
    return order;
  }

  void start_workers() {
    stop_ = false;
    next_claim_ = cursor_;
    const std::int64_t capacity = opt_.workers * opt_.prefetch;
    for (int w = 0; w < opt_.workers; ++w)
      workers_.emplace_back([this, capacity] {
        for (;;) {
          std::int64_t g;
          {
            std::unique_lock lock(mu_);
            space_cv_.wait(lock, [&] { return stop_.load() || next_claim_ < cursor_ + capacity; });
            if (stop_) return;
            g = next_claim_++;
          }
          Slot slot;
          try {
            auto b = build(g, &stop_);
            if (!b) return;
            slot.batch = std::move(*b);
          } catch (...) {
            slot.error = std::current_exception();
          }
          {
            std::lock_guard lock(mu_);
            ready_.emplace(g, std::move(slot));
          }
          ready_cv_.notify_all();
        }
      });
  }

  void stop_workers() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    space_cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    ready_.clear();
  }

  D dataset_;
  LoaderOptions opt_;
  index_t n_ = 0, bpe_ = 0;
  std::int64_t cursor_ = 0;
  int shard_rank_ = 0, shards_ = 1;  // see shard()

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable ready_cv_, space_cv_;
  std::map<std::int64_t, Slot> ready_;
  std::int64_t next_claim_ = 0;
  std::atomic<bool> stop_{false};

  mutable std::mutex order_mu_;
  mutable std::map<std::int64_t, std::shared_ptr<const std::vector<index_t>>> orders_;
};

}  // namespace gcnet::data
