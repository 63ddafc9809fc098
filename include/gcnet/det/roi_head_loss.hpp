#pragma once
// The RoI head's losses (mmdet v3 BBoxHead.loss, FCNMaskHead.loss_and_target; torchvision's
// fastrcnn_loss / maskrcnn_loss as options), over the K sampled RoIs and their P positives:
//   loss_cls   softmax cross-entropy, sum_r w_r CE_r / max(#{w_r > 0}, 1)   (avg_factor = K)
//   acc        100 * #{argmax_r == label_r} / K                              (logged, no gradient)
//   loss_bbox  positives only (class index not background), the deltas of their class index:
//              sum |pred - target| * weight / K  (mmdet: avg_factor = bbox_targets.size(0), the
//              number of SAMPLED RoIs, not of positives); torchvision: smooth L1 with beta 1/9,
//              summed, / K: bbox_smooth_l1_beta = 1/9
//   loss_mask  BCE with logits of each positive's class channel against its target, mean over
//              P x M x M (mmdet mask_cross_entropy; torchvision the same on soft targets)
// Without positives loss_bbox and loss_mask are 0 with zero gradients (mmdet: pred[pos].sum()).
// roi_head_loss writes d(loss_cls + loss_bbox + loss_mask) / d out into dout: every element
// (zeros where no loss reaches); dout.mask_pred stays undefined when out.mask_pred is.
// Each loss is multiplied by its weight (1 in both recipes). Sums run in double.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/det/bbox_head.hpp"
#include "gcnet/det/roi_head_types.hpp"
#include "gcnet/ops/boxes.hpp"

namespace gcnet {

struct RoIHeadLossOptions {
  double loss_cls_weight = 1, loss_bbox_weight = 1, loss_mask_weight = 1;
  double bbox_smooth_l1_beta = 0;  // 0: L1 (mmdet); torchvision: 1/9
};

inline RoIHeadLossOptions torchvision_roi_head_loss_options() {
  RoIHeadLossOptions o;
  o.bbox_smooth_l1_beta = 1.0 / 9;
  return o;
}

template <Scalar T>
std::vector<std::pair<std::string, double>> roi_head_loss(const RoIHeadOutputs<T>& out, const RoIHeadTargets<T>& t,
                                                          RoIHeadStyle style, const RoIHeadLossOptions& o,
                                                          RoIHeadOutputs<T>& dout) {
  const std::string who = "StandardRoIHead::loss";
  const index_t K = t.labels.size(0);
  GCNET_CHECK(out.cls_score.rank() == 2 && out.cls_score.size(0) == K && out.cls_score.size(1) >= 2, who,
              ": cls_score has shape ", out.cls_score.shape().str(), ", expected [", K,
              ", nc + 1] for the targets' ", K, " sampled RoIs");
  const index_t C = out.cls_score.size(1), nc = C - 1;
  const index_t groups = style == RoIHeadStyle::Mmdet ? nc : nc + 1;
  GCNET_CHECK(out.bbox_pred.rank() == 2 && out.bbox_pred.size(0) == K && out.bbox_pred.size(1) == 4 * groups, who,
              ": bbox_pred has shape ", out.bbox_pred.shape().str(), ", expected [", K, ", ", 4 * groups, "]");
  require_shape(t.label_weights, Shape{K}, who, "label weights");
  require_shape(t.bbox_targets, Shape{K, 4}, who, "bbox targets");
  require_shape(t.bbox_weights, Shape{K, 4}, who, "bbox weights");
  const std::int64_t bg = style == RoIHeadStyle::Mmdet ? nc : 0;
  for (index_t r = 0; r < K; ++r)
    GCNET_CHECK(t.labels[r] >= 0 && t.labels[r] < C, who, ": label ", t.labels[r], " of RoI ", r, " is outside [0, ", C,
                ")");
  const Tensor<T> cls = ops::contiguous(out.cls_score), reg = ops::contiguous(out.bbox_pred);
  dout.cls_score = zeros<T>(cls.shape());
  dout.bbox_pred = zeros<T>(reg.shape());

  // Classification and accuracy.
  double wsum = 0, lsum = 0;
  index_t correct = 0;
  for (index_t r = 0; r < K; ++r) wsum += t.label_weights[r] > T(0) ? 1.0 : 0.0;
  const double avg = std::max(wsum, 1.0);
  const T cscale = static_cast<T>(o.loss_cls_weight / avg);
  for (index_t r = 0; r < K; ++r) {
    const T* x = cls.data() + r * C;
    T* d = dout.cls_score.data() + r * C;
    index_t arg = 0;
    for (index_t c = 1; c < C; ++c) arg = x[c] > x[arg] ? c : arg;
    correct += arg == t.labels[r];
    const T m = x[arg];
    T sum = 0;
    for (index_t c = 0; c < C; ++c) sum += std::exp(x[c] - m);
    const T lse = m + std::log(sum);
    const T w = t.label_weights[r];
    lsum += static_cast<double>(w) * static_cast<double>(lse - x[t.labels[r]]);
    for (index_t c = 0; c < C; ++c) d[c] = cscale * w * (std::exp(x[c] - lse) - (c == t.labels[r] ? T(1) : T(0)));
  }
  std::vector<std::pair<std::string, double>> losses;
  losses.emplace_back("loss_cls", o.loss_cls_weight * lsum / avg);
  losses.emplace_back("acc", K > 0 ? 100.0 * static_cast<double>(correct) / static_cast<double>(K) : 0.0);

  // Regression of the positives' own class, averaged over all sampled RoIs.
  const double beta = o.bbox_smooth_l1_beta;
  const T bscale = static_cast<T>(o.loss_bbox_weight / static_cast<double>(std::max<index_t>(K, 1)));
  double bsum = 0;
  for (index_t r = 0; r < K; ++r) {
    const std::int64_t c = t.labels[r];
    if (c == bg) continue;
    for (int q = 0; q < 4; ++q) {
      const index_t at = r * 4 * groups + c * 4 + q;
      const T w = t.bbox_weights[r * 4 + q];
      const double diff = static_cast<double>(reg[at]) - static_cast<double>(t.bbox_targets[r * 4 + q]);
      const double ad = std::abs(diff);
      double l, g;
      if (beta > 0 && ad < beta) l = 0.5 * diff * diff / beta, g = diff / beta;
      else l = beta > 0 ? ad - 0.5 * beta : ad, g = diff > 0 ? 1.0 : (diff < 0 ? -1.0 : 0.0);
      bsum += static_cast<double>(w) * l;
      dout.bbox_pred[at] = bscale * w * static_cast<T>(g);
    }
  }
  losses.emplace_back("loss_bbox", o.loss_bbox_weight * bsum / static_cast<double>(std::max<index_t>(K, 1)));

  // Masks: the positives' class channel.
  if (out.mask_pred.defined()) {
    const index_t P = t.pos_labels.size(0);
    GCNET_CHECK(out.mask_pred.rank() == 4 && out.mask_pred.size(0) == P, who, ": mask_pred has shape ",
                out.mask_pred.shape().str(), ", expected [", P, ", classes, M, M] for the targets' ", P, " positives");
    const index_t MC = out.mask_pred.size(1), M2 = out.mask_pred.size(2) * out.mask_pred.size(3);
    GCNET_CHECK(t.mask_targets.defined() && t.mask_targets.rank() == 3 && t.mask_targets.size(0) == P &&
                    t.mask_targets.size(1) * t.mask_targets.size(2) == M2,
                who, ": mask targets have shape ",
                t.mask_targets.defined() ? t.mask_targets.shape().str() : std::string("none"), ", expected [", P, ", ",
                out.mask_pred.size(2), ", ", out.mask_pred.size(3), "]");
    const Tensor<T> mp = ops::contiguous(out.mask_pred);
    dout.mask_pred = zeros<T>(mp.shape());
    const double n = static_cast<double>(std::max<index_t>(P * M2, 1));
    const T mscale = static_cast<T>(o.loss_mask_weight / n);
    double msum = 0;
    for (index_t p = 0; p < P; ++p) {
      const std::int64_t c = t.pos_labels[p];
      GCNET_CHECK(c >= 0 && c < MC, who, ": positive ", p, " has class index ", c, ", mask_pred has ", MC, " channels");
      const T* x = mp.data() + (p * MC + c) * M2;
      const T* y = t.mask_targets.data() + p * M2;
      T* d = dout.mask_pred.data() + (p * MC + c) * M2;
      for (index_t i = 0; i < M2; ++i) {
        const T xi = x[i];
        const T l = (xi > T(0) ? xi : T(0)) - xi * y[i] + std::log1p(std::exp(-std::abs(xi)));
        msum += static_cast<double>(l);
        const T sig = xi >= T(0) ? T(1) / (T(1) + std::exp(-xi)) : std::exp(xi) / (T(1) + std::exp(xi));
        d[i] = mscale * (sig - y[i]);
      }
    }
    losses.emplace_back("loss_mask", o.loss_mask_weight * msum / n);
  } else {
    dout.mask_pred = Tensor<T>();
  }
  return losses;
}

}  // namespace gcnet
