#pragma once
// What a detector's training step reads and gives (det/mask_rcnn.hpp):
//   DetBatch   the padded, normalised images with each image's shape and ground truth; nothing
//              in it is differentiated (no image gradient is computed).
//   DetLosses  mmdet's loss dictionary as [1] tensors (the module's differentiable outputs: the
//              Trainer's loss function sets their gradients to 1) and the RoI head's accuracy
//              (a metric, not differentiated).
// det_losses(out, dout) is that loss function's body: dout = 1 for every loss, and the values in
// the order mmdet logs them (loss_rpn_cls, loss_rpn_bbox, loss_cls, acc, loss_bbox, loss_mask).
#include <string>
#include <utility>
#include <vector>

#include "gcnet/core/fields.hpp"
#include "gcnet/core/tensor.hpp"
#include "gcnet/det/det_types.hpp"

namespace gcnet {

template <Scalar T = float>
struct DetBatch {
  static constexpr bool differentiable = false;
  Tensor<T> images;                   // [N, 3, H, W], normalised, padded
  std::vector<DetImageShape> shapes;  // per image
  std::vector<DetGroundTruth<T>> gt;  // per image (training)
  GCNET_FIELDS(images, gt)
};

template <Scalar T = float>
struct DetLosses {
  Tensor<T> loss_rpn_cls, loss_rpn_bbox, loss_cls, loss_bbox, loss_mask;  // [1] each
  double acc = 0;  // percent, as mmdet's
  GCNET_FIELDS(loss_rpn_cls, loss_rpn_bbox, loss_cls, loss_bbox, loss_mask)
};

// The Trainer's loss function for a detector: every loss weighs 1 (its gradient is set to 1);
// returns mmdet's log dictionary. A loss left undefined (a detector without a mask head) is left
// out.
template <Scalar T>
std::vector<std::pair<std::string, double>> det_losses(const DetLosses<T>& out, DetLosses<T>& dout) {
  std::vector<std::pair<std::string, double>> l;
  auto take = [&l](const char* name, const Tensor<T>& v, Tensor<T>& d) {
    if (!v.defined()) return;
    GCNET_CHECK(v.numel() == 1, "det_losses: ", name, " must hold one value, got shape ", v.shape().str());
    d = full<T>(Shape{1}, T(1));
    l.emplace_back(name, static_cast<double>(v.data()[0]));
  };
  take("loss_rpn_cls", out.loss_rpn_cls, dout.loss_rpn_cls);
  take("loss_rpn_bbox", out.loss_rpn_bbox, dout.loss_rpn_bbox);
  take("loss_cls", out.loss_cls, dout.loss_cls);
  l.emplace_back("acc", out.acc);
  take("loss_bbox", out.loss_bbox, dout.loss_bbox);
  take("loss_mask", out.loss_mask, dout.loss_mask);
  return l;
}

}  // namespace gcnet
