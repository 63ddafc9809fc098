#pragma once
// MaskRCNN: backbone (a ResNet/ResNeXt of models/resnet.hpp with its options: plugins, frozen
// stages, norm_eval; its norm type is the template argument's) + FPN (models/fpn.hpp) + RPN head
// (det/rpn_head.hpp) + RoI head (det/standard_roi_head.hpp), configured by a preset
// (det/mask_rcnn_config.hpp):
//   MaskRCNN<ResNetBackbone<>> det(mmdet_mask_rcnn_config(80, GcVariant::r16));
//   MaskRCNN<ResNetBackbone<float, Cpu, FrozenBatchNorm2d<>>> tv(torchvision_mask_rcnn_config(90));
// A module (core/module.hpp). Training: input DetBatch {images, shapes, gt}, output DetLosses
// (loss_rpn_cls, loss_rpn_bbox, loss_cls, loss_bbox, loss_mask as [1] tensors, acc): forward runs
// the backbone, FPN and RPN, the RPN's targets and losses, its training proposals (no gradient
// through them, as mmdet and torchvision), the RoI head's sampling, heads and losses; backward
// takes d total / d loss_k from dout (the Trainer's loss function det_losses() sets 1) and sends
// the heads' gradients into the FPN levels (RPN on all five, RoI head on P2..P5: they add up),
// through the FPN into c2..c5 and through the backbone. The RPN's two losses come with one
// gradient (they share one backward) and so do the RoI head's three: their weights must agree.
// The sampler's random choices come from (ctx.rng's seed, step) when the Context has a stream
// (the Trainer's), else from the model's own generator.
// Inference: predict(images, shapes, options) -> per image Detections (boxes, scores, labels
// 0..nc-1 in the original image's pixels; boolean masks at the original size and/or soft M x M
// masks, as options ask), in eval mode.
// State dict: backbone.*, neck.*, rpn_head.*, roi_head.* (mmdet's names; a torchvision checkpoint
// converted by tools/convert_checkpoint.py --torchvision-maskrcnn loads into the torchvision
// preset). load_mask_rcnn_checkpoint refuses a checkpoint recorded for another preset or number
// of classes; save_mask_rcnn_checkpoint records them.
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "gcnet/compose/children.hpp"
#include "gcnet/core/module.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/det/det_losses.hpp"
#include "gcnet/det/mask_rcnn_config.hpp"
#include "gcnet/det/rpn_head.hpp"
#include "gcnet/det/standard_roi_head.hpp"
#include "gcnet/io/checkpoint.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/frozen_batch_norm2d.hpp"
#include "gcnet/layers/sync_batch_norm2d.hpp"
#include "gcnet/models/feature_maps.hpp"
#include "gcnet/models/fpn.hpp"
#include "gcnet/models/resnet.hpp"

namespace gcnet {

template <class Backbone>
class MaskRCNN {
 public:
  using value_type = typename Backbone::value_type;
  using backend_type = typename Backbone::backend_type;
  using T = value_type;
  using tensor_type = Tensor<T>;
  using input_type = DetBatch<T>;
  using output_type = DetLosses<T>;
  static_assert(std::is_same_v<backend_type, Cpu>, "MaskRCNN: the detector runs on the CPU backend");
  static_assert(std::is_same_v<typename Backbone::output_type, FeatureMaps<T, Cpu>>,
                "MaskRCNN: the backbone must give FeatureMaps (models/resnet.hpp)");

  explicit MaskRCNN(const MaskRCNNConfig& config, std::uint64_t seed = 0)
      : c_(checked(config)), backbone_(c_.backbone),
        neck_(mask_rcnn_neck_options(c_, Backbone::block_type::expansion)), rpn_(c_.rpn), roi_(c_.roi), rng_(seed) {
    set_training(true);
  }

  const MaskRCNNConfig& config() const { return c_; }
  const std::string& preset() const { return c_.preset; }
  index_t num_classes() const { return c_.num_classes; }
  bool with_mask() const { return roi_.with_mask(); }
  Backbone& backbone() { return backbone_; }
  FPN<T, Cpu>& neck() { return neck_; }
  RPNHead<T>& rpn_head() { return rpn_; }
  StandardRoIHead<T>& roi_head() { return roi_; }

  // ---- training ----
  void forward(const Context& ctx, const input_type& batch, output_type& out) {
    GCNET_CHECK(ctx.training, describe(), ": forward computes the training losses; use predict() for inference");
    sync_mode(*this, ctx);
    check_batch(batch, true);
    run_features(ctx, batch.images);
    Rng rng = ctx.rng ? Rng(ctx.rng->seed ^ 0x6d61736b72636e6eull, ctx.rng->step) : rng_.split();
    const ops::ImageSize padded{batch.images.size(2), batch.images.size(3)};
    // RPN: losses (d/d outputs kept for backward) and the training proposals.
    RPNOutputs<T>& d_rpn = *d_rpn_;
    const NamedLosses rpn_losses = rpn_.loss(*rpn_out_, batch.gt, batch.shapes, rng, d_rpn, padded);
    const std::vector<RPNProposals<T>> props = rpn_.proposals(*rpn_out_, batch.shapes, true, padded);
    std::vector<Tensor<T>> boxes;
    for (const auto& p : props) boxes.push_back(p.boxes);
    // RoI head on the sampled proposals.
    RoIHeadTargets<T>& t = *targets_;
    t = roi_.sample(boxes, batch.gt, batch.shapes, rng);
    *roi_in_ = StandardRoIHead<T>::input(*levels_, t);
    gcnet::forward(roi_, ctx, *roi_in_, *roi_out_);
    RoIHeadOutputs<T>& d_roi = *d_roi_;
    zero_grad_like(*roi_out_, d_roi);
    const NamedLosses roi_losses = roi_.loss(*roi_out_, t, d_roi);
    auto value = [&](const NamedLosses& l, const char* name) {
      for (const auto& [k, v] : l)
        if (k == name) return v;
      detail::fail(describe(), ": the heads gave no '", name, "'");
    };
    auto one = [](double v) { return full<T>(Shape{1}, static_cast<T>(v)); };
    out.loss_rpn_cls = one(value(rpn_losses, "loss_rpn_cls"));
    out.loss_rpn_bbox = one(value(rpn_losses, "loss_rpn_bbox"));
    out.loss_cls = one(value(roi_losses, "loss_cls"));
    out.loss_bbox = one(value(roi_losses, "loss_bbox"));
    out.loss_mask = with_mask() ? one(value(roi_losses, "loss_mask")) : tensor_type();
    out.acc = value(roi_losses, "acc");
  }

  // dbatch: nothing is written (no image gradient).
  void backward(const Context& ctx, const input_type& batch, const output_type& out, const output_type& dout,
                input_type& dbatch) {
    (void)out;
    (void)dbatch;
    GCNET_CHECK(levels_->size() == static_cast<std::size_t>(c_.neck_outs) && targets_->rois.boxes.defined(),
                describe(), ": backward needs a training forward first");
    const T w_rpn = weight(dout.loss_rpn_cls, dout.loss_rpn_bbox, tensor_type(), "RPN (loss_rpn_cls, loss_rpn_bbox)");
    const T w_roi = weight(dout.loss_cls, dout.loss_bbox, with_mask() ? dout.loss_mask : tensor_type(),
                           "RoI head (loss_cls, loss_bbox, loss_mask)");
    // FPN level gradients: the RPN's (all levels) and the RoI head's (P2..P5) add up.
    std::vector<tensor_type> dlevels;
    for (const auto& l : *levels_) dlevels.push_back(zeros<T>(l.shape()));
    RPNOutputs<T> d_rpn = scaled(*d_rpn_, w_rpn);
    rpn_.backward(ctx, *levels_, *rpn_out_, d_rpn, dlevels);
    RoIHeadOutputs<T> d_roi = scaled(*d_roi_, w_roi);
    RoIHeadInput<T> d_in;
    d_in.feats = dlevels;  // shares the storage: the RoI head accumulates into dlevels
    roi_.backward(ctx, *roi_in_, *roi_out_, d_roi, d_in);
    // The gradient of a map that reaches only frozen stages is not wanted (the FPN then skips it).
    FeatureMaps<T, Cpu> dfeats;
    for (int s = 0; s < 4; ++s)
      if (feats_->stage(s).defined() && backbone_output_gradient_used(s))
        dfeats.stage(s) = zeros<T>(feats_->stage(s).shape());
    neck_.backward(ctx, *feats_, *levels_, dlevels, dfeats);
    dlevels.clear();
    d_in.feats.clear();
    tensor_type no_input_grad;
    gcnet::backward(backbone_, ctx, batch.images, *feats_, dfeats, no_input_grad);
  }

  // ---- inference ----
  // images [N, 3, H, W] normalised and padded; shapes per image. Eval mode (restored after).
  std::vector<Detections<T>> predict(const tensor_type& images, const std::vector<DetImageShape>& shapes,
                                     const RoIHeadTestOptions& options) {
    const bool was_training = training_;
    Context ctx = Context::eval();
    sync_mode(*this, ctx);
    input_type b;
    b.images = images;
    b.shapes = shapes;
    check_batch(b, false);
    run_features(ctx, images);
    *feats_ = FeatureMaps<T, Cpu>{};  // read by the neck only; no backward follows predict()
    const ops::ImageSize padded{images.size(2), images.size(3)};
    const std::vector<RPNProposals<T>> props = rpn_.proposals(*rpn_out_, shapes, false, padded);
    *last_proposals_ = props;
    std::vector<Tensor<T>> boxes;
    for (const auto& p : props) boxes.push_back(p.boxes);
    std::vector<Detections<T>> dets = roi_.predict(*levels_, boxes, shapes, options);
    if (was_training) set_training(true);
    return dets;
  }
  std::vector<Detections<T>> predict(const tensor_type& images, const std::vector<DetImageShape>& shapes) {
    return predict(images, shapes, c_.roi.test);
  }
  // The RPN's proposals of the last predict() (per image, in the network input's pixels).
  const std::vector<RPNProposals<T>>& last_proposals() const { return *last_proposals_; }

  // ---- module ----
  std::string describe() const {
    return "MaskRCNN(" + c_.preset + ", " + backbone_.describe() + ", " + std::to_string(c_.num_classes) + " classes)";
  }
  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view("backbone"), backbone_);
    f(std::string_view("neck"), neck_);
    f(std::string_view("rpn_head"), rpn_);
    f(std::string_view("roi_head"), roi_);
  }
  GCNET_CHILD_STATE_HOOKS(T, Cpu)
  // What an optimizer updates: all but the backbone's frozen stages.
  void visit_trainable_parameters(const std::string& prefix, const ParamVisitor<T, Cpu>& f) {
    backbone_.visit_trainable_parameters(prefix + "backbone.", f);
    gcnet::visit_parameters(neck_, prefix + "neck.", f);
    gcnet::visit_parameters(rpn_, prefix + "rpn_head.", f);
    gcnet::visit_parameters(roi_, prefix + "roi_head.", f);
  }
  void set_training(bool training) {
    training_ = training;
    detail::set_children_training(*this, training);
  }
  bool training() const { return training_; }

 private:
  static MaskRCNNConfig checked(const MaskRCNNConfig& config) {
    MaskRCNNConfig c = finalize(config);
    using Norm = typename Backbone::norm_type;
    const BackboneNorm has = std::is_same_v<Norm, FrozenBatchNorm2d<T, Cpu>> ? BackboneNorm::frozen_batch_norm
                             : std::is_same_v<Norm, SyncBatchNorm2d<T, Cpu>> ? BackboneNorm::sync_batch_norm
                                                                             : BackboneNorm::batch_norm;
    GCNET_CHECK(has == c.norm, "MaskRCNN(", c.preset, "): the preset's backbone uses ", backbone_norm_name(c.norm),
                ", the backbone type has ", backbone_norm_name(has));
    const bool tv = c.style == MaskRCNNStyle::torchvision;
    GCNET_CHECK((c.rpn.style == RPNStyle::torchvision) == tv &&
                    (c.roi.bbox_head.style == RoIHeadStyle::Torchvision) == tv,
                "MaskRCNN(", c.preset, "): the RPN and RoI head options must follow the preset's style (",
                tv ? "torchvision" : "mmdet", ")");
    GCNET_CHECK(c.neck_outs == static_cast<index_t>(c.rpn.anchors.strides.size()), "MaskRCNN(", c.preset,
                "): the FPN gives ", c.neck_outs, " levels, the RPN's anchors have ", c.rpn.anchors.strides.size());
    return c;
  }

  void check_batch(const input_type& b, bool training) const {
    const std::string who = describe() + (training ? "::forward" : "::predict");
    const tensor_type& x = b.images;
    GCNET_CHECK(x.defined() && x.rank() == 4 && x.size(1) == c_.backbone.in_channels, who,
                ": images must be [N, ", c_.backbone.in_channels, ", H, W], got ",
                x.defined() ? x.shape().str() : std::string("undefined"));
    const auto N = static_cast<std::size_t>(x.size(0));
    GCNET_CHECK(b.shapes.size() == N, who, ": ", b.shapes.size(), " image shapes for a batch of ", N, " images");
    for (std::size_t i = 0; i < N; ++i) {
      const DetImageShape& s = b.shapes[i];
      GCNET_CHECK(s.img_h > 0 && s.img_w > 0 && s.img_h <= x.size(2) && s.img_w <= x.size(3) && s.ori_h > 0 &&
                      s.ori_w > 0,
                  who, ": image ", i, " has img ", s.img_h, " x ", s.img_w, " and ori ", s.ori_h, " x ", s.ori_w,
                  "; img must fit the padded batch ", x.size(2), " x ", x.size(3), " and both be positive");
    }
    if (!training) return;
    GCNET_CHECK(b.gt.size() == N, who, ": ", b.gt.size(), " ground truths for a batch of ", N, " images");
    for (std::size_t i = 0; i < N; ++i) {
      const DetGroundTruth<T>& g = b.gt[i];
      const index_t n = g.size();
      GCNET_CHECK(g.labels.defined() && g.labels.rank() == 1 && g.labels.size(0) == n, who, ": image ", i, " has ",
                  n, " boxes but labels of shape ",
                  g.labels.defined() ? g.labels.shape().str() : std::string("undefined"));
      for (index_t k = 0; k < n; ++k)
        GCNET_CHECK(g.labels[k] >= 0 && g.labels[k] < c_.num_classes, who, ": image ", i, ", box ", k, " has label ",
                    g.labels[k], ", but the model has ", c_.num_classes,
                    " classes (0..", c_.num_classes - 1, "): do the annotations' categories match the model's num_classes?");
      if (with_mask())
        GCNET_CHECK(g.masks.defined() && g.masks.rank() == 3 && g.masks.size(0) == n &&
                        g.masks.size(1) == b.shapes[i].img_h && g.masks.size(2) == b.shapes[i].img_w,
                    who, ": image ", i, " needs masks [", n, ", ", b.shapes[i].img_h, ", ", b.shapes[i].img_w,
                    "] (one per box, at the image's size before padding), got ",
                    g.masks.defined() ? g.masks.shape().str() : std::string("undefined"));
    }
  }

  bool backbone_output_gradient_used(int s) {
    if constexpr (requires { backbone_.output_gradient_used(s); }) return backbone_.output_gradient_used(s);
    else return true;
  }

  void run_features(const Context& ctx, const tensor_type& images) {
    gcnet::forward(backbone_, ctx, images, *feats_);
    gcnet::forward(neck_, ctx, *feats_, *levels_);
    gcnet::forward(rpn_, ctx, *levels_, *rpn_out_);
  }

  // The gradient a group of losses arrives with (undefined: 0); the group's members must agree.
  T weight(const tensor_type& a, const tensor_type& b, const tensor_type& c, const char* group) const {
    auto v = [](const tensor_type& t) { return t.defined() && t.numel() > 0 ? t.data()[0] : T(0); };
    const T w = v(a);
    GCNET_CHECK(v(b) == w && (!c.defined() || v(c) == w), describe(), "::backward: the ", group,
                " losses share one backward and need the same output gradient, got ", v(a), ", ", v(b),
                c.defined() ? ", " + std::to_string(v(c)) : std::string());
    return w;
  }

  template <class X>
  static X scaled(const X& x, T w) {
    X y = clone_fields(x);
    for_each_tensor(y, [w](const std::string&, auto& t, bool) {
      using V = typename std::remove_cvref_t<decltype(t)>::value_type;
      if constexpr (std::is_same_v<V, T>)
        if (t.defined())
          for (index_t i = 0; i < t.numel(); ++i) t.data()[i] *= w;
    });
    return y;
  }

  MaskRCNNConfig c_;
  Backbone backbone_;
  FPN<T, Cpu> neck_;
  RPNHead<T> rpn_;
  StandardRoIHead<T> roi_;
  Rng rng_;
  bool training_ = true;
  // What backward reads from the training forward.
  ScratchValue<FeatureMaps<T, Cpu>> feats_;
  ScratchValue<std::vector<tensor_type>> levels_;
  ScratchValue<RPNOutputs<T>> rpn_out_, d_rpn_;
  ScratchValue<RoIHeadTargets<T>> targets_;
  ScratchValue<RoIHeadInput<T>> roi_in_;
  ScratchValue<RoIHeadOutputs<T>> roi_out_, d_roi_;
  ScratchValue<std::vector<RPNProposals<T>>> last_proposals_;
};

// A checkpoint for `model` with its preset and class count recorded (what load_mask_rcnn_checkpoint checks).
template <class Backbone>
void save_mask_rcnn_checkpoint(const std::string& path, MaskRCNN<Backbone>& model,
                               std::map<std::string, std::string> metadata = {}) {
  metadata["det_preset"] = model.preset();
  metadata["det_num_classes"] = std::to_string(model.num_classes());
  io::save_checkpoint(path, model, nullptr, metadata);
}

// Loads strictly (every tensor by name and shape) after checking the recorded preset and number
// of classes, when the checkpoint records them (a plain state dict is loaded on names and shapes
// alone).
template <class Backbone>
io::LoadReport load_mask_rcnn_checkpoint(const std::string& path, MaskRCNN<Backbone>& model, io::LoadOptions options = {}) {
  const std::map<std::string, std::string> meta = io::read_checkpoint_metadata(path);
  if (auto it = meta.find("det_preset"); it != meta.end())
    GCNET_CHECK(it->second == model.preset(), path, ": a checkpoint of the Mask R-CNN preset '", it->second,
                "' cannot be loaded into a model of the preset '", model.preset(), "'");
  if (auto it = meta.find("det_num_classes"); it != meta.end())
    GCNET_CHECK(it->second == std::to_string(model.num_classes()), path, ": the checkpoint's detector has ",
                it->second, " classes, the model ", model.num_classes());
  return io::load_checkpoint(path, model, nullptr, options);
}

}  // namespace gcnet
