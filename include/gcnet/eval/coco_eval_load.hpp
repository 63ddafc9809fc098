#pragma once
// From the GT and results readers (data/coco_instances.hpp, data/coco_results.hpp) to the
// evaluator's input, with pycocotools' COCO.loadRes and _prepare semantics:
//  - loadRes picks ONE branch from the FIRST result (§16.2 / quirk §16.10.4):
//      results[0] has "bbox": every result's area = w * h (also for a segm evaluation: mmdet's
//        .segm.json carries boxes, and pycocotools then ranks masks by box area), and a result
//        without a mask gets its box as a 4-corner polygon, rasterised on its image;
//      otherwise: area = mask area, bbox = the mask's box (toBbox) unless given.
//    A later result that lacks what the branch needs is an error (pycocotools: KeyError).
//  - GT: area is the annotation's "area" field (not recomputed); the "ignore" field is replaced
//    by iscrowd; masks are annToRLE (polygons rasterised and merged on the image).
//  - A result naming an image that is not in the GT is an error (loadRes asserts). One naming a
//    category that is not in the GT is dropped, as pycocotools does (its _prepare only reads the
//    GT's categories), so the numbers stay pycocotools'; the caller can count the dropped ones
//    (results.size() - dets.size()) and warn. With `ignore_unknown_categories = false` it is an
//    error naming the entry (the usual cause: label indices written instead of category ids).
// Errors name the file and the entry ("dets.json: results[3]: ...").
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/data/coco_instances.hpp"
#include "gcnet/data/coco_results.hpp"
#include "gcnet/eval/coco_eval.hpp"
#include "gcnet/eval/coco_eval_data.hpp"
#include "gcnet/eval/coco_eval_params.hpp"

namespace gcnet::eval {

struct CocoEvalLoadOptions {
  bool ignore_unknown_categories = true;
  std::string results_name = "results";  // the results file, for messages
};

inline std::vector<EvalGt> eval_ground_truth(const data::CocoInstances& gt, IouType type) {
  std::vector<EvalGt> out(gt.annotations.size());
  for (std::size_t i = 0; i < gt.annotations.size(); ++i) {
    const data::CocoAnnotation& a = gt.annotations[i];
    const auto where = [&] { return gt.file + ": annotations[" + std::to_string(i) + "] (id " + std::to_string(a.id) + ")"; };
    EvalGt& g = out[i];
    g.id = a.id;
    g.image_id = a.image_id;
    g.category_id = a.category_id;
    g.area = a.area;
    g.iscrowd = a.iscrowd;
    if (type == IouType::bbox) {
      GCNET_CHECK(a.has_bbox, where(), ": no \"bbox\", which a bbox evaluation needs");
      g.bbox = a.bbox;
    } else {
      const data::CocoImageInfo& img = gt.image(a.image_id);
      g.segmentation = data::coco_segmentation_to_rle(a.segmentation, img.height, img.width, where());
    }
  }
  return out;
}

inline std::vector<EvalDet> eval_detections(const data::CocoInstances& gt, const std::vector<data::CocoResult>& res,
                                            IouType type, const CocoEvalLoadOptions& opt = {}) {
  std::vector<EvalDet> out;
  out.reserve(res.size());
  const bool box_branch = !res.empty() && res[0].has_bbox;
  for (std::size_t i = 0; i < res.size(); ++i) {
    const data::CocoResult& r = res[i];
    const auto where = [&] { return opt.results_name + ": results[" + std::to_string(i) + "]"; };
    GCNET_CHECK(gt.has_image(r.image_id), where(), ": image_id ", r.image_id, " names no image of the ground truth ",
                gt.file);
    if (!gt.has_category(r.category_id)) {
      GCNET_CHECK(opt.ignore_unknown_categories, where(), ": category_id ", r.category_id,
                  " names no category of the ground truth ", gt.file,
                  " (results carry the GT's category ids, not label indices)");
      continue;
    }
    EvalDet d;
    d.image_id = r.image_id;
    d.category_id = r.category_id;
    d.score = r.score;
    if (box_branch) {
      GCNET_CHECK(r.has_bbox, where(), ": no \"bbox\", but results[0] has one (pycocotools' loadRes reads every "
                  "result as results[0]: it would fail here)");
      d.bbox = r.bbox;
      d.area = rounded(r.bbox[2] * r.bbox[3]);
      if (type == IouType::segm) {
        if (r.has_segmentation()) {
          d.segmentation = r.segmentation;
        } else {
          const double x1 = r.bbox[0], y1 = r.bbox[1], x2 = r.bbox[0] + r.bbox[2], y2 = r.bbox[1] + r.bbox[3];
          const data::CocoImageInfo& img = gt.image(r.image_id);
          d.segmentation = data::rle_from_polygons({{x1, y1, x1, y2, x2, y2, x2, y1}}, img.height, img.width, where());
        }
      }
    } else {
      GCNET_CHECK(r.has_segmentation(), where(), ": no \"segmentation\", but results[0] has no \"bbox\" (pycocotools' "
                  "loadRes reads every result as results[0]: it would fail here)");
      d.area = static_cast<double>(data::rle_area(r.segmentation));
      d.bbox = r.has_bbox ? r.bbox : data::rle_to_bbox(r.segmentation);
      if (type == IouType::segm) d.segmentation = r.segmentation;
    }
    out.push_back(std::move(d));
  }
  return out;
}

inline CocoEvalInput coco_eval_input(const data::CocoInstances& gt, const std::vector<data::CocoResult>& res,
                                     IouType type, const CocoEvalLoadOptions& opt = {}) {
  CocoEvalInput in;
  in.image_ids.reserve(gt.images.size());
  for (const auto& img : gt.images) in.image_ids.push_back(img.id);
  for (const auto& c : gt.categories) in.category_ids.push_back(c.id);
  in.gts = eval_ground_truth(gt, type);
  in.dets = eval_detections(gt, res, type, opt);
  return in;
}

// The library's one-call form: a GT data set and its results in, pycocotools' numbers out.
inline CocoEvalResult coco_evaluate(const data::CocoInstances& gt, const std::vector<data::CocoResult>& results,
                                    IouType type, const CocoEvalLoadOptions& opt = {}, CocoEvalParams params = {}) {
  return coco_evaluate(coco_eval_input(gt, results, type, opt), type, std::move(params));
}

// Reads both files (errors name them) and evaluates nothing yet.
inline CocoEvalInput load_coco_eval_input(const std::string& gt_path, const std::string& results_path, IouType type,
                                          CocoEvalLoadOptions opt = {}) {
  const data::CocoInstances gt = data::read_coco_instances(gt_path);
  if (opt.results_name == "results") opt.results_name = results_path;
  return coco_eval_input(gt, data::read_coco_results(results_path, &gt), type, opt);
}

}  // namespace gcnet::eval
