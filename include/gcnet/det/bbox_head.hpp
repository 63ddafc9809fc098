#pragma once
// Shared2FCBBoxHead: mmdet's box head of the R50-FPN Mask R-CNN (ConvFCBBoxHead with two shared
// FCs, no convs), and, as an option, torchvision's TwoMLPHead + FastRCNNPredictor (the same
// graph; only the class layout differs):
//   x [K, C, S, S] (RoI features) -> flatten -> shared_fcs.0 -> ReLU -> shared_fcs.1 -> ReLU
//     -> fc_cls: cls_score [K, nc + 1]        mmdet: background LAST;  torchvision: background 0
//     -> fc_reg: bbox_pred [K, 4 nc]          mmdet: class-specific, one group per foreground class
//                          [K, 4 (nc + 1)]    torchvision: one group per class, background included
// A module (core/module.hpp) over one tensor in, BBoxHeadOutputs out. State-dict names as mmdet
// (shared_fcs.0.weight, fc_cls.weight, fc_reg.weight, ...; torchvision's box_head.fc6 / fc7,
// box_predictor.cls_score / bbox_pred map onto them one to one).
// Init: mmdet's (shared FCs xavier uniform, bias 0; fc_cls N(0, 0.01), fc_reg N(0, 0.001), bias 0);
// torchvision style keeps PyTorch's default Linear init, as torchvision does.
// K = 0 (an image batch without RoIs) gives empty outputs and no parameter gradient (zeros).
#include <string>

#include "gcnet/compose/children.hpp"
#include "gcnet/core/module.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/layers/linear.hpp"
#include "gcnet/layers/relu.hpp"

namespace gcnet {

// Where the class layouts of mmdet and torchvision differ (RoI heads, their targets and inference).
enum class RoIHeadStyle {
  Mmdet,       // background is the last class; regression and masks for the nc foreground classes
  Torchvision  // background is class 0; regression and masks for all nc + 1 classes
};

template <Scalar T = float>
struct BBoxHeadOutputs {
  Tensor<T> cls_score;  // [K, nc + 1] logits
  Tensor<T> bbox_pred;  // [K, 4 nc] (mmdet) or [K, 4 (nc + 1)] (torchvision) deltas
  GCNET_FIELDS(cls_score, bbox_pred)
};

struct BBoxHeadOptions {
  index_t in_channels = 256;
  index_t roi_feat_size = 7;
  index_t fc_out_channels = 1024;
  index_t num_classes = 80;  // foreground classes
  RoIHeadStyle style = RoIHeadStyle::Mmdet;
  bool mmdet_init = true;  // false: PyTorch's default Linear init (torchvision)
};

inline BBoxHeadOptions torchvision_bbox_head_options(index_t num_classes = 90) {
  BBoxHeadOptions o;
  o.num_classes = num_classes;
  o.style = RoIHeadStyle::Torchvision;
  o.mmdet_init = false;
  return o;
}

template <Scalar T = float>
class Shared2FCBBoxHead {
 public:
  using value_type = T;
  using backend_type = Cpu;
  using input_type = Tensor<T>;
  using output_type = BBoxHeadOutputs<T>;

  explicit Shared2FCBBoxHead(const BBoxHeadOptions& o)
      : o_(check(o)),
        fc0_(o.in_channels * o.roi_feat_size * o.roi_feat_size, o.fc_out_channels),
        fc1_(o.fc_out_channels, o.fc_out_channels),
        cls_(o.fc_out_channels, o.num_classes + 1),
        reg_(o.fc_out_channels, 4 * num_reg_classes()) {
    if (o.mmdet_init) {
      init::xavier_init(fc0_, 1.0, 0.0, init::Distribution::Uniform);
      init::xavier_init(fc1_, 1.0, 0.0, init::Distribution::Uniform);
      init::normal_init(cls_, 0.0, 0.01);
      init::normal_init(reg_, 0.0, 0.001);
    }
  }

  const BBoxHeadOptions& options() const { return o_; }
  index_t num_classes() const { return o_.num_classes; }
  // Classes with a regression group: nc (mmdet) or nc + 1 (torchvision).
  index_t num_reg_classes() const { return o_.style == RoIHeadStyle::Mmdet ? o_.num_classes : o_.num_classes + 1; }

  void check_input(const Shape& s) const {
    const index_t S = o_.roi_feat_size;
    GCNET_CHECK(s.rank() == 4 && s[1] == o_.in_channels && s[2] == S && s[3] == S, describe(),
                ": expected RoI features of shape [K, ", o_.in_channels, ", ", S, ", ", S, "], got ", s.str());
  }

  void forward(const Context& ctx, const Tensor<T>& x, output_type& y) {
    sync_mode(*this, ctx);
    check_input(x.shape());
    require_contiguous(x, describe(), "RoI features");
    const index_t K = x.size(0);
    if (K == 0) {
      y.cls_score.resize(Shape{0, o_.num_classes + 1});
      y.bbox_pred.resize(Shape{0, 4 * num_reg_classes()});
      return;
    }
    const Tensor<T> flat = x.reshape(Shape{K, x.numel() / K});
    fc0_.forward(flat, h0_);
    relu_.forward(h0_, r0_);
    fc1_.forward(r0_, h1_);
    relu_.forward(h1_, r1_);
    cls_.forward(r1_, y.cls_score);
    reg_.forward(r1_, y.bbox_pred);
  }

  // dx accumulates (undefined: not wanted). An undefined output gradient counts as zero.
  void backward(const Context&, const Tensor<T>& x, const output_type& y, const output_type& dy, Tensor<T>& dx) {
    const index_t K = x.size(0);
    if (dx.defined()) require_shape(dx, x.shape(), describe(), "input gradient");
    if (K == 0) {
      visit_parameters("", [](const std::string&, Param<T, Cpu>& p) { fill(p.grad, T(0)); });
      return;
    }
    const Tensor<T> dcls = dy.cls_score.defined() ? dy.cls_score : zeros<T>(y.cls_score.shape());
    const Tensor<T> dreg = dy.bbox_pred.defined() ? dy.bbox_pred : zeros<T>(y.bbox_pred.shape());
    require_shape(dcls, y.cls_score.shape(), describe(), "cls_score gradient");
    require_shape(dreg, y.bbox_pred.shape(), describe(), "bbox_pred gradient");
    zeroed(g1_, r1_.shape());
    cls_.backward(r1_, y.cls_score, dcls, g1_);
    reg_.backward(r1_, y.bbox_pred, dreg, g1_);
    relu_.backward(h1_, r1_, g1_, zeroed(gh1_, h1_.shape()));
    fc1_.backward(r0_, h1_, gh1_, zeroed(g0_, r0_.shape()));
    relu_.backward(h0_, r0_, g0_, zeroed(gh0_, h0_.shape()));
    const Tensor<T> flat = x.reshape(Shape{K, x.numel() / K});
    if (dx.defined()) {
      Tensor<T> dflat = dx.reshape(flat.shape());  // a view: accumulates into dx
      fc0_.backward(flat, h0_, gh0_, dflat);
    } else {
      fc0_.backward(flat, h0_, gh0_, zeroed(gx_, flat.shape()));
    }
  }

  std::string describe() const {
    return "Shared2FCBBoxHead(in_channels=" + std::to_string(o_.in_channels) + ", roi_feat_size=" +
           std::to_string(o_.roi_feat_size) + ", fc_out_channels=" + std::to_string(o_.fc_out_channels) +
           ", num_classes=" + std::to_string(o_.num_classes) +
           (o_.style == RoIHeadStyle::Mmdet ? ", background last)" : ", background first)");
  }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view("shared_fcs.0"), fc0_);
    f(std::string_view("shared_fcs.1"), fc1_);
    f(std::string_view("fc_cls"), cls_);
    f(std::string_view("fc_reg"), reg_);
  }
  GCNET_CHILD_STATE_HOOKS(T, Cpu)
  void set_training(bool t) { training_ = t; }
  bool training() const { return training_; }

 private:
  static BBoxHeadOptions check(const BBoxHeadOptions& o) {
    GCNET_CHECK(o.in_channels > 0 && o.roi_feat_size > 0 && o.fc_out_channels > 0 && o.num_classes > 0,
                "Shared2FCBBoxHead: in_channels, roi_feat_size, fc_out_channels and num_classes must be positive, got ",
                o.in_channels, ", ", o.roi_feat_size, ", ", o.fc_out_channels, ", ", o.num_classes);
    return o;
  }
  static Tensor<T>& zeroed(Tensor<T>& t, const Shape& s) {
    t.resize(s);
    fill(t, T(0));
    return t;
  }

  BBoxHeadOptions o_;
  Linear<T> fc0_, fc1_, cls_, reg_;
  ReLU<T> relu_;
  bool training_ = true;
  ScratchTensor<T, Cpu> h0_, r0_, h1_, r1_;     // activations kept for backward
  ScratchTensor<T, Cpu> g1_, gh1_, g0_, gh0_, gx_;  // backward's gradients
};

}  // namespace gcnet
