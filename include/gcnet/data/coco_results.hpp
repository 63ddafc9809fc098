#pragma once
// COCO results JSON: a list of {"image_id", "category_id", "score", "bbox": [x, y, w, h]} and,
// for masks, "segmentation": {"size": [h, w], "counts": "<compressed RLE>"} (pycocotools'
// loadRes input). Writing follows mmdet's CocoMetric (§15.3 of the detection reference):
//  - bbox = xyxy2xywh of the float32 box: [x1, y1, x2 - x1, y2 - y1] computed in double from
//    the float32 values (numpy tolist()), no +1; score = float(score);
//  - category_id = cat_ids[label] (the data set's label -> category id list);
//  - masks: full original-size masks, pycocotools.mask.encode'd, counts as a string.
// mmdet's .segm.json also carries each box, but pycocotools' loadRes then takes the BOX area as
// the result's area (mmdet removes "bbox" before evaluating): segm files are written without
// "bbox" unless CocoResultsWriteOptions::segm_with_bbox asks for it, so they evaluate
// correctly with plain pycocotools. Files are written atomically (io/atomic_file.hpp).
//
// read_coco_results reads such a file back; with a GT (CocoInstances) a result naming an image
// that is not in it is an Error, as pycocotools' loadRes asserts.
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/core/tensor.hpp"
#include "gcnet/data/coco_instances.hpp"
#include "gcnet/data/coco_mask.hpp"
#include "gcnet/data/file_bytes.hpp"
#include "gcnet/io/atomic_file.hpp"

namespace gcnet::data {

struct CocoResult {
  std::int64_t image_id = 0, category_id = 0;
  double score = 0;
  std::array<double, 4> bbox{0, 0, 0, 0};  // [x, y, w, h]
  bool has_bbox = false;
  Rle segmentation;  // h = w = 0 when absent
  bool has_segmentation() const { return !segmentation.counts.empty(); }
};

// mmdet's xyxy2xywh of a float32 box: the values become double first, then w = x2 - x1.
inline std::array<double, 4> xyxy_to_xywh(const float* b) {
  const double x1 = b[0], y1 = b[1], x2 = b[2], y2 = b[3];
  return {x1, y1, x2 - x1, y2 - y1};
}

// pycocotools.mask.encode of masks [n, H, W] (0/1 or any nonzero), as mmdet's
// encode_mask_results.
inline std::vector<Rle> encode_masks(const Tensor<std::uint8_t>& masks) {
  GCNET_CHECK(masks.rank() == 3 && masks.is_contiguous(), "encode_masks: expected contiguous masks [n, H, W], got ",
              masks.shape().str());
  const index_t n = masks.size(0), h = masks.size(1), w = masks.size(2);
  std::vector<Rle> out;
  out.reserve(static_cast<std::size_t>(n));
  for (index_t k = 0; k < n; ++k) out.push_back(rle_from_mask(masks.data() + k * h * w, h, w));
  return out;
}

// The results of one image: boxes [n, 4] xyxy in original-image pixels, scores [n], labels [n]
// (0..cat_ids.size()-1), and optionally one RLE per detection (empty: boxes only).
inline std::vector<CocoResult> coco_results_of_image(std::int64_t image_id, const Tensor<float>& boxes,
                                                     const Tensor<float>& scores, const Tensor<std::int64_t>& labels,
                                                     const std::vector<std::int64_t>& cat_ids,
                                                     const std::vector<Rle>& masks = {}) {
  GCNET_CHECK(boxes.rank() == 2 && boxes.size(1) == 4 && boxes.is_contiguous(),
              "coco_results_of_image: boxes must be contiguous [n, 4], got ", boxes.shape().str());
  const index_t n = boxes.size(0);
  GCNET_CHECK(scores.rank() == 1 && scores.size(0) == n && labels.rank() == 1 && labels.size(0) == n,
              "coco_results_of_image: scores ", scores.shape().str(), " and labels ", labels.shape().str(), " for ", n,
              " boxes");
  GCNET_CHECK(masks.empty() || masks.size() == static_cast<std::size_t>(n), "coco_results_of_image: ", masks.size(),
              " masks for ", n, " boxes");
  std::vector<CocoResult> out(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    const std::int64_t label = labels[i];
    GCNET_CHECK(label >= 0 && label < static_cast<std::int64_t>(cat_ids.size()), "coco_results_of_image: image ",
                image_id, " detection ", i, " has label ", label, " but there are ", cat_ids.size(), " classes");
    CocoResult& r = out[static_cast<std::size_t>(i)];
    r.image_id = image_id;
    r.category_id = cat_ids[static_cast<std::size_t>(label)];
    r.score = static_cast<double>(scores[i]);
    r.bbox = xyxy_to_xywh(boxes.data() + 4 * i);
    r.has_bbox = true;
    if (!masks.empty()) r.segmentation = masks[static_cast<std::size_t>(i)];
  }
  return out;
}

enum class CocoResultType { bbox, segm };

struct CocoResultsWriteOptions {
  CocoResultType type = CocoResultType::bbox;
  bool segm_with_bbox = false;  // segm entries also carry "bbox" (mmdet's .segm.json; see above)
};

inline nlohmann::json coco_results_json(const std::vector<CocoResult>& results, CocoResultsWriteOptions opt = {}) {
  nlohmann::json out = nlohmann::json::array();
  for (std::size_t i = 0; i < results.size(); ++i) {
    const CocoResult& r = results[i];
    GCNET_CHECK(std::isfinite(r.score), "write_coco_results: result ", i, " (image ", r.image_id, ") has score ",
                r.score);
    nlohmann::json e = {{"image_id", r.image_id}, {"category_id", r.category_id}};
    const bool segm = opt.type == CocoResultType::segm;
    if (!segm || opt.segm_with_bbox) {
      GCNET_CHECK(r.has_bbox, "write_coco_results: result ", i, " (image ", r.image_id, ") has no box");
      for (double v : r.bbox)
        GCNET_CHECK(std::isfinite(v), "write_coco_results: result ", i, " (image ", r.image_id, ") has box [",
                    r.bbox[0], ", ", r.bbox[1], ", ", r.bbox[2], ", ", r.bbox[3], "]");
      e["bbox"] = r.bbox;
    }
    e["score"] = r.score;
    if (segm) {
      GCNET_CHECK(r.has_segmentation(), "write_coco_results: result ", i, " (image ", r.image_id,
                  ") has no mask for a segm results file");
      e["segmentation"] = {{"size", {r.segmentation.h, r.segmentation.w}}, {"counts", rle_to_string(r.segmentation)}};
    }
    out.push_back(std::move(e));
  }
  return out;
}

// Writes `results` to `path` atomically (the file is whole or untouched).
inline void write_coco_results(const std::string& path, const std::vector<CocoResult>& results,
                               CocoResultsWriteOptions opt = {}) {
  const std::string text = coco_results_json(results, opt).dump();
  io::write_file_atomically(path, [&](io::FileSink& out) { out.write(text.data(), text.size()); });
}

// Parses a results file's text; errors name `path` and the entry ("results[3]"). With `gt`,
// every image_id must be one of its images.
inline std::vector<CocoResult> parse_coco_results(const std::string& text, const std::string& path,
                                                  const CocoInstances* gt = nullptr) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    gcnet::detail::fail(path, ": not valid JSON (", e.what(), ")");
  }
  GCNET_CHECK(j.is_array(), path, ": a COCO results file is a JSON list of results, got a JSON ", j.type_name());
  std::vector<CocoResult> out;
  out.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) {
    const nlohmann::json& e = j[i];
    const std::string where = path + ": results[" + std::to_string(i) + "]";
    GCNET_CHECK(e.is_object(), where, ": expected an object, got ", e.type_name());
    CocoResult r;
    r.image_id = coco_detail::get_int(e, "image_id", where);
    r.category_id = coco_detail::get_int(e, "category_id", where);
    GCNET_CHECK(e.contains("score"), where, ": missing \"score\"");
    r.score = coco_detail::get_number(e["score"], where, "\"score\"");
    if (gt)
      GCNET_CHECK(gt->has_image(r.image_id), where, ": image_id ", r.image_id, " names no image of the ground truth ",
                  gt->file);
    if (e.contains("bbox") && !e["bbox"].is_null()) {
      const nlohmann::json& b = e["bbox"];
      GCNET_CHECK(b.is_array() && b.size() == 4, where, ": \"bbox\" must be [x, y, width, height], got ", b.dump());
      for (std::size_t k = 0; k < 4; ++k) r.bbox[k] = coco_detail::get_number(b[k], where, "bbox[" + std::to_string(k) + "]");
      r.has_bbox = true;
    }
    if (e.contains("segmentation") && !e["segmentation"].is_null()) {
      const nlohmann::json& s = e["segmentation"];
      GCNET_CHECK(s.is_object() && s.contains("size") && s.contains("counts"), where,
                  ": \"segmentation\" of a result must be an RLE {\"size\": [h, w], \"counts\": ...}");
      const nlohmann::json& size = s["size"];
      GCNET_CHECK(size.is_array() && size.size() == 2 && size[0].is_number_integer() && size[1].is_number_integer(),
                  where, ": RLE \"size\" must be [height, width], got ", size.dump());
      CocoImageInfo img{r.image_id, "", size[0].get<index_t>(), size[1].get<index_t>()};
      GCNET_CHECK(img.height > 0 && img.width > 0, where, ": RLE size ", img.height, "x", img.width,
                  " is not positive");
      CocoSegmentation seg;
      coco_detail::read_rle(s, seg, img, where);
      r.segmentation = std::move(seg.rle);
    }
    GCNET_CHECK(r.has_bbox || r.has_segmentation(), where, ": a result needs a \"bbox\" or a \"segmentation\"");
    out.push_back(std::move(r));
  }
  return out;
}

inline std::vector<CocoResult> read_coco_results(const std::string& path, const CocoInstances* gt = nullptr) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return parse_coco_results(std::string(bytes.begin(), bytes.end()), path, gt);
}

}  // namespace gcnet::data
