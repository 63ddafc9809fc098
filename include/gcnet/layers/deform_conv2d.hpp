#pragma once
// Deformable convolution as mmcv's ops (reference §7; identical to torchvision 0.14's
// deform_conv2d):
//   DeformConv2d           (DCNv1)  y = conv(x sampled at offsets)
//   ModulatedDeformConv2d  (DCNv2)  y = conv(x sampled at offsets, times mask)
// Both take the offsets (and mask) as extra inputs, so they are two-/three-input ops rather
// than single-input Layers; the mmdet 'DCN'/'DCNv2' layers that compute them from x are in
// deform_conv2d_pack.hpp.
//   DeformConv2d<> dcn({.in = 256, .out = 256, .kernel = 3, .padding = 1, .deform_groups = 1});
//   dcn.forward(x, offset, y);                       offset [N, dg*2*kh*kw, Ho, Wo], (dy, dx) per tap
//   dcn.backward(x, offset, y, dy, dx, doffset);     dx and doffset ACCUMULATE; weight/bias grads assigned
//   ModulatedDeformConv2d<> m(...);  m.forward(x, offset, mask, y);   mask [N, dg*kh*kw, Ho, Wo]
//   m.backward(x, offset, mask, y, dy, dx, doffset, dmask);
// Weight [out, in / groups, kh, kw] (init: v1 kaiming_uniform(a=0, relu) like mmcv's
// DeformConv2d, v2 U(-1/sqrt(in*kh*kw), +) with bias 0 like ModulatedDeformConv2d).
//
// Computation per image: sampling table, deformable im2col into a column buffer, one GEMM per
// group (kernels/deform_im2col.hpp). Backward per image: columns again (for dW), dcol = W^T dy
// by GEMM, then a channel-parallel scatter into dx and an entry-parallel pass for the offset
// and mask gradients; both deterministic (no atomics, fixed summation order).
#include <cmath>
#include <cstdint>
#include <string>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/state.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/kernels/channel_bias.hpp"
#include "gcnet/kernels/deform_im2col.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/kernels/gemm_across_threads.hpp"
#include "gcnet/layers/conv_common.hpp"

namespace gcnet {

struct DeformConv2dOptions {
  index_t in = 0, out = 0;
  Size2 kernel = 0, stride = 1, padding = 0, dilation = 1;
  index_t groups = 1, deform_groups = 1;
  bool bias = false;
};

namespace detail {

// What DeformConv2d and ModulatedDeformConv2d share: options, parameters, shape checks and
// the forward/backward passes with an optional mask.
template <Scalar T, Backend B>
class DeformConvEngine {
 public:
  using value_type = T;
  using backend_type = B;

  const DeformConv2dOptions& options() const { return o_; }
  Param<T, B>& weight() { return weight_; }
  Param<T, B>* bias() { return o_.bias ? &bias_ : nullptr; }
  index_t kernel_area() const { return o_.kernel.h * o_.kernel.w; }
  // Channels of the offset tensor (dg * 2 * kh * kw) and of the mask (dg * kh * kw).
  index_t offset_channels() const { return o_.deform_groups * 2 * kernel_area(); }
  index_t mask_channels() const { return o_.deform_groups * kernel_area(); }

  // Validates the input shape and returns the output shape.
  Shape setup(const Shape& in) const {
    return detail::conv_output_shape(describe(), in, o_.in, o_.out, o_.kernel, o_.stride, o_.padding, o_.dilation);
  }
  Shape offset_shape(const Shape& in) const {
    const Shape out = setup(in);
    return Shape{in.n(), offset_channels(), out.h(), out.w()};
  }
  Shape mask_shape(const Shape& in) const {
    const Shape out = setup(in);
    return Shape{in.n(), mask_channels(), out.h(), out.w()};
  }

  std::string describe() const {
    std::string s = describe_conv(name_, o_.in, o_.out, o_.kernel, o_.stride, o_.padding, Size2(0), o_.dilation,
                                  o_.groups, o_.bias);
    if (o_.deform_groups != 1) s.insert(s.size() - 1, ", deform_groups=" + std::to_string(o_.deform_groups));
    return s;
  }

  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) {
    f(prefix + "weight", weight_);
    if (o_.bias) f(prefix + "bias", bias_);
  }

 protected:
  DeformConvEngine(const char* name, const DeformConv2dOptions& o) : name_(name), o_(o) {
    check_conv_options(describe(), o.in, o.out, o.kernel, o.stride, o.padding, o.dilation, o.groups);
    GCNET_CHECK(o.deform_groups > 0, describe(), ": deform_groups must be positive, got ", o.deform_groups);
    GCNET_CHECK(o.in % o.deform_groups == 0, describe(), ": in channels (", o.in,
                ") must be divisible by deform_groups (", o.deform_groups, ")");
  }

  // Stores the weight (and a zero bias) from an initialized host weight.
  void set_initial(const Tensor<T, Cpu>& w) {
    weight_.set(w);
    if (o_.bias) {
      Tensor<T, Cpu> b(Shape{o_.out});
      init::constant(b, 0.0);
      bias_.set(b);
    }
  }
  Shape weight_shape() const { return Shape{o_.out, o_.in / o_.groups, o_.kernel.h, o_.kernel.w}; }

  // Checks x, offset and (if given) mask; returns the output shape.
  Shape check_inputs(const Tensor<T, B>& x, const Tensor<T, B>& offset, const Tensor<T, B>* mask) const {
    const Shape out = setup(x.shape());
    const Shape os{x.size(0), offset_channels(), out.h(), out.w()};
    GCNET_CHECK(offset.shape() == os, describe(), ": offset tensor must have shape ", os.str(),
                " ([N, deform_groups*2*kh*kw, out_h, out_w] for input ", x.shape().str(), "), got ",
                offset.shape().str());
    require_contiguous(x, describe(), "input");
    require_contiguous(offset, describe(), "offset");
    if (mask) {
      const Shape ms{x.size(0), mask_channels(), out.h(), out.w()};
      GCNET_CHECK(mask->shape() == ms, describe(), ": mask tensor must have shape ", ms.str(),
                  " ([N, deform_groups*kh*kw, out_h, out_w] for input ", x.shape().str(), "), got ",
                  mask->shape().str());
      require_contiguous(*mask, describe(), "mask");
    }
    return out;
  }

  void run_forward(const Tensor<T, B>& x, const Tensor<T, B>& offset, const Tensor<T, B>* mask, Tensor<T, B>& y) {
    y.resize(check_inputs(x, offset, mask));
    configure(x.shape(), y.shape());
    const index_t n = x.size(0), P = g_.positions(), K = kernel_area();
    const index_t mg = o_.out / o_.groups, kg = o_.in / o_.groups * K;
    const T* w = weight_.value.data();
    for (index_t b = 0; b < n; ++b) {
      sample(x, offset, mask, b);
      T* yb = y.data() + b * o_.out * P;
      for (index_t q = 0; q < o_.groups; ++q)
        gemm_across_threads(B{}, blas::Op::N, blas::Op::N, mg, P, kg, T(1), w + q * mg * kg, kg,
                            col_.data() + q * kg * P, P, T(0), yb + q * mg * P, P);
    }
    if (o_.bias) add_channel_bias(B{}, y.data(), bias_.value.data(), n, o_.out, P);
  }

  void run_backward(const Tensor<T, B>& x, const Tensor<T, B>& offset, const Tensor<T, B>* mask,
                    const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx, Tensor<T, B>& doffset,
                    Tensor<T, B>* dmask) {
    check_backward_args(describe(), x, y, dy, dx);
    check_inputs(x, offset, mask);
    require_shape(y, setup(x.shape()), describe(), "output y");
    require_shape(doffset, offset.shape(), describe(), "offset gradient doffset");
    require_contiguous(doffset, describe(), "offset gradient doffset");
    if (mask) {
      GCNET_CHECK(dmask != nullptr, describe(), ": backward needs a mask gradient tensor");
      require_shape(*dmask, mask->shape(), describe(), "mask gradient dmask");
      require_contiguous(*dmask, describe(), "mask gradient dmask");
    }
    configure(x.shape(), y.shape());
    const index_t n = x.size(0), P = g_.positions(), K = kernel_area(), HW = g_.image_size();
    const index_t mg = o_.out / o_.groups, kg = o_.in / o_.groups * K;
    const T* w = weight_.value.data();
    T* dw = weight_.grad.data();
    dcol_.resize(Shape{o_.in * K * P});
    for (index_t b = 0; b < n; ++b) {
      sample(x, offset, mask, b);
      const T* dyb = dy.data() + b * o_.out * P;
      for (index_t q = 0; q < o_.groups; ++q) {
        const T* dyq = dyb + q * mg * P;
        // dW_q (=, then +=) dy_q . col_q^T, summed over images in order; dcol_q = W_q^T . dy_q.
        gemm_across_threads(B{}, blas::Op::N, blas::Op::T, mg, kg, P, T(1), dyq, P, col_.data() + q * kg * P, P,
                            b == 0 ? T(0) : T(1), dw + q * mg * kg, kg);
        gemm_across_threads(B{}, blas::Op::T, blas::Op::N, kg, P, mg, T(1), w + q * mg * kg, kg, dyq, P, T(0),
                            dcol_.data() + q * kg * P, P);
      }
      const auto* table = sample_table();
      deform_col2im_add(B{}, g_, o_.deform_groups, dcol_.data(), table, dx.data() + b * o_.in * HW);
      deform_coordinate_grad(B{}, g_, o_.deform_groups, x.data() + b * o_.in * HW, dcol_.data(), table,
                             doffset.data() + b * offset_channels() * P,
                             mask ? dmask->data() + b * mask_channels() * P : nullptr);
    }
    if (o_.bias) channel_sum(B{}, dy.data(), bias_.grad.data(), n, o_.out, P);
  }

  Param<T, B> weight_, bias_;

 private:
  void configure(const Shape& in, const Shape& out) {
    g_ = conv_geometry(o_.in, in.h(), in.w(), o_.kernel, o_.stride, o_.padding, o_.dilation, out.h(), out.w());
    const index_t entries = o_.deform_groups * kernel_area() * g_.positions();
    // The table lives in 8-byte words so DeformSample's index_t members stay aligned.
    table_.resize(Shape{(entries * static_cast<index_t>(sizeof(DeformSample<T>)) + 7) / 8});
    col_.resize(Shape{o_.in * kernel_area() * g_.positions()});
  }
  DeformSample<T>* sample_table() { return reinterpret_cast<DeformSample<T>*>(table_.data()); }

  // The sampling table and column buffer of image b.
  void sample(const Tensor<T, B>& x, const Tensor<T, B>& offset, const Tensor<T, B>* mask, index_t b) {
    const index_t P = g_.positions();
    deform_sample_table(B{}, g_, o_.deform_groups, offset.data() + b * offset_channels() * P,
                        mask ? mask->data() + b * mask_channels() * P : static_cast<const T*>(nullptr),
                        sample_table());
    deform_im2col(B{}, g_, o_.deform_groups, x.data() + b * o_.in * g_.image_size(), sample_table(), col_.data());
  }

  const char* name_;
  DeformConv2dOptions o_;
  ConvGeometry g_;
  ScratchTensor<std::int64_t, B> table_;  // DeformSample<T>[dg * K * P] of the current image
  ScratchTensor<T, B> col_, dcol_;        // [in * K, P] columns and their gradient
};

}  // namespace detail

// DCNv1 (mmcv DeformConv2d; bias allowed here, mmcv requires it off).
template <Scalar T = float, Backend B = Cpu>
class DeformConv2d : public detail::DeformConvEngine<T, B> {
  using Engine = detail::DeformConvEngine<T, B>;

 public:
  using Options = DeformConv2dOptions;

  explicit DeformConv2d(const DeformConv2dOptions& o) : Engine("DeformConv2d", o) {
    Tensor<T, Cpu> w(this->weight_shape());
    init::kaiming(w, 0.0, init::FanMode::FanIn, "relu", init::Distribution::Uniform);
    this->set_initial(w);
  }

  void forward(const Tensor<T, B>& x, const Tensor<T, B>& offset, Tensor<T, B>& y) {
    this->run_forward(x, offset, nullptr, y);
  }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& offset, const Tensor<T, B>& y, const Tensor<T, B>& dy,
                Tensor<T, B>& dx, Tensor<T, B>& doffset) {
    this->run_backward(x, offset, nullptr, y, dy, dx, doffset, nullptr);
  }
};

// DCNv2 (mmcv ModulatedDeformConv2d).
template <Scalar T = float, Backend B = Cpu>
class ModulatedDeformConv2d : public detail::DeformConvEngine<T, B> {
  using Engine = detail::DeformConvEngine<T, B>;

 public:
  using Options = DeformConv2dOptions;

  explicit ModulatedDeformConv2d(const DeformConv2dOptions& o) : Engine("ModulatedDeformConv2d", o) {
    Tensor<T, Cpu> w(this->weight_shape());
    const double bound = 1.0 / std::sqrt(static_cast<double>(o.in * o.kernel.h * o.kernel.w));
    init::uniform(w, -bound, bound);
    this->set_initial(w);
  }

  void forward(const Tensor<T, B>& x, const Tensor<T, B>& offset, const Tensor<T, B>& mask, Tensor<T, B>& y) {
    this->run_forward(x, offset, &mask, y);
  }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& offset, const Tensor<T, B>& mask, const Tensor<T, B>& y,
                const Tensor<T, B>& dy, Tensor<T, B>& dx, Tensor<T, B>& doffset, Tensor<T, B>& dmask) {
    this->run_backward(x, offset, &mask, y, dy, dx, doffset, &dmask);
  }
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(DeformConv2d)
GCNET_EXTERN_CLASS(ModulatedDeformConv2d)
}  // namespace gcnet
