#pragma once
// ResNet backbones (mmdet ResNet / ResNeXt / ResNetV1c, mmseg's dilated form) as modules
// (core/module.hpp): input the images [N, C, H, W], output FeatureMaps { c2, c3, c4, c5 } (the
// stages in out_indices; the others stay undefined).
//
// One compiled type per (scalar, backend, norm, deformable kind, stem, block family):
//   ResNetBackbone<T, B, Norm = BatchNorm2d<T, B>, Deform = void, DeepStem = false,
//                  Blocks = BottleneckBlocks>
//   BasicResNetBackbone<T, B, Norm, DeepStem>   = ResNetBackbone<T, B, Norm, void, DeepStem, BasicBlocks>:
//                  ResNet-18/34 of BasicBlocks (models/res_basic_block.hpp; mmseg ResNetV1c-18 D8
//                  with DeepStem = true and the D8 strides/dilations as options)
// Everything else is a value in ResNetOptions (models/resnet_options.hpp): depth, widths,
// ResNeXt groups, strides and dilations, which stages are deformable, the global-context
// plugins (GC of any ratio / pooling / fusion, SE, simplified NL: position and stages), outputs,
// frozen stages, norm_eval. So an ablation over plugins runs on one type:
//   ResNetOptions o = resnet_depth(50);
//   o.plugins = {{.block = se_options(0, 16)}};                 // SE r16 after conv3 on c3-c5
//   ResNetBackbone<float, Cpu> net(o);
// Plugins of other kinds (a Non-local block, your own layer) come as CustomPlugin factories.
//
// The type expressions of models/resnet_features.hpp are the compile-time spelling of the same
// backbones; they derive from ResNetBackbone and only fill in options:
//   using GcR50 = ResNet<Depth50, Plugin<GCBlock<std::ratio<1, 16>>, AfterConv3, Stages<0, 1, 1, 1>>>;
//
// State-dict names are mmdet's: conv1.weight, bn1.*, layer1.0.conv1.weight,
// layer2.0.context_block.conv_mask.weight, layer3.1.conv2.conv_offset.weight, stem.0.weight.
// set_training(mode) honours frozen_stages (stem and layer1..frozen_stages stay in eval mode;
// their parameters are left out of visit_trainable_parameters) and norm_eval (every norm of the
// backbone, plugins included, in eval mode while training).
#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "gcnet/blocks/global_context.hpp"
#include "gcnet/compose/repeat.hpp"
#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/module.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/models/feature_maps.hpp"
#include "gcnet/models/res_basic_block.hpp"
#include "gcnet/models/res_block.hpp"
#include "gcnet/models/resnet_options.hpp"
#include "gcnet/models/resnet_stem.hpp"

namespace gcnet {

// A plugin of any kind, made by a factory for a block's channel count (`name` is its state-dict
// name in the block).
template <Scalar T, Backend B>
struct CustomPlugin {
  Position position = Position::AfterConv3;
  std::array<bool, 4> stages{false, true, true, true};
  std::function<PluginHandle<T, B>(index_t channels)> make;
};

// Multiply-accumulates of a global-context block for an input [n, c, h, w] (counting.hpp's
// convention: the mask conv and the attention-weighted sum, the transform's convolutions).
inline double global_context_macs(const GlobalContextOptions& o, const Shape& in) {
  const double n = double(in.n()), c = double(in.c()), hw = double(in.h() * in.w());
  const index_t planes = global_context_planes(o);
  const double branches = o.fusion == Fusion::MulAdd ? 2.0 : 1.0;
  const double transform = planes > 0 ? 2.0 * c * double(planes) : c * c;
  return n * ((o.pooling == Pooling::Attention ? 2.0 * c * hw : 0.0) + branches * transform);
}

// The plugin of a ContextPlugin for `channels`.
template <Scalar T, Backend B>
PluginHandle<T, B> make_context_plugin(const ContextPlugin& p, index_t channels) {
  GlobalContextOptions o = p.block;
  o.channels = channels;
  return make_block_plugin(plugin_name(o) + p.postfix, GlobalContextBlock<T, B>(o),
                           [o](const Shape& in) { return global_context_macs(o, in); });
}

// The block family of a backbone (its last template argument): the block type, and what the
// backbone checks and counts by it.
struct BottleneckBlocks {
  template <class Norm, class Conv2>
  using block = ResBottleneck<Norm, Conv2>;
  static constexpr const char* name = "Bottleneck";
  static constexpr index_t convs_per_block = 3;  // the depth counts them (50 = 3 * 16 + 2)
  static constexpr bool grouped = true;          // ResNeXt widths
  static constexpr bool deformable = true;       // conv2 may be a DCN
  static bool has_depth(int d) { return d == 50 || d == 101 || d == 152; }
  static bool allows_position(Position) { return true; }
};
struct BasicBlocks {
  template <class Norm, class Conv2>
  using block = ResBasicBlock<Norm>;
  static constexpr const char* name = "BasicBlock";
  static constexpr index_t convs_per_block = 2;  // 18 = 2 * 8 + 2
  static constexpr bool grouped = false;
  static constexpr bool deformable = false;
  static bool has_depth(int d) { return d == 18 || d == 34; }
  static bool allows_position(Position p) { return p != Position::AfterConv3; }  // as ResBasicBlock
};

template <Scalar T = float, Backend B = Cpu, class Norm = BatchNorm2d<T, B>, class Deform = void, bool DeepStem = false,
          class Blocks = BottleneckBlocks>
class ResNetBackbone {
  static_assert(Blocks::deformable || std::is_void_v<Deform>,
                "a BasicBlock ResNet has no deformable conv2 (mmdet/mmseg: not implemented): Deform must be void");

 public:
  using value_type = T;
  using backend_type = B;
  using tensor_type = Tensor<T, B>;
  using input_type = Tensor<T, B>;
  using output_type = FeatureMaps<T, B>;
  using norm_type = Norm;
  using block_family = Blocks;
  using block_type = typename Blocks::template block<Norm, Conv2Choice<Deform, T, B>>;
  using stage_type = RepeatN<block_type>;
  using stem_type = std::conditional_t<DeepStem, DeepResNetStem<Norm>, ResNetStem<Norm>>;
  static constexpr bool deep_stem = DeepStem;

  explicit ResNetBackbone(const ResNetOptions& o = {}, std::vector<CustomPlugin<T, B>> custom = {})
      : o_(check(o)), custom_(std::move(custom)), stem_(make_stem(o)) {
    for (std::size_t i = 0; i < custom_.size(); ++i)
      GCNET_CHECK(Blocks::allows_position(custom_[i].position), "ResNet: custom plugin ", i, " at ",
                  position_name(custom_[i].position), ": a ", Blocks::name, " has no conv3; use AfterConv2 (after bn2, "
                  "before the residual add) or AfterConv1");
    index_t inplanes = o.stem_channels;
    for (int s = 0; s < 4; ++s) {
      stages_[static_cast<std::size_t>(s)] = std::make_unique<stage_type>(make_stage(s, inplanes));
      inplanes = stage_channels(s);
    }
    share_block_scratch();
    set_training(true);
  }
  ResNetBackbone(const ResNetBackbone& o)
      : o_(o.o_), custom_(o.custom_), training_(o.training_), stem_(o.stem_) {
    for (std::size_t s = 0; s < 4; ++s) stages_[s] = std::make_unique<stage_type>(*o.stages_[s]);
    share_block_scratch();  // the copy's blocks share the copy's own scratch
  }
  ResNetBackbone(ResNetBackbone&&) = default;
  ResNetBackbone& operator=(const ResNetBackbone&) = delete;
  ResNetBackbone& operator=(ResNetBackbone&&) = default;

  const ResNetOptions& options() const { return o_; }
  stem_type& stem() { return stem_; }
  stage_type& stage(int s) { return *stages_.at(static_cast<std::size_t>(s)); }
  // Output channels of stage s (planes * expansion: 4 for Bottlenecks, 1 for BasicBlocks).
  index_t stage_channels(int s) const { return o_.base_channels * (index_t(1) << s) * block_type::expansion; }
  std::vector<index_t> out_channels() const {
    std::vector<index_t> c;
    for (int i : o_.out_indices) c.push_back(stage_channels(i));
    return c;
  }

  // The shapes of c2..c5 for an input shape (validates it; unproduced stages included).
  std::array<Shape, 4> setup(const Shape& in) {
    require_nchw(in, describe());
    GCNET_CHECK(in.c() == o_.in_channels, describe(), ": expected input with ", o_.in_channels,
                " channels, got shape ", in.str());
    std::array<Shape, 4> s;
    Shape cur;
    try { cur = stem_.setup(in); } catch (const Error& e) { detail::rethrow_in(describe() + " stem", e); }
    for (int k = 0; k < 4; ++k) {
      try { s[static_cast<std::size_t>(k)] = cur = stage(k).setup(cur); }
      catch (const Error& e) { detail::rethrow_in(describe() + " layer" + std::to_string(k + 1), e); }
    }
    return s;
  }

  // Training: every block keeps what its backward needs, except in frozen stages (below).
  // Eval (no backward expected): the stem and the blocks run by infer() (norms folded, each
  // block's intermediates in scratch shared by all blocks, freed at the end), and the outputs are
  // handed over, not kept; a backward after an eval forward replays the stages first.
  void forward(const Context& ctx, const tensor_type& x, FeatureMaps<T, B>& y) {
    sync_mode(*this, ctx);
    bind_context(stem_, ctx);
    for (auto& st : stages_) bind_context(*st, ctx);
    setup(x.shape());
    *inferred_parts_ = training_ ? frozen_parts() : kAllParts;
    run_parts(x, *inferred_parts_);
    for (int s = 0; s < 4; ++s) {
      tensor_type& out = (*stage_out_)[static_cast<std::size_t>(s)];
      if (!produced(s)) y.stage(s) = tensor_type();
      else if (training_) y.stage(s) = out;
      else y.stage(s) = std::move(out);
    }
    if (!training_) release_block_scratch();
  }

  // Whether a gradient at stage s's output reaches a trainable parameter (with no input
  // gradient wanted): not where stage s and all below it are frozen.
  bool output_gradient_used(int s) const { return s >= o_.frozen_stages; }

  // Frozen stages (training with frozen_stages >= 0): their forward ran by infer() and, when no
  // input gradient is wanted, their backward is skipped and their parameters' gradients are
  // zero (mmdet freezes them with requires_grad = False: nothing flows below the first trainable
  // stage). With an input gradient wanted, the frozen parts are replayed and back-propagated.
  void backward(const Context&, const tensor_type& x, const FeatureMaps<T, B>& y, const FeatureMaps<T, B>& dy,
                tensor_type& dx) {
    (void)y;
    const bool skip_frozen = *inferred_parts_ != kAllParts && !dx.defined();
    if (*inferred_parts_ > 0 && !skip_frozen) {  // replay keeping everything (same outputs)
      *inferred_parts_ = 0;
      run_parts(x, 0);
    }
    if (dx.defined()) require_shape(dx, x.shape(), describe(), "input gradient dx");
    for (int s = 0; s < 4; ++s) {
      const tensor_type& d = dy.stage(s);
      if (!d.defined()) continue;
      GCNET_CHECK(produced(s), describe(), ": a gradient arrived for c", s + 2, ", which is not in out_indices");
      require_shape(d, (*stage_out_)[static_cast<std::size_t>(s)].shape(), describe(),
                    ("output gradient c" + std::to_string(s + 2)).c_str());
    }
    // Parts [0, first) are skipped: part 0 is the stem, part s + 1 stage s.
    const int first = skip_frozen ? *inferred_parts_ : 0;
    // g = gradient at stage S's output: from the consumers of c(S+2), plus from stage S+1.
    auto& grad_in = *grad_in_;
    bool have = false;  // whether grad_in holds the gradient from the stage above
    tensor_type g;
    for (int s = last_stage(); s >= 0 && s + 1 >= first; --s) {
      const tensor_type& out = (*stage_out_)[static_cast<std::size_t>(s)];
      if (have) {
        g = std::move(grad_in);
      } else {
        g = tensor_type(out.shape());
        fill(g, T(0));
      }
      if (dy.stage(s).defined()) add_into(g, dy.stage(s), "ResNet");
      const tensor_type& in = s == 0 ? *stem_out_ : (*stage_out_)[static_cast<std::size_t>(s - 1)];
      grad_in = tensor_type(in.shape());
      fill(grad_in, T(0));
      stage(s).backward(in, out, g, grad_in);
      have = true;
    }
    g = tensor_type();
    // The blocks' one shared gradient scratch stays for the next step: freeing it here measured
    // 4% slower on a ResNet-50 training step at 512 and a higher peak of the Mask R-CNN
    // benchmark's training (the freed blocks fragment the heap under the next forward).
    if (first > 0) {
      grad_in = tensor_type();
      gcnet::visit_parameters(stem_, "", [](const std::string&, Param<T, B>& p) { fill(p.grad, T(0)); });
      for (int s = 0; s + 1 < first; ++s)
        gcnet::visit_parameters(stage(s), "", [](const std::string&, Param<T, B>& p) { fill(p.grad, T(0)); });
    } else if (dx.defined()) {
      stem_.backward(x, *stem_out_, grad_in, dx);
    } else {  // no input gradient wanted; the stem's parameter gradients still are
      tensor_type scratch = zeros<T, B>(x.shape());
      stem_.backward(x, *stem_out_, grad_in, scratch);
    }
  }

  std::string describe() const {
    std::string s = "ResNet(depth=" + std::to_string(depth());
    if (DeepStem) s += ", deep_stem";
    if (o_.groups != 1) s += ", groups=" + std::to_string(o_.groups) + ", base_width=" + std::to_string(o_.base_width);
    for (const auto& p : o_.plugins) s += ", " + describe_global_context(p.block) + "@" + position_name(p.position);
    return s + ")";
  }
  index_t depth() const {
    return Blocks::convs_per_block * (o_.blocks[0] + o_.blocks[1] + o_.blocks[2] + o_.blocks[3]) + 2;
  }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view(), stem_);
    for (int s = 0; s < 4; ++s) f(std::string_view(stage_names()[static_cast<std::size_t>(s)]), stage(s));
  }
  GCNET_CHILD_STATE_HOOKS(T, B)
  // The parameters an optimizer should update: all but those of frozen stages.
  void visit_trainable_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    if (o_.frozen_stages < 0) gcnet::visit_parameters(stem_, prefix, f);
    for (int s = 0; s < 4; ++s)
      if (s + 1 > o_.frozen_stages)
        gcnet::visit_parameters(stage(s), child_prefix(prefix, stage_names()[static_cast<std::size_t>(s)]), f);
  }

  // mmdet ResNet.train(mode): everything follows `mode`, then frozen stages go to eval, then
  // (norm_eval) every norm goes to eval.
  void set_training(bool training) {
    training_ = training;
    gcnet::set_training(stem_, training && o_.frozen_stages < 0);
    for (int s = 0; s < 4; ++s) gcnet::set_training(stage(s), training && s + 1 > o_.frozen_stages);
    if (training && o_.norm_eval) {
      stem_.for_each_child([](std::string_view, auto& child) { set_norm_eval(child); });
      for (int s = 0; s < 4; ++s)
        for (std::size_t i = 0; i < stage(s).size(); ++i) stage(s)[i].norms_to_eval();
    }
  }
  bool training() const { return training_; }

 private:
  static const std::array<std::string, 4>& stage_names() {
    static const std::array<std::string, 4> names{"layer1", "layer2", "layer3", "layer4"};
    return names;
  }
  bool produced(int s) const {
    return std::find(o_.out_indices.begin(), o_.out_indices.end(), s) != o_.out_indices.end();
  }
  int last_stage() const { return o_.out_indices.back(); }

  template <class L>
  static void set_norm_eval(L& l) {
    if constexpr (std::is_same_v<L, Norm>) gcnet::set_training(l, false);
    else if constexpr (requires { l.for_each_child([](std::string_view, auto&) {}); })
      l.for_each_child([](std::string_view, auto& c) { set_norm_eval(c); });
  }

  ResNetOptions check(const ResNetOptions& o) const {
    const std::string who = "ResNet";
    GCNET_CHECK(o.in_channels > 0, who, ": in_channels must be positive, got ", o.in_channels);
    GCNET_CHECK(o.stem_channels > 0, who, ": stem_channels must be positive, got ", o.stem_channels);
    GCNET_CHECK(o.base_channels > 0, who, ": base_channels must be positive, got ", o.base_channels);
    GCNET_CHECK(!o.out_indices.empty(), who, ": out_indices is empty");
    for (int i : o.out_indices) GCNET_CHECK(i >= 0 && i < 4, who, ": out_indices must be in [0, 4), got ", i);
    GCNET_CHECK(std::is_sorted(o.out_indices.begin(), o.out_indices.end()) &&
                    std::adjacent_find(o.out_indices.begin(), o.out_indices.end()) == o.out_indices.end(),
                who, ": out_indices must be strictly increasing");
    GCNET_CHECK(o.frozen_stages >= -1 && o.frozen_stages <= 4, who, ": frozen_stages must be in [-1, 4], got ",
                o.frozen_stages);
    for (int s = 0; s < 4; ++s) {
      const auto k = static_cast<std::size_t>(s);
      GCNET_CHECK(o.blocks[k] > 0, who, ": stage ", s + 1, " needs at least one block, got ", o.blocks[k]);
      GCNET_CHECK(o.strides[k] > 0 && o.dilations[k] > 0, who, ": stage ", s + 1,
                  " needs a positive stride and dilation, got ", o.strides[k], " and ", o.dilations[k]);
    }
    GCNET_CHECK(o.groups > 0 && o.base_width > 0, who, ": groups and base_width must be positive, got ", o.groups,
                " and ", o.base_width);
    if (o.depth != 0) {
      (void)resnet_blocks(o.depth);  // a depth that no family has
      GCNET_CHECK(Blocks::has_depth(o.depth), who, ": depth ", o.depth, " is a ",
                  resnet_depth_is_basic(o.depth) ? "BasicBlock" : "Bottleneck", " ResNet, but this backbone type is "
                  "built of ", Blocks::name, "s: use ",
                  resnet_depth_is_basic(o.depth) ? "BasicResNetBackbone<T, B, Norm, DeepStem>"
                                                 : "ResNetBackbone<T, B, ...> (the default block family) or ResNet<...>");
    }
    if constexpr (!Blocks::grouped)
      GCNET_CHECK(o.groups == 1 && o.base_width == 64, who, ": a ", Blocks::name, " ResNet has no grouped "
                  "convolutions (groups must be 1 and base_width 64, as mmdet/torchvision), got groups ", o.groups,
                  " and base_width ", o.base_width);
    for (std::size_t i = 0; i < o.plugins.size(); ++i)
      GCNET_CHECK(Blocks::allows_position(o.plugins[i].position), who, ": plugin ", i, " (",
                  describe_global_context(o.plugins[i].block), ") at ", position_name(o.plugins[i].position), ": a ",
                  Blocks::name, " has no conv3; use AfterConv2 (after bn2, before the residual add: where GCNet puts "
                  "the GC block in a BasicBlock) or AfterConv1");
    if constexpr (std::is_void_v<Deform>)
      for (bool d : o.dcn_stages)
        GCNET_CHECK(!d, who, ": dcn_stages asks for deformable convolutions, but this backbone type has no "
                             "deformable kind (use a type with Dcn<...> or DcnV2<...>)");
    return o;
  }

  static stem_type make_stem(const ResNetOptions& o) {
    if constexpr (DeepStem) return make_deep_resnet_stem<Norm>(o.in_channels, o.stem_channels);
    else return make_resnet_stem<Norm>(o.in_channels, o.stem_channels);
  }

  // mmdet ResNet.make_res_layer / mmseg ResLayer: block 0 carries the stride and (when the
  // shape changes) the downsample; contract_dilation halves block 0's dilation.
  stage_type make_stage(int s, index_t inplanes) const {
    const auto k = static_cast<std::size_t>(s);
    const index_t planes = o_.base_channels << s;
    const index_t stride = o_.strides[k], dilation = o_.dilations[k];
    const index_t width = o_.groups == 1 ? planes : planes * o_.base_width / 64 * o_.groups;  // mmdet ResNeXt
    return stage_type(static_cast<std::size_t>(o_.blocks[k]), [&](std::size_t i) {
      ResBlockConfig c;
      c.inplanes = i == 0 ? inplanes : planes * block_type::expansion;
      c.planes = planes;
      c.width = width;
      c.groups = o_.groups;
      c.stride = i == 0 ? stride : 1;
      c.dilation = i == 0 && o_.contract_dilation && dilation > 1 ? dilation / 2 : dilation;
      c.downsample = i == 0 && (stride != 1 || inplanes != planes * block_type::expansion);
      c.deformable = o_.dcn_stages[k];
      std::vector<PlacedPlugin<T, B>> plugins;
      for (const auto& p : o_.plugins)
        if (p.stages[k])
          plugins.push_back({p.position, make_context_plugin<T, B>(p, block_type::plugin_channels(p.position, c))});
      for (const auto& p : custom_)
        if (p.stages[k]) plugins.push_back({p.position, p.make(block_type::plugin_channels(p.position, c))});
      return block_type(c, std::move(plugins));
    });
  }

  // Parts: 0 the stem, s + 1 stage s. The leading parts that training runs by infer(): the stem
  // and layer1..layer(frozen_stages) when frozen (clamped to the parts that run, at most 5).
  // kAllParts, more than there are, marks the eval forward.
  static constexpr int kAllParts = 6;
  int frozen_parts() const { return std::min(o_.frozen_stages + 1, last_stage() + 2); }

  // The stem and the stages up to the last output; parts [0, inferred) by infer() (keeping only
  // the stage outputs), the others by forward() (every block's output kept: the next block's
  // input for backward).
  void run_parts(const tensor_type& x, int inferred) {
    try {
      if (inferred > 0) gcnet::infer(stem_, x, *stem_out_);
      else stem_.forward(x, *stem_out_);
    } catch (const Error& e) { detail::rethrow_in(describe() + " stem", e); }
    const tensor_type* cur = &*stem_out_;
    for (int s = 0; s <= last_stage(); ++s) {  // stages after the last output are not needed
      tensor_type& out = (*stage_out_)[static_cast<std::size_t>(s)];
      if (s + 1 < inferred) infer_stage(s, *cur, out);
      else stage(s).forward(*cur, out);
      if (s + 2 == inferred) release_block_scratch();  // after the last frozen stage, before training ones
      if (s == 0 && inferred == kAllParts) *stem_out_ = tensor_type();  // read by layer1 only
      cur = &out;
    }
  }

  // A stage by infer(): blocks one by one, ping-ponging between two buffers shared by all stages.
  void infer_stage(int s, const tensor_type& in, tensor_type& out) {
    stage_type& st = stage(s);
    const std::size_t n = st.size();
    const tensor_type* cur = &in;
    for (std::size_t i = 0; i < n; ++i) {
      tensor_type& o = i + 1 == n ? out : (*ping_)[i % 2];
      try { st[i].infer(*cur, o); }
      catch (const Error& e) {
        detail::rethrow_in(describe() + " layer" + std::to_string(s + 1) + "." + std::to_string(i), e);
      }
      cur = &o;
    }
  }

  // After infer(): the blocks' shared intermediates and the ping-pong buffers.
  void release_block_scratch() {
    for (auto& t : *ping_) t = tensor_type();
    *stage(0)[0].forward_scratch() = BlockForwardScratch<T, B>{};
  }

  // One gradient scratch and one eval activation scratch for all blocks: they run one at a time
  // (models/block_memory.hpp).
  void share_block_scratch() {
    block_type* first = nullptr;
    for (int s = 0; s < 4; ++s)
      for (std::size_t i = 0; i < stage(s).size(); ++i) {
        block_type& b = stage(s)[i];
        if (!first) {
          first = &b;
          continue;
        }
        b.grad_scratch().share_with(first->grad_scratch());
        b.forward_scratch().share_with(first->forward_scratch());
      }
  }

  ResNetOptions o_;
  std::vector<CustomPlugin<T, B>> custom_;
  bool training_ = true;
  stem_type stem_;
  // Stages by pointer: a backbone moves without moving its blocks (whose plugin inputs point
  // into themselves between forward and backward).
  std::array<std::unique_ptr<stage_type>, 4> stages_;
  ScratchValue<tensor_type> stem_out_, grad_in_;
  ScratchValue<std::array<tensor_type, 4>> stage_out_;
  ScratchValue<std::array<tensor_type, 2>> ping_;  // block outputs inside a stage run by infer()
  ScratchValue<int> inferred_parts_;               // the parts the last forward ran by infer()
};

// ResNet-18/34 (mmdet/mmseg BasicBlock ResNets): the backbone type of BasicBlocks. With
// DeepStem = true it is mmseg's ResNetV1c-18/34; D8 is the options' strides and dilations:
//   ResNetOptions o = resnet_depth(18);
//   o.strides = {1, 2, 1, 1}; o.dilations = {1, 1, 2, 4}; o.contract_dilation = true;
//   o.plugins = {{.block = gc_options(0, {1, 16}), .position = Position::AfterConv2}};  // c3-c5
//   BasicResNetBackbone<float, Cpu, BatchNorm2d<float, Cpu>, true> net(o);
template <Scalar T = float, Backend B = Cpu, class Norm = BatchNorm2d<T, B>, bool DeepStem = false>
using BasicResNetBackbone = ResNetBackbone<T, B, Norm, void, DeepStem, BasicBlocks>;

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp): the default
// backbone types (Bottleneck and BasicBlock), their blocks, stages and stems.
GCNET_EXTERN_CLASS(ResNetBackbone)
GCNET_EXTERN_INSTANCE(ResNetBackbone<float, Cpu, BatchNorm2d<float, Cpu>, void, false, BasicBlocks>)
GCNET_EXTERN_INSTANCE(ResNetBackbone<double, Cpu, BatchNorm2d<double, Cpu>, void, false, BasicBlocks>)
GCNET_EXTERN_INSTANCE(ResBasicBlock<BatchNorm2d<float, Cpu>>)
GCNET_EXTERN_INSTANCE(ResBasicBlock<BatchNorm2d<double, Cpu>>)
GCNET_EXTERN_INSTANCE(RepeatN<ResBasicBlock<BatchNorm2d<float, Cpu>>>)
GCNET_EXTERN_INSTANCE(RepeatN<ResBasicBlock<BatchNorm2d<double, Cpu>>>)
GCNET_EXTERN_INSTANCE(ResBottleneck<BatchNorm2d<float, Cpu>, Conv2d<float, Cpu>>)
GCNET_EXTERN_INSTANCE(ResBottleneck<BatchNorm2d<double, Cpu>, Conv2d<double, Cpu>>)
GCNET_EXTERN_INSTANCE(RepeatN<ResBottleneck<BatchNorm2d<float, Cpu>, Conv2d<float, Cpu>>>)
GCNET_EXTERN_INSTANCE(RepeatN<ResBottleneck<BatchNorm2d<double, Cpu>, Conv2d<double, Cpu>>>)

}  // namespace gcnet

#include "gcnet/models/resnet_features.hpp"
