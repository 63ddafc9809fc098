#pragma once
// FPN as mmdet's (neck, default options: start_level 0, no extra convs, no norm/activation):
//   laterals[i] = lateral_convs[i](ins[i])                             1x1 conv, bias
//   for i = L-1 .. 1: laterals[i-1] += interpolate(laterals[i], size=laterals[i-1].shape, 'nearest')
//   outs[i] = fpn_convs[i](laterals[i])                                3x3 conv, padding 1, bias
//   outs[L..num_outs) = max_pool2d(outs[-1], kernel 1, stride 2)     extra levels
// Multi-input / multi-output: forward(ins, outs), backward(ins, douts, dins) (dins accumulate;
// an undefined douts[k] means no gradient). Names lateral_convs.i.conv.weight / .bias and
// fpn_convs.i.conv.* (a detector adds "neck."). Init: xavier uniform, bias 0 (mmdet v2 FPN).
//   FPN<>({.in_channels = {256, 512, 1024, 2048}, .out_channels = 256, .num_outs = 5})
#include <optional>
#include <vector>

#include "gcnet/core/layer.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/max_pool2d.hpp"
#include "gcnet/layers/upsample_nearest.hpp"

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
    lat_.resize(L);
    up_.resize(L);
    up_out_.resize(L);
    glat_.resize(L);
    gout_.resize(static_cast<std::size_t>(o.num_outs));
    pool_out_.resize(static_cast<std::size_t>(o.num_outs));
    gtmp_.resize(L);
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

  void forward(const std::vector<tensor_type>& ins, std::vector<tensor_type>& outs) {
    std::vector<Shape> shapes;
    for (const auto& t : ins) shapes.push_back(t.shape());
    setup(shapes);
    const std::size_t L = num_levels();
    for (std::size_t i = 0; i < L; ++i) lateral_[i].forward(ins[i], lat_[i]);
    for (std::size_t i = L - 1; i > 0; --i) {
      up_[i].emplace(UpsampleNearestOptions{.size = Size2(lat_[i - 1].size(2), lat_[i - 1].size(3))});
      up_[i]->forward(lat_[i], up_out_[i]);
      add_into(lat_[i - 1], up_out_[i], "FPN");
    }
    outs.resize(static_cast<std::size_t>(o_.num_outs));
    for (std::size_t i = 0; i < L; ++i) fpn_[i].forward(lat_[i], outs[i]);
    for (auto k = L; k < outs.size(); ++k) pool_.forward(outs[k - 1], outs[k]);
    outs_ = outs;  // shallow: the same storage, kept for backward
  }

  void backward(const std::vector<tensor_type>& ins, const std::vector<tensor_type>& douts,
                std::vector<tensor_type>& dins) {
    const std::size_t L = num_levels(), K = static_cast<std::size_t>(o_.num_outs);
    GCNET_CHECK(douts.size() == K, describe(), ": backward got ", douts.size(), " output gradients for ", K,
                " outputs");
    GCNET_CHECK(dins.size() == L && ins.size() == L, describe(), ": backward needs ", L, " inputs and gradients");
    for (std::size_t k = 0; k < K; ++k) {
      gout_[k].resize(outs_[k].shape());
      if (douts[k].defined()) {
        require_shape(douts[k], outs_[k].shape(), describe(), ("output gradient douts[" + std::to_string(k) + "]").c_str());
        copy(douts[k], gout_[k]);
      } else {
        fill(gout_[k], T(0));
      }
    }
    for (std::size_t k = K; k-- > L;) pool_.backward(outs_[k - 1], outs_[k], gout_[k], gout_[k - 1]);
    for (std::size_t i = 0; i < L; ++i) {
      glat_[i].resize(lat_[i].shape());
      fill(glat_[i], T(0));
      fpn_[i].backward(lat_[i], outs_[i], gout_[i], glat_[i]);
    }
    // laterals[i-1] = lateral(x[i-1]) + up(laterals[i]): going up, each level gets the
    // (complete) gradient of the level below through the upsampling.
    for (std::size_t i = 1; i < L; ++i) up_[i]->backward(lat_[i], up_out_[i], glat_[i - 1], glat_[i]);
    for (std::size_t i = 0; i < L; ++i) {
      require_shape(dins[i], ins[i].shape(), describe(), ("input gradient dins[" + std::to_string(i) + "]").c_str());
      lateral_[i].backward(ins[i], lat_[i], glat_[i], dins[i]);
    }
  }

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
  void set_training(bool) {}

  Conv2d<T, B>& lateral_conv(std::size_t i) { return lateral_[i]; }
  Conv2d<T, B>& fpn_conv(std::size_t i) { return fpn_[i]; }

 private:
  FPNOptions o_;
  std::vector<Conv2d<T, B>> lateral_, fpn_;
  std::vector<std::optional<UpsampleNearest<T, B>>> up_;
  MaxPool2d<T, B> pool_{MaxPool2dOptions{.kernel = 1, .stride = Size2(2)}};
  std::vector<tensor_type> lat_, up_out_, glat_, gout_, pool_out_, gtmp_, outs_;
};

}  // namespace gcnet
