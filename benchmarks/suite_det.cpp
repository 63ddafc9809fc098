// Suite "det" (issue 18): Mask R-CNN R50-FPN in the torchvision preset (det/mask_rcnn_config.hpp:
// ResNet-50 with FrozenBatchNorm2d, conv1 and layer1 frozen, FPN 256 with the max-pool P6,
// torchvision's anchors, RoIAlign, box coder and mask pasting, 90 foreground classes), as
// benchmarks/peer_det.py builds torchvision's. One case, maskrcnn_r50_fpn:
//   fwd      inference of one 3x800x1216 image in [0, 1]: the transform (normalise; min_size 800
//            and max_size 1333 leave the size), backbone, FPN, RPN proposals, box head, NMS,
//            mask head on the detections, masks pasted at 800x1216 (boolean masks, as a user
//            asks; torchvision returns the soft pasted masks)
//   fwd+bwd  one training step at 2x3x512x512 without the optimizer step: forward in training
//            mode with 3 GT instances per image (boxes, 512x512 masks), the five losses, backward
//            to every trainable parameter
// Weights: the model's own init, seeded; the classifier's bias of class 1 (torchvision's label
// 1, index 1 with background 0) is 6, so that every image gets its full 100 detections, as the
// peer does. The first inference and training step are checked and reported once on stderr.
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <utility>

#include "bench_registry.hpp"
#include "gcnet/det/det_losses.hpp"
#include "gcnet/det/mask_rcnn.hpp"
#include "gcnet/det/torchvision_transform.hpp"

namespace {
using namespace gcnet;

using Detector = MaskRCNN<ResNetBackbone<float, Cpu, FrozenBatchNorm2d<float, Cpu>>>;

constexpr index_t kInferH = 800, kInferW = 1216, kTrainBatch = 2, kTrainSize = 512;
// GT instances of the training images (x1, y1, x2, y2, torchvision label), as peer_det.py.
constexpr double kGt[3][5] = {{40, 60, 260, 300, 1}, {280, 100, 480, 260, 5}, {120, 320, 400, 500, 17}};

Tensor<float> uniform_image(index_t h, index_t w, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<float> t(Shape{3, h, w});
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(rng.uniform());
  return t;
}

DetGroundTruth<float> ground_truth() {
  DetGroundTruth<float> g;
  g.boxes = Tensor<float>(Shape{3, 4});
  g.labels = Tensor<std::int64_t>(Shape{3});
  g.masks = zeros<std::uint8_t>(Shape{3, kTrainSize, kTrainSize});
  g.ignore_boxes = Tensor<float>(Shape{0, 4});
  for (index_t i = 0; i < 3; ++i) {
    const double* b = kGt[i];
    for (index_t k = 0; k < 4; ++k) g.boxes[i * 4 + k] = static_cast<float>(b[k]);
    g.labels[i] = static_cast<std::int64_t>(b[4]) - 1;  // foreground classes from 0
    const double cx = (b[0] + b[2]) / 2, cy = (b[1] + b[3]) / 2, rx = (b[2] - b[0]) / 2, ry = (b[3] - b[1]) / 2;
    for (index_t y = 0; y < kTrainSize; ++y)  // an ellipse inside the box
      for (index_t x = 0; x < kTrainSize; ++x) {
        const double u = (x + 0.5 - cx) / rx, v = (y + 0.5 - cy) / ry;
        g.masks[(i * kTrainSize + y) * kTrainSize + x] = u * u + v * v <= 1 ? 1 : 0;
      }
  }
  return g;
}

MaskRCNNConfig config(index_t min_size, index_t max_size) {
  MaskRCNNConfig c = torchvision_mask_rcnn_config(90);
  c.transform.min_size = min_size;
  c.transform.max_size = max_size;
  return c;
}

void raise_class_one(Detector& det) {
  bool found = false;
  visit_parameters(det, "", [&](const std::string& name, auto& p) {
    if (name == "roi_head.bbox_head.fc_cls.bias") {
      p.value[1] = 6.0f;
      found = true;
    }
  });
  GCNET_CHECK(found, "det bench: no parameter roi_head.bbox_head.fc_cls.bias");
}

bench::Actions prepare_det() {
  struct State {
    State() : infer(config(kInferH, 1333), 0), train(config(kTrainSize, kTrainSize), 0) {}
    Detector infer, train;
    Tensor<float> infer_image;
    std::vector<Tensor<float>> train_images;
    DetBatch<float> batch;
    DetLosses<float> out, dout;
    bool infer_checked = false, train_checked = false;
  };
  manual_seed(0);
  auto s = std::make_shared<State>();
  raise_class_one(s->infer);
  raise_class_one(s->train);
  s->infer_image = uniform_image(kInferH, kInferW, 1);
  for (index_t i = 0; i < kTrainBatch; ++i) s->train_images.push_back(uniform_image(kTrainSize, kTrainSize, 2 + i));
  return {
      {"fwd", [s] {
         const DetInputBatch<float> in = torchvision_transform<float>({s->infer_image}, s->infer.config().transform);
         const std::vector<Detections<float>> dets = s->infer.predict(in.images, in.shapes);
         if (!s->infer_checked) {
           GCNET_CHECK(dets.size() == 1 && dets[0].masks.defined(), "det bench: inference gave no masks");
           std::cerr << "gcnet det: inference " << dets[0].size() << " detections, masks "
                     << dets[0].masks.shape().str() << "\n";
           s->infer_checked = true;
         }
       }},
      {"fwd+bwd", [s] {
         const DetInputBatch<float> in = torchvision_transform<float>(s->train_images, s->train.config().transform);
         s->batch.images = in.images;
         s->batch.shapes = in.shapes;
         s->batch.gt.assign(static_cast<std::size_t>(kTrainBatch), ground_truth());
         const Context ctx = Context::train();
         gcnet::forward(s->train, ctx, s->batch, s->out);
         const auto losses = det_losses(s->out, s->dout);
         DetBatch<float> no_grad;  // nothing in the batch is differentiated
         gcnet::backward(s->train, ctx, s->batch, s->out, s->dout, no_grad);
         if (!s->train_checked) {
           std::cerr << "gcnet det: first training step";
           for (const auto& [name, v] : losses) {
             GCNET_CHECK(std::isfinite(v), "det bench: ", name, " = ", v, " is not finite");
             std::cerr << ' ' << name << '=' << v;
           }
           std::cerr << "\n";
           s->train_checked = true;
         }
       }},
  };
}

const bench::Register maskrcnn_r50_fpn{"det", "maskrcnn_r50_fpn", prepare_det};

}  // namespace
