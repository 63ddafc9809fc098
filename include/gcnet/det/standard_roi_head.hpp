#pragma once
// StandardRoIHead: mmdet v3's RoI head of Mask R-CNN (and torchvision's RoIHeads as an option):
// a box branch (RoI extractor 7 x 7 -> Shared2FCBBoxHead) and a mask branch (RoI extractor
// 14 x 14 -> FCNMaskHead) over the FPN levels.
//   Training, one step:
//     auto t = head.sample(proposals, gt, shapes, rng);        // assign, sample, targets
//     head.forward(ctx, head.input(feats, t), out);             // rois = t.rois, mask_rois = t.mask_rois
//     auto losses = head.loss(out, t, dout);                    // loss_cls, acc, loss_bbox, loss_mask
//     head.backward(ctx, input, out, dout, dinput);             // dinput.feats accumulates
//   Inference: head.predict(feats, proposals, shapes) -> per image Detections (boxes, scores,
//     labels 0..nc-1, masks at the original size), in eval mode.
// A module (core/module.hpp): input RoIHeadInput {feats, rois, mask_rois}, output RoIHeadOutputs
// {cls_score, bbox_pred, mask_pred} (mask_pred undefined without mask RoIs or mask head).
// Children bbox_head.*, mask_head.* (mmdet's names below roi_head.). Extraction: mmdet's
// SingleRoIExtractor (aligned RoIAlign, sampling 0) or torchvision's MultiScaleRoIAlign (sampling
// 2, not aligned); backward through roi_extract_backward into the levels' gradients.
#include <optional>
#include <string>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/det/bbox_head.hpp"
#include "gcnet/det/mask_head.hpp"
#include "gcnet/det/roi_head_loss.hpp"
#include "gcnet/det/roi_head_predict.hpp"
#include "gcnet/det/roi_head_targets.hpp"
#include "gcnet/ops/roi_extractor.hpp"

namespace gcnet {

struct StandardRoIHeadOptions {
  BBoxHeadOptions bbox_head{};
  std::optional<FCNMaskHeadOptions> mask_head = FCNMaskHeadOptions{};  // nullopt: a box-only head
  ops::RoIExtractorOptions bbox_roi_extractor{.out_size = 7};
  ops::RoIExtractorOptions mask_roi_extractor{.out_size = 14};
  RoIHeadTrainOptions train{};
  RoIHeadLossOptions loss{};
  RoIHeadTestOptions test{};
};

// mmdet's mask-rcnn_r50_fpn: 256 channels, FCs of 1024, nc classes.
inline StandardRoIHeadOptions mmdet_roi_head_options(index_t num_classes = 80, index_t in_channels = 256) {
  StandardRoIHeadOptions o;
  o.bbox_head.num_classes = num_classes;
  o.bbox_head.in_channels = in_channels;
  o.mask_head->num_classes = num_classes;
  o.mask_head->in_channels = in_channels;
  o.mask_head->conv_out_channels = in_channels;
  return o;
}

// torchvision's maskrcnn_resnet50_fpn RoIHeads (num_classes = foreground classes; torchvision's
// num_classes counts the background too: 91 for COCO -> 90 here).
inline StandardRoIHeadOptions torchvision_roi_head_options(index_t num_classes = 90, index_t in_channels = 256) {
  StandardRoIHeadOptions o = mmdet_roi_head_options(num_classes, in_channels);
  o.bbox_head.style = RoIHeadStyle::Torchvision;
  o.bbox_head.mmdet_init = false;
  o.mask_head->background_channel = true;
  o.bbox_roi_extractor = ops::torchvision_roi_extractor_options(7);
  o.mask_roi_extractor = ops::torchvision_roi_extractor_options(14);
  o.train = torchvision_roi_head_train_options();
  o.loss = torchvision_roi_head_loss_options();
  return o;
}

template <Scalar T = float>
class StandardRoIHead {
 public:
  using value_type = T;
  using backend_type = Cpu;
  using input_type = RoIHeadInput<T>;
  using output_type = RoIHeadOutputs<T>;

  explicit StandardRoIHead(const StandardRoIHeadOptions& o) : o_(check(o)), bbox_head_(o.bbox_head) {
    if (o.mask_head) mask_head_.emplace(*o.mask_head);
  }

  const StandardRoIHeadOptions& options() const { return o_; }
  RoIHeadStyle style() const { return o_.bbox_head.style; }
  index_t num_classes() const { return o_.bbox_head.num_classes; }
  bool with_mask() const { return mask_head_.has_value(); }
  Shared2FCBBoxHead<T>& bbox_head() { return bbox_head_; }
  FCNMaskHead<T>* mask_head() { return mask_head_ ? &*mask_head_ : nullptr; }
  void set_test_options(const RoIHeadTestOptions& t) { o_.test = t; }

  // ---- module ----
  void forward(const Context& ctx, const input_type& x, output_type& y) {
    sync_mode(*this, ctx);
    check_feats(x.feats);
    const index_t N = x.feats[0].size(0);
    check_rois(x.rois, N, describe() + ": box RoIs");
    *bbox_feats_ = ops::roi_extract(x.feats, x.rois, o_.bbox_roi_extractor);
    BBoxHeadOutputs<T> b;
    bbox_head_.forward(ctx, *bbox_feats_, b);
    y.cls_score = b.cls_score;
    y.bbox_pred = b.bbox_pred;
    y.mask_pred = Tensor<T>();
    *mask_ran_ = false;
    if (mask_head_ && x.mask_rois.boxes.defined()) {
      check_rois(x.mask_rois, N, describe() + ": mask RoIs");
      *mask_feats_ = ops::roi_extract(x.feats, x.mask_rois, o_.mask_roi_extractor);
      mask_head_->forward(ctx, *mask_feats_, y.mask_pred);
      *mask_ran_ = true;
    }
  }

  // dx.feats accumulates (levels left undefined or missing: not wanted). Parameter gradients of
  // both heads are assigned (zeros for a head that did not run or got no output gradient).
  void backward(const Context& ctx, const input_type& x, const output_type& y, const output_type& dy, input_type& dx) {
    const std::size_t L = o_.bbox_roi_extractor.strides.size();
    bool want = dx.feats.size() >= L;
    for (std::size_t l = 0; want && l < L; ++l) want = dx.feats[l].defined();
    Tensor<T> dbf = zeros<T>(bbox_feats_->shape());
    BBoxHeadOutputs<T> b{y.cls_score, y.bbox_pred}, db{dy.cls_score, dy.bbox_pred};
    bbox_head_.backward(ctx, *bbox_feats_, b, db, dbf);
    if (want) ops::roi_extract_backward(x.rois, o_.bbox_roi_extractor, dbf, dx.feats);
    if (!mask_head_) return;
    if (!*mask_ran_) {
      visit_parameters("", [](const std::string& name, Param<T, Cpu>& p) {
        if (name.rfind("mask_head.", 0) == 0) fill(p.grad, T(0));
      });
      return;
    }
    Tensor<T> dmf = zeros<T>(mask_feats_->shape());
    const Tensor<T> dm = dy.mask_pred.defined() ? dy.mask_pred : zeros<T>(y.mask_pred.shape());
    mask_head_->backward(ctx, *mask_feats_, y.mask_pred, dm, dmf);
    const std::size_t LM = o_.mask_roi_extractor.strides.size();
    bool want_m = dx.feats.size() >= LM;
    for (std::size_t l = 0; want_m && l < LM; ++l) want_m = dx.feats[l].defined();
    if (want_m) ops::roi_extract_backward(x.mask_rois, o_.mask_roi_extractor, dmf, dx.feats);
  }

  std::string describe() const {
    return std::string("StandardRoIHead(") + bbox_head_.describe() + (mask_head_ ? ", " + mask_head_->describe() : "") + ")";
  }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view("bbox_head"), bbox_head_);
    if (mask_head_) f(std::string_view("mask_head"), *mask_head_);
  }
  GCNET_CHILD_STATE_HOOKS(T, Cpu)
  void set_training(bool t) {
    training_ = t;
    detail::set_children_training(*this, t);
  }
  bool training() const { return training_; }

  // ---- training ----
  // Targets of a batch with the sampler's random subsets drawn from rng (seed it per step).
  RoIHeadTargets<T> sample(const std::vector<Tensor<T>>& proposals, const std::vector<DetGroundTruth<T>>& gt,
                           const std::vector<DetImageShape>& shapes, Rng& rng) const {
    return roi_head_targets<T>(proposals, gt, shapes, o_.train, style(), num_classes(), with_mask(),
                               [&rng](std::size_t) -> ops::SubsetPicker {
                                 return [&rng](index_t n, index_t k) { return ops::random_subset(n, k, rng); };
                               });
  }
  // The same with a given subset picker (tests).
  RoIHeadTargets<T> sample(const std::vector<Tensor<T>>& proposals, const std::vector<DetGroundTruth<T>>& gt,
                           const std::vector<DetImageShape>& shapes, const ops::SubsetPicker& pick) const {
    return roi_head_targets<T>(proposals, gt, shapes, o_.train, style(), num_classes(), with_mask(),
                               [&pick](std::size_t) { return pick; });
  }
  // The module input of a training step.
  static input_type input(const std::vector<Tensor<T>>& feats, const RoIHeadTargets<T>& t) {
    return input_type{feats, t.rois, t.mask_rois};
  }
  // {"loss_cls", "acc", "loss_bbox", "loss_mask"}; dout = d(sum of the losses, not acc) / d out.
  std::vector<std::pair<std::string, double>> loss(const output_type& out, const RoIHeadTargets<T>& t,
                                                   output_type& dout) const {
    return roi_head_loss(out, t, style(), o_.loss, dout);
  }

  // ---- inference ----
  // proposals[i]: [k_i, 4] in the network input's pixels (e.g. the RPN's, best first). Runs in
  // eval mode. Detections in the original image's pixels (test.rescale) with masks pasted there.
  std::vector<Detections<T>> predict(const std::vector<Tensor<T>>& feats, const std::vector<Tensor<T>>& proposals,
                                     const std::vector<DetImageShape>& shapes) {
    return predict(feats, proposals, shapes, o_.test);
  }
  std::vector<Detections<T>> predict(const std::vector<Tensor<T>>& feats, const std::vector<Tensor<T>>& proposals,
                                     const std::vector<DetImageShape>& shapes, const RoIHeadTestOptions& to) {
    const std::string who = describe() + "::predict";
    check_feats(feats);
    const auto N = static_cast<std::size_t>(feats[0].size(0));
    GCNET_CHECK(proposals.size() == N && shapes.size() == N, who, ": a batch of ", N, " images but ",
                proposals.size(), " proposal lists and ", shapes.size(), " image shapes");
    Context ctx;
    ctx.training = false;
    input_type in{feats, ops::rois_from_lists(proposals), RoIs<T>()};
    output_type out;
    forward(ctx, in, out);
    *bbox_feats_ = Tensor<T>();  // no backward follows predict()
    std::vector<Detections<T>> dets(N);
    std::vector<Tensor<T>> det_boxes(N);
    index_t at = 0;
    for (std::size_t i = 0; i < N; ++i) {
      const index_t k = proposals[i].size(0);
      dets[i] = postprocess_roi_boxes(proposals[i], rows(out.cls_score, at, k), rows(out.bbox_pred, at, k), shapes[i],
                                      style(), to);
      det_boxes[i] = dets[i].boxes;
      at += k;
    }
    Tensor<T> probs_all;
    if (mask_head_ && (to.binary_masks || to.soft_masks)) {
      const RoIs<T> mrois = ops::rois_from_lists(det_boxes);
      const Tensor<T> mf = ops::roi_extract(feats, mrois, o_.mask_roi_extractor);
      Tensor<T> logits;
      mask_head_->forward(ctx, mf, logits);
      index_t total = 0;
      for (const auto& d : dets) total += d.size();
      Tensor<std::int64_t> channel(Shape{total});
      index_t j = 0;
      const std::int64_t shift = style() == RoIHeadStyle::Mmdet ? 0 : 1;
      for (const auto& d : dets)
        for (index_t q = 0; q < d.size(); ++q) channel[j++] = d.labels[q] + shift;
      probs_all = mask_probabilities(logits, channel);
    }
    at = 0;
    for (std::size_t i = 0; i < N; ++i) {
      const index_t n = dets[i].size();
      if (probs_all.defined()) {
        const Tensor<T> probs = rows(probs_all, at, n);
        finish_detections(dets[i], &probs, shapes[i], style(), to);
      } else {
        finish_detections(dets[i], static_cast<const Tensor<T>*>(nullptr), shapes[i], style(), to);
      }
      at += n;
    }
    return dets;
  }

 private:
  static StandardRoIHeadOptions check(const StandardRoIHeadOptions& o) {
    const char* who = "StandardRoIHead";
    GCNET_CHECK(o.bbox_roi_extractor.out_size == o.bbox_head.roi_feat_size, who, ": the box RoI extractor gives ",
                o.bbox_roi_extractor.out_size, " x ", o.bbox_roi_extractor.out_size, " features, the box head expects ",
                o.bbox_head.roi_feat_size);
    if (o.mask_head) {
      GCNET_CHECK(o.mask_roi_extractor.out_size == o.mask_head->roi_feat_size, who, ": the mask RoI extractor gives ",
                  o.mask_roi_extractor.out_size, " x ", o.mask_roi_extractor.out_size, " features, the mask head expects ",
                  o.mask_head->roi_feat_size);
      GCNET_CHECK(o.mask_head->num_classes == o.bbox_head.num_classes, who, ": the mask head has ",
                  o.mask_head->num_classes, " classes, the box head ", o.bbox_head.num_classes);
      GCNET_CHECK(o.mask_head->in_channels == o.bbox_head.in_channels, who, ": the mask head reads ",
                  o.mask_head->in_channels, " channels, the box head ", o.bbox_head.in_channels);
      GCNET_CHECK(o.mask_head->background_channel == (o.bbox_head.style == RoIHeadStyle::Torchvision), who,
                  ": the mask head's background channel (", o.mask_head->background_channel,
                  ") must match the box head's style (torchvision: background channel, mmdet: none)");
      GCNET_CHECK(o.train.mask_target.size == 2 * o.mask_head->roi_feat_size, who, ": mask targets of ",
                  o.train.mask_target.size, " x ", o.train.mask_target.size, ", the mask head predicts ",
                  2 * o.mask_head->roi_feat_size);
    }
    return o;
  }

  void check_feats(const std::vector<Tensor<T>>& feats) const {
    const std::size_t L = std::max(o_.bbox_roi_extractor.strides.size(), o_.mask_roi_extractor.strides.size());
    GCNET_CHECK(feats.size() >= L, describe(), ": expected at least ", L, " feature levels, got ", feats.size());
    for (std::size_t l = 0; l < L; ++l)
      GCNET_CHECK(feats[l].rank() == 4 && feats[l].size(1) == o_.bbox_head.in_channels &&
                      feats[l].size(0) == feats[0].size(0),
                  describe(), ": feature level ", l, " has shape ", feats[l].shape().str(), ", expected [N, ",
                  o_.bbox_head.in_channels, ", H, W]");
  }

  // Rows [at, at + n) of t (a copy, contiguous).
  static Tensor<T> rows(const Tensor<T>& t, index_t at, index_t n) {
    Shape s = t.shape();
    s[0] = n;
    Tensor<T> out(s);
    const index_t row = t.size(0) ? t.numel() / t.size(0) : 0;
    std::copy_n(t.data() + at * row, n * row, out.data());
    return out;
  }

  StandardRoIHeadOptions o_;
  Shared2FCBBoxHead<T> bbox_head_;
  std::optional<FCNMaskHead<T>> mask_head_;
  bool training_ = true;
  ScratchValue<Tensor<T>> bbox_feats_, mask_feats_;  // the extracted RoI features, for backward
  ScratchValue<bool> mask_ran_;
};

}  // namespace gcnet
