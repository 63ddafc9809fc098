// Suite "backbone" (issue 6): ResNet-50 and GC-ResNet-50 (GC r16 after conv3 on c3-c5), the
// four stage outputs, as benchmarks/peer_backbone.py:
//   MODEL_SIZE, MODEL in resnet50 / gc_resnet50, SIZE in 224 / 512
//   fwd      eval forward of 1x3xSIZExSIZE
//   fwd+bwd  one training step at 2x3xSIZExSIZE: forward in training mode, loss = sum over the
//            four outputs of mean(out) (so douts[k] = 1 / numel), backward, SGD (lr 0.01,
//            momentum 0.9, weight decay 1e-4)
// Weights: the models' own (mmdet) init, seeded; inputs random normal. Frozen stages: none.
#include <memory>
#include <string>

#include "bench_registry.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/models/resnet.hpp"
#include "gcnet/optim/sgd.hpp"

namespace {
using namespace gcnet;

Tensor<float> random_input(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<float> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(rng.normal());
  return t;
}

template <class Net>
bench::Actions prepare_backbone(index_t size) {
  struct State {
    Net net;
    Tensor<float> x_eval, x_train, dx;
    FeatureMaps<float> outs, douts;
    std::unique_ptr<Sgd<float, Cpu>> opt;
  };
  manual_seed(0);
  auto s = std::make_shared<State>();
  s->x_eval = random_input(Shape{1, 3, size, size}, 1);
  s->x_train = random_input(Shape{2, 3, size, size}, 2);
  s->dx.resize(s->x_train.shape());
  typename Sgd<float, Cpu>::NamedParams params;
  s->net.visit_trainable_parameters("", [&](const std::string& n, Param<float, Cpu>& p) { params.emplace_back(n, &p); });
  s->opt = std::make_unique<Sgd<float, Cpu>>(std::move(params),
                                             Sgd<float, Cpu>::Options{.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4});
  return {
      {"fwd", [s] { s->net.forward(Context::eval(), s->x_eval, s->outs); }},
      {"fwd+bwd", [s] {
         s->net.forward(Context::train(), s->x_train, s->outs);
         for (int k = 0; k < 4; ++k) {
           s->douts.stage(k).resize(s->outs.stage(k).shape());
           fill(s->douts.stage(k), 1.0f / static_cast<float>(s->outs.stage(k).numel()));
         }
         fill(s->dx, 0.0f);  // the input gradient is computed too (as in every recorded round)
         s->net.backward(Context::train(), s->x_train, s->outs, s->douts, s->dx);
         s->opt->step();
       }},
  };
}

const bench::Register r50_224{"backbone", "resnet50_224", [] { return prepare_backbone<ResNet50>(224); }};
const bench::Register r50_512{"backbone", "resnet50_512", [] { return prepare_backbone<ResNet50>(512); }};
const bench::Register gc_224{"backbone", "gc_resnet50_224", [] { return prepare_backbone<GcResNet50>(224); }};
const bench::Register gc_512{"backbone", "gc_resnet50_512", [] { return prepare_backbone<GcResNet50>(512); }};

}  // namespace
