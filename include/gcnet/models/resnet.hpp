#pragma once
// ResNet backbones as type expressions (mmdet ResNet / ResNeXt / ResNetV1c, mmseg dilated form).
// The structure is the type, the sizes are runtime options:
//   using R50      = ResNet<Depth50>;
//   using GcR50    = ResNet<Depth50, Plugin<GCBlock<std::ratio<1, 16>>, AfterConv3, Stages<0, 1, 1, 1>>>;
//   using GcDcnR50 = ResNet<Depth50, Plugin<GCBlock<std::ratio<1, 16>>, AfterConv3, Stages<0, 1, 1, 1>>,
//                           Dcn<Stages<0, 1, 1, 1>>>;
//   using X101     = ResNet<Depth101, ResNeXt<32, 4>>;
//   using V1cD8    = ResNet<Depth50, DeepStem, D8>;          // mmseg ResNetV1c, output stride 8
//   using Frozen   = ResNet<Depth50, Norm<FrozenBatchNorm2d<>>>;
// Features (any order): Plugin<...>, Dcn<...>/DcnV2<...>, Norm<...>, DeepStem, ResNeXt<G, W>,
// Dilated<...>. BasicResNet<T, B, Depth, Features...> picks the scalar and backend.
//
// A backbone is a MULTI-OUTPUT module:
//   forward(x, outs)          outs[k] = output of stage out_indices[k] (shares the backbone's
//                             buffers: valid until the next forward)
//   backward(x, douts, dx)    douts[k] = gradient w.r.t. outs[k] (an undefined tensor: none);
//                             dx accumulates. Parameter gradients are assigned.
// State-dict names are mmdet's: conv1.weight, bn1.*, layer1.0.conv1.weight,
// layer2.0.context_block.conv_mask.weight, layer3.1.conv2.conv_offset.weight, stem.0.weight.
// set_training(mode) honours frozen_stages (stem and layer1..frozen_stages stay in eval mode;
// their parameters are left out of visit_trainable_parameters) and norm_eval (every norm of
// the backbone in eval mode while training).
#include <algorithm>
#include <array>
#include <memory>
#include <tuple>
#include <vector>

#include "gcnet/compose/repeat.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/frozen_batch_norm2d.hpp"
#include "gcnet/models/plugins.hpp"
#include "gcnet/models/res_block.hpp"
#include "gcnet/models/resnet_stem.hpp"

namespace gcnet {

struct ResNetOptions {
  index_t in_channels = 3;
  index_t stem_channels = 64;
  index_t base_channels = 64;           // planes of layer1 (doubling per stage)
  std::vector<int> out_indices{0, 1, 2, 3};
  int frozen_stages = -1;               // -1: none; 0: the stem; k: the stem and layer1..layerk
  bool norm_eval = false;               // norms in eval mode even when training
};

template <Scalar T, Backend B, class Depth, class... Features>
class BasicResNet {
  template <class X>
  using is_norm = resnet::detail::is_norm<X>;
  template <class X>
  using is_resnext = resnet::detail::is_resnext<X>;
  template <class X>
  using is_dilated = resnet::detail::is_dilated<X>;
  using NormFeature = typename resnet::detail::find_feature<is_norm, resnet::Norm<BatchNorm2d<>>, Features...>::type;
  using Grouping = typename resnet::detail::find_feature<is_resnext, resnet::ResNeXt<1, 64>, Features...>::type;
  using Dilation = typename resnet::detail::find_feature<
      is_dilated, resnet::Dilated<resnet::Ints<1, 2, 2, 2>, resnet::Ints<1, 1, 1, 1>, false>, Features...>::type;
  static constexpr bool kDeepStem = (std::is_same_v<Features, resnet::DeepStem> || ...);

  template <std::size_t S, class Tuple>
  struct block_of;
  template <std::size_t S, class... P>
  struct block_of<S, std::tuple<P...>> {
    using type = ResBottleneck<typename NormFeature::template type<T, B>,
                               typename resnet::stage_conv<S, Features...>::type::template type<T, B>, P...>;
  };

 public:
  using value_type = T;
  using backend_type = B;
  using tensor_type = Tensor<T, B>;
  using norm_type = typename NormFeature::template type<T, B>;
  using stem_type = std::conditional_t<kDeepStem, DeepResNetStem<norm_type>, ResNetStem<norm_type>>;
  // The block type of stage S (one instantiation per distinct plugin / DCN combination).
  template <std::size_t S>
  using block_type = typename block_of<S, resnet::stage_plugins<S, Features...>>::type;
  using stages_type = std::tuple<RepeatN<block_type<0>>, RepeatN<block_type<1>>, RepeatN<block_type<2>>,
                                 RepeatN<block_type<3>>>;
  static constexpr std::array<index_t, 4> blocks = Depth::blocks;
  static constexpr index_t depth = Depth::depth;

  explicit BasicResNet(const ResNetOptions& o = {}) : o_(check(o)), stem_(make_stem(o)), stages_(make_stages(o)) {
    share_block_scratch();
    set_training(true);
  }
  // A copy gets its own gradient scratch (two copies may run backward concurrently).
  BasicResNet(const BasicResNet& o)
      : last_(o.last_), o_(o.o_), stem_(o.stem_), stages_(o.stages_), training_(o.training_) {
    share_block_scratch();
  }
  BasicResNet(BasicResNet&&) = default;
  BasicResNet& operator=(const BasicResNet&) = delete;
  BasicResNet& operator=(BasicResNet&&) = default;

  const ResNetOptions& options() const { return o_; }
  stem_type& stem() { return stem_; }
  template <std::size_t S>
  RepeatN<block_type<S>>& stage() { return std::get<S>(stages_); }
  // Output channels of stage s (planes * 4).
  index_t stage_channels(int s) const { return o_.base_channels * (index_t(1) << s) * 4; }
  std::vector<index_t> out_channels() const {
    std::vector<index_t> c;
    for (int i : o_.out_indices) c.push_back(stage_channels(i));
    return c;
  }

  // Shapes of the outputs for an input shape (validates the input).
  std::vector<Shape> setup(const Shape& in) {
    require_nchw(in, describe());
    GCNET_CHECK(in.c() == o_.in_channels, describe(), ": expected input with ", o_.in_channels,
                " channels, got shape ", in.str());
    std::array<Shape, 4> s;
    Shape cur;
    try { cur = stem_.setup(in); } catch (const Error& e) { detail::rethrow_in(describe() + " stem", e); }
    each_stage([&]<std::size_t S>(auto& st) {
      try { s[S] = cur = st.setup(cur); }
      catch (const Error& e) { detail::rethrow_in(describe() + " layer" + std::to_string(S + 1), e); }
    });
    std::vector<Shape> outs;
    for (int i : o_.out_indices) outs.push_back(s[static_cast<std::size_t>(i)]);
    return outs;
  }

  void forward(const tensor_type& x, std::vector<tensor_type>& outs) {
    setup(x.shape());
    stem_.forward(x, stem_out_);
    if (training_) {
      forward_stages();
    } else {
      forward_stages_eval();
    }
    outs.resize(o_.out_indices.size());
    for (std::size_t k = 0; k < outs.size(); ++k) outs[k] = stage_out_[static_cast<std::size_t>(o_.out_indices[k])];
  }

  void backward(const tensor_type& x, const std::vector<tensor_type>& douts, tensor_type& dx) {
    GCNET_CHECK(douts.size() == o_.out_indices.size(), describe(), ": backward got ", douts.size(),
                " output gradients for ", o_.out_indices.size(), " outputs");
    // An eval forward kept no block inputs: replay the stages keeping them (same outputs).
    if (eval_forward_) forward_stages();
    require_shape(dx, x.shape(), describe(), "input gradient dx");
    for (std::size_t k = 0; k < douts.size(); ++k)
      if (douts[k].defined())
        require_shape(douts[k], stage_out_[static_cast<std::size_t>(o_.out_indices[k])].shape(), describe(),
                      ("output gradient douts[" + std::to_string(k) + "]").c_str());
    // g_[S] = gradient at stage S's output: from the consumers of outs, plus from stage S+1.
    bool have = false;  // whether grad_ holds the gradient from the stage above
    each_stage_reverse([&]<std::size_t S>(auto& st) {
      if (static_cast<int>(S) > last_) return;
      tensor_type& g = grad_[S];
      const tensor_type& out = stage_out_[S];
      if (have) {
        g = std::move(grad_in_);
      } else {
        g.resize(out.shape());
        fill(g, T(0));
      }
      for (std::size_t k = 0; k < douts.size(); ++k)
        if (o_.out_indices[k] == static_cast<int>(S) && douts[k].defined()) add_into(g, douts[k], "ResNet");
      const tensor_type& in = S == 0 ? stem_out_ : stage_out_[S - 1];
      grad_in_ = tensor_type();
      grad_in_.resize(in.shape());
      fill(grad_in_, T(0));
      st.backward(in, out, g, grad_in_);
      g = tensor_type();  // consumed: not kept resident
      have = true;
    });
    stem_.backward(x, stem_out_, grad_in_, dx);
  }

  std::string describe() const {
    std::string s = "ResNet(depth=" + std::to_string(depth);
    if (kDeepStem) s += ", deep_stem";
    if (Grouping::groups != 1)
      s += ", groups=" + std::to_string(Grouping::groups) + ", base_width=" + std::to_string(Grouping::base_width);
    return s + ")";
  }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view(), stem_);
    each_stage([&]<std::size_t S>(auto& st) { f(std::string_view(stage_names_[S]), st); });
  }
  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    detail::visit_child_parameters<T, B>(*this, prefix, f);
  }
  void visit_buffers(const std::string& prefix, const BufferVisitor<T, B>& f) {
    detail::visit_child_buffers<T, B>(*this, prefix, f);
  }
  // The parameters an optimizer should update: all but those of frozen stages.
  void visit_trainable_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    if (o_.frozen_stages < 0) gcnet::visit_parameters(stem_, prefix, f);
    each_stage([&]<std::size_t S>(auto& st) {
      if (static_cast<int>(S) + 1 > o_.frozen_stages)
        gcnet::visit_parameters(st, child_prefix(prefix, stage_names_[S]), f);
    });
  }

  // mmdet ResNet.train(mode): everything follows `mode`, then frozen stages go to eval, then
  // (norm_eval) every norm goes to eval.
  void set_training(bool training) {
    training_ = training;
    gcnet::set_training(stem_, training && o_.frozen_stages < 0);
    each_stage([&]<std::size_t S>(auto& st) {
      gcnet::set_training(st, training && static_cast<int>(S) + 1 > o_.frozen_stages);
    });
    if (training && o_.norm_eval) {
      stem_.for_each_child([](std::string_view, auto& child) { set_norm_eval(child); });
      each_stage([&]<std::size_t S>(auto& st) {
        for (std::size_t i = 0; i < st.size(); ++i) st[i].for_each_norm([](auto& n) { gcnet::set_training(n, false); });
      });
    }
  }
  bool training() const { return training_; }

 private:
  template <class L>
  static void set_norm_eval(L& l) {
    if constexpr (std::is_same_v<L, norm_type>) gcnet::set_training(l, false);
    else if constexpr (requires { l.for_each_child([](std::string_view, auto&) {}); })
      l.for_each_child([](std::string_view, auto& c) { set_norm_eval(c); });
  }

  ResNetOptions check(const ResNetOptions& o) const {
    GCNET_CHECK(o.in_channels > 0, describe(), ": in_channels must be positive, got ", o.in_channels);
    GCNET_CHECK(o.stem_channels > 0, describe(), ": stem_channels must be positive, got ", o.stem_channels);
    GCNET_CHECK(o.base_channels > 0, describe(), ": base_channels must be positive, got ", o.base_channels);
    GCNET_CHECK(!o.out_indices.empty(), describe(), ": out_indices is empty");
    for (int i : o.out_indices)
      GCNET_CHECK(i >= 0 && i < 4, describe(), ": out_indices must be in [0, 4), got ", i);
    GCNET_CHECK(std::is_sorted(o.out_indices.begin(), o.out_indices.end()), describe(),
                ": out_indices must be increasing");
    GCNET_CHECK(o.frozen_stages >= -1 && o.frozen_stages <= 4, describe(),
                ": frozen_stages must be in [-1, 4], got ", o.frozen_stages);
    last_ = o.out_indices.back();
    return o;
  }

  static stem_type make_stem(const ResNetOptions& o) {
    if constexpr (kDeepStem) return make_deep_resnet_stem<norm_type>(o.in_channels, o.stem_channels);
    else return make_resnet_stem<norm_type>(o.in_channels, o.stem_channels);
  }

  // mmdet ResNet.make_res_layer / mmseg ResLayer: block 0 carries the stride and (when the
  // shape changes) the downsample; contract_dilation halves block 0's dilation.
  template <std::size_t S>
  static RepeatN<block_type<S>> make_stage(const ResNetOptions& o, index_t inplanes) {
    const index_t planes = o.base_channels << S;
    const index_t stride = Dilation::strides[S], dilation = Dilation::dilations[S];
    const index_t width = Grouping::groups == 1
                              ? planes
                              : planes * Grouping::base_width / 64 * Grouping::groups;  // mmdet ResNeXt
    return RepeatN<block_type<S>>(static_cast<std::size_t>(Depth::blocks[S]), [&](std::size_t i) {
      ResBlockConfig c;
      c.inplanes = i == 0 ? inplanes : planes * 4;
      c.planes = planes;
      c.width = width;
      c.groups = Grouping::groups;
      c.stride = i == 0 ? stride : 1;
      c.dilation = i == 0 && Dilation::contract && dilation > 1 ? dilation / 2 : dilation;
      c.downsample = i == 0 && (stride != 1 || inplanes != planes * 4);
      return block_type<S>(c);
    });
  }
  static stages_type make_stages(const ResNetOptions& o) {
    return stages_type(make_stage<0>(o, o.stem_channels), make_stage<1>(o, o.base_channels * 4),
                       make_stage<2>(o, o.base_channels * 8), make_stage<3>(o, o.base_channels * 16));
  }

  // Through the stages keeping every block's output (the blocks' inputs for backward).
  void forward_stages() {
    eval_forward_ = false;
    const tensor_type* cur = &stem_out_;
    each_stage([&]<std::size_t S>(auto& st) {
      if (static_cast<int>(S) > last_) return;  // stages after the last output are not needed
      st.forward(*cur, stage_out_[S]);
      cur = &stage_out_[S];
    });
  }
  // Eval (no backward expected): blocks run one by one, ping-ponging between two buffers
  // shared by all stages, so only the stage outputs stay resident, not every block's output;
  // each block drops what a previous training forward kept.
  void forward_stages_eval() {
    eval_forward_ = true;
    const tensor_type* cur = &stem_out_;
    each_stage([&]<std::size_t S>(auto& st) {
      if (static_cast<int>(S) > last_) return;
      const std::size_t n = st.size();
      for (std::size_t i = 0; i < n; ++i) {
        tensor_type& out = i + 1 == n ? stage_out_[S] : ping_[i % 2];
        st[i].release_activations();
        try { st[i].forward(*cur, out); }
        catch (const Error& e) {
          detail::rethrow_in(describe() + " layer" + std::to_string(S + 1) + "." + std::to_string(i), e);
        }
        cur = &out;
      }
    });
  }

  // One gradient scratch and one eval activation scratch for all blocks: they run one at a time.
  void share_block_scratch() {
    auto scratch = std::make_shared<BlockGradScratch<T, B>>();
    auto eval = std::make_shared<BlockEvalScratch<T, B>>();
    each_stage([&]<std::size_t S>(auto& st) {
      for (std::size_t i = 0; i < st.size(); ++i) {
        st[i].share_scratch(scratch);
        st[i].share_eval_scratch(eval);
      }
    });
  }
  template <class F>
  void each_stage(F&& f) {
    [&]<std::size_t... S>(std::index_sequence<S...>) {
      (f.template operator()<S>(std::get<S>(stages_)), ...);
    }(std::make_index_sequence<4>{});
  }
  template <class F>
  void each_stage_reverse(F&& f) {
    [&]<std::size_t... S>(std::index_sequence<S...>) {
      (f.template operator()<3 - S>(std::get<3 - S>(stages_)), ...);
    }(std::make_index_sequence<4>{});
  }

  mutable int last_ = 3;
  ResNetOptions o_;
  stem_type stem_;
  stages_type stages_;
  bool training_ = true;
  inline static const std::array<std::string, 4> stage_names_{"layer1", "layer2", "layer3", "layer4"};
  tensor_type stem_out_, grad_in_;
  std::array<tensor_type, 4> stage_out_{}, grad_{};
  std::array<tensor_type, 2> ping_{};  // block outputs inside a stage in eval (forward_stages_eval)
  bool eval_forward_ = false;          // the last forward was forward_stages_eval
};

template <class Depth, class... Features>
using ResNet = BasicResNet<float, Cpu, Depth, Features...>;

// mmdet/mmseg ResNetV1c: the deep stem.
template <class Depth, class... Features>
using ResNetV1c = ResNet<Depth, resnet::DeepStem, Features...>;

// Common backbones.
using ResNet50 = ResNet<resnet::Depth50>;
using ResNet101 = ResNet<resnet::Depth101>;
using ResNeXt50_32x4d = ResNet<resnet::Depth50, resnet::ResNeXt<32, 4>>;
using ResNeXt101_32x4d = ResNet<resnet::Depth101, resnet::ResNeXt<32, 4>>;
using ResNetV1cD8_50 = ResNetV1c<resnet::Depth50, resnet::D8>;
// GCNet: ResNet-50 with GC r16 (r4) after conv3 on c3-c5.
using GcResNet50 = ResNet<resnet::Depth50, resnet::Plugin<GCBlock<std::ratio<1, 16>>, resnet::AfterConv3,
                                                          resnet::Stages<0, 1, 1, 1>>>;
using GcResNet50R4 = ResNet<resnet::Depth50, resnet::Plugin<GCBlock<std::ratio<1, 4>>, resnet::AfterConv3,
                                                            resnet::Stages<0, 1, 1, 1>>>;

}  // namespace gcnet
