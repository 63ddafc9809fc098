#pragma once
// GCBlock<Ratio, Fusion>: mmcv's ContextBlock (GCNet) on the three-step framework.
//   context modeling   attention pooling (conv_mask C->1 + softmax over H*W) or average pooling
//   transform          per fusion branch: conv C->P, LayerNorm([P,1,1]), ReLU, conv P->C,
//                      P = int(C * Ratio)
//   fusion             add (channel_add_conv), mul (x * sigmoid(channel_mul_conv)) or both
// Init as mmcv: conv_mask kaiming normal fan_in (bias 0), first branch conv PyTorch default,
// LayerNorm 1/0, the last conv of each branch zeros: add fusion is the identity at init and
// mul fusion halves x.
//   GCBlock<std::ratio<1, 16>, fusion::Add>(256, Pooling::Attention)
#include <ratio>
#include <sstream>
#include <string>

#include "gcnet/blocks/global_context.hpp"
#include "gcnet/blocks/transforms.hpp"
#include "gcnet/core/module_init.hpp"

namespace gcnet {

template <class R>
concept StdRatio = requires {
  { R::num } -> std::convertible_to<std::intmax_t>;
  { R::den } -> std::convertible_to<std::intmax_t>;
};

template <StdRatio Ratio = std::ratio<1, 16>, fusion::Fusion Fusion = fusion::Add, Scalar T = float,
          Backend B = Cpu>
class GCBlock : public blocks::GlobalContext<Fusion, blocks::Bottleneck<T, B>, T, B> {
  using Base = blocks::GlobalContext<Fusion, blocks::Bottleneck<T, B>, T, B>;

 public:
  explicit GCBlock(index_t channels, Pooling pooling = Pooling::Attention)
      : Base(name(channels, pooling), channels, pooling, branch(channels, pooling, Fusion::add, "channel_add_conv"),
             branch(channels, pooling, Fusion::mul, "channel_mul_conv")) {}

  // planes = int(C * Ratio), as mmcv (truncation); 0 is an error naming the block.
  static index_t planes(index_t channels, Pooling pooling = Pooling::Attention) {
    GCNET_CHECK(channels > 0, name(channels, pooling), ": channels must be positive, got ", channels);
    const index_t p = channels * Ratio::num / Ratio::den;
    GCNET_CHECK(p > 0, name(channels, pooling), ": planes = int(", channels, " * ", Ratio::num, "/", Ratio::den,
                ") = 0; use more channels or a larger ratio");
    return p;
  }

 private:
  static std::string name(index_t channels, Pooling pooling) {
    std::ostringstream os;
    os << "GCBlock(" << channels << ", ratio=" << Ratio::num << "/" << Ratio::den
       << ", pooling=" << pooling_name(pooling) << ", fusion=" << Fusion::name << ")";
    return os.str();
  }
  static std::optional<blocks::Bottleneck<T, B>> branch(index_t channels, Pooling pooling, bool present,
                                                        const std::string& attr) {
    const index_t p = planes(channels, pooling);  // validates even for the absent branch
    if (!present) return std::nullopt;
    blocks::Bottleneck<T, B> b(channels, p, /*layer_norm=*/true, {attr + ".0.", attr + ".1.", attr + ".3."});
    init::constant_init(b.second(), 0.0);  // mmcv last_zero_init
    return b;
  }
};

}  // namespace gcnet
