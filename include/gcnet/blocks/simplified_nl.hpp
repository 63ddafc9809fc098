#pragma once
// SimplifiedNL<>: the GCNet paper's simplified non-local block (Sec. 3.2), spelled as a type. It
// IS GlobalContextBlock<T, B> (global_context.hpp) built from snl_options(channels); it adds
// only a constructor.
//   context modeling   attention pooling (conv_mask C->1 + softmax over H*W)
//   transform          one 1x1 conv C->C (with bias)
//   fusion             add
// State dict (our choice, mirroring mmcv ContextBlock): conv_mask.weight/bias,
// transform.weight/bias. Init: conv_mask kaiming normal fan_in, transform zeros, so the block
// is the identity at init like GC's add branch.
#include "gcnet/blocks/global_context.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class SimplifiedNL : public GlobalContextBlock<T, B> {
 public:
  explicit SimplifiedNL(index_t channels) : GlobalContextBlock<T, B>(snl_options(channels)) {}
};

}  // namespace gcnet
