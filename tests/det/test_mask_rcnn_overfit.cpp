// A small Mask R-CNN (mmdet preset at narrow widths, trained from scratch) learns a handful of
// images by heart: after a short SGD run, COCO box and mask AP on the training images themselves
// (the library's COCOeval) is far above what an untrained model gets and close to 100. This is
// the end-to-end check that the losses, their gradients through both heads, the FPN and the
// backbone, the sampling and the inference fit together: a sign error, a wrong target or a
// gradient missing on one path keeps the AP low.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/data/coco_rle.hpp"
#include "gcnet/det/mask_rcnn.hpp"
#include "gcnet/eval/coco_eval.hpp"
#include "gcnet/optim/sgd.hpp"

using namespace gcnet;

namespace {

using Det = MaskRCNN<ResNetBackbone<float>>;
constexpr index_t kH = 64, kW = 96, kClasses = 3;

MaskRCNNConfig overfit_config() {
  MaskRCNNConfig c = mmdet_mask_rcnn_config(kClasses, GcVariant::r4);  // GC blocks in c3-c5 too
  c.backbone.depth = 0;
  c.backbone.stem_channels = c.backbone.base_channels = 8;
  c.backbone.blocks = {1, 1, 1, 1};
  c.backbone.frozen_stages = -1;  // from scratch: everything trains
  c.backbone.norm_eval = false;
  c.neck_channels = 16;
  c.roi.bbox_head.fc_out_channels = 64;
  c.roi.mask_head->conv_out_channels = 16;
  c.roi.train.sampler.num = 64;
  c.rpn.train_proposals.max_per_img = 200;
  c.rpn.test.max_per_img = 100;
  return finalize(c);
}

struct Object {
  float x1, y1, x2, y2;
  std::int64_t label;  // 0: a filled rectangle, 1: an ellipse, 2: a ring (class by shape and colour)
};

// Two images (64 x 96) of coloured shapes on a dark textured background.
const std::vector<std::vector<Object>> kScenes = {
    {{6, 8, 38, 44, 0}, {48, 12, 88, 56, 1}},
    {{10, 20, 42, 58, 2}, {52, 4, 90, 34, 0}, {56, 38, 86, 62, 1}},
};

bool inside(const Object& o, index_t y, index_t x) {
  const double cx = (o.x1 + o.x2) / 2, cy = (o.y1 + o.y2) / 2, rx = (o.x2 - o.x1) / 2, ry = (o.y2 - o.y1) / 2;
  const double u = (x + 0.5 - cx) / rx, v = (y + 0.5 - cy) / ry, r = u * u + v * v;
  if (o.label == 0) return x >= o.x1 && x < o.x2 && y >= o.y1 && y < o.y2;
  if (o.label == 1) return r <= 1;
  return r <= 1 && r >= 0.3;
}

DetBatch<float> scenes() {
  const float colour[3][3] = {{1.5f, -0.5f, -0.5f}, {-0.5f, 1.5f, -0.5f}, {-0.5f, -0.5f, 1.5f}};
  DetBatch<float> b;
  const auto n = static_cast<index_t>(kScenes.size());
  b.images = Tensor<float>(Shape{n, 3, kH, kW});
  Rng rng(7);
  for (index_t i = 0; i < b.images.numel(); ++i) b.images[i] = static_cast<float>(-1.0 + 0.3 * rng.normal());
  for (index_t i = 0; i < n; ++i) {
    const auto& objs = kScenes[static_cast<std::size_t>(i)];
    const auto k = static_cast<index_t>(objs.size());
    DetGroundTruth<float> g;
    g.boxes = Tensor<float>(Shape{k, 4});
    g.labels = Tensor<std::int64_t>(Shape{k});
    g.masks = zeros<std::uint8_t>(Shape{k, kH, kW});
    g.ignore_boxes = Tensor<float>(Shape{0, 4});
    for (index_t j = 0; j < k; ++j) {
      const Object& o = objs[static_cast<std::size_t>(j)];
      const float box[4] = {o.x1, o.y1, o.x2, o.y2};
      for (int e = 0; e < 4; ++e) g.boxes[j * 4 + e] = box[e];
      g.labels[j] = o.label;
      for (index_t y = 0; y < kH; ++y)
        for (index_t x = 0; x < kW; ++x)
          if (inside(o, y, x)) {
            g.masks[(j * kH + y) * kW + x] = 1;
            for (index_t c = 0; c < 3; ++c) b.images[((i * 3 + c) * kH + y) * kW + x] = colour[o.label][c];
          }
    }
    b.gt.push_back(g);
    b.shapes.push_back(DetImageShape{.img_h = kH, .img_w = kW, .ori_h = kH, .ori_w = kW});
  }
  return b;
}

// COCO box and mask AP of the detections on the training images themselves.
std::pair<double, double> training_ap(Det& det, const DetBatch<float>& b) {
  const std::vector<Detections<float>> dets = det.predict(b.images, b.shapes);
  eval::CocoEvalInput in;
  for (std::int64_t c = 0; c < kClasses; ++c) in.category_ids.push_back(c + 1);
  std::int64_t next_id = 1;
  for (std::size_t i = 0; i < b.gt.size(); ++i) {
    const auto image_id = static_cast<std::int64_t>(i + 1);
    in.image_ids.push_back(image_id);
    const DetGroundTruth<float>& g = b.gt[i];
    for (index_t j = 0; j < g.size(); ++j) {
      eval::EvalGt e;
      e.id = next_id++;
      e.image_id = image_id;
      e.category_id = g.labels[j] + 1;
      e.bbox = {g.boxes[j * 4], g.boxes[j * 4 + 1], g.boxes[j * 4 + 2] - g.boxes[j * 4], g.boxes[j * 4 + 3] - g.boxes[j * 4 + 1]};
      e.segmentation = data::rle_from_mask(g.masks.data() + j * kH * kW, kH, kW);
      e.area = static_cast<double>(data::rle_area(e.segmentation));
      in.gts.push_back(e);
    }
    const Detections<float>& d = dets[i];
    REQUIRE(d.masks.defined());
    for (index_t j = 0; j < d.size(); ++j) {
      eval::EvalDet e;
      e.image_id = image_id;
      e.category_id = d.labels[j] + 1;
      e.bbox = {d.boxes[j * 4], d.boxes[j * 4 + 1], d.boxes[j * 4 + 2] - d.boxes[j * 4], d.boxes[j * 4 + 3] - d.boxes[j * 4 + 1]};
      e.score = d.scores[j];
      e.segmentation = data::rle_from_mask(d.masks.data() + j * kH * kW, kH, kW);
      e.area = e.bbox[2] * e.bbox[3];
      in.dets.push_back(e);
    }
  }
  const double box_ap = eval::coco_evaluate(in, eval::IouType::bbox).stats[0];
  for (eval::EvalDet& e : in.dets) e.area = static_cast<double>(data::rle_area(e.segmentation));
  const double mask_ap = eval::coco_evaluate(in, eval::IouType::segm).stats[0];
  return {100 * box_ap, 100 * mask_ap};
}

}  // namespace

TEST_CASE("MaskRCNN overfits a handful of images: box and mask AP on them rise towards 100") {
  manual_seed(3);
  Det det(overfit_config(), 3);
  const DetBatch<float> batch = scenes();
  const auto [box0, mask0] = training_ap(det, batch);

  std::vector<std::pair<std::string, Param<float, Cpu>*>> params;
  det.visit_trainable_parameters("", [&](const std::string& n, Param<float, Cpu>& p) { params.emplace_back(n, &p); });
  Sgd<float> opt(params, {.lr = 0.02, .momentum = 0.9, .weight_decay = 1e-4});
  DetLosses<float> out, dout;
  DetBatch<float> no_grad;
  NamedLosses first, last;
  const int iters = 400;
  for (int it = 0; it < iters; ++it) {
    Context ctx = Context::train();
    ctx.rng = RngStream{11, static_cast<std::uint64_t>(it)};
    det.forward(ctx, batch, out);
    last = det_losses(out, dout);
    if (it == 0) first = last;
    det.backward(ctx, batch, out, dout, no_grad);
    opt.step();
  }
  const auto [box_ap, mask_ap] = training_ap(det, batch);
  std::string losses;
  for (std::size_t k = 0; k < last.size(); ++k)
    losses += " " + last[k].first + " " + std::to_string(first[k].second) + " -> " + std::to_string(last[k].second);
  MESSAGE("after ", iters, " iterations on ", batch.gt.size(), " images: box AP ", box0, " -> ", box_ap,
          ", mask AP ", mask0, " -> ", mask_ap, ";", losses);
  CHECK(box_ap >= 70);  // 81.7 box, 90.8 mask measured (2026-12-05): margin for another thread count's rounding
  CHECK(mask_ap >= 70);
  CHECK(box0 < 10);  // the untrained model scores near 0: the rise is the training's
}
