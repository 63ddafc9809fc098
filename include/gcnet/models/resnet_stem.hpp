#pragma once
// The ResNet stem, before layer1 (mmdet ResNet):
//   ResNetStem   conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2          (names conv1.*, bn1.*)
//   DeepStem     [conv 3x3/2 in->s/2, norm, relu, conv s/2->s/2, norm, relu, conv s/2->s, norm, relu]
//                -> maxpool (ResNetV1c / V1d; names stem.0.weight, stem.1.*, stem.3.weight, ...)
#include "gcnet/compose/seq.hpp"
#include "gcnet/core/module_init.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/max_pool2d.hpp"
#include "gcnet/layers/relu.hpp"

namespace gcnet {

template <class Norm>
using ResNetStem = Seq<Conv2d<typename Norm::value_type, typename Norm::backend_type>, Norm,
                       ReLU<typename Norm::value_type, typename Norm::backend_type>,
                       MaxPool2d<typename Norm::value_type, typename Norm::backend_type>>;

template <class Norm>
using DeepStemConvs = Seq<Conv2d<typename Norm::value_type, typename Norm::backend_type>, Norm,
                          ReLU<typename Norm::value_type, typename Norm::backend_type>,
                          Conv2d<typename Norm::value_type, typename Norm::backend_type>, Norm,
                          ReLU<typename Norm::value_type, typename Norm::backend_type>,
                          Conv2d<typename Norm::value_type, typename Norm::backend_type>, Norm,
                          ReLU<typename Norm::value_type, typename Norm::backend_type>>;
template <class Norm>
using DeepResNetStem = Seq<DeepStemConvs<Norm>, MaxPool2d<typename Norm::value_type, typename Norm::backend_type>>;

namespace detail {
template <class Conv>
Conv stem_conv(index_t in, index_t out, index_t kernel, index_t stride) {
  Conv c(Conv2dOptions{.in = in, .out = out, .kernel = kernel, .stride = stride, .padding = kernel / 2, .bias = false});
  init::kaiming_init(c);
  return c;
}
}  // namespace detail

template <class Norm>
ResNetStem<Norm> make_resnet_stem(index_t in_channels, index_t stem_channels) {
  using T = typename Norm::value_type;
  using B = typename Norm::backend_type;
  return ResNetStem<Norm>{detail::stem_conv<Conv2d<T, B>>(in_channels, stem_channels, 7, 2), Norm(stem_channels),
                          ReLU<T, B>(), MaxPool2d<T, B>({.kernel = 3, .stride = Size2(2), .padding = 1})}
      .named({"conv1", "bn1", "relu", "maxpool"});
}

template <class Norm>
DeepResNetStem<Norm> make_deep_resnet_stem(index_t in_channels, index_t stem_channels) {
  using T = typename Norm::value_type;
  using B = typename Norm::backend_type;
  using C = Conv2d<T, B>;
  const index_t half = stem_channels / 2;
  GCNET_CHECK(half > 0, "DeepResNetStem: stem_channels must be at least 2, got ", stem_channels);
  auto convs = DeepStemConvs<Norm>{
      detail::stem_conv<C>(in_channels, half, 3, 2), Norm(half), ReLU<T, B>(),
      detail::stem_conv<C>(half, half, 3, 1), Norm(half), ReLU<T, B>(),
      detail::stem_conv<C>(half, stem_channels, 3, 1), Norm(stem_channels), ReLU<T, B>()};
  return DeepResNetStem<Norm>{std::move(convs), MaxPool2d<T, B>({.kernel = 3, .stride = Size2(2), .padding = 1})}
      .named({"stem", "maxpool"});
}

}  // namespace gcnet
