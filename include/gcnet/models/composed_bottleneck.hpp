#pragma once
// mmdet's ResNet Bottleneck written with the combinators (Seq, Residual), to show them at
// work on a block everybody knows:
//   conv1 1x1 -> bn1 -> relu -> conv2 3x3/stride -> bn2 -> relu -> conv3 1x1 -> bn3
//   (+ downsample(x): 1x1/stride conv -> BN, when the shape changes), then ReLU.
// State-dict names are mmdet's: conv1.weight, bn1.running_mean, downsample.0.weight, ...
// The backbones use ResBottleneck (models/res_block.hpp), the same block with plugins, the
// eval-mode BatchNorm folding and the memory planning; tests/layers/test_bottleneck.cpp checks
// both against one PyTorch fixture.
#include "gcnet/compose/residual.hpp"
#include "gcnet/compose/seq.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/relu.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
using ComposedBottleneckBody = Seq<Conv2d<T, B>, BatchNorm2d<T, B>, ReLU<T, B>,   // 1x1 reduce
                                   Conv2d<T, B>, BatchNorm2d<T, B>, ReLU<T, B>,   // 3x3 (strided)
                                   Conv2d<T, B>, BatchNorm2d<T, B>>;              // 1x1 expand
template <Scalar T = float, Backend B = Cpu>
using ConvBn = Seq<Conv2d<T, B>, BatchNorm2d<T, B>>;

// A block whose input and output shapes agree (identity shortcut) ...
template <Scalar T = float, Backend B = Cpu>
using ComposedBottleneck = Seq<Residual<ComposedBottleneckBody<T, B>>, ReLU<T, B>>;
// ... and the first block of a stage, with a projection shortcut.
template <Scalar T = float, Backend B = Cpu>
using ComposedBottleneckDown = Seq<Residual<ComposedBottleneckBody<T, B>, ConvBn<T, B>>, ReLU<T, B>>;

inline constexpr index_t kComposedBottleneckExpansion = 4;

template <Scalar T = float, Backend B = Cpu>
ComposedBottleneckBody<T, B> make_composed_bottleneck_body(index_t inplanes, index_t planes, index_t stride) {
  const index_t out = planes * kComposedBottleneckExpansion;
  return ComposedBottleneckBody<T, B>{Conv2d<T, B>({.in = inplanes, .out = planes, .kernel = 1, .bias = false}),
                              BatchNorm2d<T, B>(planes), ReLU<T, B>(),
                              Conv2d<T, B>({.in = planes, .out = planes, .kernel = 3, .stride = stride,
                                            .padding = 1, .bias = false}),
                              BatchNorm2d<T, B>(planes), ReLU<T, B>(),
                              Conv2d<T, B>({.in = planes, .out = out, .kernel = 1, .bias = false}),
                              BatchNorm2d<T, B>(out)}
      .named({"conv1", "bn1", "relu", "conv2", "bn2", "relu", "conv3", "bn3"});
}

// Bottleneck(inplanes = planes * 4, planes): identity shortcut.
template <Scalar T = float, Backend B = Cpu>
ComposedBottleneck<T, B> make_composed_bottleneck(index_t inplanes, index_t planes) {
  GCNET_CHECK(inplanes == planes * kComposedBottleneckExpansion, "ComposedBottleneck(", inplanes, ", ", planes,
              "): an identity shortcut needs inplanes == 4 * planes; use make_composed_bottleneck_down");
  return ComposedBottleneck<T, B>{Residual<ComposedBottleneckBody<T, B>>(make_composed_bottleneck_body<T, B>(inplanes, planes, 1)),
                          ReLU<T, B>()}
      .named({"", "relu"});
}

// Bottleneck with a 1x1/stride conv + BN shortcut named "downsample".
template <Scalar T = float, Backend B = Cpu>
ComposedBottleneckDown<T, B> make_composed_bottleneck_down(index_t inplanes, index_t planes, index_t stride) {
  const index_t out = planes * kComposedBottleneckExpansion;
  ConvBn<T, B> down{Conv2d<T, B>({.in = inplanes, .out = out, .kernel = 1, .stride = stride, .bias = false}),
                    BatchNorm2d<T, B>(out)};
  return ComposedBottleneckDown<T, B>{
      Residual<ComposedBottleneckBody<T, B>, ConvBn<T, B>>(make_composed_bottleneck_body<T, B>(inplanes, planes, stride),
                                                    std::move(down)),
      ReLU<T, B>()}
      .named({"", "relu"});
}

}  // namespace gcnet
