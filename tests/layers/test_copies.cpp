// What a component owns (docs/layer-contract.md, "Copies"): for every leaf layer, combinator,
// block, backbone and module of the library,
//  - no two of its parameters, gradients or buffers share storage (a layer that adopted one
//    tensor for two parameters, as NonLocal2d's BN once did, fails here), and
//  - a copy is deep: training the copy leaves the original's parameters, buffers and saved
//    activations (its backward) unchanged.
#include <doctest/doctest.h>

#include "gcnet/compose/applied_to_each.hpp"
#include "gcnet/compose/branch.hpp"
#include "gcnet/compose/chain.hpp"
#include "gcnet/compose/repeat.hpp"
#include "gcnet/compose/residual.hpp"
#include "gcnet/compose/seq.hpp"
#include "gcnet/compose/tap.hpp"
#include "gcnet/gcnet.hpp"
#include "gcnet/layers/deform_conv2d_pack.hpp"
#include "gcnet/layers/sync_batch_norm2d.hpp"
#include "gcnet/models/fpn.hpp"
#include "gcnet/models/resnet.hpp"
#include "gcnet/testing/copy_check.hpp"

using namespace gcnet;

namespace {

using Td = Tensor<double, Cpu>;

Td random_tensor(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  Td t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = rng.normal();
  return t;
}

// Parameters and buffers moved off their initial values (zero-initialized convs, unit norms),
// so that a copy that shared them, or stale activations, would show.
template <class C>
void randomize(C& c, std::uint64_t seed) {
  Rng rng(seed);
  visit_parameters(c, "", [&](const std::string&, auto& p) {
    for (index_t i = 0; i < p.value.numel(); ++i) p.value[i] += 0.2 * rng.normal();
  });
  visit_buffers(c, "", [&](const std::string& n, auto& b) {
    if (n.ends_with("running_var"))
      for (index_t i = 0; i < b.numel(); ++i) b[i] = 0.5 + rng.uniform();
  });
}

template <class C>
void check_owns_its_state(const std::string& what, C c, const input_of<C>& x1, const input_of<C>& x2) {
  CAPTURE(what);
  randomize(c, 7);
  const auto shared = testing::shared_storage(c);
  std::string listed;
  for (const auto& s : shared) listed += s + "; ";
  INFO("shared storage: ", listed);
  CHECK(shared.empty());
  auto r = testing::check_copy_is_deep(c, x1, x2);
  INFO(r.report);
  CHECK(r.ok);
}

template <class L>
void check_layer(const std::string& what, L layer, const Shape& in) {
  check_owns_its_state(what, std::move(layer), random_tensor(in, 1), random_tensor(in, 2));
}

const Shape kMap{2, 4, 6, 5};

}  // namespace

TEST_CASE("leaf layers own their state, copies are deep") {
  manual_seed(1);
  check_layer("Conv2d", Conv2d<double>({.in = 4, .out = 3, .kernel = 3, .padding = 1}), kMap);
  check_layer("ConvTranspose2d", ConvTranspose2d<double>({.in = 4, .out = 3, .kernel = 2, .stride = 2}), kMap);
  check_layer("BatchNorm2d", BatchNorm2d<double>(4), kMap);
  check_layer("FrozenBatchNorm2d", FrozenBatchNorm2d<double>(4), kMap);
  check_layer("SyncBatchNorm2d", SyncBatchNorm2d<double>(BatchNorm2dOptions{.channels = 4}, dist::CommunicatorRef{}),
              kMap);
  check_layer("LayerNorm", LayerNorm<double>(Shape{5}), kMap);
  check_layer("Linear", Linear<double>(5, 3), kMap);
  check_layer("ReLU", ReLU<double>(), kMap);
  check_layer("Sigmoid", Sigmoid<double>(), kMap);
  check_layer("Softmax", Softmax<double>(1), kMap);
  check_layer("MaxPool2d", MaxPool2d<double>({.kernel = 2}), kMap);
  check_layer("AvgPool2d", AvgPool2d<double>({.kernel = 2}), kMap);
  check_layer("GlobalAvgPool2d", GlobalAvgPool2d<double>(), kMap);
  check_layer("UpsampleNearest", UpsampleNearest<double>({.scale = Size2(2)}), kMap);
  check_layer("ResizeBilinear", ResizeBilinear<double>({.size = Size2(7, 4)}), kMap);
  check_layer("Dropout2d", Dropout2d<double>(0.3, 5), kMap);
  check_layer("DeformConv2dPack", DeformConv2dPack<double>({.in = 4, .out = 4, .kernel = 3, .padding = 1}), kMap);
  check_layer("ModulatedDeformConv2dPack",
              ModulatedDeformConv2dPack<double>({.in = 4, .out = 4, .kernel = 3, .padding = 1}), kMap);
}

TEST_CASE("combinators own their state, copies are deep") {
  manual_seed(2);
  using C = Conv2d<double>;
  check_layer("Seq", Seq<C, BatchNorm2d<double>, ReLU<double>>(C({.in = 4, .out = 4, .kernel = 1}), BatchNorm2d<double>(4),
                                                                ReLU<double>()),
              kMap);
  check_layer("Residual", Residual<Seq<C, ReLU<double>>>(Seq<C, ReLU<double>>(C({.in = 4, .out = 4, .kernel = 1}),
                                                                              ReLU<double>())),
              kMap);
  check_layer("Repeat", RepeatN<C>(3, [](std::size_t) { return C({.in = 4, .out = 4, .kernel = 3, .padding = 1}); }),
              kMap);
  check_layer("Sum", Sum<C, C>(C({.in = 4, .out = 2, .kernel = 1}), C({.in = 4, .out = 2, .kernel = 3, .padding = 1})),
              kMap);
  check_layer("Concat",
              Concat<C, C>(C({.in = 4, .out = 2, .kernel = 1}), C({.in = 4, .out = 3, .kernel = 3, .padding = 1})),
              kMap);
  check_layer("Tap", Seq<Tap<"t", C>, ReLU<double>>(Tap<"t", C>(C({.in = 4, .out = 4, .kernel = 1})), ReLU<double>()),
              kMap);
}

TEST_CASE("global-context and non-local blocks own their state, copies are deep") {
  manual_seed(3);
  const Shape in{2, 16, 5, 4};
  check_layer("GC r4 add", GCBlock<std::ratio<1, 4>, fusion::Add, double>(16), in);
  check_layer("GC r4 mul+add avg", GCBlock<std::ratio<1, 4>, fusion::MulAdd, double>(16, Pooling::Average), in);
  check_layer("SE", SELayer<double>(16, 4), in);
  check_layer("SimplifiedNL", SimplifiedNL<double>(16), in);
  check_layer("NonLocal2d", NonLocal2d<double>({.in_channels = 16}), in);
  // With norm: conv_out.bn.weight and .bias once shared one storage.
  check_layer("NonLocal2d (norm)", NonLocal2d<double>({.in_channels = 16, .norm = true}), in);
}

TEST_CASE("backbone, neck and modules own their state, copies are deep") {
  manual_seed(4);
  using Tiny = resnet::Blocks<2, 1, 1, 1>;
  ResNetOptions o{.in_channels = 3, .stem_channels = 8, .base_channels = 4};
  o.plugins = {{.block = gc_options(0, {1, 4}), .position = Position::AfterConv3},
               {.block = se_options(0, 2), .position = Position::AfterConv2, .stages = {true, false, true, false}}};
  using Net = BasicResNet<double, Cpu, Tiny, resnet::Dcn<resnet::Stages<0, 0, 1, 1>>>;
  const Shape images{2, 3, 32, 32};
  check_owns_its_state("ResNet (GC, SE, DCN)", Net(o), random_tensor(images, 1), random_tensor(images, 2));
  Net eval_net(o);
  eval_net.set_training(false);
  check_owns_its_state("ResNet in eval mode", std::move(eval_net), random_tensor(images, 1), random_tensor(images, 2));
  o.out_indices = {1, 2, 3};
  Chain<Net, FPN<double>> with_neck(Net(o), FPN<double>({.in_channels = {32, 64, 128}, .out_channels = 4, .num_outs = 5}));
  check_owns_its_state("ResNet + FPN", std::move(with_neck), random_tensor(images, 3), random_tensor(images, 4));
  AppliedToEach<Seq<Conv2d<double>, ReLU<double>>> head(
      Seq<Conv2d<double>, ReLU<double>>(Conv2d<double>({.in = 4, .out = 4, .kernel = 3, .padding = 1}), ReLU<double>()));
  check_owns_its_state("AppliedToEach", std::move(head), {random_tensor(kMap, 5), random_tensor(Shape{2, 4, 3, 3}, 6)},
                       {random_tensor(kMap, 7), random_tensor(Shape{2, 4, 3, 3}, 8)});
}
