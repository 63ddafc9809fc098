#pragma once
// What a network of the ablation costs, per image, for a stated input shape:
//   params              trainable scalars (all of them; block_params: those of the blocks alone)
//   macs                multiply-adds of the convolutions, the linear layer and the blocks' matrix
//                       products (models/counting.hpp's convention, what the papers call FLOPs):
//                       GC/SE/SNL: the mask conv, the attention-weighted sum and the transform's
//                       1x1 convs (models/resnet.hpp global_context_macs); NL: its 1x1 convs and the
//                       two attention products (NonLocal2d::flops() / 2)
//   block_macs          the blocks' share of macs
//   block_other_flops   the blocks' remaining arithmetic, which MAC counters skip and which is most
//                       of a GC block's cost at small widths: softmax, LayerNorm, ReLU, sigmoid,
//                       biases, average pooling and the fusion (scale / add) over the whole map.
//                       GC/SE/SNL: the block's own flops() - 2 * its MACs (GlobalContextBlock::flops
//                       counts every operation, a multiply-add as 2). NL: NonLocal2d::flops() counts
//                       only its products, so the rest is counted here the same way: the softmax
//                       (4 per score: max, exp, sum, divide), the biases and the residual add.
#include <cmath>
#include <string>

#include "gcnet/ablate/classifier.hpp"

namespace gcnet::ablate {

struct NetworkCost {
  index_t params = 0, block_params = 0;
  double macs = 0, block_macs = 0, block_other_flops = 0;  // per image
};

// The NL block's arithmetic that NonLocal2d::flops() leaves out, for embedded gaussian without
// sub-sampling or norm: softmax 4 P^2, biases (3 Ci + C) P, the residual add C P (per image).
inline double non_local_other_flops(index_t channels, index_t inter, const Shape& in) {
  const double P = double(in.h()) * double(in.w()), C = double(channels), Ci = double(inter);
  return 4.0 * P * P + (3.0 * Ci + C) * P + C * P;
}

// NonLocal2d's multiply-adds (its flops() / 2) for embedded gaussian without sub-sampling, per
// image: the g/theta/phi projections 3 C Ci P, conv_out Ci C P, the two attention products
// 2 Ci P^2. For plugins, whose MAC function must not build a block (that would draw from the
// initialization's random stream).
inline double non_local_macs(index_t channels, index_t inter, const Shape& in) {
  const double P = double(in.h()) * double(in.w()), C = double(channels), Ci = double(inter);
  return 4.0 * C * Ci * P + 2.0 * Ci * P * P;
}

// The cost of `net` for one image of shape [1, in, h, w].
inline NetworkCost network_cost(AblationClassifier& net, index_t h, index_t w) {
  NetworkCost c;
  const auto& o = net.options();
  net.visit_parameters("", [&](const std::string&, Param<float, Cpu>& p) { c.params += p.value.numel(); });
  // Stem conv 3x3 (stride 1, padding 1) and the classifier.
  c.macs += double(h * w) * 9.0 * double(o.in_channels) * double(o.stem_channels);
  c.macs += double(o.base_channels * 8) * double(o.num_classes);
  Shape s{1, o.stem_channels, h, w};
  for (std::size_t i = 0; i < net.num_blocks(); ++i) {
    if (i == net.last_block_of_layer3() && net.non_local()) {
      auto& nl = *net.non_local();
      const double f = nl.flops(s);
      c.macs += f / 2;
      c.block_macs += f / 2;
      c.block_other_flops += non_local_other_flops(s.c(), nl.inter_channels(), s);
      c.block_params += nl.parameter_count();
      s = nl.setup(s);
    }
    auto& b = net.block(i);
    c.macs += b.macs(s);  // convs, downsample and plugin MACs (per image)
    const Shape out = b.setup(s);
    if (auto* gc = net.context_block(i)) {
      const double m = global_context_macs(gc->options(), out);
      c.block_macs += m;
      c.block_other_flops += gc->flops(out) - 2.0 * m;
      c.block_params += gc->parameter_count();
    }
    s = out;
  }
  return c;
}

}  // namespace gcnet::ablate
