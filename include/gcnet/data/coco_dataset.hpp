#pragma once
// CocoDataset: a COCO instances JSON (coco_instances.hpp) and its image folder as mmdet v3's
// CocoDataset + LoadImageFromFile + LoadAnnotations(with_bbox, with_mask, poly2mask) give them,
// as DetSamples (det_sample.hpp), then the detection transforms (det_transforms.hpp).
//
// Labels: cat_ids() lists the used category ids in FILE order (pycocotools' getCatIds, as
// mmdet; for COCO that is ascending id), restricted to `classes` by name if given; label =
// position in that list. Per image, in file order, an annotation is skipped when (mmdet
// parse_data_info) it has "ignore" set, its box does not intersect the image, area <= 0, w < 1
// or h < 1, or its category is not used. Kept ones with iscrowd become ignore boxes, as do
// instances whose polygons are all shorter than 3 points (mmdet's _process_masks); the rest
// become boxes [x, y, x + w, y + h], labels and masks (polygons rasterised and merged, RLEs
// decoded, pycocotools semantics). Without with_mask the polygon check does not run (as mmdet's
// LoadAnnotations(with_mask=False)), so such instances stay GT boxes.
// Image filtering (mmdet filter_data, not in test_mode): with filter_empty_gt, images without
// any annotation of a used category (counting crowd and skipped ones, as mmdet) are dropped;
// images with min(w, h) < min_size are dropped.
// Images are read with read_image (data/image.hpp) and converted to 3 channels (mmdet's
// color_type='color'); an image whose size differs from its JSON entry is an Error.
#include <algorithm>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/data/coco_instances.hpp"
#include "gcnet/data/det_sample.hpp"
#include "gcnet/data/det_transforms.hpp"
#include "gcnet/data/image.hpp"

namespace gcnet::data {

struct CocoDatasetOptions {
  std::vector<std::string> classes{};  // category names to use (mmdet metainfo classes); empty: all
  bool filter_empty_gt = false;        // mmdet's COCO training config: true
  index_t min_size = 0;                // mmdet's COCO training config: 32
  bool test_mode = false;              // no image filtering (mmdet test_mode)
  bool with_mask = true;               // decode masks (every kept annotation needs a segmentation)
  DetCompose transform{};              // applied by get()
};

class CocoDataset {
 public:
  CocoDataset(const std::string& ann_file, std::string image_dir, CocoDatasetOptions opt = {})
      : coco_(read_coco_instances(ann_file)), image_dir_(std::move(image_dir)), opt_(std::move(opt)) {
    select_categories();
    filter_images();
  }

  index_t size() const { return static_cast<index_t>(images_.size()); }
  const CocoInstances& coco() const { return coco_; }
  const std::string& ann_file() const { return coco_.file; }
  const std::string& image_dir() const { return image_dir_; }
  // label -> category id, and the names (the class list of the detector).
  const std::vector<std::int64_t>& cat_ids() const { return cat_ids_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  index_t num_classes() const { return static_cast<index_t>(cat_ids_.size()); }
  // category id -> label, or -1 when the category is not used.
  index_t label_of(std::int64_t cat_id) const {
    const auto it = cat2label_.find(cat_id);
    return it == cat2label_.end() ? -1 : it->second;
  }
  const CocoImageInfo& image_info(index_t i) const { return coco_.images[image_pos(i)]; }
  std::string image_path(index_t i) const {
    return (std::filesystem::path(image_dir_) / image_info(i).file_name).string();
  }

  // The annotations of sample i at the JSON image size (image left undefined).
  DetSample annotations(index_t i) const {
    const std::size_t pos = image_pos(i);
    const CocoImageInfo& img = coco_.images[pos];
    const index_t H = img.height, W = img.width;
    std::vector<std::array<float, 4>> boxes, ignore;
    std::vector<std::int64_t> labels;
    std::vector<Rle> masks;
    for (const std::size_t a_pos : coco_.image_annotations[pos]) {
      const CocoAnnotation& a = coco_.annotations[a_pos];
      if (a.ignore) continue;
      const std::string where = coco_.file + ": annotations[" + std::to_string(a_pos) + "] (id " + std::to_string(a.id) + ")";
      GCNET_CHECK(a.has_bbox, where, ": missing \"bbox\" (a detection data set needs one per annotation)");
      const auto [x, y, w, h] = a.bbox;
      const double iw = std::max(0.0, std::min(x + w, static_cast<double>(W)) - std::max(x, 0.0));
      const double ih = std::max(0.0, std::min(y + h, static_cast<double>(H)) - std::max(y, 0.0));
      if (iw * ih == 0 || a.area <= 0 || w < 1 || h < 1) continue;
      const index_t label = label_of(a.category_id);
      if (label < 0) continue;
      const std::array<float, 4> box{static_cast<float>(x), static_cast<float>(y), static_cast<float>(x + w),
                                     static_cast<float>(y + h)};
      bool ignored = a.iscrowd;
      Rle mask;
      if (opt_.with_mask) {
        const CocoSegmentation& seg = a.segmentation;
        GCNET_CHECK(seg.kind != CocoSegmentation::Kind::none, where,
                    ": no \"segmentation\" (with_mask needs one per annotation; set with_mask = false for boxes only)");
        if (seg.kind == CocoSegmentation::Kind::polygons) {
          std::vector<Rle> parts;
          for (const auto& p : seg.polygons)
            if (p.size() >= 6) parts.push_back(rle_from_polygon(p, H, W, where));
          if (parts.empty()) {
            ignored = true;  // mmdet: no valid polygon -> the instance is ignored
            mask = Rle{H, W, {static_cast<std::uint32_t>(H * W)}};
          } else {
            mask = rle_merge(parts);
          }
        } else {
          mask = seg.rle;
        }
      }
      if (ignored) {
        ignore.push_back(box);
        continue;
      }
      boxes.push_back(box);
      labels.push_back(label);
      if (opt_.with_mask) masks.push_back(std::move(mask));
    }
    DetSample s;
    s.boxes = to_tensor(boxes);
    s.ignore_boxes = to_tensor(ignore);
    s.labels = Tensor<std::int64_t>(Shape{static_cast<index_t>(labels.size())});
    std::copy(labels.begin(), labels.end(), s.labels.data());
    if (opt_.with_mask) {
      s.masks = Tensor<std::uint8_t>(Shape{static_cast<index_t>(masks.size()), H, W});
      for (std::size_t k = 0; k < masks.size(); ++k)
        rle_to_mask(masks[k], s.masks.data() + static_cast<index_t>(k) * H * W, coco_.file);
    }
    s.meta.image_id = img.id;
    s.meta.file = image_path(i);
    s.meta.ori_h = s.meta.img_h = s.meta.pad_h = H;
    s.meta.ori_w = s.meta.img_w = s.meta.pad_w = W;
    return s;
  }

  // Image and annotations of sample i, before the transforms.
  DetSample load(index_t i) const {
    DetSample s = annotations(i);
    const CocoImageInfo& info = image_info(i);
    GCNET_CHECK(!info.file_name.empty(), coco_.file, ": images[", image_pos(i), "] (id ", info.id,
                ") has no \"file_name\"");
    const Image img = read_image(s.meta.file);
    GCNET_CHECK(img.height == info.height && img.width == info.width, s.meta.file, ": image is ", img.height, "x",
                img.width, " but ", coco_.file, " says ", info.height, "x", info.width, " (image id ", info.id, ")");
    s.image = Tensor<float>(Shape{img.height, img.width, 3});
    float* d = s.image.data();
    const index_t n = img.height * img.width;
    for (index_t p = 0; p < n; ++p)
      for (index_t c = 0; c < 3; ++c)
        d[p * 3 + c] = img.pixels[static_cast<std::size_t>(img.channels == 3 ? p * 3 + c : p)];
    return s;
  }

  // load(i), then the transforms with randomness from `rng` only.
  DetSample get(index_t i, Rng& rng) const {
    DetSample s = load(i);
    opt_.transform(s, rng);
    return s;
  }

 private:
  std::size_t image_pos(index_t i) const {
    GCNET_CHECK(i >= 0 && i < size(), "CocoDataset: sample ", i, " out of range [0, ", size(), ")");
    return images_[static_cast<std::size_t>(i)];
  }

  static Tensor<float> to_tensor(const std::vector<std::array<float, 4>>& b) {
    Tensor<float> t(Shape{static_cast<index_t>(b.size()), 4});
    for (std::size_t k = 0; k < b.size(); ++k) std::copy(b[k].begin(), b[k].end(), t.data() + 4 * k);
    return t;
  }

  void select_categories() {
    for (const std::string& name : opt_.classes)
      GCNET_CHECK(std::any_of(coco_.categories.begin(), coco_.categories.end(),
                              [&](const CocoCategory& c) { return c.name == name; }),
                  coco_.file, ": class \"", name, "\" of CocoDatasetOptions::classes names no category in the file");
    for (const CocoCategory& c : coco_.categories) {
      if (!opt_.classes.empty() && std::find(opt_.classes.begin(), opt_.classes.end(), c.name) == opt_.classes.end())
        continue;
      cat2label_[c.id] = static_cast<index_t>(cat_ids_.size());
      cat_ids_.push_back(c.id);
      class_names_.push_back(c.name);
    }
  }

  void filter_images() {
    const bool filter = !opt_.test_mode;
    for (std::size_t pos = 0; pos < coco_.images.size(); ++pos) {
      const CocoImageInfo& img = coco_.images[pos];
      if (filter && opt_.filter_empty_gt) {
        const auto& anns = coco_.image_annotations[pos];
        const bool any = std::any_of(anns.begin(), anns.end(), [&](std::size_t a) {
          return cat2label_.count(coco_.annotations[a].category_id) != 0;
        });
        if (!any) continue;
      }
      if (filter && std::min(img.width, img.height) < opt_.min_size) continue;
      images_.push_back(pos);
    }
  }

  CocoInstances coco_;
  std::string image_dir_;
  CocoDatasetOptions opt_;
  std::vector<std::int64_t> cat_ids_;
  std::vector<std::string> class_names_;
  std::unordered_map<std::int64_t, index_t> cat2label_;
  std::vector<std::size_t> images_;  // sample -> position in coco_.images
};

}  // namespace gcnet::data
