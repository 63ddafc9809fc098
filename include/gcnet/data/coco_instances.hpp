#pragma once
// Reading a COCO instances JSON (images, categories, annotations) into plain structs, checked
// entry by entry. Both the detection data set (coco_dataset.hpp) and COCOeval read GT files
// with it. Every error names the file and the entry ("annotations[12] (id 345)") and says what
// was expected:
//  - not valid JSON, or not an object with "images", "annotations" (and "categories") arrays;
//  - a missing or mistyped field (ids must be integers; bbox 4 numbers; area a number);
//  - duplicate image, category or annotation ids (pycocotools would silently keep the last);
//  - an annotation naming a missing image or category;
//  - a polygon with an odd number of coordinates, or a non-finite coordinate;
//  - an RLE (compressed string or uncompressed counts) whose counts do not sum to h * w, a
//    damaged compressed string, or an RLE whose size is not its image's size.
// Segmentation is kept in its file form (polygons stay polygons); coco_segmentation_to_rle
// turns one into an Rle exactly as pycocotools' annToRLE.
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/data/coco_mask.hpp"
#include "gcnet/data/file_bytes.hpp"

namespace gcnet::data {

struct CocoImageInfo {
  std::int64_t id = 0;
  std::string file_name;  // "" when the entry has none (evaluation does not need it)
  index_t height = 0, width = 0;
};

struct CocoCategory {
  std::int64_t id = 0;
  std::string name;
  std::string supercategory;
};

// The "segmentation" of an annotation. Both RLE forms are decoded to counts when read (so a
// damaged one is caught then); `compressed` remembers which form the file used.
struct CocoSegmentation {
  enum class Kind { none, polygons, rle };
  Kind kind = Kind::none;
  std::vector<std::vector<double>> polygons;  // kind == polygons: [x0, y0, x1, y1, ...] each
  Rle rle;                                    // kind == rle
  bool compressed = false;                    // kind == rle: counts were a string
};

struct CocoAnnotation {
  std::int64_t id = 0, image_id = 0, category_id = 0;
  std::array<double, 4> bbox{0, 0, 0, 0};  // [x, y, w, h]
  bool has_bbox = false;
  double area = 0;
  bool iscrowd = false;
  bool ignore = false;  // the optional "ignore" field (mmdet skips such annotations)
  CocoSegmentation segmentation;
};

struct CocoInstances {
  std::string file;  // the path it was read from (for messages)
  std::vector<CocoImageInfo> images;
  std::vector<CocoCategory> categories;  // in file order
  std::vector<CocoAnnotation> annotations;
  std::unordered_map<std::int64_t, std::size_t> image_index, category_index, annotation_index;  // id -> position
  std::vector<std::vector<std::size_t>> image_annotations;  // per image position: its annotations, file order

  const CocoImageInfo& image(std::int64_t id) const {
    const auto it = image_index.find(id);
    GCNET_CHECK(it != image_index.end(), file, ": no image with id ", id);
    return images[it->second];
  }
  bool has_image(std::int64_t id) const { return image_index.count(id) != 0; }
  bool has_category(std::int64_t id) const { return category_index.count(id) != 0; }
};

// pycocotools' annToRLE: polygons -> frPyObjects + merge; uncompressed or compressed RLE -> as is.
// Errors for an annotation without segmentation.
inline Rle coco_segmentation_to_rle(const CocoSegmentation& s, index_t h, index_t w,
                                    const std::string& where = "coco_segmentation_to_rle") {
  switch (s.kind) {
    case CocoSegmentation::Kind::polygons: return rle_from_polygons(s.polygons, h, w, where);
    case CocoSegmentation::Kind::rle: return s.rle;
    case CocoSegmentation::Kind::none: break;
  }
  gcnet::detail::fail(where, ": the annotation has no segmentation");
}

namespace coco_detail {

inline std::string entry(const char* array, std::size_t i, const nlohmann::json& e) {
  std::string s = std::string(array) + "[" + std::to_string(i) + "]";
  if (e.is_object() && e.contains("id") && e["id"].is_number_integer()) s += " (id " + e["id"].dump() + ")";
  return s;
}

inline std::int64_t get_int(const nlohmann::json& e, const char* key, const std::string& where) {
  GCNET_CHECK(e.contains(key), where, ": missing \"", key, "\"");
  const nlohmann::json& v = e[key];
  // 12.0 is accepted as 12 (some writers emit floats); 12.5 is not.
  if (v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>()) &&
      std::abs(v.get<double>()) < 9e15)
    return static_cast<std::int64_t>(v.get<double>());
  GCNET_CHECK(v.is_number_integer(), where, ": \"", key, "\" must be an integer, got ", v.dump());
  return v.get<std::int64_t>();
}

inline double get_number(const nlohmann::json& v, const std::string& where, const std::string& what) {
  GCNET_CHECK(v.is_number(), where, ": ", what, " must be a number, got ", v.dump());
  const double d = v.get<double>();
  GCNET_CHECK(std::isfinite(d), where, ": ", what, " is not finite");
  return d;
}

inline bool get_flag(const nlohmann::json& e, const char* key, const std::string& where) {
  if (!e.contains(key) || e[key].is_null()) return false;
  const nlohmann::json& v = e[key];
  if (v.is_boolean()) return v.get<bool>();
  GCNET_CHECK(v.is_number(), where, ": \"", key, "\" must be 0/1 or a boolean, got ", v.dump());
  return v.get<double>() != 0;
}

// An RLE object {"size": [h, w], "counts": [..] or "..."} of an image h x w.
inline void read_rle(const nlohmann::json& seg, CocoSegmentation& out, const CocoImageInfo& img,
                     const std::string& where) {
  const nlohmann::json& size = seg["size"];
  GCNET_CHECK(size.is_array() && size.size() == 2 && size[0].is_number_integer() && size[1].is_number_integer(),
              where, ": RLE \"size\" must be [height, width], got ", size.dump());
  const index_t h = size[0].get<index_t>(), w = size[1].get<index_t>();
  GCNET_CHECK(h == img.height && w == img.width, where, ": RLE size ", h, "x", w, " is not the size ", img.height,
              "x", img.width, " of image id ", img.id);
  const nlohmann::json& counts = seg["counts"];
  out.kind = CocoSegmentation::Kind::rle;
  if (counts.is_string()) {
    out.compressed = true;
    out.rle = rle_from_string(counts.get<std::string>(), h, w, where + ": segmentation");
    return;
  }
  GCNET_CHECK(counts.is_array(), where, ": RLE \"counts\" must be a string or an array of counts, got ",
              counts.type_name());
  out.rle = Rle{h, w, {}};
  out.rle.counts.reserve(counts.size());
  for (std::size_t k = 0; k < counts.size(); ++k) {
    const nlohmann::json& c = counts[k];
    GCNET_CHECK(c.is_number_unsigned() || (c.is_number_integer() && c.get<std::int64_t>() >= 0), where,
                ": RLE counts[", k, "] must be a non-negative integer, got ", c.dump());
    GCNET_CHECK(c.get<std::uint64_t>() <= UINT32_MAX, where, ": RLE counts[", k, "] = ", c.dump(), " is too large");
    out.rle.counts.push_back(static_cast<std::uint32_t>(c.get<std::uint64_t>()));
  }
  rle_check(out.rle, where + ": segmentation");
}

inline void read_segmentation(const nlohmann::json& seg, CocoSegmentation& out, const CocoImageInfo& img,
                              const std::string& where) {
  if (seg.is_null()) return;
  if (seg.is_object()) {
    GCNET_CHECK(seg.contains("counts") && seg.contains("size"), where,
                ": \"segmentation\" object must have \"counts\" and \"size\" (an RLE)");
    read_rle(seg, out, img, where);
    return;
  }
  GCNET_CHECK(seg.is_array(), where, ": \"segmentation\" must be a list of polygons or an RLE object, got ",
              seg.type_name());
  out.kind = CocoSegmentation::Kind::polygons;
  out.polygons.reserve(seg.size());
  for (std::size_t p = 0; p < seg.size(); ++p) {
    const nlohmann::json& poly = seg[p];
    const std::string pw = where + ": polygon " + std::to_string(p);
    GCNET_CHECK(poly.is_array(), pw, " must be a list of coordinates x0, y0, x1, y1, ..., got ", poly.type_name());
    GCNET_CHECK(poly.size() % 2 == 0, pw, " has an odd number of coordinates (", poly.size(),
                "); a polygon lists x, y pairs");
    std::vector<double> xy;
    xy.reserve(poly.size());
    for (std::size_t k = 0; k < poly.size(); ++k) xy.push_back(get_number(poly[k], pw, "coordinate " + std::to_string(k)));
    out.polygons.push_back(std::move(xy));
  }
}

}  // namespace coco_detail

// Parses the text of an instances JSON; errors name `path`.
inline CocoInstances parse_coco_instances(const std::string& text, const std::string& path) {
  using coco_detail::entry;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    gcnet::detail::fail(path, ": not valid JSON (", e.what(), ")");
  }
  GCNET_CHECK(j.is_object(), path, ": expected a COCO instances object {\"images\": [...], \"annotations\": [...], "
              "\"categories\": [...]}, got a JSON ", j.type_name());
  for (const char* key : {"images", "annotations", "categories"})
    GCNET_CHECK(j.contains(key) && j[key].is_array(), path, ": expected a \"", key, "\" array");

  CocoInstances c;
  c.file = path;
  const nlohmann::json& images = j["images"];
  c.images.reserve(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    const nlohmann::json& e = images[i];
    const std::string where = path + ": " + entry("images", i, e);
    GCNET_CHECK(e.is_object(), where, ": expected an object, got ", e.type_name());
    CocoImageInfo img;
    img.id = coco_detail::get_int(e, "id", where);
    img.height = coco_detail::get_int(e, "height", where);
    img.width = coco_detail::get_int(e, "width", where);
    GCNET_CHECK(img.height > 0 && img.width > 0, where, ": image size ", img.height, "x", img.width,
                " is not positive");
    if (e.contains("file_name")) {
      GCNET_CHECK(e["file_name"].is_string(), where, ": \"file_name\" must be a string");
      img.file_name = e["file_name"].get<std::string>();
    }
    GCNET_CHECK(c.image_index.emplace(img.id, i).second, where, ": image id ", img.id, " appears twice");
    c.images.push_back(std::move(img));
  }

  const nlohmann::json& cats = j["categories"];
  for (std::size_t i = 0; i < cats.size(); ++i) {
    const nlohmann::json& e = cats[i];
    const std::string where = path + ": " + entry("categories", i, e);
    GCNET_CHECK(e.is_object(), where, ": expected an object, got ", e.type_name());
    CocoCategory cat;
    cat.id = coco_detail::get_int(e, "id", where);
    if (e.contains("name")) {
      GCNET_CHECK(e["name"].is_string(), where, ": \"name\" must be a string");
      cat.name = e["name"].get<std::string>();
    }
    if (e.contains("supercategory") && e["supercategory"].is_string())
      cat.supercategory = e["supercategory"].get<std::string>();
    GCNET_CHECK(c.category_index.emplace(cat.id, i).second, where, ": category id ", cat.id, " appears twice");
    c.categories.push_back(std::move(cat));
  }

  const nlohmann::json& anns = j["annotations"];
  c.annotations.reserve(anns.size());
  c.image_annotations.resize(c.images.size());
  for (std::size_t i = 0; i < anns.size(); ++i) {
    const nlohmann::json& e = anns[i];
    const std::string where = path + ": " + entry("annotations", i, e);
    GCNET_CHECK(e.is_object(), where, ": expected an object, got ", e.type_name());
    CocoAnnotation a;
    a.id = coco_detail::get_int(e, "id", where);
    a.image_id = coco_detail::get_int(e, "image_id", where);
    a.category_id = coco_detail::get_int(e, "category_id", where);
    const auto img = c.image_index.find(a.image_id);
    GCNET_CHECK(img != c.image_index.end(), where, ": image_id ", a.image_id, " names no image in \"images\"");
    GCNET_CHECK(c.has_category(a.category_id), where, ": category_id ", a.category_id,
                " names no category in \"categories\"");
    if (e.contains("bbox") && !e["bbox"].is_null()) {
      const nlohmann::json& b = e["bbox"];
      GCNET_CHECK(b.is_array() && b.size() == 4, where, ": \"bbox\" must be [x, y, width, height], got ", b.dump());
      for (std::size_t k = 0; k < 4; ++k) a.bbox[k] = coco_detail::get_number(b[k], where, "bbox[" + std::to_string(k) + "]");
      a.has_bbox = true;
    }
    GCNET_CHECK(e.contains("area"), where, ": missing \"area\"");
    a.area = coco_detail::get_number(e["area"], where, "\"area\"");
    a.iscrowd = coco_detail::get_flag(e, "iscrowd", where);
    a.ignore = coco_detail::get_flag(e, "ignore", where);
    if (e.contains("segmentation"))
      coco_detail::read_segmentation(e["segmentation"], a.segmentation, c.images[img->second], where);
    GCNET_CHECK(c.annotation_index.emplace(a.id, i).second, where, ": annotation id ", a.id, " appears twice");
    c.image_annotations[img->second].push_back(i);
    c.annotations.push_back(std::move(a));
  }
  return c;
}

inline CocoInstances read_coco_instances(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return parse_coco_instances(std::string(bytes.begin(), bytes.end()), path);
}

}  // namespace gcnet::data
