// What a ResNet backbone keeps, and that keeping less changes no number:
//  - FrozenBatchNorm2d blocks train keeping only the ReLU outputs (res_block_frozen_norms.hpp):
//    gradient check, and the same outputs as an eval-mode BatchNorm2d backbone with those statistics;
//  - the eval forward (blocks by infer(), norms folded, nothing kept) gives the training forward's
//    outputs, and a backward after it replays;
//  - frozen stages run by infer() in training and, with no input gradient wanted, their backward
//    is skipped: the trainable parameters' gradients are those of the full backward, the frozen
//    ones zero.
#include <doctest/doctest.h>

#include <map>

#include "gcnet/models/resnet.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using gcnet::test::max_abs_diff;
using gcnet::test::random_tensor;
using namespace gcnet::resnet;

namespace {

template <class Net>
FeatureMaps<typename Net::value_type, Cpu> run(Net& net, const Tensor<typename Net::value_type, Cpu>& x, bool training) {
  FeatureMaps<typename Net::value_type, Cpu> y;
  net.forward(Context{.training = training}, x, y);
  return y;
}

using Tiny = Blocks<2, 1, 1, 1>;
const ResNetOptions kTiny{.in_channels = 3, .stem_channels = 8, .base_channels = 4, .out_indices = {0, 1, 2, 3}};

// Random parameters, and norm statistics away from the identity (so that folding matters).
template <class Net>
void randomize(Net& net, std::uint64_t seed) {
  Rng rng(seed);
  net.visit_parameters("", [&](const std::string&, auto& p) {
    for (index_t i = 0; i < p.value.numel(); ++i) p.value[i] += 0.2 * rng.normal();
  });
  net.visit_buffers("", [&](const std::string& n, auto& b) {
    for (index_t i = 0; i < b.numel(); ++i) {
      if (n.ends_with("running_mean") || n.ends_with("bias")) b[i] = 0.3 * rng.normal();
      if (n.ends_with("running_var")) b[i] = 0.5 + rng.uniform();
      if (n.ends_with(".weight")) b[i] = 0.8 + 0.4 * rng.uniform();  // FrozenBatchNorm2d's weight is a buffer
    }
  });
}

template <class Net>
std::map<std::string, Tensor<double, Cpu>*> all_tensors(Net& net) {
  std::map<std::string, Tensor<double, Cpu>*> m;
  net.visit_parameters("", [&](const std::string& n, auto& p) { m[n] = &p.value; });
  net.visit_buffers("", [&](const std::string& n, auto& b) { m[n] = &b; });
  return m;
}

testing::GradCheckOptions backbone_check() {
  testing::GradCheckOptions g;
  g.input_probes = 12;
  g.param_probes = 3;
  g.tolerance = 1e-4;
  g.eps = 1e-7;  // ReLU and max-pool kinks lie close to some inputs (test_resnet_structure.cpp)
  return g;
}

using FrozenNet = BasicResNet<double, Cpu, Tiny, Norm<FrozenBatchNorm2d<double>>,
                              Plugin<GCBlock<std::ratio<1, 4>>, AfterConv3, Stages<0, 1, 0, 0>>>;
using BatchNormNet = BasicResNet<double, Cpu, Tiny, Plugin<GCBlock<std::ratio<1, 4>>, AfterConv3, Stages<0, 1, 0, 0>>>;

}  // namespace

TEST_CASE("ResNet with FrozenBatchNorm2d, training keeping only the ReLU outputs: gradient check (double)") {
  manual_seed(21);
  FrozenNet net(kTiny);  // downsampling blocks in every stage, a GC block after conv3 in layer2
  randomize(net, 22);
  net.set_training(true);
  auto r = testing::check_gradients(net, random_tensor<double>(Shape{2, 3, 32, 32}, 23), backbone_check());
  INFO(r.report);
  CHECK(r.ok);
  SUBCASE("and in eval mode, where the forward keeps nothing and backward replays it") {
    net.set_training(false);
    auto e = testing::check_gradients(net, random_tensor<double>(Shape{2, 3, 32, 32}, 24), backbone_check());
    INFO(e.report);
    CHECK(e.ok);
  }
}

TEST_CASE("ResNet with FrozenBatchNorm2d: training and eval forwards equal an eval-mode BatchNorm2d backbone's") {
  manual_seed(25);
  BatchNormNet bn(kTiny);
  randomize(bn, 26);
  FrozenNet frozen(kTiny);
  auto from = all_tensors(bn);
  for (auto& [name, t] : all_tensors(frozen)) {
    INFO(name);
    REQUIRE(from.count(name) == 1);
    copy(*from.at(name), *t);
  }
  const auto x = random_tensor<double>(Shape{2, 3, 32, 32}, 27);
  const auto want = run(bn, x, false);            // BatchNorm2d in eval mode (folded)
  const auto trained = run(frozen, x, true);       // the frozen-norm training forward
  const auto inferred = run(frozen, x, false);     // infer(): everything folded, nothing kept
  for (int s = 0; s < 4; ++s) {
    INFO("c", s + 2);
    CHECK(max_abs_diff(trained.stage(s), want.stage(s)) < 1e-12);
    CHECK(max_abs_diff(inferred.stage(s), want.stage(s)) < 1e-12);
  }
}

TEST_CASE("ResNet eval forward: the training forward's outputs, handed over (not kept), and the same again") {
  manual_seed(28);
  BatchNormNet net(kTiny);
  randomize(net, 29);
  net.set_training(false);
  const auto x = random_tensor<double>(Shape{2, 3, 32, 32}, 30);
  const auto a = run(net, x, false);
  const auto b = run(net, x, false);
  for (int s = 0; s < 4; ++s) {
    CHECK(a.stage(s).data() != b.stage(s).data());  // each call's outputs are its own
    CHECK(max_abs_diff(a.stage(s), b.stage(s)) == 0.0);
  }
}

TEST_CASE("ResNet frozen stages: skipped by the training backward when no input gradient is wanted") {
  for (int frozen_stages : {0, 1, 2}) {
    CAPTURE(frozen_stages);
    manual_seed(31);
    ResNetOptions o = kTiny;
    o.frozen_stages = frozen_stages;
    BatchNormNet net(o);
    randomize(net, 32);
    for (int s = 0; s < 4; ++s) CHECK(net.output_gradient_used(s) == (s >= frozen_stages));
    const auto x = random_tensor<double>(Shape{2, 3, 32, 32}, 33);
    FeatureMaps<double, Cpu> dy;
    const auto shapes = run(net, x, true);
    for (int s = 0; s < 4; ++s) dy.stage(s) = random_tensor<double>(shapes.stage(s).shape(), 40 + s);
    // Full backward (an input gradient wanted: the frozen parts are replayed and back-propagated).
    auto y = run(net, x, true);
    Tensor<double, Cpu> dx = zeros<double>(x.shape());
    net.backward(Context{}, x, y, dy, dx);
    std::map<std::string, Tensor<double, Cpu>> full;
    net.visit_parameters("", [&](const std::string& n, auto& p) { full[n] = clone(p.grad); });
    // Skipping: no input gradient.
    y = run(net, x, true);
    Tensor<double, Cpu> none;
    net.backward(Context{}, x, y, dy, none);
    int frozen = 0, trained = 0;
    net.visit_parameters("", [&](const std::string& n, auto& p) {
      INFO(n);
      const int stage = n.starts_with("layer") ? n[5] - '1' : -1;  // -1: the stem
      if (stage < frozen_stages) {
        ++frozen;
        CHECK(max_abs_diff(p.grad, zeros<double>(p.grad.shape())) == 0.0);
      } else {
        ++trained;
        CHECK(max_abs_diff(p.grad, full.at(n)) == 0.0);
      }
    });
    CHECK(frozen > 0);
    CHECK(trained > 0);
  }
}
