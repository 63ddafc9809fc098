// Suite "blocks": the global-context family at batch 2 on ResNet-50's stage shapes (C=256@56,
// 512@28, 1024@14, 2048@7): GC r16 and r4 (attention pooling, add fusion), SE r16, NonLocal2d
// (embedded gaussian, reduction 2, use_scale) and simplified NL, each with its constructor's
// (mmcv) initialization; plus "copy" cases, one plain contiguous copy of x (fwd+bwd: a copy of
// x and one of dy, an identity's forward and backward), so the GC forward can be compared with
// the memory floor in the same run. Peer: peer_blocks.py. Suite "floor" (no peer) adds the GC
// forward's own memory floor (prepare_gc_floor).
#include <memory>
#include <string>

#include "bench_registry.hpp"
#include "gcnet/blocks/gc_block.hpp"
#include "gcnet/blocks/non_local2d.hpp"
#include "gcnet/blocks/se_layer.hpp"
#include "gcnet/blocks/simplified_nl.hpp"
#include "gcnet/core/parallel.hpp"
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

// The memory traffic of GC r16's forward without its arithmetic: each thread streams its share
// of x as many times as the forward path does (the CPU single region: twice for the context, in
// which a [C, 16] tile of positions does not fit L1 at C >= 1024; generic: once, the tiles are
// re-read from cache), reads its share of the weights, and writes y = x + 1 once. The forward
// can only be as fast as this; suite "floor" times both next to the copy (benchmarks/floor.py).
bench::Actions prepare_gc_floor(StageShape sh) {
  struct State {
    Tensor<float> x, y, w;
    int reads = 1;
    float sink = 0;
  };
  auto s = std::make_shared<State>();
  s->x = random_tensor(Shape{kBatch, sh.channels, sh.size, sh.size}, 2);
  s->y.resize(s->x.shape());
  const index_t planes = sh.channels / 16;
  s->w = random_tensor(Shape{2 * sh.channels * planes + sh.channels}, 4);  // conv_mask and both 1x1 convs
  const auto bytes = static_cast<std::size_t>(s->x.numel()) * sizeof(float);
  const auto per_thread = static_cast<std::size_t>(cpu::kSingleRegionMaxBytes) * team_size(Cpu{});
  s->reads = bytes <= per_thread ? 2 : 1;
  return {{"fwd", [s] {
             const int team = team_size(Cpu{});
             float sums[64] = {};
             run_team(Cpu{}, team, [&](const TeamMember& me) {
               auto share = [&](const Tensor<float>& t) {
                 const index_t n = t.numel();
                 return std::pair{n * me.rank / me.size, n * (me.rank + 1) / me.size};
               };
               // 16 independent vector sums, so that the loads, not one chain of adds, set the pace.
               auto stream = [](const float* p, index_t len) {
                 float acc[256] = {};
                 index_t i = 0;
                 for (; i + 256 <= len; i += 256)
                   for (int q = 0; q < 256; ++q) acc[q] += p[i + q];
                 float total = 0;
                 for (; i < len; ++i) total += p[i];
                 for (float a : acc) total += a;
                 return total;
               };
               const auto [x0, x1] = share(s->x);
               const auto [w0, w1] = share(s->w);
               float total = 0;
               for (int r = 0; r < s->reads; ++r) total += stream(s->x.data() + x0, x1 - x0);
               total += stream(s->w.data() + w0, w1 - w0);
               const float* xp = s->x.data();
               float* yp = s->y.data();
               for (index_t i = x0; i < x1; ++i) yp[i] = xp[i] + 1.0f;
               sums[me.rank % 64] = total;
             });
             for (float t : sums) s->sink += t;
           }}};
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
  for (const auto& sh : kShapes) {
    const std::string shape = std::to_string(sh.channels) + "_" + std::to_string(sh.size);
    bench::Register{"blocks", "copy_" + shape, [sh] { return prepare_copy(sh); }};
    // Suite "floor" (ours only, no peer): the GC r16 forward, its memory floor and the copy.
    bench::Register{"floor", "copy_" + shape, [sh] { return prepare_copy(sh); }};
    bench::Register{"floor", "floor_gc_r16_" + shape, [sh] { return prepare_gc_floor(sh); }};
    bench::Register{"floor", "gc_r16_" + shape, [sh] {
                      return prepare_block([](index_t c) { return GCBlock<std::ratio<1, 16>, fusion::Add>(c); }, sh);
                    }};
  }
  return true;
}();
}  // namespace
