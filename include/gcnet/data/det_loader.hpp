#pragma once
// DetLoader: batches of a detection data set (get(i, rng) -> DetSample), collated by
// collate_det (det_batch.hpp), with what the Trainer asks of a loader: next(), seek(g) for exact
// resume, batches_per_epoch(), shard(rank, k) for data parallel.
//
// Reproducibility is DataLoader's (loader.hpp): batch g is a pure function of (seed, g): epoch
// g / batches_per_epoch() in the Fisher-Yates order of Rng(seed, epoch), each sample augmented
// with Rng(seed, sample_stream(epoch, index)); so seek(g) resumes exactly and the batches do not
// depend on timing. With `prefetch`, one background thread builds batch g + 1 while the caller
// trains on batch g (a detector step is long, so one batch ahead hides the data time); its
// errors are rethrown by the next() that returns that batch.
#include <cstdint>
#include <future>
#include <optional>
#include <vector>

#include "gcnet/data/det_batch.hpp"
#include "gcnet/data/loader.hpp"

namespace gcnet::data {

template <class D>
concept DetDataset = requires(const D& d, index_t i, Rng& rng) {
  { d.size() } -> std::convertible_to<index_t>;
  { d.get(i, rng) } -> std::same_as<DetSample>;
};

struct DetLoaderOptions {
  index_t batch_size = 2;
  bool shuffle = true;
  std::uint64_t seed = 0;
  bool drop_last = true;   // training: every batch full; evaluation: false (every image once)
  index_t divisor = 32;    // batch padding (mmdet pad_size_divisor)
  bool prefetch = true;    // build the next batch on a background thread
};

template <DetDataset D>
class DetLoader {
 public:
  DetLoader(D dataset, DetLoaderOptions opt) : dataset_(std::move(dataset)), opt_(opt) {
    GCNET_CHECK(opt_.batch_size > 0, "DetLoader: batch_size must be positive, got ", opt_.batch_size);
    GCNET_CHECK(opt_.divisor > 0, "DetLoader: divisor must be positive, got ", opt_.divisor);
    n_ = static_cast<index_t>(dataset_.size());
    GCNET_CHECK(n_ > 0, "DetLoader: the data set is empty");
    bpe_ = opt_.drop_last ? n_ / opt_.batch_size : (n_ + opt_.batch_size - 1) / opt_.batch_size;
    GCNET_CHECK(bpe_ > 0, "DetLoader: a data set of ", n_, " images is smaller than the batch size ", opt_.batch_size,
                " (drop_last)");
  }
  ~DetLoader() { drop_pending(); }
  DetLoader(const DetLoader&) = delete;
  DetLoader& operator=(const DetLoader&) = delete;

  index_t batches_per_epoch() const { return bpe_; }
  std::int64_t position() const { return cursor_; }
  std::int64_t epoch() const { return cursor_ / bpe_; }
  const D& dataset() const { return dataset_; }
  const DetLoaderOptions& options() const { return opt_; }

  DetBatchData next() {
    DetBatchData b;
    if (pending_.valid() && pending_g_ == cursor_) b = pending_.get();  // rethrows the builder's error
    else {
      drop_pending();
      b = batch_at(cursor_);
    }
    ++cursor_;
    if (opt_.prefetch) {
      pending_g_ = cursor_;
      pending_ = std::async(std::launch::async, [this, g = cursor_] { return batch_at(g); });
    }
    return b;
  }

  // The next call to next() returns global batch `g`, as if every batch before it had been made.
  void seek(std::int64_t g) {
    GCNET_CHECK(g >= 0, "DetLoader::seek: negative batch index ", g);
    drop_pending();
    cursor_ = g;
  }

  // Data parallel: rank r of k builds samples [r*b/k, (r+1)*b/k) of every global batch (b a
  // multiple of k); batch indices and seek stay global. shard(0, 1) undoes it.
  void shard(int rank, int world_size) {
    GCNET_CHECK(world_size > 0 && rank >= 0 && rank < world_size, "DetLoader::shard: rank ", rank,
                " out of range for ", world_size, " ranks");
    GCNET_CHECK(opt_.batch_size % world_size == 0, "DetLoader::shard: the global batch size ", opt_.batch_size,
                " is not a multiple of the ", world_size, " ranks");
    drop_pending();
    shard_rank_ = rank;
    shards_ = world_size;
  }
  int shard_rank() const { return shard_rank_; }
  int shards() const { return shards_; }

  // Batch g (this rank's shard of it), built on the calling thread.
  DetBatchData batch_at(std::int64_t g) const {
    GCNET_CHECK(g >= 0, "DetLoader: negative batch index ", g);
    const std::int64_t epoch = g / bpe_;
    index_t first = (g % bpe_) * opt_.batch_size, last = std::min(first + opt_.batch_size, n_);
    if (shards_ > 1) {
      const index_t len = last - first;
      last = first + len * (shard_rank_ + 1) / shards_;
      first += len * shard_rank_ / shards_;
    }
    GCNET_CHECK(last > first, "DetLoader: batch ", g, " has no images for rank ", shard_rank_, " of ", shards_);
    const std::vector<index_t> order = epoch_order(n_, opt_.seed, epoch, opt_.shuffle);
    std::vector<DetSample> samples;
    std::vector<index_t> indices;
    for (index_t k = first; k < last; ++k) {
      const index_t i = order[static_cast<std::size_t>(k)];
      Rng rng(opt_.seed, sample_stream(epoch, i));
      samples.push_back(dataset_.get(i, rng));
      indices.push_back(i);
    }
    DetBatchData b = collate_det(samples, opt_.divisor);
    b.indices = std::move(indices);
    return b;
  }

 private:
  void drop_pending() {
    if (pending_.valid()) pending_.wait();  // its result (or error) is discarded
    pending_ = {};
  }

  D dataset_;
  DetLoaderOptions opt_;
  index_t n_ = 0, bpe_ = 0;
  std::int64_t cursor_ = 0;
  int shard_rank_ = 0, shards_ = 1;
  std::future<DetBatchData> pending_;
  std::int64_t pending_g_ = -1;
};

}  // namespace gcnet::data
