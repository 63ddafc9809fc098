#pragma once
// What COCOeval evaluates, as plain structs: the GT annotations after pycocotools' COCO() and
// _prepare(), and the detections after COCO.loadRes(). coco_eval_load.hpp fills them from the
// dataset and results readers; tests and programs may fill them directly.
#include <array>
#include <cstdint>
#include <vector>

#include "gcnet/data/coco_rle.hpp"

namespace gcnet::eval {

struct EvalGt {
  // Matched GTs are recorded by id and tested for truthiness, so a GT with id 0 counts as
  // unmatched in accumulate (quirk §16.10.6, reproduced).
  std::int64_t id = 0, image_id = 0, category_id = 0;
  std::array<double, 4> bbox{};  // [x, y, w, h] as in the file (bbox IoU)
  double area = 0;               // the annotation's 'area' field: it alone decides the area range
  bool iscrowd = false;          // also the ignore flag: pycocotools overwrites any 'ignore' with it
  data::Rle segmentation;        // segm only: the annotation's mask as an RLE on its image
};

struct EvalDet {
  std::int64_t image_id = 0, category_id = 0;
  std::array<double, 4> bbox{};  // [x, y, w, h] (bbox IoU)
  double score = 0;
  double area = 0;          // as loadRes sets it: box area, or mask area (see coco_eval_load.hpp)
  data::Rle segmentation;   // segm only
};

// A GT set and the detections to score against it. image_ids / category_ids are the GT
// file's images and categories (COCOeval's defaults for params.imgIds / catIds). GTs and
// detections keep file order: ties in score and in IoU are broken by it.
struct CocoEvalInput {
  std::vector<std::int64_t> image_ids, category_ids;
  std::vector<EvalGt> gts;
  std::vector<EvalDet> dets;
};

}  // namespace gcnet::eval
