#pragma once
// FPN as mmdet's (neck, default options: start_level 0, no extra convs, no norm/activation):
//   laterals[i] = lateral_convs[i](ins[i])                             1x1 conv, bias
//   for i = L-1 .. 1: laterals[i-1] += interpolate(laterals[i], size=laterals[i-1].shape, 'nearest')
//   outs[i] = fpn_convs[i](laterals[i])                                3x3 conv, padding 1, bias
//   outs[L..num_outs) = max_pool2d(outs[-1], kernel 1, stride 2)     extra levels
// A module (core/module.hpp): its input is the backbone's FeatureMaps (the defined maps, c2 to
// c5, are its levels, one per entry of in_channels), its output the num_outs levels as a vector
// (P2..P6 for ResNet c2..c5). backward(ctx, ins, outs, douts, dins): dins accumulate, an
// undefined douts[k] means no gradient, an undefined map of dins means none is wanted.
// Names lateral_convs.i.conv.weight / .bias and fpn_convs.i.conv.* (Chain puts them under
// "neck."). Init: xavier uniform, bias 0 (mmdet v2 FPN).
//   FPN<>({.in_channels = {256, 512, 1024, 2048}, .out_channels = 256, .num_outs = 5})
#include <optional>
#include <vector>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/module.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/max_pool2d.hpp"
#include "gcnet/layers/upsample_nearest.hpp"
#include "gcnet/models/feature_maps.hpp"

namespace gcnet {

struct FPNOptions {
  std::vector<index_t> in_channels;
  index_t out_channels = 256;
  index_t num_outs = 5;
};

template <Scalar T = float, Backend B = Cpu>
class FPN {
 public:
  using value_type = T;
  using backend_type = B;
  using tensor_type = Tensor<T, B>;
  using input_type = FeatureMaps<T, B>;
  using output_type = std::vector<Tensor<T, B>>;

  explicit FPN(const FPNOptions& o) : o_(o) {
    const std::size_t L = o.in_channels.size();
    GCNET_CHECK(L > 0, describe(), ": in_channels is empty");
    GCNET_CHECK(o.out_channels > 0, describe(), ": out_channels must be positive, got ", o.out_channels);
    GCNET_CHECK(o.num_outs >= static_cast<index_t>(L), describe(), ": num_outs (", o.num_outs,
                ") must be at least the number of inputs (", L, ")");
    for (index_t c : o.in_channels) GCNET_CHECK(c > 0, describe(), ": in_channels must be positive, got ", c);
    for (std::size_t i = 0; i < L; ++i) {
      lateral_.emplace_back(Conv2dOptions{.in = o.in_channels[i], .out = o.out_channels, .kernel = 1});
      fpn_.emplace_back(Conv2dOptions{.in = o.out_channels, .out = o.out_channels, .kernel = 3, .padding = 1});
      init::xavier_init(lateral_.back(), 1.0, 0.0, init::Distribution::Uniform);
      init::xavier_init(fpn_.back(), 1.0, 0.0, init::Distribution::Uniform);
    }
    up_.resize(L);
  }

  const FPNOptions& options() const { return o_; }
  std::size_t num_levels() const { return o_.in_channels.size(); }

  std::vector<Shape> setup(const std::vector<Shape>& ins) {
    GCNET_CHECK(ins.size() == num_levels(), describe(), ": expected ", num_levels(), " inputs, got ", ins.size());
    std::vector<Shape> outs;
    for (std::size_t i = 0; i < ins.size(); ++i) {
      require_nchw(ins[i], describe());
      GCNET_CHECK(ins[i].c() == o_.in_channels[i], describe(), ": expected input ", i, " with ", o_.in_channels[i],
                  " channels, got shape ", ins[i].str());
      GCNET_CHECK(ins[i].n() == ins[0].n(), describe(), ": input ", i, " of shape ", ins[i].str(),
                  " has a different batch size from input 0 of shape ", ins[0].str());
      outs.push_back(Shape{ins[i].n(), o_.out_channels, ins[i].h(), ins[i].w()});
    }
    for (auto k = static_cast<index_t>(ins.size()); k < o_.num_outs; ++k) {
      const Shape& p = outs.back();
      outs.push_back(Shape{p.n(), p.c(), (p.h() - 1) / 2 + 1, (p.w() - 1) / 2 + 1});
    }
    return outs;
  }

  std::vector<Shape> setup(const FeatureMaps<T, B>& ins) {
    std::vector<Shape> shapes;
    for (const auto& t : ins.defined()) shapes.push_back(t.shape());
    return setup(shapes);
  }

  // Training keeps the laterals and their upsampled copies for backward. Eval (no backward
  // expected) goes top-down one level at a time and keeps nothing: at most two laterals and
  // one upsampled map are alive; a backward after it replays the training forward first.
  void forward(const Context& ctx, const FeatureMaps<T, B>& maps, std::vector<tensor_type>& outs) {
    sync_mode(*this, ctx);
    const std::vector<tensor_type> ins = maps.defined();
    std::vector<Shape> shapes;
    for (const auto& t : ins) shapes.push_back(t.shape());
    setup(shapes);
    if (training_) forward_kept(ins, outs);
    else infer(ins, outs);
  }

  void backward(const Context& ctx, const FeatureMaps<T, B>& maps, const std::vector<tensor_type>& outs,
                const std::vector<tensor_type>& douts, FeatureMaps<T, B>& dmaps) {
    if (*inferred_) forward_kept(maps.defined(), *outs_again_);
    backward_kept(ctx, maps, outs, douts, dmaps);
    // Gradient scratch lives for one backward (not kept into the next step's forward).
    *outs_again_ = {};
    *glat_ = {};
    *gout_ = {};
  }

 private:
  void forward_kept(const std::vector<tensor_type>& ins, std::vector<tensor_type>& outs) {
    *inferred_ = false;
    const std::size_t L = num_levels();
    auto& lat = *lat_;
    lat.resize(L);
    for (std::size_t i = 0; i < L; ++i) lateral_[i].forward(ins[i], lat[i]);
    tensor_type up;  // not kept: the upsampling's backward needs its output's shape only
    for (std::size_t i = L - 1; i > 0; --i) {
      up_[i].emplace(UpsampleNearestOptions{.size = Size2(lat[i - 1].size(2), lat[i - 1].size(3))});
      up_[i]->forward(lat[i], up);
      add_into(lat[i - 1], up, "FPN");
    }
    outs.resize(static_cast<std::size_t>(o_.num_outs));
    for (std::size_t i = 0; i < L; ++i) fpn_[i].forward(lat[i], outs[i]);
    for (auto k = L; k < outs.size(); ++k) pool_.forward(outs[k - 1], outs[k]);
  }

  void infer(const std::vector<tensor_type>& ins, std::vector<tensor_type>& outs) {
    lat_->clear();
    const std::size_t L = num_levels();
    outs.resize(static_cast<std::size_t>(o_.num_outs));
    tensor_type upper, cur, up;
    for (std::size_t i = L; i-- > 0;) {
      lateral_[i].forward(ins[i], cur);
      if (i + 1 < L) {
        up_[i + 1].emplace(UpsampleNearestOptions{.size = Size2(cur.size(2), cur.size(3))});
        up_[i + 1]->forward(upper, up);
        add_into(cur, up, "FPN");
      }
      fpn_[i].forward(cur, outs[i]);
      upper = cur;
      cur = tensor_type();
    }
    for (auto k = L; k < outs.size(); ++k) pool_.forward(outs[k - 1], outs[k]);
    *inferred_ = true;
  }

  void backward_kept(const Context&, const FeatureMaps<T, B>& maps, const std::vector<tensor_type>& outs,
                     const std::vector<tensor_type>& douts, FeatureMaps<T, B>& dmaps) {
    const std::size_t L = num_levels(), K = static_cast<std::size_t>(o_.num_outs);
    GCNET_CHECK(douts.size() == K && outs.size() == K, describe(), ": backward got ", douts.size(),
                " output gradients for ", K, " outputs");
    const std::vector<tensor_type> ins = maps.defined();
    GCNET_CHECK(ins.size() == L && lat_->size() == L, describe(), ": backward needs the forward of these ", L,
                " inputs first");
    auto& lat = *lat_;
    auto& glat = *glat_;
    glat.resize(L);
    // The output gradients as given, except where the extra levels' max-pool adds to one:
    // those (the top level and the extra ones) are summed into copies.
    for (std::size_t k = 0; k < K; ++k)
      if (douts[k].defined())
        require_shape(douts[k], outs[k].shape(), describe(), ("output gradient douts[" + std::to_string(k) + "]").c_str());
    auto& gout = *gout_;
    gout.assign(K, tensor_type());
    for (std::size_t k = 0; k < K; ++k) {
      if (douts[k].defined() && k + 1 < L) {
        gout[k] = douts[k];  // shared, read only
        continue;
      }
      gout[k].resize(outs[k].shape());
      if (douts[k].defined()) copy(douts[k], gout[k]);
      else fill(gout[k], T(0));
    }
    for (std::size_t k = K; k-- > L;) pool_.backward(outs[k - 1], outs[k], gout[k], gout[k - 1]);
    for (std::size_t i = 0; i < L; ++i) {
      glat[i].resize(lat[i].shape());
      fill(glat[i], T(0));
      fpn_[i].backward(lat[i], outs[i], gout[i], glat[i]);
    }
    // laterals[i-1] = lateral(x[i-1]) + up(laterals[i]): going up, each level gets the
    // (complete) gradient of the level below through the upsampling.
    static_assert(UpsampleNearest<T, B>::backward_ignores_output);
    for (std::size_t i = 1; i < L; ++i) up_[i]->backward(lat[i], lat[i - 1], glat[i - 1], glat[i]);  // lat[i-1]: the output's shape
    // The input gradients go to the defined maps of dmaps, in the order of the inputs.
    std::size_t i = 0;
    for (int s = 0; s < 4; ++s) {
      if (!maps.stage(s).defined()) continue;
      tensor_type& d = dmaps.stage(s);
      if (d.defined()) {
        require_shape(d, ins[i].shape(), describe(), ("input gradient of level " + std::to_string(i)).c_str());
        lateral_[i].backward(ins[i], lat[i], glat[i], d);
      } else {  // not wanted: the lateral conv still needs its weight gradient
        lateral_[i].param_backward(ins[i], lat[i], glat[i]);
      }
      ++i;
    }
  }

 public:
  std::string describe() const {
    std::string s = "FPN(in_channels=[";
    for (std::size_t i = 0; i < o_.in_channels.size(); ++i) s += (i ? ", " : "") + std::to_string(o_.in_channels[i]);
    return s + "], out_channels=" + std::to_string(o_.out_channels) + ", num_outs=" + std::to_string(o_.num_outs) +
           ")";
  }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    for (std::size_t i = 0; i < lateral_.size(); ++i)
      lateral_[i].visit_parameters(prefix + "lateral_convs." + std::to_string(i) + ".conv.", f);
    for (std::size_t i = 0; i < fpn_.size(); ++i)
      fpn_[i].visit_parameters(prefix + "fpn_convs." + std::to_string(i) + ".conv.", f);
  }
  void visit_buffers(const std::string&, const BufferVisitor<T, B>&) {}
  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }

  Conv2d<T, B>& lateral_conv(std::size_t i) { return lateral_[i]; }
  Conv2d<T, B>& fpn_conv(std::size_t i) { return fpn_[i]; }

 private:
  FPNOptions o_;
  std::vector<Conv2d<T, B>> lateral_, fpn_;
  std::vector<std::optional<UpsampleNearest<T, B>>> up_;
  MaxPool2d<T, B> pool_{MaxPool2dOptions{.kernel = 1, .stride = Size2(2)}};
  bool training_ = true;
  // Laterals (after the top-down additions) kept for backward, and gradient scratch.
  ScratchValue<std::vector<tensor_type>> lat_, glat_, gout_;
  ScratchValue<bool> inferred_;  // the last forward was the eval one, which kept nothing
  ScratchValue<std::vector<tensor_type>> outs_again_;  // a replay's outputs (equal to the eval's)
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(FPN)
}  // namespace gcnet
