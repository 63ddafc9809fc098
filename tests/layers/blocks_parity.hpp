#pragma once
// Shared by test_gc_block / test_se_layer / test_simplified_nl / test_global_context_paths:
// the options of the block a fixture case describes (tools/fixtures/blocks.py metadata), built
// at run time as the one GlobalContextBlock type whatever the variant; the PyTorch parity and
// float32 fidelity on it, with the forward path given (cpu::ForwardPath; Auto unless a test pins
// one); and the random parameters the blocks' gradient checks start from.
#include <cmath>
#include <cstdint>
#include <string>

#include "float32_fidelity.hpp"
#include "gcnet/blocks/global_context.hpp"
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

// The block of case `c`: GC (ratio 1/ratio_den, pooling att|avg, fusion add|mul|muladd), SE
// (ratio) or SNL, as GlobalContextOptions.
inline GlobalContextOptions case_options(const io::SafetensorsReader& f, const std::string& c) {
  const std::string block = f.meta(c + ".block");
  const index_t ch = f.meta_int(c + ".channels");
  if (block == "se") return se_options(ch, f.meta_int(c + ".ratio"));
  if (block == "snl") return snl_options(ch);
  GCNET_CHECK(block == "gc", f.path(), ": unknown block '", block, "' in case ", c);
  const std::string fusion = f.meta(c + ".fusion");
  return gc_options(ch, {1, f.meta_int(c + ".ratio_den")},
                    f.meta(c + ".pooling") == "att" ? Pooling::Attention : Pooling::Average,
                    fusion == "add" ? Fusion::Add : fusion == "mul" ? Fusion::Mul : Fusion::MulAdd);
}

inline testing::ParityResult block_parity(const io::SafetensorsReader& f, const std::string& c,
                                          cpu::ForwardPath path = cpu::ForwardPath::Auto) {
  GlobalContextBlock<float> b(case_options(f, c));
  b.set_forward_path(path);
  return testing::run_parity(b, f, c);
}

// conv_mask.bias's gradient is exactly 0 (a softmax is shift invariant); gcnet writes 0.
inline FidelityResult block_fidelity(const io::SafetensorsReader& f, const std::string& c,
                                     cpu::ForwardPath path = cpu::ForwardPath::Auto) {
  GlobalContextBlock<float> b(case_options(f, c));
  b.set_forward_path(path);
  return float32_fidelity(b, f, c);
}

}  // namespace gcnet::test
