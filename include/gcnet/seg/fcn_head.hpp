#pragma once
// FCNHead: mmseg's FCNHead, and with a context block between its first two convs, GCHead and
// NLHead (seg/gc_head.hpp, seg/nl_head.hpp): one compiled type, the block a value.
//   x = the backbone stage in_index
//   out = convs[0](x) -> [gc_block | nl_block] -> convs[1..num_convs)     (ConvModules k x k)
//   out = conv_cat(cat([x, out]))                                          (concat_input)
//   logits = conv_seg(dropout(out))                                        (seg/decode_head.hpp)
// A module (core/module.hpp): input the stage's tensor, output the logits at its resolution
// (the segmentor resizes them). State-dict names as mmseg: convs.0.conv.weight, convs.0.bn.*,
// gc_block.conv_mask.weight, nl_block.g.conv.weight, conv_cat.conv.weight, conv_seg.weight.
// Convs use padding (kernel / 2) * dilation; num_convs 0 means no convs (in_channels must then
// equal channels, as mmseg's Identity).
#include <memory>
#include <string>
#include <vector>

#include "gcnet/blocks/global_context.hpp"
#include "gcnet/blocks/non_local2d.hpp"
#include "gcnet/core/module.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/models/block_plugin.hpp"
#include "gcnet/seg/channel_concat.hpp"
#include "gcnet/seg/conv_module.hpp"
#include "gcnet/seg/decode_head.hpp"

namespace gcnet {

// The context block between convs[0] and convs[1].
enum class HeadBlock { None, GlobalContext, NonLocal };

struct FCNHeadOptions {
  DecodeHeadOptions head{};
  int num_convs = 2;
  index_t kernel_size = 3, dilation = 1;
  bool concat_input = true;
  HeadBlock block = HeadBlock::None;
  // GCHead's block (channels are the head's): mmseg's defaults ratio 1/4, attention, channel_add.
  GlobalContextOptions gc = gc_options(0, {1, 4});
  // NLHead's block: reduction 2, use_scale, embedded gaussian; mmseg passes the head's norm to it.
  NonLocal2dOptions nl{.reduction = 2, .use_scale = true, .mode = NonLocalMode::EmbeddedGaussian, .norm = true};
};

template <Scalar T = float, Backend B = Cpu, class Norm = BatchNorm2d<T, B>>
class FCNHead {
 public:
  using value_type = T;
  using backend_type = B;
  using tensor_type = Tensor<T, B>;
  using input_type = Tensor<T, B>;
  using output_type = Tensor<T, B>;
  using conv_module_type = ConvModule<Norm>;

  explicit FCNHead(const FCNHeadOptions& o) : o_(check(o)), cls_(o.head.channels, o.head.num_classes, o.head.dropout_ratio) {
    const DecodeHeadOptions& h = o.head;
    const index_t pad = (o.kernel_size / 2) * o.dilation;
    auto conv = [&](index_t in) {
      return conv_module_type(Conv2dOptions{.in = in, .out = h.channels, .kernel = o.kernel_size, .padding = pad,
                                            .dilation = o.dilation});
    };
    for (int i = 0; i < o.num_convs; ++i) convs_.push_back(conv(i == 0 ? h.in_channels : h.channels));
    if (o.concat_input) conv_cat_ = std::make_unique<conv_module_type>(conv(h.in_channels + h.channels));
    if (o.block == HeadBlock::GlobalContext) {
      GlobalContextOptions g = o.gc;
      g.channels = h.channels;
      block_ = make_block_plugin("gc_block", GlobalContextBlock<T, B>(g));
    } else if (o.block == HeadBlock::NonLocal) {
      NonLocal2dOptions n = o.nl;
      n.in_channels = h.channels;
      block_ = make_block_plugin("nl_block", NonLocal2d<T, B>(n));
    }
    set_training(true);
  }
  FCNHead(const FCNHead& o)
      : conv_names_(o.conv_names_), o_(o.o_), convs_(o.convs_), conv_cat_(o.conv_cat_ ? std::make_unique<conv_module_type>(*o.conv_cat_) : nullptr),
        block_(o.block_), cls_(o.cls_), training_(o.training_) {}
  FCNHead(FCNHead&&) = default;
  FCNHead& operator=(const FCNHead&) = delete;
  FCNHead& operator=(FCNHead&&) = default;

  const FCNHeadOptions& options() const { return o_; }
  const DecodeHeadOptions& head_options() const { return o_.head; }

  Shape setup(const Shape& in) {
    require_nchw(in, describe());
    GCNET_CHECK(in.c() == o_.head.in_channels, describe(), ": expected input with ", o_.head.in_channels,
                " channels, got shape ", in.str());
    Shape s = in;
    for (std::size_t i = 0; i < convs_.size(); ++i) {
      s = convs_[i].setup(s);
      if (i == 0 && block_) s = block_->setup(s);
    }
    if (conv_cat_) s = conv_cat_->setup(Shape{in.n(), in.c() + s.c(), s.h(), s.w()});
    return cls_.setup(s);
  }

  void forward(const Context& ctx, const tensor_type& x, tensor_type& y) {
    sync_mode(*this, ctx);
    for_each_child([&](std::string_view, auto& child) { bind_context(child, ctx); });
    setup(x.shape());
    outs_->resize(convs_.size());
    const tensor_type* cur = &x;
    for (std::size_t i = 0; i < convs_.size(); ++i) {
      convs_[i].forward(*cur, (*outs_)[i]);
      cur = &(*outs_)[i];
      if (i == 0 && block_) {
        block_->forward(*cur, block_out_);
        cur = &block_out_;
      }
    }
    if (conv_cat_) {
      concat_channels(x, *cur, cat_, describe());
      conv_cat_->forward(cat_, cat_out_);
      cur = &cat_out_;
    }
    *feature_ = cur;
    cls_.forward(*cur, y);
  }

  // dx accumulates (undefined: not wanted; the parameter gradients are still computed).
  void backward(const Context&, const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    GCNET_CHECK(*feature_ != nullptr, describe(), ": backward needs a forward first");
    require_shape(dy, y.shape(), describe(), "output gradient dy");
    if (dx.defined()) require_shape(dx, x.shape(), describe(), "input gradient dx");
    // g_ holds the gradient at the current point going down; g_in_ receives the next one.
    cls_.backward(**feature_, y, dy, zeroed(g_, (*feature_)->shape()));
    tensor_type& gx = dx.defined() ? dx : zeroed(gx_own_, x.shape());
    if (conv_cat_) {
      conv_cat_->backward(cat_, cat_out_, g_, zeroed(g_in_, cat_.shape()));
      const tensor_type& last = convs_.empty() ? x : (block_ && convs_.size() == 1 ? block_out_ : outs_->back());
      concat_channels_backward(g_in_, gx, zeroed(g_, last.shape()), x.size(1));
    }
    for (std::size_t i = convs_.size(); i-- > 0;) {
      if (i == 0 && block_) {  // g_ is the gradient at the block's output
        block_->backward((*outs_)[0], block_out_, g_, zeroed(g_in_, (*outs_)[0].shape()));
        std::swap(g_, g_in_);
      }
      if (i == 0) {
        convs_[0].backward(x, (*outs_)[0], g_, gx);
      } else {
        const tensor_type& in = i == 1 && block_ ? static_cast<const tensor_type&>(block_out_) : (*outs_)[i - 1];
        convs_[i].backward(in, (*outs_)[i], g_, zeroed(g_in_, in.shape()));
        std::swap(g_, g_in_);
      }
    }
    if (convs_.empty()) add_into(gx, g_, "FCNHead");  // num_convs 0: out is x itself
  }

  std::string describe() const {
    std::string s = o_.block == HeadBlock::GlobalContext ? "GCHead" : o_.block == HeadBlock::NonLocal ? "NLHead" : "FCNHead";
    s += "(in_channels=" + std::to_string(o_.head.in_channels) + ", channels=" + std::to_string(o_.head.channels) +
         ", num_classes=" + std::to_string(o_.head.num_classes) + ", num_convs=" + std::to_string(o_.num_convs);
    if (o_.concat_input) s += ", concat_input";
    if (block_) s += ", " + block_->describe();
    return s + ")";
  }

  template <class F>
  void for_each_child(F&& f) {
    for (std::size_t i = 0; i < convs_.size(); ++i) f(std::string_view(conv_names_[i]), convs_[i]);
    if (block_) f(std::string_view(block_->name()), *block_);
    if (conv_cat_) f(std::string_view("conv_cat"), *conv_cat_);
    f(std::string_view(), cls_);
  }
  GCNET_CHILD_STATE_HOOKS(T, B)
  void set_training(bool training) {
    training_ = training;
    detail::set_children_training(*this, training);
  }
  bool training() const { return training_; }

  // The features conv_seg reads (after the last forward), and the context block, if any.
  const tensor_type& features() const { return **feature_; }
  BlockPlugin<T, B>* block() { return block_ ? &*block_ : nullptr; }

 private:
  FCNHeadOptions check(FCNHeadOptions o) {
    const std::string who = "FCNHead";
    check_decode_head_options(o.head, who);
    GCNET_CHECK(o.num_convs >= 0, who, ": num_convs must be >= 0, got ", o.num_convs);
    GCNET_CHECK(o.kernel_size > 0 && o.kernel_size % 2 == 1, who, ": kernel_size must be odd and positive, got ",
                o.kernel_size);
    GCNET_CHECK(o.dilation > 0, who, ": dilation must be positive, got ", o.dilation);
    GCNET_CHECK(o.num_convs > 0 || o.head.in_channels == o.head.channels, who,
                ": with num_convs 0 in_channels (", o.head.in_channels, ") must equal channels (", o.head.channels, ")");
    GCNET_CHECK(o.block == HeadBlock::None || o.num_convs >= 1, who,
                ": a context block sits after convs[0], so num_convs must be at least 1");
    for (int i = 0; i < o.num_convs; ++i) conv_names_.push_back("convs." + std::to_string(i));
    return o;
  }

  static tensor_type& zeroed(tensor_type& t, const Shape& s) {
    t.resize(s);
    fill(t, T(0));
    return t;
  }

  std::vector<std::string> conv_names_;
  FCNHeadOptions o_;
  std::vector<conv_module_type> convs_;
  std::unique_ptr<conv_module_type> conv_cat_;  // by pointer: ConvModule is not default-constructible
  PluginHandle<T, B> block_;
  SegClassifier<T, B> cls_;
  bool training_ = true;
  // Kept for backward: each conv's output, the block's, the concatenation and conv_cat's output.
  ScratchValue<std::vector<tensor_type>> outs_;
  ScratchTensor<T, B> block_out_, cat_, cat_out_;
  ScratchTensor<T, B> g_, g_in_, gx_own_;  // backward's gradients (reused between calls)
  ScratchValue<const tensor_type*> feature_;
};

}  // namespace gcnet
