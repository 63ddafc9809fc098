#pragma once
// Two Datasets (see loader.hpp): samples held in memory (tests, generated toy data), and a
// folder of images with label maps (examples). Both run a Compose of transforms in get().
// For segmentation folders with class names, a palette and label checks, see
// seg_folder_dataset.hpp (SegFolderDataset, built on FolderDataset).
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "gcnet/data/image.hpp"
#include "gcnet/data/sample.hpp"
#include "gcnet/data/transforms.hpp"

namespace gcnet::data {

// Samples in memory; get() transforms a deep copy, so the stored samples never change.
class InMemoryDataset {
 public:
  InMemoryDataset(std::vector<Sample> samples, Compose transform = {})
      : samples_(std::move(samples)), transform_(std::move(transform)) {}
  index_t size() const { return static_cast<index_t>(samples_.size()); }
  Sample get(index_t i, Rng& rng) const {
    GCNET_CHECK(i >= 0 && i < size(), "InMemoryDataset: index ", i, " out of range for ", size(), " samples");
    Sample s = copy_sample(samples_[static_cast<std::size_t>(i)]);
    transform_(s, rng);
    return s;
  }

 private:
  std::vector<Sample> samples_;
  Compose transform_;
};

// root/images/<stem>.{png,jpg,jpeg,bmp} with root/labels/<stem>.png, paired by stem and
// sorted by name. Every image must have its label; a missing one is an error naming both.
class FolderDataset {
 public:
  explicit FolderDataset(const std::string& root, Compose transform = {}) : transform_(std::move(transform)) {
    namespace fs = std::filesystem;
    const fs::path images = fs::path(root) / "images", labels = fs::path(root) / "labels";
    GCNET_CHECK(fs::is_directory(images), root, ": FolderDataset: missing directory ", images.string());
    GCNET_CHECK(fs::is_directory(labels), root, ": FolderDataset: missing directory ", labels.string());
    for (const auto& e : fs::directory_iterator(images)) {
      if (!e.is_regular_file()) continue;
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext != ".png" && ext != ".jpg" && ext != ".jpeg" && ext != ".bmp") continue;
      const fs::path label = labels / (e.path().stem().string() + ".png");
      GCNET_CHECK(fs::is_regular_file(label), e.path().string(), ": FolderDataset: no label map ",
                  label.string());
      items_.push_back({e.path().string(), label.string()});
    }
    std::sort(items_.begin(), items_.end(), [](const Item& a, const Item& b) { return a.image < b.image; });
    GCNET_CHECK(!items_.empty(), root, ": FolderDataset: no images in ", images.string());
  }
  index_t size() const { return static_cast<index_t>(items_.size()); }
  const std::string& image_path(index_t i) const { return items_[static_cast<std::size_t>(i)].image; }
  const std::string& label_path(index_t i) const { return items_[static_cast<std::size_t>(i)].label; }
  Sample get(index_t i, Rng& rng) const {
    GCNET_CHECK(i >= 0 && i < size(), "FolderDataset: index ", i, " out of range for ", size(), " samples");
    const Item& it = items_[static_cast<std::size_t>(i)];
    const Image img = read_image(it.image);
    const Image lbl = read_label_png(it.label);
    GCNET_CHECK(img.height == lbl.height && img.width == lbl.width, it.label, ": label map is ", lbl.height,
                "x", lbl.width, " but image ", it.image, " is ", img.height, "x", img.width);
    Sample s{image_to_tensor(img), label_to_tensor(lbl), -1};
    transform_(s, rng);
    return s;
  }

 private:
  struct Item {
    std::string image, label;
  };
  std::vector<Item> items_;
  Compose transform_;
};

}  // namespace gcnet::data
