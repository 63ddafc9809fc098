// MaskRCNN (det/mask_rcnn.hpp) assembled from a narrow ResNet, the FPN and the RPN and RoI heads,
// mmdet preset: one training step gives mmdet's six named values, finite; backward writes every
// trainable parameter's gradient (NaN prefill) and none of the frozen stages' is trainable; the
// RPN's and the RoI head's gradients add up on the shared FPN and backbone; inference of a batch
// equals inference image by image (same padded size); clear errors for a label outside the model's
// classes, a checkpoint of another preset, and a backbone whose norm is not the preset's.
// The parts have their own parity and gradient checks (tests/det/test_rpn_*, test_*roi_head*).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gcnet/det/mask_rcnn.hpp"
#include "gcnet/optim/sgd.hpp"
#include "gcnet/train/trainer.hpp"
#include "support/files.hpp"

using namespace gcnet;

namespace {

using Det = MaskRCNN<ResNetBackbone<float>>;
static_assert(Module<Det>, "MaskRCNN is a module (the Trainer runs it)");

MaskRCNNConfig small_config(GcVariant gc = GcVariant::none) {
  MaskRCNNConfig c = mmdet_mask_rcnn_config(3, gc);
  c.backbone.depth = 0;
  c.backbone.stem_channels = c.backbone.base_channels = 4;
  c.backbone.blocks = {1, 1, 1, 1};
  c.neck_channels = 8;
  c.roi.bbox_head.fc_out_channels = 16;
  c.roi.mask_head->conv_out_channels = 8;
  c.roi.train.sampler.num = 64;
  c.rpn.train_proposals.max_per_img = 200;
  c.rpn.test.max_per_img = 200;
  return finalize(c);
}

// Every parameter normal(0, 1 / sqrt(fan in)) from a fixed stream: scores spread, no near-ties.
void spread_weights(Det& m) {
  Rng rng(11);
  m.visit_parameters("", [&](const std::string&, Param<float, Cpu>& p) {
    const index_t fan = p.value.rank() > 1 ? p.value.numel() / p.value.size(0) : 1;
    for (index_t i = 0; i < p.value.numel(); ++i)
      p.value[i] = static_cast<float>(rng.normal(0.0, (p.value.rank() > 1 ? 1.5 : 0.2) / std::sqrt(double(fan))));
  });
}

Tensor<float> random_images(index_t n, index_t h, index_t w, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<float> x(Shape{n, 3, h, w});
  for (index_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(rng.normal());
  return x;
}

// Two images of 64 x 96 and 56 x 80 in a 64 x 96 batch, two boxes each, with rectangle masks.
DetBatch<float> training_batch() {
  DetBatch<float> b;
  b.images = random_images(2, 64, 96, 3);
  b.shapes = {DetImageShape{.img_h = 64, .img_w = 96, .ori_h = 64, .ori_w = 96},
              DetImageShape{.img_h = 56, .img_w = 80, .ori_h = 56, .ori_w = 80}};
  const float boxes[2][2][4] = {{{4, 6, 40, 50}, {50, 10, 90, 60}}, {{10, 8, 30, 40}, {36, 20, 78, 54}}};
  const std::int64_t labels[2][2] = {{0, 2}, {1, 2}};
  for (int i = 0; i < 2; ++i) {
    DetGroundTruth<float> g;
    const index_t h = b.shapes[i].img_h, w = b.shapes[i].img_w;
    g.boxes = Tensor<float>(Shape{2, 4});
    g.labels = Tensor<std::int64_t>(Shape{2});
    g.masks = zeros<std::uint8_t>(Shape{2, h, w});
    for (int k = 0; k < 2; ++k) {
      for (int e = 0; e < 4; ++e) g.boxes[k * 4 + e] = boxes[i][k][e];
      g.labels[k] = labels[i][k];
      for (index_t y = index_t(boxes[i][k][1]) + 2; y < index_t(boxes[i][k][3]) - 2; ++y)
        for (index_t x = index_t(boxes[i][k][0]) + 2; x < index_t(boxes[i][k][2]) - 2; ++x) g.masks[(k * h + y) * w + x] = 1;
    }
    g.ignore_boxes = Tensor<float>(Shape{0, 4});
    b.gt.push_back(g);
  }
  return b;
}

// One training step with the losses weighted (w_rpn, w_roi); the parameters' gradients by name.
std::map<std::string, Tensor<float>> step(Det& m, const DetBatch<float>& b, float w_rpn, float w_roi,
                                          NamedLosses* logged = nullptr) {
  Context ctx;
  ctx.rng = RngStream{5, 0};
  DetLosses<float> out, dout;
  m.forward(ctx, b, out);
  const NamedLosses l = det_losses(out, dout);
  if (logged) *logged = l;
  for (auto* t : {&dout.loss_rpn_cls, &dout.loss_rpn_bbox}) t->data()[0] = w_rpn;
  for (auto* t : {&dout.loss_cls, &dout.loss_bbox, &dout.loss_mask}) t->data()[0] = w_roi;
  m.visit_parameters("", [](const std::string&, Param<float, Cpu>& p) { fill(p.grad, NAN); });
  DetBatch<float> db;
  m.backward(ctx, b, out, dout, db);
  std::map<std::string, Tensor<float>> g;
  m.visit_trainable_parameters("", [&](const std::string& n, Param<float, Cpu>& p) { g[n] = clone(p.grad); });
  return g;
}

}  // namespace

TEST_CASE("MaskRCNN training step: mmdet's losses, every trainable gradient written, frozen stages excluded") {
  Det m(small_config(), 1);
  spread_weights(m);
  const DetBatch<float> b = training_batch();
  NamedLosses l;
  const auto g = step(m, b, 1, 1, &l);
  std::vector<std::string> names;
  for (const auto& [k, v] : l) {
    names.push_back(k);
    CAPTURE(k);
    CHECK(std::isfinite(v));
    MESSAGE(k, " = ", v);
  }
  CHECK(names == std::vector<std::string>{"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "acc", "loss_bbox", "loss_mask"});
  for (const auto& [k, v] : l)
    if (k != "acc") CHECK(v > 0);
  std::set<std::string> parts;
  for (const auto& [n, grad] : g) {
    CAPTURE(n);
    CHECK(n.rfind("backbone.conv1", 0) != 0);   // frozen_stages 1: stem and layer1 not trainable
    CHECK(n.rfind("backbone.layer1.", 0) != 0);
    bool finite = true;
    double norm = 0;
    for (index_t i = 0; i < grad.numel(); ++i) {
      finite = finite && std::isfinite(grad[i]);
      norm += std::abs(double(grad[i]));
    }
    CHECK(finite);
    CHECK(norm > 0);
    parts.insert(n.substr(0, n.find('.')));
  }
  CHECK(parts == std::set<std::string>{"backbone", "neck", "rpn_head", "roi_head"});
  CHECK(g.count("roi_head.mask_head.conv_logits.weight") == 1);
  CHECK(g.count("backbone.layer4.0.conv2.weight") == 1);
}

// The same two images every iteration.
class OneBatch {
 public:
  index_t batches_per_epoch() const { return 1; }
  void seek(std::int64_t) {}
  DetBatch<float> next() const { return training_batch(); }
};

TEST_CASE("MaskRCNN under the Trainer: det_losses as the loss function, SGD on the trainable parameters") {
  Det m(small_config(), 1);
  spread_weights(m);
  std::vector<std::pair<std::string, Param<float, Cpu>*>> params;
  m.visit_trainable_parameters("", [&](const std::string& n, Param<float, Cpu>& p) { params.emplace_back(n, &p); });
  auto stem_weight = [&m] {
    Tensor<float> w;
    m.visit_parameters("", [&](const std::string& n, Param<float, Cpu>& p) {
      if (n == "backbone.conv1.weight") w = clone(p.value);
    });
    return w;
  };
  const Tensor<float> frozen_before = stem_weight();
  REQUIRE(frozen_before.defined());
  OneBatch loader;
  Sgd<float> opt(params, {.lr = 0.01, .momentum = 0.9});
  const auto dir = test::scratch_dir("mask_rcnn", "trainer");
  Trainer trainer(m, loader, opt, ConstantLr{},
                  [](const DetLosses<float>& out, const DetBatch<float>&, DetLosses<float>& dout) {
                    return det_losses(out, dout);
                  },
                  TrainerOptions{.work_dir = dir.string(), .log_interval = 3, .checkpoint_interval = 0, .print = false});
  trainer.set_input([](const DetBatch<float>& b) { return b; });
  trainer.run(9);
  const auto& curve = trainer.loss_curve();
  REQUIRE(curve.size() == 3);
  MESSAGE("total loss per 3 iterations: ", curve[0].second, " -> ", curve[1].second, " -> ", curve[2].second);
  CHECK(curve[2].second < curve[0].second);
  const Tensor<float> frozen_after = stem_weight();  // frozen stem: unchanged
  for (index_t i = 0; i < frozen_after.numel(); ++i) REQUIRE(frozen_after[i] == frozen_before[i]);
}

TEST_CASE("MaskRCNN backward: the RPN's and the RoI head's gradients add up in the FPN and the backbone") {
  Det m(small_config(), 1);
  spread_weights(m);
  const DetBatch<float> b = training_batch();
  const auto both = step(m, b, 1, 1), rpn = step(m, b, 1, 0), roi = step(m, b, 0, 1);
  for (const std::string n : {"neck.fpn_convs.0.conv.weight", "neck.lateral_convs.3.conv.weight",
                              "backbone.layer2.0.conv1.weight", "backbone.layer4.0.conv3.weight"}) {
    CAPTURE(n);
    const Tensor<float>&a = both.at(n), &r = rpn.at(n), &o = roi.at(n);
    double err = 0, scale = 1e-12, r_norm = 0, o_norm = 0;
    for (index_t i = 0; i < a.numel(); ++i) {
      err = std::max(err, std::abs(double(a[i]) - double(r[i]) - double(o[i])));
      scale = std::max(scale, std::abs(double(a[i])));
      r_norm += std::abs(double(r[i]));
      o_norm += std::abs(double(o[i]));
    }
    CHECK(err / scale < 1e-4);
    CHECK(r_norm > 0);  // both heads contribute
    CHECK(o_norm > 0);
  }
  // RPN-only: the RoI head's parameters get zero gradients.
  double roi_norm = 0;
  for (index_t i = 0; i < rpn.at("roi_head.bbox_head.fc_cls.weight").numel(); ++i)
    roi_norm += std::abs(double(rpn.at("roi_head.bbox_head.fc_cls.weight")[i]));
  CHECK(roi_norm == 0);
}

TEST_CASE("MaskRCNN inference: a batch equals image by image at the same padded size") {
  Det m(small_config(), 1);
  spread_weights(m);
  const Tensor<float> x = random_images(2, 64, 96, 9);
  const std::vector<DetImageShape> shapes = {DetImageShape{.img_h = 64, .img_w = 96, .ori_h = 32, .ori_w = 48, .scale_w = 2, .scale_h = 2},
                                             DetImageShape{.img_h = 56, .img_w = 80, .ori_h = 56, .ori_w = 80}};
  RoIHeadTestOptions o = m.config().roi.test;
  o.soft_masks = true;
  const auto batch = m.predict(x, shapes, o);
  REQUIRE(batch.size() == 2);
  for (index_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    Tensor<float> one(Shape{1, 3, 64, 96});
    std::copy_n(x.data() + i * one.numel(), one.numel(), one.data());
    const auto single = m.predict(one, {shapes[static_cast<std::size_t>(i)]}, o);
    const Detections<float>&a = batch[static_cast<std::size_t>(i)], &s = single[0];
    MESSAGE("image ", i, ": ", a.size(), " detections");
    CHECK(a.size() > 0);
    REQUIRE(a.size() == s.size());
    double box = 0, score = 0;
    index_t labels = 0, mask_diff = 0;
    for (index_t k = 0; k < a.size(); ++k) {
      for (int e = 0; e < 4; ++e) box = std::max(box, double(std::abs(a.boxes[k * 4 + e] - s.boxes[k * 4 + e])));
      score = std::max(score, double(std::abs(a.scores[k] - s.scores[k])));
      labels += a.labels[k] != s.labels[k];
    }
    REQUIRE(a.masks.shape() == s.masks.shape());
    CHECK(a.masks.size(1) == shapes[static_cast<std::size_t>(i)].ori_h);
    for (index_t q = 0; q < a.masks.numel(); ++q) mask_diff += a.masks[q] != s.masks[q];
    CHECK(box < 1e-3);
    CHECK(score < 1e-5);
    CHECK(labels == 0);
    CHECK(mask_diff <= a.masks.numel() / 10000);
    CHECK(a.soft_masks.defined());
  }
}

TEST_CASE("MaskRCNN errors: labels outside the classes, another preset's checkpoint, the wrong norm type") {
  Det m(small_config(), 1);
  DetBatch<float> b = training_batch();
  b.gt[1].labels[0] = 3;  // the model has 3 classes: 0..2
  Context ctx;
  DetLosses<float> out;
  CHECK_THROWS_WITH_AS(m.forward(ctx, b, out),
                       doctest::Contains("has label 3, but the model has 3 classes (0..2): do the annotations' categories "
                                         "match the model's num_classes?"),
                       Error);

  const std::string path = (std::filesystem::temp_directory_path() / "gcnet_test_mask_rcnn_preset.safetensors").string();
  save_mask_rcnn_checkpoint(path, m);
  Det gc(small_config(GcVariant::r16));
  CHECK_THROWS_WITH_AS(load_mask_rcnn_checkpoint(path, gc),
                       doctest::Contains("a checkpoint of the Mask R-CNN preset 'mask-rcnn_r50_fpn_1x_coco' cannot be "
                                         "loaded into a model of the preset 'mask-rcnn_r50-gcb-r16-c3-c5_fpn_1x_coco'"),
                       Error);
  Det same(small_config());
  CHECK_NOTHROW(load_mask_rcnn_checkpoint(path, same));
  std::filesystem::remove(path);

  using FrozenDet = MaskRCNN<ResNetBackbone<float, Cpu, FrozenBatchNorm2d<float, Cpu>>>;
  CHECK_THROWS_WITH_AS(FrozenDet{small_config()},
                       doctest::Contains("the preset's backbone uses BatchNorm2d, the backbone type has FrozenBatchNorm2d"),
                       Error);
  CHECK_THROWS_WITH_AS(mask_rcnn_config("mask-rcnn_r101_fpn_1x_coco", 80), doctest::Contains("unknown preset"), Error);
  CHECK(mask_rcnn_config("mask-rcnn_r50-syncbn-gcb-r4-c3-c5_fpn_1x_coco", 80).norm == BackboneNorm::sync_batch_norm);
}
