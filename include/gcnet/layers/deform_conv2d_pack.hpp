#pragma once
// The mmdet 'DCN' / 'DCNv2' layers (mmcv DeformConv2dPack / ModulatedDeformConv2dPack):
// single-input Layers that predict their own offsets (and mask) with an internal
// conv_offset = Conv2d(in, dg*2*kh*kw (v1) or dg*3*kh*kw (v2), same kernel, stride, padding,
// dilation, bias), zero-initialized, so that at initialization
//   DeformConv2dPack          = a plain convolution with the same weight,
//   ModulatedDeformConv2dPack = 0.5 * that convolution + bias (mask = sigmoid(0)).
// v2 splits conv_offset's output o into thirds (o1, o2, m): offset = cat(o1, o2) = o's first
// two thirds, mask = sigmoid(m).
// State-dict names: weight, bias (if opts.bias), conv_offset.weight, conv_offset.bias.
//   DeformConv2dPack<> dcn({.in = 256, .out = 256, .kernel = 3, .padding = 1});
// Backward recomputes conv_offset's output (cheap next to the deformable convolution), so it
// does not depend on which input the last forward saw.
#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/deform_conv2d.hpp"
#include "gcnet/layers/sigmoid.hpp"

namespace gcnet {

namespace detail {
inline Conv2dOptions conv_offset_options(const DeformConv2dOptions& o, index_t out) {
  return {.in = o.in, .out = out, .kernel = o.kernel, .stride = o.stride, .padding = o.padding,
          .dilation = o.dilation, .groups = 1, .bias = true};
}

// The pack's own input check, so that errors name the pack rather than its inner op.
inline void check_pack_input(const std::string& who, const Shape& in, index_t channels) {
  require_nchw(in, who);
  GCNET_CHECK(in.c() == channels, who, ": expected input with ", channels, " channels, got shape ", in.str());
}

template <class T, class B>
void zero_conv(Conv2d<T, B>& conv) {
  fill(conv.weight().value, T(0));
  fill(conv.bias()->value, T(0));
}

// raw [n, 3 * mc, P] -> offset [n, 2 * mc, P] (its first two thirds), mask [n, mc, P] = sigmoid(last third).
template <class T, class B>
void split_offset_mask(B, const T* raw, index_t n, index_t mc, index_t P, T* offset, T* mask) {
  for_each_index(B{}, n * 3 * mc * P, [=] GCNET_HD(index_t e) {
    const index_t b = e / (3 * mc * P), r = e % (3 * mc * P);
    if (r < 2 * mc * P) offset[b * 2 * mc * P + r] = raw[e];
    else mask[b * mc * P + (r - 2 * mc * P)] = stable_sigmoid(raw[e]);
  });
}

// draw = [doffset, dmask * mask * (1 - mask)] (assigned), the adjoint of split_offset_mask.
template <class T, class B>
void join_offset_mask_grad(B, const T* doffset, const T* dmask, const T* mask, index_t n, index_t mc, index_t P,
                           T* draw) {
  for_each_index(B{}, n * 3 * mc * P, [=] GCNET_HD(index_t e) {
    const index_t b = e / (3 * mc * P), r = e % (3 * mc * P);
    if (r < 2 * mc * P) {
      draw[e] = doffset[b * 2 * mc * P + r];
    } else {
      const index_t k = b * mc * P + (r - 2 * mc * P);
      draw[e] = dmask[k] * mask[k] * (T(1) - mask[k]);
    }
  });
}
}  // namespace detail

// mmdet 'DCN'.
template <Scalar T = float, Backend B = Cpu>
class DeformConv2dPack {
 public:
  using value_type = T;
  using backend_type = B;
  using Options = DeformConv2dOptions;

  explicit DeformConv2dPack(const DeformConv2dOptions& o)
      : dcn_(o), conv_offset_(detail::conv_offset_options(o, dcn_.offset_channels())) {
    detail::zero_conv(conv_offset_);
  }

  DeformConv2d<T, B>& deform_conv() { return dcn_; }
  Conv2d<T, B>& conv_offset() { return conv_offset_; }
  Param<T, B>& weight() { return dcn_.weight(); }

  Shape setup(const Shape& in) {
    detail::check_pack_input(describe(), in, dcn_.options().in);
    return dcn_.setup(in);
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    y.resize(setup(x.shape()));
    conv_offset_.forward(x, offset_);
    dcn_.forward(x, offset_, y);
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    conv_offset_.forward(x, offset_);
    doffset_.resize(offset_.shape());
    fill(doffset_, T(0));
    dcn_.backward(x, offset_, y, dy, dx, doffset_);
    conv_offset_.backward(x, offset_, doffset_, dx);
  }

  std::string describe() const {
    std::string s = dcn_.describe();
    return "DeformConv2dPack" + s.substr(s.find('('));
  }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    dcn_.visit_parameters(prefix, f);
    conv_offset_.visit_parameters(prefix + "conv_offset.", f);
  }

 private:
  DeformConv2d<T, B> dcn_;
  Conv2d<T, B> conv_offset_;
  ScratchTensor<T, B> offset_, doffset_;
};

// mmdet 'DCNv2'.
template <Scalar T = float, Backend B = Cpu>
class ModulatedDeformConv2dPack {
 public:
  using value_type = T;
  using backend_type = B;
  using Options = DeformConv2dOptions;

  explicit ModulatedDeformConv2dPack(const DeformConv2dOptions& o)
      : dcn_(o), conv_offset_(detail::conv_offset_options(o, 3 * dcn_.mask_channels())) {
    detail::zero_conv(conv_offset_);
  }

  ModulatedDeformConv2d<T, B>& deform_conv() { return dcn_; }
  Conv2d<T, B>& conv_offset() { return conv_offset_; }
  Param<T, B>& weight() { return dcn_.weight(); }

  Shape setup(const Shape& in) {
    detail::check_pack_input(describe(), in, dcn_.options().in);
    return dcn_.setup(in);
  }

  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) {
    y.resize(setup(x.shape()));
    offset_and_mask(x);
    dcn_.forward(x, offset_, mask_, y);
  }

  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    offset_and_mask(x);
    doffset_.resize(offset_.shape());
    dmask_.resize(mask_.shape());
    fill(doffset_, T(0));
    fill(dmask_, T(0));
    dcn_.backward(x, offset_, mask_, y, dy, dx, doffset_, dmask_);
    draw_.resize(raw_.shape());
    const index_t mc = dcn_.mask_channels(), P = raw_.size(2) * raw_.size(3);
    detail::join_offset_mask_grad(B{}, doffset_.data(), dmask_.data(), mask_.data(), x.size(0), mc, P, draw_.data());
    conv_offset_.backward(x, raw_, draw_, dx);
  }

  std::string describe() const {
    std::string s = dcn_.describe();
    return "ModulatedDeformConv2dPack" + s.substr(s.find('('));
  }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    dcn_.visit_parameters(prefix, f);
    conv_offset_.visit_parameters(prefix + "conv_offset.", f);
  }

 private:
  void offset_and_mask(const Tensor<T, B>& x) {
    conv_offset_.forward(x, raw_);
    const index_t n = x.size(0), mc = dcn_.mask_channels(), h = raw_.size(2), w = raw_.size(3);
    offset_.resize(Shape{n, 2 * mc, h, w});
    mask_.resize(Shape{n, mc, h, w});
    detail::split_offset_mask(B{}, raw_.data(), n, mc, h * w, offset_.data(), mask_.data());
  }

  ModulatedDeformConv2d<T, B> dcn_;
  Conv2d<T, B> conv_offset_;
  ScratchTensor<T, B> raw_, offset_, mask_, draw_, doffset_, dmask_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(DeformConv2dPack)
GCNET_EXTERN_CLASS(ModulatedDeformConv2dPack)
}  // namespace gcnet
