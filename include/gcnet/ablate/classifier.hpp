#pragma once
// AblationClassifier: the small ResNet the classification ablation trains on 28x28 Fashion-MNIST,
// one type for every variant (ablate/variants.hpp); only the plugin differs.
//   stem    conv 3x3 (in -> stem_channels, stride 1) -> BN -> ReLU     (no 4x downsampling: the
//           images are 28x28, so the stages run at 28, 14, 7 and 4 pixels)
//   layer1..layer4  ResBasicBlocks (models/res_basic_block.hpp), base_channels doubling per
//           stage, strides 1, 2, 2, 2; a context-family block (GC / SE / SNL) at AfterConv2
//           (after bn2, before the residual add) in every block of the chosen stages
//   +1 NL   variant nl: one NonLocal2d (embedded gaussian, reduction 2, identity at init) before
//           the last residual block of layer3, as the paper's "+1 NL" (before the last block
//           of res4)
//   head    global average pool -> Linear(C5, num_classes)
// State-dict names: stem.conv.weight, stem.bn.*, layer1.0.conv1.weight,
// layer3.1.context_block.conv_mask.weight, layer3.nonlocal_block.g.conv.weight, fc.weight.
// A leaf layer (gcnet::Layer): logits [N, classes] from images [N, in, H, W].
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gcnet/ablate/variants.hpp"
#include "gcnet/blocks/non_local2d.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/flatten.hpp"
#include "gcnet/layers/global_avg_pool2d.hpp"
#include "gcnet/layers/linear.hpp"
#include "gcnet/models/res_basic_block.hpp"
#include "gcnet/models/resnet.hpp"

namespace gcnet::ablate {

struct ClassifierOptions {
  index_t in_channels = 1, stem_channels = 16, base_channels = 16, num_classes = 10;
  std::array<index_t, 4> blocks{1, 1, 2, 1};           // residual blocks per stage
  std::array<bool, 4> stages{false, true, true, true};  // stages with the context-family block (c3-c5)
};

class AblationClassifier {
 public:
  using value_type = float;
  using backend_type = Cpu;
  using T = float;
  using Tensor_ = Tensor<float, Cpu>;
  using Block = ResBasicBlock<BatchNorm2d<float, Cpu>>;
  using GC = GlobalContextBlock<float, Cpu>;
  using NL = NonLocal2d<float, Cpu>;

  AblationClassifier(const ClassifierOptions& o, const Variant& v)
      : o_(check(o)), v_(v),
        stem_conv_(Conv2dOptions{.in = o.in_channels, .out = o.stem_channels, .kernel = 3, .padding = 1, .bias = false}),
        stem_bn_(o.stem_channels),
        fc_(o.base_channels * 8, o.num_classes) {
    init::kaiming_init(stem_conv_);
    index_t inplanes = o.stem_channels;
    for (int s = 0; s < 4; ++s) {
      const auto k = static_cast<std::size_t>(s);
      const index_t planes = o.base_channels << s, stride = s == 0 ? 1 : 2;
      if (s == 2 && v.family == BlockFamily::NonLocal) {
        nl_at_ = static_cast<index_t>(blocks_.size()) + o.blocks[k] - 1;  // before layer3's last block
        nl_.emplace(NonLocal2dOptions{.in_channels = planes});
      }
      for (index_t i = 0; i < o.blocks[k]; ++i) {
        ResBlockConfig c;
        c.inplanes = i == 0 ? inplanes : planes;
        c.planes = c.width = planes;
        c.stride = i == 0 ? stride : 1;
        c.downsample = i == 0 && (stride != 1 || inplanes != planes);
        std::vector<PlacedPlugin<float, Cpu>> plugins;
        if (v.family == BlockFamily::Context && o.stages[k]) {
          const ContextPlugin p{.block = v.block, .position = Position::AfterConv2, .stages = o.stages};
          plugins.push_back({Position::AfterConv2, make_context_plugin<float, Cpu>(p, planes)});
        }
        blocks_.push_back(std::make_unique<Block>(c, std::move(plugins)));
        names_.push_back("layer" + std::to_string(s + 1) + "." + std::to_string(i));
        stage_of_.push_back(s);
      }
      inplanes = planes;
    }
    outs_.resize(blocks_.size());
  }
  AblationClassifier(const AblationClassifier&) = delete;
  AblationClassifier& operator=(const AblationClassifier&) = delete;

  const ClassifierOptions& options() const { return o_; }
  const Variant& variant() const { return v_; }
  std::size_t num_blocks() const { return blocks_.size(); }
  Block& block(std::size_t i) { return *blocks_.at(i); }
  const std::string& block_name(std::size_t i) const { return names_.at(i); }
  // The Non-local block (variant nl), and the input it saw in the last forward.
  NL* non_local() { return nl_ ? &*nl_ : nullptr; }
  const Tensor_& non_local_input() const { return nl_at_ == 0 ? stem_out_ : outs_[static_cast<std::size_t>(nl_at_ - 1)]; }
  // The context-family block of residual block i (nullptr when it has none).
  GC* context_block(std::size_t i) {
    auto& ps = block(i).plugins();
    return ps.empty() ? nullptr : plugin_layer<GC>(*ps.front().plugin);
  }
  // layer3's last residual block: where +1 NL sits in front of, and the GC attention shown beside it.
  std::size_t last_block_of_layer3() const {
    return static_cast<std::size_t>(o_.blocks[0] + o_.blocks[1] + o_.blocks[2] - 1);
  }

  Shape setup(const Shape& in) {
    require_nchw(in, describe());
    GCNET_CHECK(in.c() == o_.in_channels, describe(), ": expected ", o_.in_channels, " input channels, got shape ",
                in.str());
    Shape s = stem_bn_.setup(stem_conv_.setup(in));
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      if (nl_ && static_cast<index_t>(i) == nl_at_) s = nl_->setup(s);
      s = blocks_[i]->setup(s);
    }
    return Shape{in.n(), o_.num_classes};
  }

  void forward(const Tensor_& x, Tensor_& y) {
    setup(x.shape());
    stem_conv_.forward(x, stem_a_);
    stem_bn_.forward(stem_a_, stem_out_);
    detail::relu_to(stem_out_, stem_out_);
    const Tensor_* cur = &stem_out_;
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      if (nl_ && static_cast<index_t>(i) == nl_at_) {
        nl_->forward(*cur, nl_out_);
        cur = &nl_out_;
      }
      blocks_[i]->forward(*cur, outs_[i]);
      cur = &outs_[i];
    }
    gap_.forward(*cur, pooled_);
    flatten_.forward(pooled_, flat_);
    fc_.forward(flat_, y);
  }

  // dx accumulates as every layer's; an undefined dx: the input gradient is not wanted.
  void backward(const Tensor_& x, const Tensor_& y, const Tensor_& dy, Tensor_& dx) {
    zeroed(g_flat_, flat_.shape());
    fc_.backward(flat_, y, dy, g_flat_);
    zeroed(g_pooled_, pooled_.shape());
    flatten_.backward(pooled_, flat_, g_flat_, g_pooled_);
    const Tensor_& last = outs_.back();
    zeroed(g_, last.shape());
    gap_.backward(last, pooled_, g_pooled_, g_);
    for (std::size_t i = blocks_.size(); i-- > 0;) {
      const bool nl_here = nl_ && static_cast<index_t>(i) == nl_at_;
      const Tensor_& in = nl_here ? nl_out_ : (i == 0 ? stem_out_ : outs_[i - 1]);
      zeroed(g_in_, in.shape());
      blocks_[i]->backward(in, outs_[i], g_, g_in_);
      std::swap(g_, g_in_);
      if (nl_here) {
        const Tensor_& nin = i == 0 ? stem_out_ : outs_[i - 1];
        zeroed(g_in_, nin.shape());
        nl_->backward(nin, nl_out_, g_, g_in_);
        std::swap(g_, g_in_);
      }
    }
    detail::relu_grad_to(stem_out_, g_, g_in_);
    zeroed(g_, stem_a_.shape());
    stem_bn_.backward(stem_a_, stem_out_, g_in_, g_);
    if (dx.defined()) {
      stem_conv_.backward(x, stem_a_, g_, dx);
    } else {
      zeroed(g_x_, x.shape());
      stem_conv_.backward(x, stem_a_, g_, g_x_);
    }
  }

  std::string describe() const {
    std::string s = "AblationClassifier(stem=" + std::to_string(o_.stem_channels) + ", base=" +
                    std::to_string(o_.base_channels) + ", blocks=" + std::to_string(o_.blocks[0]) + "," +
                    std::to_string(o_.blocks[1]) + "," + std::to_string(o_.blocks[2]) + "," +
                    std::to_string(o_.blocks[3]) + ", variant=" + v_.name;
    if (v_.family == BlockFamily::Context) s += " on " + stages_name(o_.stages);
    return s + ")";
  }

  void visit_parameters(const std::string& prefix, const ParamVisitor<float, Cpu>& f) {
    stem_conv_.visit_parameters(prefix + "stem.conv.", f);
    stem_bn_.visit_parameters(prefix + "stem.bn.", f);
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      if (nl_ && static_cast<index_t>(i) == nl_at_) nl_->visit_parameters(prefix + "layer3.nonlocal_block.", f);
      blocks_[i]->visit_parameters(prefix + names_[i] + ".", f);
    }
    fc_.visit_parameters(prefix + "fc.", f);
  }
  void visit_buffers(const std::string& prefix, const BufferVisitor<float, Cpu>& f) {
    stem_bn_.visit_buffers(prefix + "stem.bn.", f);
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      if (nl_ && static_cast<index_t>(i) == nl_at_) nl_->visit_buffers(prefix + "layer3.nonlocal_block.", f);
      blocks_[i]->visit_buffers(prefix + names_[i] + ".", f);
    }
  }
  void set_training(bool training) {
    training_ = training;
    stem_bn_.set_training(training);
    for (auto& b : blocks_) gcnet::set_training(*b, training);
    if (nl_) nl_->set_training(training);
  }
  bool training() const { return training_; }

 private:
  static ClassifierOptions check(const ClassifierOptions& o) {
    const char* who = "AblationClassifier";
    GCNET_CHECK(o.in_channels > 0 && o.stem_channels > 0 && o.base_channels > 0 && o.num_classes > 1, who,
                ": channels must be positive and num_classes at least 2");
    for (int s = 0; s < 4; ++s)
      GCNET_CHECK(o.blocks[static_cast<std::size_t>(s)] > 0, who, ": stage ", s + 1, " needs at least one block");
    return o;
  }
  static void zeroed(Tensor_& t, const Shape& s) {
    t.resize(s);
    fill(t, 0.0f);
  }

  ClassifierOptions o_;
  Variant v_;
  Conv2d<float, Cpu> stem_conv_;
  BatchNorm2d<float, Cpu> stem_bn_;
  std::vector<std::unique_ptr<Block>> blocks_;  // by pointer: a block's plugin inputs point into itself
  std::vector<std::string> names_;
  std::vector<int> stage_of_;
  std::optional<NL> nl_;
  index_t nl_at_ = -1;  // the NL runs before block nl_at_
  GlobalAvgPool2d<float, Cpu> gap_;
  Flatten<float, Cpu> flatten_;
  Linear<float, Cpu> fc_;
  bool training_ = true;
  // activations (backward reads them) and gradient scratch
  Tensor_ stem_a_, stem_out_, nl_out_, pooled_, flat_;
  std::vector<Tensor_> outs_;
  Tensor_ g_flat_, g_pooled_, g_, g_in_, g_x_;
};

}  // namespace gcnet::ablate
