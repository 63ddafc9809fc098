#pragma once
// Shared by test_gc_block / test_se_layer / test_simplified_nl: builds the block a fixture
// case describes (tools/fixtures/blocks.py metadata) and runs the PyTorch parity on it, with the
// forward path given (blocks::ForwardPath; Auto unless a test pins one); and the random
// parameters the blocks' gradient checks start from.
#include <cmath>
#include <cstdint>
#include <string>

#include "gcnet/blocks/gc_block.hpp"
#include "gcnet/blocks/se_layer.hpp"
#include "gcnet/blocks/simplified_nl.hpp"
#include "gcnet/core/layer.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/testing/parity.hpp"

namespace gcnet::test {

// Random non-zero values for every parameter (the zero-initialized last convs included), so
// every gradient is non-trivial; conv weights scaled by 1/sqrt(fan_in) so that activations
// stay O(1) at any C.
template <Layer L>
void randomize_parameters(L& layer, std::uint64_t seed) {
  Rng rng(seed);
  for (auto& [name, p] : named_parameters(layer)) {
    const double scale = p->shape().rank() == 4 ? 1.5 / std::sqrt(double(p->shape()[1])) : 0.5;
    for (index_t i = 0; i < p->value.numel(); ++i) p->value[i] = static_cast<typename L::value_type>(scale * rng.normal());
  }
}

template <class Ratio>
testing::ParityResult gc_parity_with_ratio(const io::SafetensorsReader& f, const std::string& c,
                                           blocks::ForwardPath path) {
  const Pooling pooling = f.meta(c + ".pooling") == "att" ? Pooling::Attention : Pooling::Average;
  const index_t ch = f.meta_int(c + ".channels");
  const std::string fusion = f.meta(c + ".fusion");
  if (fusion == "add") {
    GCBlock<Ratio, fusion::Add> b(ch, pooling);
    b.set_forward_path(path);
    return testing::run_parity(b, f, c);
  }
  if (fusion == "mul") {
    GCBlock<Ratio, fusion::Mul> b(ch, pooling);
    b.set_forward_path(path);
    return testing::run_parity(b, f, c);
  }
  GCBlock<Ratio, fusion::MulAdd> b(ch, pooling);
  b.set_forward_path(path);
  return testing::run_parity(b, f, c);
}

inline testing::ParityResult block_parity(const io::SafetensorsReader& f, const std::string& c,
                                          blocks::ForwardPath path = blocks::ForwardPath::Auto) {
  const std::string block = f.meta(c + ".block");
  const index_t ch = f.meta_int(c + ".channels");
  if (block == "gc") {
    const auto den = f.meta_int(c + ".ratio_den");
    if (den == 4) return gc_parity_with_ratio<std::ratio<1, 4>>(f, c, path);
    GCNET_CHECK(den == 16, f.path(), ": unsupported GC ratio 1/", den, " in case ", c);
    return gc_parity_with_ratio<std::ratio<1, 16>>(f, c, path);
  }
  if (block == "se") {
    SELayer<float> b(ch, f.meta_int(c + ".ratio"));
    b.set_forward_path(path);
    return testing::run_parity(b, f, c);
  }
  GCNET_CHECK(block == "snl", f.path(), ": unknown block '", block, "' in case ", c);
  SimplifiedNL<float> b(ch);
  b.set_forward_path(path);
  return testing::run_parity(b, f, c);
}

}  // namespace gcnet::test
