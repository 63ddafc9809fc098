// Suite "conv": Conv2d at batch 2 on the ResNet-50 shapes, bias=False; peer: peer_conv.py.
#include "bench_registry.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/conv2d.hpp"

namespace {
using namespace gcnet;

struct ConvCase {
  const char* name;
  index_t in, out, size, kernel, stride, padding;
};
// Keep in sync with benchmarks/peer_conv.py (the driver checks the names match).
constexpr ConvCase kCases[] = {
    {"7x7s2_3to64_224", 3, 64, 224, 7, 2, 3},
    {"1x1_256to64_56", 256, 64, 56, 1, 1, 0},
    {"3x3_64to64_56", 64, 64, 56, 3, 1, 1},
    {"3x3_128to128_28", 128, 128, 28, 3, 1, 1},
    {"1x1_1024to256_14", 1024, 256, 14, 1, 1, 0},
    {"3x3_512to512_7", 512, 512, 7, 3, 1, 1},
};
constexpr index_t kBatch = 2;

Tensor<float> random_tensor(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<float> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(rng.normal());
  return t;
}

bench::Actions prepare(const ConvCase& c) {
  // Shared state lives as long as the actions that capture it.
  struct State {
    Conv2d<float> conv;
    Tensor<float> x, y, dy, dx;
  };
  manual_seed(1);
  auto s = std::make_shared<State>(State{
      Conv2d<float>({.in = c.in, .out = c.out, .kernel = c.kernel, .stride = c.stride, .padding = c.padding,
                     .bias = false}),
      random_tensor(Shape{kBatch, c.in, c.size, c.size}, 2), {}, {}, {}});
  s->y.resize(s->conv.setup(s->x.shape()));
  s->dy = random_tensor(s->y.shape(), 3);
  s->dx.resize(s->x.shape());
  return {
      {"fwd", [s] { s->conv.forward(s->x, s->y); }},
      // Data gradients accumulate, so a fresh dx starts at zero (PyTorch allocates one).
      {"fwd+bwd", [s] {
         s->conv.forward(s->x, s->y);
         fill(s->dx, 0.0f);
         s->conv.backward(s->x, s->y, s->dy, s->dx);
       }},
  };
}

const bool registered = [] {
  for (const auto& c : kCases) bench::Register{"conv", c.name, [c] { return prepare(c); }};
  return true;
}();
}  // namespace
