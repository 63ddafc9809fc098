#pragma once
// SELayer<>: mmdet's squeeze-and-excitation block, spelled as a type. It IS
// GlobalContextBlock<T, B> (global_context.hpp) built from se_options(channels, ratio); it adds
// only a constructor.
//   context modeling   average pooling
//   transform          conv C->int(C/ratio) + ReLU, conv -> C     (ConvModules with bias)
//   fusion             mul: y = x * sigmoid(.)
// Init as mmdet ConvModule: kaiming normal fan_out 'relu', bias 0.
// State dict: conv1.conv.weight/bias, conv2.conv.weight/bias.
#include "gcnet/blocks/global_context.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class SELayer : public GlobalContextBlock<T, B> {
 public:
  explicit SELayer(index_t channels, index_t ratio = 16) : GlobalContextBlock<T, B>(se_options(channels, ratio)) {}
};

}  // namespace gcnet
