#pragma once
// SimplifiedNL: the GCNet paper's simplified non-local block (Sec. 3.2) on the framework.
//   context modeling   attention pooling (conv_mask C->1 + softmax over H*W)
//   transform          one 1x1 conv C->C (with bias)
//   fusion             add
// State dict (our choice, mirroring mmcv ContextBlock): conv_mask.weight/bias,
// transform.weight/bias. Init: conv_mask kaiming normal fan_in, transform zeros, so the block
// is the identity at init like GC's add branch.
#include <sstream>
#include <string>

#include "gcnet/blocks/global_context.hpp"
#include "gcnet/blocks/transforms.hpp"
#include "gcnet/core/module_init.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class SimplifiedNL : public blocks::GlobalContext<fusion::Add, blocks::Linear<T, B>, T, B> {
  using Base = blocks::GlobalContext<fusion::Add, blocks::Linear<T, B>, T, B>;

 public:
  explicit SimplifiedNL(index_t channels)
      : Base(name(channels), channels, Pooling::Attention, transform(channels), std::nullopt) {}

 private:
  static std::string name(index_t channels) {
    std::ostringstream os;
    os << "SimplifiedNL(" << channels << ")";
    return os.str();
  }
  static blocks::Linear<T, B> transform(index_t channels) {
    GCNET_CHECK(channels > 0, name(channels), ": channels must be positive, got ", channels);
    blocks::Linear<T, B> l(channels, "transform.");
    init::constant_init(l.conv(), 0.0);
    return l;
  }
};

}  // namespace gcnet
