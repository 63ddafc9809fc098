#pragma once
// The RPN's losses on its targets (mmdet v3 AnchorHead.loss_by_feat / loss_by_feat_single,
// RPNHead.loss_by_feat), summed over levels as mmdet's log does with the per-level list:
//   loss_rpn_cls  = w_cls  * sum_j cls_weight_j * BCEWithLogits(logit_j, cls_target_j) / (avg + eps)
//   loss_rpn_bbox = w_bbox * sum_j bbox_weight_j * sum_k |pred_jk - target_jk|       / (avg + eps)
// with avg = avg_factor (sampled anchors of the batch) and eps = float32 machine epsilon
// (mmdet weight_reduce_loss). Writes d(loss_rpn_cls + loss_rpn_bbox) / d out into dout, every
// element (0 where no loss reaches); |x|' at 0 is 0, as torch's sign.
#include <cfloat>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/det/rpn_outputs.hpp"
#include "gcnet/det/rpn_targets.hpp"

namespace gcnet {

// train/trainer.hpp's NamedLosses (the same alias; redeclaring it here spares the loss the trainer's headers).
using NamedLosses = std::vector<std::pair<std::string, double>>;

struct RPNLossValues {
  double cls = 0, bbox = 0;
};

template <Scalar T>
RPNLossValues rpn_loss(const RPNOutputs<T>& out, const RPNTargets<T>& t, const RPNTrainOptions& o,
                       RPNOutputs<T>& dout) {
  const std::string who = "RPNHead::loss";
  const std::size_t levels = out.cls_scores.size();
  GCNET_CHECK(levels > 0 && t.level_sizes.size() == levels, who, ": targets for ", t.level_sizes.size(),
              " levels, outputs of ", levels);
  const index_t anchors = out.cls_scores[0].size(1);
  check_rpn_outputs(out, levels, anchors, who);
  const index_t n = out.cls_scores[0].size(0);
  GCNET_CHECK(static_cast<index_t>(t.cls_targets.size()) == n, who, ": targets for ", t.cls_targets.size(),
              " images, a batch of ", n);
  const double denom = t.avg_factor + static_cast<double>(FLT_EPSILON);
  const double gc = o.loss_cls_weight / denom, gb = o.loss_bbox_weight / denom;
  dout.cls_scores.resize(levels);
  dout.bbox_preds.resize(levels);
  double cls_sum = 0, bbox_sum = 0;
  index_t offset = 0;
  for (std::size_t l = 0; l < levels; ++l) {
    const Tensor<T>& cls = out.cls_scores[l];
    const Tensor<T>& reg = out.bbox_preds[l];
    const index_t h = cls.size(2), w = cls.size(3), hw = h * w;
    GCNET_CHECK(t.level_sizes[l] == hw * anchors, who, ": level ", l, " has ", hw * anchors, " anchors, the targets ",
                t.level_sizes[l]);
    Tensor<T>& dc = dout.cls_scores[l];
    Tensor<T>& db = dout.bbox_preds[l];
    dc.resize(cls.shape());
    db.resize(reg.shape());
    fill(dc, T(0));
    fill(db, T(0));
    for (index_t i = 0; i < n; ++i) {
      const T* ct = t.cls_targets[static_cast<std::size_t>(i)].data() + offset;
      const T* cw = t.cls_weights[static_cast<std::size_t>(i)].data() + offset;
      const T* bt = t.bbox_targets[static_cast<std::size_t>(i)].data() + 4 * offset;
      const T* bw = t.bbox_weights[static_cast<std::size_t>(i)].data() + offset;
      const T* pc = cls.data() + i * anchors * hw;
      const T* pr = reg.data() + i * 4 * anchors * hw;
      T* gcp = dc.data() + i * anchors * hw;
      T* gbp = db.data() + i * 4 * anchors * hw;
      for (index_t p = 0; p < hw; ++p)
        for (index_t a = 0; a < anchors; ++a) {
          const index_t j = p * anchors + a;  // the anchor's index within the level
          if (cw[j] != T(0)) {
            const double x = pc[a * hw + p], y = ct[j], wt = cw[j];
            // BCE with logits, stable: max(x, 0) - x y + log(1 + exp(-|x|)).
            cls_sum += wt * (std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::abs(x))));
            const double s = 1 / (1 + std::exp(-x));
            gcp[a * hw + p] = static_cast<T>(gc * wt * (s - y));
          }
          if (bw[j] != T(0)) {
            const double wt = bw[j];
            for (index_t k = 0; k < 4; ++k) {
              const index_t e = (4 * a + k) * hw + p;
              const double d = static_cast<double>(pr[e]) - static_cast<double>(bt[4 * j + k]);
              bbox_sum += wt * std::abs(d);
              gbp[e] = static_cast<T>(gb * wt * (d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0)));
            }
          }
        }
    }
    offset += t.level_sizes[l];
  }
  return {o.loss_cls_weight * cls_sum / denom, o.loss_bbox_weight * bbox_sum / denom};
}

}  // namespace gcnet
