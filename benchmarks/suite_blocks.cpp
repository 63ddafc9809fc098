// Suite "blocks": the global-context family at batch 2 on ResNet-50's stage shapes (C=256@56,
// 512@28, 1024@14, 2048@7): GC r16 and r4 (attention pooling, add fusion), SE r16, NonLocal2d
// (embedded gaussian, reduction 2, use_scale) and simplified NL, each with its constructor's
// (mmcv) initialization; plus "copy" cases, one plain contiguous copy of x (fwd+bwd: a copy of
// x and one of dy, an identity's forward and backward), so the GC forward can be compared with
// the memory floor in the same run. Peer: peer_blocks.py.
#include <memory>
#include <string>

#include "bench_registry.hpp"
#include "gcnet/blocks/gc_block.hpp"
#include "gcnet/blocks/non_local2d.hpp"
#include "gcnet/blocks/se_layer.hpp"
#include "gcnet/blocks/simplified_nl.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace {
using namespace gcnet;

struct StageShape {
  index_t channels, size;
};
// Keep in sync with benchmarks/peer_blocks.py; case names are KIND_C_SIZE.
constexpr StageShape kShapes[] = {{256, 56}, {512, 28}, {1024, 14}, {2048, 7}};
constexpr index_t kBatch = 2;

Tensor<float> random_tensor(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<float> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(rng.normal());
  return t;
}

// Builds the block once (make(channels)) with its input, output gradient and buffers.
template <class Make>
bench::Actions prepare_block(Make make, StageShape sh) {
  using Block = decltype(make(index_t{1}));
  struct State {
    Block block;
    Tensor<float> x, y, dy, dx;
  };
  manual_seed(1);
  auto s = std::make_shared<State>(State{make(sh.channels), random_tensor(Shape{kBatch, sh.channels, sh.size, sh.size}, 2),
                                         {}, {}, {}});
  s->y.resize(s->block.setup(s->x.shape()));
  s->dy = random_tensor(s->y.shape(), 3);
  s->dx.resize(s->x.shape());
  return {
      {"fwd", [s] { s->block.forward(s->x, s->y); }},
      // Data gradients accumulate, so a fresh dx starts at zero (PyTorch allocates one).
      {"fwd+bwd", [s] {
         s->block.forward(s->x, s->y);
         fill(s->dx, 0.0f);
         s->block.backward(s->x, s->y, s->dy, s->dx);
       }},
  };
}

bench::Actions prepare_copy(StageShape sh) {
  struct State {
    Tensor<float> x, y, dy, dx;
  };
  auto s = std::make_shared<State>();
  s->x = random_tensor(Shape{kBatch, sh.channels, sh.size, sh.size}, 2);
  s->dy = random_tensor(s->x.shape(), 3);
  s->y.resize(s->x.shape());
  s->dx.resize(s->x.shape());
  return {
      {"fwd", [s] { copy(s->x, s->y); }},
      {"fwd+bwd", [s] {
         copy(s->x, s->y);
         copy(s->dy, s->dx);
       }},
  };
}

template <class Make>
void register_kind(const std::string& kind, Make make) {
  for (const auto& sh : kShapes)
    bench::Register{"blocks", kind + "_" + std::to_string(sh.channels) + "_" + std::to_string(sh.size),
                    [make, sh] { return prepare_block(make, sh); }};
}

const bool registered = [] {
  register_kind("gc_r16", [](index_t c) { return GCBlock<std::ratio<1, 16>, fusion::Add>(c, Pooling::Attention); });
  register_kind("gc_r4", [](index_t c) { return GCBlock<std::ratio<1, 4>, fusion::Add>(c, Pooling::Attention); });
  register_kind("se_r16", [](index_t c) { return SELayer<float>(c, 16); });
  register_kind("nl", [](index_t c) {
    return NonLocal2d<float>(NonLocal2dOptions{.in_channels = c, .reduction = 2, .use_scale = true,
                                               .mode = NonLocalMode::EmbeddedGaussian});
  });
  register_kind("snl", [](index_t c) { return SimplifiedNL<float>(c); });
  for (const auto& sh : kShapes)
    bench::Register{"blocks", "copy_" + std::to_string(sh.channels) + "_" + std::to_string(sh.size),
                    [sh] { return prepare_copy(sh); }};
  return true;
}();
}  // namespace
