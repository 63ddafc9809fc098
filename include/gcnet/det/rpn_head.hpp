#pragma once
// RPNHead: mmdet v3's RPNHead of Mask R-CNN R50-FPN (gcnet-reference §9), with torchvision's
// RegionProposalNetwork semantics for anchors and proposals as an option (det/rpn_options.hpp).
//   RPNHead<> rpn(mmdet_rpn_head_options());               // or torchvision_rpn_head_options()
//   rpn.forward(ctx, fpn_levels, out);                       // P2..P6 [N, C, H_l, W_l] -> RPNOutputs
//   NamedLosses l = rpn.loss(out, gt, shapes, rng, dout);    // {"loss_rpn_cls", "loss_rpn_bbox"}
//   rpn.backward(ctx, fpn_levels, out, dout, dlevels);       // dlevels accumulate
//   auto props = rpn.proposals(out, shapes, ctx.training);   // per image, descending score
//   RoIs<> rois = to_rois(props);
// A module (core/module.hpp). ONE set of parameters shared over the levels (AppliedToEach of the
// per-level RPNConvHead: each level runs on its own copy with shared values, and the parameter
// gradient is the sum over levels). State dict rpn_conv.weight / .bias, rpn_cls.*, rpn_reg.*
// (rpn_head.* under a detector). Targets: det/rpn_targets.hpp; losses: det/rpn_loss.hpp;
// proposals: det/rpn_proposals.hpp.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "gcnet/compose/applied_to_each.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/det/rpn_conv_head.hpp"
#include "gcnet/det/rpn_loss.hpp"
#include "gcnet/det/rpn_proposals.hpp"

namespace gcnet {

template <Scalar T = float>
class RPNHead {
 public:
  using value_type = T;
  using backend_type = Cpu;
  using tensor_type = Tensor<T>;
  using input_type = std::vector<Tensor<T>>;
  using output_type = RPNOutputs<T>;

  explicit RPNHead(RPNHeadOptions o = mmdet_rpn_head_options())
      : o_(std::move(o)), gen_(o_.anchors),
        applied_(RPNConvHead<T>(o_.in_channels, o_.feat_channels, gen_.num_base_anchors(0), o_.init_std)) {
    for (index_t l = 1; l < gen_.num_levels(); ++l)
      GCNET_CHECK(gen_.num_base_anchors(l) == gen_.num_base_anchors(0), describe(), ": level ", l, " has ",
                  gen_.num_base_anchors(l), " base anchors, level 0 ", gen_.num_base_anchors(0),
                  "; one head needs the same number on every level");
  }

  const RPNHeadOptions& options() const { return o_; }
  index_t num_levels() const { return gen_.num_levels(); }
  index_t num_anchors() const { return gen_.num_base_anchors(0); }  // A, per position
  AppliedToEach<RPNConvHead<T>>& shared_head() { return applied_; }

  void forward(const Context& ctx, const input_type& feats, output_type& out) {
    sync_mode(*this, ctx);
    check_input(feats);
    const std::size_t L = feats.size();
    std::vector<RPNLevelOutputs<T>> ys(L);
    out.cls_scores.resize(L);
    out.bbox_preds.resize(L);
    // Run into the caller's tensors (a level's conv resizes them in place).
    for (std::size_t l = 0; l < L; ++l) ys[l] = {out.cls_scores[l], out.bbox_preds[l]};
    applied_.forward(ctx, feats, ys);
    for (std::size_t l = 0; l < L; ++l) {
      out.cls_scores[l] = ys[l].cls_score;
      out.bbox_preds[l] = ys[l].bbox_pred;
    }
  }

  // dfeats accumulate (an undefined or missing entry: not wanted); an undefined entry of dout
  // means no gradient arrives there.
  void backward(const Context& ctx, const input_type& feats, const output_type& out, const output_type& dout,
                input_type& dfeats) {
    const std::size_t L = feats.size();
    GCNET_CHECK(out.cls_scores.size() == L && out.bbox_preds.size() == L, describe(), ": backward got outputs of ",
                out.cls_scores.size(), " levels for ", L, " inputs");
    std::vector<RPNLevelOutputs<T>> ys(L), dys(L);
    for (std::size_t l = 0; l < L; ++l) {
      ys[l] = {out.cls_scores[l], out.bbox_preds[l]};
      if (l < dout.cls_scores.size()) dys[l].cls_score = dout.cls_scores[l];
      if (l < dout.bbox_preds.size()) dys[l].bbox_pred = dout.bbox_preds[l];
    }
    if (dfeats.size() < L) dfeats.resize(L);
    applied_.backward(ctx, feats, ys, dys, dfeats);
  }

  // The anchors of a batch whose levels have these outputs; `batch` is the padded input size
  // (torchvision's strides; default: level 0's size times its stride).
  RPNAnchors<T> anchors(const output_type& out, std::optional<ops::ImageSize> batch = {}) const {
    return anchors_for(check_rpn_outputs(out, static_cast<std::size_t>(num_levels()), num_anchors(), describe()), batch)
        .second;
  }

  // mmdet's targets (det/rpn_targets.hpp) for the outputs' levels, the sampler's subsets chosen by `pick`.
  RPNTargets<T> targets(const output_type& out, const std::vector<DetGroundTruth<T>>& gt,
                        const std::vector<DetImageShape>& shapes, const ops::SubsetPicker& pick,
                        std::optional<ops::ImageSize> batch = {}) const {
    const std::string who = describe() + "::loss";
    const auto sizes = check_rpn_outputs(out, static_cast<std::size_t>(num_levels()), num_anchors(), who);
    const index_t n = out.cls_scores[0].size(0);
    GCNET_CHECK(static_cast<index_t>(shapes.size()) == n, who, ": ", shapes.size(), " image shapes for a batch of ", n,
                " images");
    GCNET_CHECK(static_cast<index_t>(gt.size()) == n, who, ": ", gt.size(), " ground truths for a batch of ", n,
                " images");
    const auto [gen, a] = anchors_for(sizes, batch);
    return rpn_targets(o_, gen, a, gt, shapes, pick);
  }

  // {"loss_rpn_cls", "loss_rpn_bbox"} (mmdet v3's names) with the sampler's subsets from `rng`;
  // d(loss_rpn_cls + loss_rpn_bbox) / d out is written into dout (every element).
  NamedLosses loss(const output_type& out, const std::vector<DetGroundTruth<T>>& gt,
                   const std::vector<DetImageShape>& shapes, Rng& rng, output_type& dout,
                   std::optional<ops::ImageSize> batch = {}) const {
    return loss(out, gt, shapes, ops::SubsetPicker([&rng](index_t n, index_t k) { return ops::random_subset(n, k, rng); }),
                dout, batch);
  }
  // The same with the subsets chosen by `pick` (tests inject a deterministic choice).
  NamedLosses loss(const output_type& out, const std::vector<DetGroundTruth<T>>& gt,
                   const std::vector<DetImageShape>& shapes, const ops::SubsetPicker& pick, output_type& dout,
                   std::optional<ops::ImageSize> batch = {}) const {
    const RPNTargets<T> t = targets(out, gt, shapes, pick, batch);
    const RPNLossValues v = rpn_loss(out, t, o_.train, dout);
    return {{"loss_rpn_cls", v.cls}, {"loss_rpn_bbox", v.bbox}};
  }

  // Proposals per image (det/rpn_proposals.hpp) with the training (train_proposals) or test options.
  std::vector<RPNProposals<T>> proposals(const output_type& out, const std::vector<DetImageShape>& shapes,
                                         bool training, std::optional<ops::ImageSize> batch = {}) const {
    const auto sizes = check_rpn_outputs(out, static_cast<std::size_t>(num_levels()), num_anchors(),
                                         describe() + "::proposals");
    return rpn_proposals(out, anchors_for(sizes, batch).second, shapes, training ? o_.train_proposals : o_.test,
                         o_.coder, o_.style);
  }

  std::string describe() const {
    return std::string("RPNHead(") + (o_.style == RPNStyle::mmdet ? "mmdet" : "torchvision") + ", " +
           std::to_string(o_.in_channels) + " -> " + std::to_string(o_.feat_channels) + ", " +
           std::to_string(num_anchors()) + " anchors x " + std::to_string(num_levels()) + " levels)";
  }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view(), applied_);
  }
  GCNET_CHILD_STATE_HOOKS(T, Cpu)
  void set_training(bool training) {
    training_ = training;
    applied_.set_training(training);
  }
  bool training() const { return training_; }

 private:
  void check_input(const input_type& feats) const {
    GCNET_CHECK(static_cast<index_t>(feats.size()) == num_levels(), describe(), ": expected ", num_levels(),
                " feature levels, got ", feats.size());
    for (std::size_t l = 0; l < feats.size(); ++l) {
      const Tensor<T>& x = feats[l];
      GCNET_CHECK(x.rank() == 4 && x.size(1) == o_.in_channels, describe(), ": level ", l, " must have shape [N, ",
                  o_.in_channels, ", H, W], got ", x.shape().str());
      GCNET_CHECK(x.size(0) == feats[0].size(0), describe(), ": level ", l, " has batch size ", x.size(0),
                  ", level 0 has ", feats[0].size(0));
    }
  }

  std::pair<ops::AnchorGenerator<T>, RPNAnchors<T>> anchors_for(const std::vector<ops::FeatSize>& sizes,
                                                                std::optional<ops::ImageSize> batch) const {
    ops::ImageSize b{};
    if (batch) {
      b = *batch;
    } else if (!sizes.empty()) {
      const auto& s0 = o_.anchors.strides[0];
      b = {static_cast<index_t>(std::llround(static_cast<double>(sizes[0].height) * s0.h)),
           static_cast<index_t>(std::llround(static_cast<double>(sizes[0].width) * s0.w))};
    }
    ops::AnchorGenerator<T> gen = rpn_anchor_generator<T>(o_, sizes, b);
    RPNAnchors<T> a = rpn_anchors(gen, sizes);
    return {std::move(gen), std::move(a)};
  }

  RPNHeadOptions o_;
  ops::AnchorGenerator<T> gen_;  // the options' generator (mmdet's fixed strides)
  AppliedToEach<RPNConvHead<T>> applied_;
  bool training_ = true;
};

}  // namespace gcnet
