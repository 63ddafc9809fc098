#pragma once
// GCBlock<Ratio, Fusion>: mmcv's ContextBlock (GCNet), spelled as a type. It IS
// GlobalContextBlock<T, B> (global_context.hpp) with the ratio and fusion fixed from the template
// arguments: it adds only a constructor, so every GCBlock<R, F, T, B> shares the one block's
// member functions (ratio, pooling and fusion are runtime values there).
//   context modeling   attention pooling (conv_mask C->1 + softmax over H*W) or average pooling
//   transform          per fusion branch: conv C->P, LayerNorm([P,1,1]), ReLU, conv P->C,
//                      P = int(C * Ratio)
//   fusion             add (channel_add_conv), mul (x * sigmoid(channel_mul_conv)) or both
// Init as mmcv: conv_mask kaiming normal fan_in (bias 0), first branch conv PyTorch default,
// LayerNorm 1/0, the last conv of each branch zeros: add fusion is the identity at init and
// mul fusion halves x.
//   GCBlock<std::ratio<1, 16>, fusion::Add>(256, Pooling::Attention)
//   == GlobalContextBlock<>(gc_options(256, {1, 16}, Pooling::Attention, Fusion::Add))
#include <ratio>

#include "gcnet/blocks/global_context.hpp"

namespace gcnet {

template <class R>
concept StdRatio = requires {
  { R::num } -> std::convertible_to<std::intmax_t>;
  { R::den } -> std::convertible_to<std::intmax_t>;
};

template <StdRatio Ratio = std::ratio<1, 16>, fusion::Tag Fusion = fusion::Add, Scalar T = float, Backend B = Cpu>
class GCBlock : public GlobalContextBlock<T, B> {
 public:
  explicit GCBlock(index_t channels, Pooling pooling = Pooling::Attention)
      : GlobalContextBlock<T, B>(gc_options(channels, {Ratio::num, Ratio::den}, pooling, Fusion::value)) {}
};

}  // namespace gcnet
