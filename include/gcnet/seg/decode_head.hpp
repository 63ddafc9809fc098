#pragma once
// What every mmseg decode head shares (BaseDecodeHead): the options of its classifier and loss,
// and cls_seg, the classifier itself:
//   Dropout2d(dropout_ratio) (channels, training only) -> conv_seg (1x1, bias)
// conv_seg is initialised N(0, 0.01), bias 0 (BaseDecodeHead's init_cfg). The loss options are
// read by the segmentor's SegLoss (seg/seg_loss.hpp): logits resized bilinearly to the label size
// with the head's align_corners, cross-entropy with ignore_index and mmseg's reduction (mean over
// all pixels, ignored ones counting 0), times loss_weight.
#include <cstdint>
#include <optional>
#include <string>

#include "gcnet/compose/children.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/dropout2d.hpp"

namespace gcnet {

struct DecodeHeadOptions {
  index_t in_channels = 0;   // channels of the backbone stage the head reads
  index_t channels = 0;      // channels of the head's convs
  index_t num_classes = 0;
  int in_index = 3;          // the backbone stage (0..3: c2..c5) the head reads
  double dropout_ratio = 0.1;
  bool align_corners = false;
  double loss_weight = 1.0;
  std::int64_t ignore_index = 255;
};

inline void check_decode_head_options(const DecodeHeadOptions& o, const std::string& who) {
  GCNET_CHECK(o.in_channels > 0, who, ": in_channels must be positive, got ", o.in_channels);
  GCNET_CHECK(o.channels > 0, who, ": channels must be positive, got ", o.channels);
  GCNET_CHECK(o.num_classes > 0, who, ": num_classes must be positive, got ", o.num_classes);
  GCNET_CHECK(o.in_index >= 0 && o.in_index < 4, who, ": in_index must be a backbone stage 0..3, got ", o.in_index);
  GCNET_CHECK(o.dropout_ratio >= 0 && o.dropout_ratio < 1, who, ": dropout_ratio must be in [0, 1), got ",
              o.dropout_ratio);
  GCNET_CHECK(o.loss_weight >= 0, who, ": loss_weight must be >= 0, got ", o.loss_weight);
}

// cls_seg: dropout (when dropout_ratio > 0) then conv_seg.
template <Scalar T = float, Backend B = Cpu>
class SegClassifier {
 public:
  using value_type = T;
  using backend_type = B;
  using tensor_type = Tensor<T, B>;

  SegClassifier(index_t channels, index_t num_classes, double dropout_ratio)
      : conv_seg_(Conv2dOptions{.in = channels, .out = num_classes, .kernel = 1}) {
    if (dropout_ratio > 0) dropout_.emplace(dropout_ratio);
    init::normal_init(conv_seg_, 0.0, 0.01, 0.0);
  }

  Shape setup(const Shape& in) { return conv_seg_.setup(in); }
  void forward(const tensor_type& x, tensor_type& y) {
    if (!dropout_) return conv_seg_.forward(x, y);
    dropout_->forward(x, dropped_);
    conv_seg_.forward(dropped_, y);
  }
  void backward(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    if (!dropout_) return conv_seg_.backward(x, y, dy, dx);
    g_.resize(dropped_.shape());
    fill(g_, T(0));
    conv_seg_.backward(dropped_, y, dy, g_);
    dropout_->backward(x, dropped_, g_, dx);
  }
  std::string describe() const { return "SegClassifier(" + conv_seg_.describe() + ")"; }

  template <class F>
  void for_each_child(F&& f) {
    if (dropout_) f(std::string_view("dropout"), *dropout_);
    f(std::string_view("conv_seg"), conv_seg_);
  }
  GCNET_COMBINATOR_HOOKS(T, B)
  // Names: conv_seg.* directly under the head (Dropout2d has no state), so the head visits the
  // classifier with its own prefix.
  Conv2d<T, B>& conv_seg() { return conv_seg_; }

 private:
  Conv2d<T, B> conv_seg_;
  std::optional<Dropout2d<T, B>> dropout_;
  ScratchTensor<T, B> dropped_, g_;
};

}  // namespace gcnet
