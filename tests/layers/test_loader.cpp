#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>

#include "gcnet/data/datasets.hpp"
#include "gcnet/data/loader.hpp"

using namespace gcnet;
using namespace gcnet::data;

namespace {
// n random samples of varying size (so collate pads), labels in 0..3.
std::vector<Sample> random_samples(index_t n, std::uint64_t seed, bool vary = true) {
  std::vector<Sample> out;
  Rng rng(seed);
  for (index_t i = 0; i < n; ++i) {
    const index_t h = vary ? 6 + static_cast<index_t>(rng.below(4)) : 6;
    const index_t w = vary ? 7 + static_cast<index_t>(rng.below(4)) : 7;
    Sample s{Tensor<float>(Shape{h, w, 3}), Tensor<std::int64_t>(Shape{h, w}), -1};
    for (index_t k = 0; k < s.image.numel(); ++k) s.image[k] = static_cast<float>(rng.below(256));
    for (index_t k = 0; k < s.label.numel(); ++k) s.label[k] = static_cast<std::int64_t>(rng.below(4));
    out.push_back(s);
  }
  return out;
}
Compose augment() {
  return {RandomResize{12, 9, 0.8, 1.2}, RandomCrop{6, 6, 0.9}, RandomFlip{0.5}, PhotoMetricDistortion{}, Normalize{}};
}
template <class T>
bool same(const Tensor<T>& a, const Tensor<T>& b) {
  if (!(a.shape() == b.shape())) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}
bool same(const Batch& a, const Batch& b) {
  return same(a.images, b.images) && same(a.labels, b.labels) && a.indices == b.indices;
}
template <class D>
std::vector<Batch> take(DataLoader<D>& l, int n) {
  std::vector<Batch> out;
  for (int i = 0; i < n; ++i) out.push_back(l.next());
  return out;
}

// A dataset whose get() is slow (and counts calls), for the threading tests.
struct SlowDataset {
  index_t n = 64;
  int ms = 30;
  index_t fail_at = -1;
  index_t size() const { return n; }
  Sample get(index_t i, Rng& rng) const {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    GCNET_CHECK(i != fail_at, "SlowDataset: cannot load sample ", i);
    Sample s{Tensor<float>(Shape{2, 2, 1}), {}, i % 3};
    for (index_t k = 0; k < 4; ++k) s.image[k] = static_cast<float>(rng.uniform());
    return s;
  }
};
static_assert(Dataset<SlowDataset>);
static_assert(Dataset<InMemoryDataset>);
static_assert(Dataset<FolderDataset>);
}  // namespace

TEST_CASE("collate: NCHW, padded to the largest sample with image 0 and label 255") {
  auto samples = random_samples(2, 1, false);
  samples[1] = random_samples(1, 2, false)[0];
  // Make sample 0 smaller: 4 x 5.
  Sample small{Tensor<float>(Shape{4, 5, 3}), Tensor<std::int64_t>(Shape{4, 5}), -1};
  for (index_t k = 0; k < small.image.numel(); ++k) small.image[k] = static_cast<float>(k + 1);
  for (index_t k = 0; k < small.label.numel(); ++k) small.label[k] = k % 3;
  samples[0] = small;
  const Batch b = collate(samples);
  REQUIRE(b.images.shape() == Shape{2, 3, 6, 7});
  REQUIRE(b.labels.shape() == Shape{2, 6, 7});
  for (index_t y = 0; y < 6; ++y)
    for (index_t x = 0; x < 7; ++x) {
      const bool in = y < 4 && x < 5;
      for (index_t c = 0; c < 3; ++c) {
        CHECK(b.images.at({0, c, y, x}) == (in ? small.image.at({y, x, c}) : 0.f));
        CHECK(b.images.at({1, c, y, x}) == samples[1].image.at({y, x, c}));
      }
      CHECK(b.labels.at({0, y, x}) == (in ? small.label.at({y, x}) : 255));
      CHECK(b.labels.at({1, y, x}) == samples[1].label.at({y, x}));
    }
  // Classification samples give [N] labels.
  std::vector<Sample> cls(3);
  for (int i = 0; i < 3; ++i) cls[static_cast<std::size_t>(i)] = {Tensor<float>(Shape{2, 2, 1}), {}, 7 - i};
  for (auto& s : cls) std::fill_n(s.image.data(), 4, 1.f);
  const Batch c = collate(cls);
  REQUIRE(c.labels.shape() == Shape{3});
  CHECK(c.labels[0] == 7);
  CHECK(c.labels[2] == 5);
}

TEST_CASE("DataLoader: every epoch covers the dataset once, reshuffled differently per epoch") {
  DataLoader loader(InMemoryDataset(random_samples(12, 3)), {.batch_size = 4, .shuffle = true, .seed = 9});
  CHECK(loader.batches_per_epoch() == 3);
  std::vector<std::vector<index_t>> orders(3);
  for (int e = 0; e < 3; ++e) {
    for (int b = 0; b < 3; ++b) {
      const Batch batch = loader.next();
      CHECK(batch.images.size(0) == 4);
      CHECK(batch.images.size(2) <= 9);  // padded to the batch's largest sample (6..9 x 7..10)
      CHECK(batch.images.size(3) <= 10);
      CHECK(batch.labels.size(2) == batch.images.size(3));
      orders[static_cast<std::size_t>(e)].insert(orders[static_cast<std::size_t>(e)].end(), batch.indices.begin(),
                                                 batch.indices.end());
    }
    CHECK(std::set<index_t>(orders[static_cast<std::size_t>(e)].begin(), orders[static_cast<std::size_t>(e)].end()).size() == 12);
  }
  CHECK(loader.epoch() == 3);
  CHECK(orders[0] != orders[1]);
  CHECK(orders[1] != orders[2]);
  // Another seed, another order; no shuffle, the identity.
  DataLoader other(InMemoryDataset(random_samples(12, 3)), {.batch_size = 12, .seed = 10});
  CHECK(other.next().indices != orders[0]);
  DataLoader plain(InMemoryDataset(random_samples(12, 3)), {.batch_size = 12, .shuffle = false});
  const auto ids = plain.next().indices;
  for (index_t i = 0; i < 12; ++i) CHECK(ids[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("DataLoader: drop_last and the short last batch") {
  DataLoader keep(InMemoryDataset(random_samples(10, 4)), {.batch_size = 4, .drop_last = false});
  CHECK(keep.batches_per_epoch() == 3);
  take(keep, 2);
  CHECK(keep.next().images.size(0) == 2);
  DataLoader drop(InMemoryDataset(random_samples(10, 4)), {.batch_size = 4});
  CHECK(drop.batches_per_epoch() == 2);
  CHECK_THROWS_WITH_AS(DataLoader(InMemoryDataset(random_samples(3, 4)), {.batch_size = 4}),
                       doctest::Contains("DataLoader: dataset of 3 samples is smaller than batch_size 4"), gcnet::Error);
  CHECK_THROWS_WITH_AS(DataLoader(InMemoryDataset(random_samples(3, 4)), {.batch_size = 0}),
                       doctest::Contains("DataLoader: batch_size must be positive, got 0"), gcnet::Error);
}

TEST_CASE("DataLoader: the same augmented batches with 0, 1 and 3 workers") {
  const auto samples = random_samples(10, 5);
  const LoaderOptions base{.batch_size = 3, .seed = 21};
  DataLoader serial(InMemoryDataset(samples, augment()), base);
  const auto want = take(serial, 8);  // 2.67 epochs
  CHECK_FALSE(same(want[0], want[1]));
  for (int workers : {1, 3}) {
    CAPTURE(workers);
    LoaderOptions o = base;
    o.workers = workers;
    DataLoader threaded(InMemoryDataset(samples, augment()), o);
    const auto got = take(threaded, 8);
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(same(got[i], want[i]));
  }
  // The augmentation of a sample differs between epochs (its Rng stream depends on the epoch).
  DataLoader again(InMemoryDataset(samples, augment()), base);
  CHECK(same(again.batch_at(0), want[0]));
  CHECK_FALSE(same(again.batch_at(0).images, again.batch_at(3).images));
}

TEST_CASE("DataLoader: seek resumes with exactly the batches of an uninterrupted run") {
  const auto samples = random_samples(9, 6);
  for (int workers : {0, 2}) {
    CAPTURE(workers);
    const LoaderOptions o{.batch_size = 2, .seed = 77, .workers = workers};
    DataLoader full(InMemoryDataset(samples, augment()), o);
    const auto want = take(full, 11);  // crosses epochs (4 batches each)
    DataLoader resumed(InMemoryDataset(samples, augment()), o);
    resumed.seek(5);
    CHECK(resumed.position() == 5);
    const auto got = take(resumed, 6);
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(same(got[i], want[5 + i]));
    // Seeking back on a loader whose workers are running.
    resumed.seek(1);
    CHECK(same(resumed.next(), want[1]));
    CHECK(same(resumed.next(), want[2]));
  }
  DataLoader l(InMemoryDataset(samples), {.batch_size = 2});
  CHECK_THROWS_WITH_AS(l.seek(-1), doctest::Contains("DataLoader::seek: negative batch index -1"), gcnet::Error);
}

TEST_CASE("DataLoader: destruction while workers are busy stops them promptly") {
  using clock = std::chrono::steady_clock;
  auto* loader = new DataLoader(SlowDataset{.n = 64, .ms = 30}, {.batch_size = 8, .workers = 3, .prefetch = 4});
  const Batch b = loader->next();  // workers are now building further batches (8 x 30 ms each)
  CHECK(b.labels.shape() == Shape{8});
  const auto t0 = clock::now();
  delete loader;
  const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  CHECK(ms < 200);  // one sample per worker at most, not whole batches
  // A loader that never started its workers, and one started then sought.
  { DataLoader idle(SlowDataset{.n = 8, .ms = 1}, {.batch_size = 2, .workers = 2}); }
  DataLoader l(SlowDataset{.n = 8, .ms = 1}, {.batch_size = 2, .workers = 2});
  l.next();
  l.seek(0);
  CHECK(l.next().indices.size() == 2);
}

TEST_CASE("DataLoader: a failing sample is rethrown by next() with its message, the loader goes on") {
  for (int workers : {0, 2}) {
    CAPTURE(workers);
    DataLoader l(SlowDataset{.n = 6, .ms = 1, .fail_at = 2}, {.batch_size = 2, .shuffle = false, .workers = workers});
    l.next();
    CHECK_THROWS_WITH_AS(l.next(), doctest::Contains("SlowDataset: cannot load sample 2"), gcnet::Error);
    CHECK(l.next().indices == std::vector<index_t>{4, 5});
  }
}

TEST_CASE("FolderDataset: images/ and labels/ paired by stem, through the loader") {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("gcnet_test_loader_" + std::to_string(::getpid()));
  fs::create_directories(root / "images");
  fs::create_directories(root / "labels");
  Rng rng(3);
  for (const char* stem : {"b", "a", "c"}) {
    Image img{5, 6, 3, std::vector<std::uint8_t>(90)}, lbl{5, 6, 1, std::vector<std::uint8_t>(30)};
    for (auto& p : img.pixels) p = static_cast<std::uint8_t>(rng.below(256));
    for (auto& p : lbl.pixels) p = static_cast<std::uint8_t>(rng.below(3));
    write_png((root / "images" / (std::string(stem) + ".png")).string(), img);
    write_png((root / "labels" / (std::string(stem) + ".png")).string(), lbl);
  }
  FolderDataset ds(root.string(), Compose{Normalize{}});
  REQUIRE(ds.size() == 3);
  CHECK(fs::path(ds.image_path(0)).filename() == "a.png");
  DataLoader loader(ds, {.batch_size = 3, .shuffle = false, .workers = 2});
  const Batch b = loader.next();
  REQUIRE(b.images.shape() == Shape{3, 3, 5, 6});
  REQUIRE(b.labels.shape() == Shape{3, 5, 6});
  const Image a = read_image(ds.image_path(0));
  CHECK(b.images.at({0, 1, 2, 3}) == doctest::Approx((a.at(2, 3, 1) - 116.28f) / 57.12f));
  CHECK(b.labels.at({0, 2, 3}) == read_label_png((root / "labels" / "a.png").string()).at(2, 3, 0));

  // A label missing at construction, and a file broken after it: both errors name the file.
  fs::remove(root / "labels" / "c.png");
  CHECK_THROWS_WITH_AS(FolderDataset(root.string()), doctest::Contains("c.png: FolderDataset: no label map"),
                       gcnet::Error);
  fs::remove(root / "images" / "b.png");
  DataLoader broken(ds, {.batch_size = 3, .shuffle = false, .workers = 1});
  CHECK_THROWS_WITH_AS(broken.next(), doctest::Contains("b.png: cannot open file"), gcnet::Error);
  fs::remove_all(root);
}
