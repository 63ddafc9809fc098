#pragma once
// Fashion-MNIST (Zalando's 28x28 gray images of clothing, 10 classes), read from the gzip'd
// IDX files Debian's package `dataset-fashion-mnist` installs in /usr/share/datasets/
// fashion-mnist/. The folder is, in order of precedence: the `dir` argument, the environment
// variable GCNET_FASHION_MNIST_DIR, the Debian path. Every file is checked (magic number,
// dimensions, the split's image count, labels 0..9, gzip's CRC-32), so a damaged or wrong
// file is an Error naming it, and a missing one says which package provides it.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/core/config.hpp"
#include "gcnet/core/error.hpp"
#include "gcnet/data/idx_file.hpp"

namespace gcnet::data {

// train: the 60000 'train-*' images; test: the 10000 't10k-*' images.
enum class FashionSplit { train, test };

inline constexpr index_t fashion_mnist_side = 28;
inline constexpr int fashion_mnist_classes = 10;
inline constexpr const char* fashion_mnist_debian_dir = "/usr/share/datasets/fashion-mnist";

// Class names in label order (0 = T-shirt/top ... 9 = Ankle boot), as Zalando names them.
inline const std::array<std::string, 10>& fashion_mnist_class_names() {
  static const std::array<std::string, 10> names{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

inline const char* split_name(FashionSplit s) { return s == FashionSplit::train ? "train" : "test"; }
inline index_t fashion_mnist_count(FashionSplit s) { return s == FashionSplit::train ? 60000 : 10000; }

// The folder to read: `dir` if given, else $GCNET_FASHION_MNIST_DIR if set, else Debian's.
inline std::string fashion_mnist_dir(const std::string& dir = {}) {
  if (!dir.empty()) return dir;
  const char* env = std::getenv("GCNET_FASHION_MNIST_DIR");
  if (env && *env) return env;
  return fashion_mnist_debian_dir;
}

// One split in memory: count images of 28x28 bytes (0 = background, 255 = brightest) and labels.
struct FashionMnist {
  FashionSplit split = FashionSplit::train;
  std::string dir;
  index_t count = 0;
  std::vector<std::uint8_t> images;  // count * 28 * 28, row-major
  std::vector<std::uint8_t> labels;  // count, each 0..9

  const std::uint8_t* image(index_t i) const {
    GCNET_CHECK(i >= 0 && i < count, "FashionMnist: image ", i, " out of range for the ", split_name(split),
                " split of ", count);
    return images.data() + i * fashion_mnist_side * fashion_mnist_side;
  }
  int label(index_t i) const {
    GCNET_CHECK(i >= 0 && i < count, "FashionMnist: label ", i, " out of range for the ", split_name(split),
                " split of ", count);
    return labels[static_cast<std::size_t>(i)];
  }
};

namespace fashion_detail {
// A clear error for a file that is not there: where it was looked for and how to get it.
inline void require_file(const std::string& path, const char* what, const std::string& dir) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return;
  gcnet::detail::fail(path, ": Fashion-MNIST file not found (expected the ", what, " in ", dir,
                      "). Debian's package dataset-fashion-mnist provides it (scripts/setup-deps installs it, "
                      "or: sudo apt-get install dataset-fashion-mnist); GCNET_FASHION_MNIST_DIR or the "
                      "dataset's directory option points gcnet at another folder holding the same files");
}
}  // namespace fashion_detail

// Reads one split from fashion_mnist_dir(dir); about 0.3 s for the training split.
inline FashionMnist load_fashion_mnist(FashionSplit split, const std::string& dir = {}) {
  FashionMnist fm;
  fm.split = split;
  fm.dir = fashion_mnist_dir(dir);
  const std::string prefix = split == FashionSplit::train ? "train" : "t10k";
  const std::string images = (std::filesystem::path(fm.dir) / (prefix + "-images-idx3-ubyte.gz")).string();
  const std::string labels = (std::filesystem::path(fm.dir) / (prefix + "-labels-idx1-ubyte.gz")).string();
  const std::string which = split == FashionSplit::train ? "training" : "test";
  fashion_detail::require_file(images, (which + " images").c_str(), fm.dir);
  fashion_detail::require_file(labels, (which + " labels").c_str(), fm.dir);

  const index_t n = fashion_mnist_count(split), side = fashion_mnist_side;
  IdxArray im = read_idx_gz(images, {n, side, side},
                            std::to_string(n) + " images of 28x28 (the Fashion-MNIST " + which + " split)");
  IdxArray lb = read_idx_gz(labels, {n}, std::to_string(n) + " labels (the Fashion-MNIST " + which + " split)");
  for (std::size_t i = 0; i < lb.data.size(); ++i)
    GCNET_CHECK(lb.data[i] < fashion_mnist_classes, labels, ": label ", int{lb.data[i]}, " of image ", i,
                " is out of range (expected 0..9)");
  fm.count = n;
  fm.images = std::move(im.data);
  fm.labels = std::move(lb.data);
  return fm;
}

// The split, loaded once per process and folder while anyone holds it: datasets and their
// copies (one per loader, train and validation...) share one read-only copy.
inline std::shared_ptr<const FashionMnist> shared_fashion_mnist(FashionSplit split, const std::string& dir = {}) {
  static std::mutex mu;
  static std::map<std::pair<std::string, int>, std::weak_ptr<const FashionMnist>> cache;
  const std::string folder = fashion_mnist_dir(dir);
  const std::pair<std::string, int> key{folder, static_cast<int>(split)};
  std::lock_guard lock(mu);  // held while loading: a second caller waits instead of loading again
  if (auto hit = cache[key].lock()) return hit;
  auto fm = std::make_shared<const FashionMnist>(load_fashion_mnist(split, folder));
  cache[key] = fm;
  return fm;
}

}  // namespace gcnet::data
