#pragma once
// EncoderDecoder: mmseg's segmentor. A backbone gives FeatureMaps {c2..c5}; the decode head reads
// stage decode.in_index (c5 in GCNet R50-D8), the auxiliary FCN head stage aux.in_index (c4), in
// training only. Backbone and heads are template parameters: the same segmentor takes a plain,
// SE, NL or GC backbone (ResNetBackbone with its options) and an FCN, GC or NL head:
//   EncoderDecoder<ResNetBackbone<float, Cpu, BatchNorm2d<>, void, true>, GCHead<>, FCNHead<>> seg(
//       backbone, GCHead<>(decode_options), FCNHead<>(aux_options));
// A module (core/module.hpp): input images [N, C, H, W], output SegOutputs { decode, aux }, the
// heads' logits at their feature resolution (aux undefined in eval or without an aux head).
// losses() is the Trainer's loss function: each head's SegLoss (seg/seg_loss.hpp), named as
// mmseg's log ("decode.loss_ce", "aux.loss_ce", "decode.acc_seg").
// State-dict names: backbone.*, decode_head.*, auxiliary_head.* (mmseg's).
#include <array>
#include <optional>
#include <string>
#include <type_traits>

#include "gcnet/compose/children.hpp"
#include "gcnet/core/module.hpp"
#include "gcnet/models/feature_maps.hpp"
#include "gcnet/seg/seg_loss.hpp"
#include "gcnet/train/trainer.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
struct SegOutputs {
  Tensor<T, B> decode, aux;
  GCNET_FIELDS(decode, aux)
};

// The aux head slot of a segmentor without one.
struct NoAuxHead {};

template <class Backbone, class DecodeHead, class AuxHead = NoAuxHead>
class EncoderDecoder {
 public:
  using value_type = typename Backbone::value_type;
  using backend_type = typename Backbone::backend_type;
  using T = value_type;
  using B = backend_type;
  using tensor_type = Tensor<T, B>;
  using input_type = Tensor<T, B>;
  using output_type = SegOutputs<T, B>;
  static constexpr bool has_aux = !std::is_same_v<AuxHead, NoAuxHead>;
  static_assert(std::is_same_v<typename Backbone::output_type, FeatureMaps<T, B>>,
                "EncoderDecoder: the backbone must be a module giving FeatureMaps (models/resnet.hpp)");

  EncoderDecoder(Backbone backbone, DecodeHead decode, AuxHead aux = {})
      : backbone_(std::move(backbone)), decode_(std::move(decode)), aux_(std::move(aux)),
        decode_loss_(decode_.head_options()) {
    if constexpr (has_aux) aux_loss_.emplace(aux_.head_options());
    set_training(true);
  }

  Backbone& backbone() { return backbone_; }
  DecodeHead& decode_head() { return decode_; }
  AuxHead& auxiliary_head() { return aux_; }
  index_t num_classes() const { return decode_.head_options().num_classes; }
  // Whether the auxiliary head runs in training (its parameters stay in the state dict).
  void set_aux_enabled(bool on) { aux_enabled_ = on; }
  bool aux_enabled() const { return has_aux && aux_enabled_; }
  bool align_corners() const { return decode_.head_options().align_corners; }

  void forward(const Context& ctx, const tensor_type& images, output_type& out) {
    sync_mode(*this, ctx);
    gcnet::forward(backbone_, ctx, images, *feats_);
    gcnet::forward(decode_, ctx, stage(decode_.head_options().in_index, "decode_head"), out.decode);
    out.aux = tensor_type();
    if constexpr (has_aux)
      if (training_ && aux_enabled_) gcnet::forward(aux_, ctx, stage(aux_.head_options().in_index, "auxiliary_head"), out.aux);
  }

  // dimages accumulates (undefined: not wanted). Heads whose output gradient is undefined are
  // skipped.
  void backward(const Context& ctx, const tensor_type& images, const output_type& out, const output_type& dout,
                tensor_type& dimages) {
    FeatureMaps<T, B>& feats = *feats_;
    FeatureMaps<T, B>& dfeats = *dfeats_;  // the heads' gradients for the stages they read
    for (int k = 0; k < 4; ++k) dfeats.stage(k) = tensor_type();
    std::array<tensor_type, 4>& buffers = *dfeat_buffers_;
    auto head_backward = [&](auto& head, const tensor_type& y, const tensor_type& dy) {
      const int k = head.head_options().in_index;
      tensor_type& d = dfeats.stage(k);
      if (!d.defined()) {  // reuse the stage's buffer between iterations
        tensor_type& b = buffers[static_cast<std::size_t>(k)];
        b.resize(feats.stage(k).shape());
        fill(b, T(0));
        d = b;
      }
      gcnet::backward(head, ctx, feats.stage(k), y, dy, d);
    };
    if (dout.decode.defined()) head_backward(decode_, out.decode, dout.decode);
    if constexpr (has_aux)
      if (dout.aux.defined()) {
        GCNET_CHECK(out.aux.defined(), describe(), ": a gradient arrived for the auxiliary head, which did not run");
        head_backward(aux_, out.aux, dout.aux);
      }
    gcnet::backward(backbone_, ctx, images, feats, dfeats, dimages);
  }

  // The Trainer's loss function: mmseg's losses, writing d loss / d logits into dout.
  NamedLosses losses(const output_type& out, const Tensor<std::int64_t, B>& labels, output_type& dout) {
    NamedLosses l;
    l.emplace_back("decode.loss_ce", double(decode_loss_.forward(out.decode, labels)));
    decode_loss_.backward(out.decode, dout.decode);
    if constexpr (has_aux)
      if (out.aux.defined()) {
        l.emplace_back("aux.loss_ce", double(aux_loss_->forward(out.aux, labels)));
        aux_loss_->backward(out.aux, dout.aux);
      }
    l.emplace_back("decode.acc_seg", decode_loss_.accuracy());
    return l;
  }

  // The decode head's logits resized to the images' size (mmseg's whole-image inference before
  // the softmax); runs in eval mode.
  tensor_type predict_logits(const tensor_type& images) {
    Context ctx;
    ctx.training = false;
    output_type out;
    forward(ctx, images, out);
    ResizeBilinear<T, B> up(ResizeBilinearOptions{.size = Size2(images.size(2), images.size(3)),
                                                  .align_corners = align_corners()});
    tensor_type y;
    up.forward(out.decode, y);
    return y;
  }

  std::string describe() const {
    std::string s = "EncoderDecoder(" + backbone_.describe() + ", " + decode_.describe();
    if constexpr (has_aux) s += ", " + aux_.describe();
    return s + ")";
  }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view("backbone"), backbone_);
    f(std::string_view("decode_head"), decode_);
    if constexpr (has_aux) f(std::string_view("auxiliary_head"), aux_);
  }
  GCNET_CHILD_STATE_HOOKS(T, B)
  void set_training(bool training) {
    training_ = training;
    detail::set_children_training(*this, training);
  }
  bool training() const { return training_; }

 private:
  const tensor_type& stage(int k, const char* head) const {
    const tensor_type& t = feats_->stage(k);
    GCNET_CHECK(t.defined(), describe(), ": the ", head, " reads backbone stage ", k, " (c", k + 2,
                "), which the backbone does not output (add ", k, " to its out_indices)");
    return t;
  }

  Backbone backbone_;
  DecodeHead decode_;
  [[no_unique_address]] AuxHead aux_;
  SegLoss<T, B> decode_loss_;
  std::optional<SegLoss<T, B>> aux_loss_;
  bool training_ = true, aux_enabled_ = true;
  ScratchValue<FeatureMaps<T, B>> feats_, dfeats_;  // the backbone's outputs, read by backward
  ScratchValue<std::array<tensor_type, 4>> dfeat_buffers_;
};

}  // namespace gcnet
