// Suite "dcn": DCNv1 and DCNv2 ops (DeformConv2d / ModulatedDeformConv2d), 3x3, padding 1,
// batch 2, offsets ~ 2 * N(0, 1), mask in (0, 1); peer: peer_dcn.py (torchvision.ops.deform_conv2d).
// fwd+bwd computes the gradients of input, offset, (mask,) weight and bias, as the peer does.
#include "bench_registry.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/layers/deform_conv2d.hpp"

namespace {
using namespace gcnet;

struct DcnCase {
  const char* name;
  index_t channels, size;
  bool modulated;
};
// Keep in sync with benchmarks/peer_dcn.py (the driver checks the names match).
constexpr DcnCase kCases[] = {
    {"v1_3x3_256_28", 256, 28, false},
    {"v1_3x3_512_14", 512, 14, false},
    {"v2_3x3_256_28", 256, 28, true},
    {"v2_3x3_512_14", 512, 14, true},
};
constexpr index_t kBatch = 2;

Tensor<float> random_tensor(const Shape& s, std::uint64_t seed, double scale = 1.0, bool unit = false) {
  Rng rng(seed);
  Tensor<float> t(s);
  for (index_t i = 0; i < t.numel(); ++i)
    t[i] = static_cast<float>(unit ? rng.uniform(0.0, 1.0) : scale * rng.normal());
  return t;
}

template <class Op>
bench::Actions prepare(const DcnCase& c) {
  struct State {
    Op op;
    Tensor<float> x, offset, mask, y, dy, dx, doffset, dmask;
  };
  manual_seed(1);
  const DeformConv2dOptions o{.in = c.channels, .out = c.channels, .kernel = 3, .padding = 1, .bias = true};
  auto s = std::make_shared<State>(State{Op(o), random_tensor(Shape{kBatch, c.channels, c.size, c.size}, 2), {}, {},
                                         {}, {}, {}, {}, {}});
  const Shape in = s->x.shape();
  s->offset = random_tensor(s->op.offset_shape(in), 3, 2.0);
  s->mask = random_tensor(s->op.mask_shape(in), 4, 1.0, true);
  s->y.resize(s->op.setup(in));
  s->dy = random_tensor(s->y.shape(), 5);
  s->dx.resize(in);
  s->doffset.resize(s->offset.shape());
  s->dmask.resize(s->mask.shape());
  auto forward = [](State& st) {
    if constexpr (std::is_same_v<Op, ModulatedDeformConv2d<float>>) st.op.forward(st.x, st.offset, st.mask, st.y);
    else st.op.forward(st.x, st.offset, st.y);
  };
  return {
      {"fwd", [s, forward] { forward(*s); }},
      // Data gradients accumulate, so fresh ones start at zero (PyTorch allocates them).
      {"fwd+bwd", [s, forward] {
         forward(*s);
         fill(s->dx, 0.0f);
         fill(s->doffset, 0.0f);
         if constexpr (std::is_same_v<Op, ModulatedDeformConv2d<float>>) {
           fill(s->dmask, 0.0f);
           s->op.backward(s->x, s->offset, s->mask, s->y, s->dy, s->dx, s->doffset, s->dmask);
         } else {
           s->op.backward(s->x, s->offset, s->y, s->dy, s->dx, s->doffset);
         }
       }},
  };
}

const bool registered = [] {
  for (const auto& c : kCases)
    bench::Register{"dcn", c.name, [c] {
                      return c.modulated ? prepare<ModulatedDeformConv2d<float>>(c) : prepare<DeformConv2d<float>>(c);
                    }};
  return true;
}();
}  // namespace
