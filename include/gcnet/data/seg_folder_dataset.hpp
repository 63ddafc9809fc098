#pragma once
// SegFolderDataset: a semantic segmentation data set in the folder layout of Cityscapes/ADE as
// mmseg uses them, on FolderDataset's pairing:
//   root/images/<stem>.{png,jpg,jpeg,bmp}   the images
//   root/labels/<stem>.png                  label maps: gray or palette PNG (palette indices are
//                                           the class ids), 255 = ignore
//   root/classes.json                       class names and palette (seg_classes.hpp), unless
//                                           the options give the classes
// Every label map is checked when loaded: it must have its image's size, and every value must
// be a class id (< num_classes) or 255, else an Error names the label file, the value and the
// valid range (a label map from another data set, or saved with the wrong palette, is caught
// at its first use instead of training on garbage). With reduce_zero_label (mmseg's, for data
// sets whose 0 means "other", as ADE20K): 0 becomes 255, every other value v becomes v - 1,
// 255 stays 255; the check applies to the reduced values.
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "gcnet/data/datasets.hpp"
#include "gcnet/data/seg_classes.hpp"

namespace gcnet::data {

struct SegFolderOptions {
  Compose transform{};
  std::optional<SegClasses> classes{};      // default: root/classes.json
  std::optional<bool> reduce_zero_label{};  // default: classes.json's "reduce_zero_label", else false
};

class SegFolderDataset {
 public:
  explicit SegFolderDataset(const std::string& root, SegFolderOptions opt = {})
      : files_(root), transform_(std::move(opt.transform)) {
    namespace fs = std::filesystem;
    bool from_file = false;
    if (opt.classes) {
      classes_ = std::move(*opt.classes);
      check_seg_classes(classes_, root + ": SegFolderDataset's classes");
    } else {
      const fs::path file = fs::path(root) / "classes.json";
      GCNET_CHECK(fs::is_regular_file(file), file.string(), ": SegFolderDataset: no class list (put the class names "
                  "and palette in this file, as write_fashion_scenes does, or pass SegFolderOptions::classes)");
      classes_ = read_seg_classes(file.string(), &from_file);
    }
    reduce_zero_label_ = opt.reduce_zero_label.value_or(from_file);
  }

  index_t size() const { return files_.size(); }
  const SegClasses& classes() const { return classes_; }
  index_t num_classes() const { return classes_.size(); }
  const std::vector<std::string>& class_names() const { return classes_.names; }
  const std::vector<PaletteColor>& palette() const { return classes_.palette; }
  bool reduce_zero_label() const { return reduce_zero_label_; }
  const std::string& image_path(index_t i) const { return files_.image_path(i); }
  const std::string& label_path(index_t i) const { return files_.label_path(i); }

  // The image and its checked (and, with reduce_zero_label, reduced) labels, then the transforms.
  Sample get(index_t i, Rng& rng) const {
    Rng unused;  // FolderDataset without transforms draws nothing
    Sample s = files_.get(i, unused);
    std::int64_t* l = s.label.data();
    const index_t n = s.label.numel(), k = num_classes();
    for (index_t p = 0; p < n; ++p) {
      const std::int64_t raw = l[p];
      std::int64_t v = raw;
      if (reduce_zero_label_) v = raw == 0 ? ignore_label : raw == ignore_label ? ignore_label : raw - 1;
      if (v >= k && v != ignore_label) {
        const index_t y = p / s.width(), x = p % s.width();
        gcnet::detail::fail(label_path(i), ": label value ", raw,
                            reduce_zero_label_ ? " (" + std::to_string(v) + " after reduce_zero_label)" : std::string(),
                            " at (x ", x, ", y ", y, ") is out of range: the data set has ", k,
                            " classes, so labels are 0..", k - 1, " or 255 (ignore)");
      }
      l[p] = v;
    }
    transform_(s, rng);
    return s;
  }

 private:
  FolderDataset files_;  // pairing, size check, empty-folder check; no transforms
  Compose transform_;
  SegClasses classes_;
  bool reduce_zero_label_ = false;
};

}  // namespace gcnet::data
