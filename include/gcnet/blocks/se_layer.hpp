#pragma once
// SELayer: mmdet's squeeze-and-excitation block on the three-step framework.
//   context modeling   average pooling
//   transform          conv C->int(C/ratio) + ReLU, conv -> C     (ConvModules with bias)
//   fusion             mul: y = x * sigmoid(.)
// Init as mmdet ConvModule: kaiming normal fan_out 'relu', bias 0.
// State dict: conv1.conv.weight/bias, conv2.conv.weight/bias.
#include <sstream>
#include <string>

#include "gcnet/blocks/global_context.hpp"
#include "gcnet/blocks/transforms.hpp"
#include "gcnet/core/module_init.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class SELayer : public blocks::GlobalContext<fusion::Mul, blocks::Bottleneck<T, B>, T, B> {
  using Base = blocks::GlobalContext<fusion::Mul, blocks::Bottleneck<T, B>, T, B>;

 public:
  explicit SELayer(index_t channels, index_t ratio = 16)
      : Base(name(channels, ratio), channels, Pooling::Average, std::nullopt, excitation(channels, ratio)) {}

  // int(C / ratio), as mmdet.
  static index_t planes(index_t channels, index_t ratio) {
    GCNET_CHECK(channels > 0, name(channels, ratio), ": channels must be positive, got ", channels);
    GCNET_CHECK(ratio > 0, name(channels, ratio), ": ratio must be positive, got ", ratio);
    const index_t p = channels / ratio;
    GCNET_CHECK(p > 0, name(channels, ratio), ": planes = int(", channels, " / ", ratio,
                ") = 0; use more channels or a smaller ratio");
    return p;
  }

 private:
  static std::string name(index_t channels, index_t ratio) {
    std::ostringstream os;
    os << "SELayer(" << channels << ", ratio=" << ratio << ")";
    return os.str();
  }
  static blocks::Bottleneck<T, B> excitation(index_t channels, index_t ratio) {
    blocks::Bottleneck<T, B> b(channels, planes(channels, ratio), /*layer_norm=*/false,
                               {"conv1.conv.", "", "conv2.conv."});
    init::kaiming_init(b.first());
    init::kaiming_init(b.second());
    return b;
  }
};

}  // namespace gcnet
