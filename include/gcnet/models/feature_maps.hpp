#pragma once
// FeatureMaps: what a backbone gives its neck and heads, the outputs of its four stages by
// name (mmdet's out_indices pick which are produced; the others stay undefined tensors).
//   c2  layer1's output, stride 4       c4  layer3's, stride 16 (8 in a dilated D8 backbone)
//   c3  layer2's, stride 8              c5  layer4's, stride 32 (8 in D8)
#include <array>
#include <string>
#include <vector>

#include "gcnet/core/fields.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
struct FeatureMaps {
  Tensor<T, B> c2, c3, c4, c5;

  // Stage s (0..3) of the backbone: c2..c5.
  Tensor<T, B>& stage(int s) { return *std::array<Tensor<T, B>*, 4>{&c2, &c3, &c4, &c5}[static_cast<std::size_t>(s)]; }
  const Tensor<T, B>& stage(int s) const {
    return *std::array<const Tensor<T, B>*, 4>{&c2, &c3, &c4, &c5}[static_cast<std::size_t>(s)];
  }
  // The defined maps, from c2 to c5 (what mmdet's tuple of outputs holds).
  std::vector<Tensor<T, B>> defined() const {
    std::vector<Tensor<T, B>> v;
    for (int s = 0; s < 4; ++s)
      if (stage(s).defined()) v.push_back(stage(s));
    return v;
  }

  GCNET_FIELDS(c2, c3, c4, c5)
};

}  // namespace gcnet
