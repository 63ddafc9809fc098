#pragma once
// pycocotools' mask API in one include: Rle, encode/decode, area, bbox (coco_rle.hpp); the
// compressed string form (coco_rle_string.hpp); merge and IoU of RLEs and boxes
// (coco_mask_ops.hpp); polygons and boxes rasterised (coco_polygon.hpp).
#include "gcnet/data/coco_mask_ops.hpp"
#include "gcnet/data/coco_polygon.hpp"
#include "gcnet/data/coco_rle.hpp"
#include "gcnet/data/coco_rle_string.hpp"
