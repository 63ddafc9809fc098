// ResNet backbones (modules: images in, FeatureMaps out) as type expressions and as runtime
// options: mmdet state-dict names, parameter counts, stage shapes (strides, dilations, ResNeXt
// widths, deep stem), frozen_stages / norm_eval, errors, one block type whatever the plugins,
// and gradient checks of tiny configurations through several outputs and plugins. FPN: names,
// shapes and gradients, as a module chained to the backbone.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "gcnet/compose/chain.hpp"
#include "gcnet/models/counting.hpp"
#include "gcnet/models/fpn.hpp"
#include "gcnet/models/resnet.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"

using namespace gcnet;
using namespace gcnet::resnet;

namespace {

template <class Net>
std::map<std::string, Shape> param_shapes(Net& net) {
  std::map<std::string, Shape> m;
  net.visit_parameters("", [&](const std::string& n, auto& p) { m[n] = p.value.shape(); });
  return m;
}
template <class Net>
std::vector<std::string> buffer_names(Net& net) {
  std::vector<std::string> v;
  net.visit_buffers("", [&](const std::string& n, auto&) { v.push_back(n); });
  return v;
}
bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

template <class T>
Tensor<T, Cpu> random_tensor(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<T, Cpu> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(rng.normal());
  return t;
}

template <class Net>
FeatureMaps<typename Net::value_type, Cpu> run(Net& net, const Tensor<typename Net::value_type, Cpu>& x) {
  FeatureMaps<typename Net::value_type, Cpu> y;
  net.forward(Context{.training = net.training()}, x, y);
  return y;
}

using Tiny = Blocks<2, 1, 1, 1>;
const ResNetOptions kTiny{.in_channels = 3, .stem_channels = 8, .base_channels = 4};

}  // namespace

TEST_CASE("ResNet-50 GC r16 + DCN on c3-c5: mmdet state-dict names and shapes") {
  using GcDcnR50 = ResNet<Depth50, Plugin<GCBlock<std::ratio<1, 16>>, AfterConv3, Stages<0, 1, 1, 1>>,
                          Dcn<Stages<0, 1, 1, 1>>>;
  manual_seed(0);
  GcDcnR50 net;
  auto p = param_shapes(net);
  CHECK(p.at("conv1.weight") == Shape{64, 3, 7, 7});
  CHECK(p.at("bn1.weight") == Shape{64});
  CHECK(p.at("layer1.0.conv1.weight") == Shape{64, 64, 1, 1});
  CHECK(p.at("layer1.0.downsample.0.weight") == Shape{256, 64, 1, 1});
  CHECK(p.at("layer1.0.downsample.1.bias") == Shape{256});
  CHECK(p.at("layer2.0.conv2.weight") == Shape{128, 128, 3, 3});
  CHECK(p.at("layer2.0.context_block.conv_mask.weight") == Shape{1, 512, 1, 1});
  CHECK(p.at("layer2.3.context_block.channel_add_conv.0.weight") == Shape{32, 512, 1, 1});
  CHECK(p.at("layer3.5.context_block.channel_add_conv.1.weight") == Shape{64, 1, 1});
  CHECK(p.at("layer4.2.context_block.channel_add_conv.3.weight") == Shape{2048, 128, 1, 1});
  CHECK(p.at("layer3.1.conv2.weight") == Shape{256, 256, 3, 3});
  CHECK(p.at("layer3.1.conv2.conv_offset.weight") == Shape{18, 256, 3, 3});
  CHECK(p.count("layer1.0.conv2.conv_offset.weight") == 0);
  CHECK(p.count("layer1.0.context_block.conv_mask.weight") == 0);
  CHECK(p.count("layer4.3.conv1.weight") == 0);
  CHECK(p.count("layer3.5.conv1.weight") == 1);
  auto b = buffer_names(net);
  CHECK(has(b, "bn1.running_mean"));
  CHECK(has(b, "layer3.2.bn2.running_var"));
  CHECK(has(b, "layer4.0.downsample.1.num_batches_tracked"));
  // One block type for every stage: plugins and deformable convs are values.
  CHECK(net.stage(0)[0].plugins().empty());
  CHECK(net.stage(1)[0].plugins().size() == 1);
  CHECK_FALSE(net.stage(0)[0].config().deformable);
  CHECK(net.stage(3)[2].config().deformable);
  auto shapes = net.setup(Shape{2, 3, 64, 64});
  CHECK(shapes[0] == Shape{2, 256, 16, 16});
  CHECK(shapes[3] == Shape{2, 2048, 2, 2});
}

TEST_CASE("ResNet counts: R50 23.5 M, GC r16 c3-c5 +2.52 M, r4 +10.0 M, R101, ResNeXt, FLOPs per block") {
  manual_seed(0);
  ResNet50 r50;
  GcResNet50 gc16;
  const index_t n50 = count_parameters(r50);
  CHECK(n50 == 23508032);  // torchvision resnet50 without fc: 25557032 - 2049000
  CHECK(count_parameters(gc16) - n50 == 2521741);
  {
    GcResNet50R4 gc4;
    CHECK(std::abs(double(count_parameters(gc4) - n50) / 1e6 - 10.0) < 0.05);
  }
  // ResNet-101 and ResNeXt-101 32x4d at a quarter of the width (full-size initialization is slow
  // for a unit test): the structure and the ResNeXt widths.
  {
    ResNet101 r101({.stem_channels = 16, .base_channels = 16});
    auto p = param_shapes(r101);
    CHECK(p.count("layer3.22.conv3.weight") == 1);
    CHECK(p.count("layer3.23.conv3.weight") == 0);
    CHECK(p.count("layer4.2.bn3.bias") == 1);
    ResNeXt101_32x4d x101({.stem_channels = 16, .base_channels = 16});
    p = param_shapes(x101);
    CHECK(p.at("layer1.0.conv2.weight") == Shape{32, 1, 3, 3});  // width = floor(16 * 4 / 64) * 32 = 32
    CHECK(p.at("layer4.0.conv2.weight") == Shape{256, 8, 3, 3});  // floor(128 * 4 / 64) * 32 = 256
    CHECK(p.at("layer3.22.conv3.weight") == Shape{256, 128, 1, 1});
    // Full-size counts, checked against torchvision (without fc) when this was written:
    // ResNet-101 42 500 160, ResNeXt-101 32x4d 42 128 704 (docs/backbones.md).
    CHECK(count_parameters(r101) < 42500160 / 10);
  }
  // FLOPs (multiply-accumulates) per block and per model.
  auto rows = count_blocks(r50, Shape{1, 3, 224, 224});
  REQUIRE(rows.size() == 17);  // stem + 16 blocks
  CHECK(rows[0].name == "stem");
  CHECK(rows[1].name == "layer1.0");
  CHECK(rows[16].name == "layer4.2");
  CHECK(rows[16].output == Shape{1, 2048, 7, 7});
  const double total = total_macs(rows);
  // ResNet-50 at 224 without fc: 4.09 GMACs (4.11 with the fc), as commonly reported.
  CHECK(total / 1e9 == doctest::Approx(4.09).epsilon(0.01));
  index_t params = 0;
  for (auto& r : rows) params += r.params;
  CHECK(params == 23508032);
  // GC r16 on c3-c5 adds well under 1 % compute (GCNet paper: +0.26 % for r16).
  const double gc_total = total_macs(count_blocks(gc16, Shape{1, 3, 224, 224}));
  CHECK(gc_total > total);
  CHECK((gc_total - total) / total < 0.01);
}

TEST_CASE("ResNetV1c-D8 (mmseg): deep stem names, strides (1,2,1,1), dilations (1,1,2,4) contracted") {
  manual_seed(0);
  ResNetV1cD8_50 net({.base_channels = 16});  // narrow blocks: the stem and the geometry are what matter
  auto p = param_shapes(net);
  CHECK(p.at("stem.0.weight") == Shape{32, 3, 3, 3});
  CHECK(p.at("stem.1.weight") == Shape{32});
  CHECK(p.at("stem.3.weight") == Shape{32, 32, 3, 3});
  CHECK(p.at("stem.6.weight") == Shape{64, 32, 3, 3});
  CHECK(p.at("stem.7.bias") == Shape{64});
  CHECK(p.count("conv1.weight") == 0);
  CHECK(p.count("bn1.weight") == 0);
  auto shapes = net.setup(Shape{1, 3, 64, 64});
  CHECK(shapes[0] == Shape{1, 64, 16, 16});
  CHECK(shapes[1] == Shape{1, 128, 8, 8});
  CHECK(shapes[2] == Shape{1, 256, 8, 8});
  CHECK(shapes[3] == Shape{1, 512, 8, 8});
  CHECK(net.stage(2)[0].config().dilation == 1);  // contract_dilation: 2 // 2
  CHECK(net.stage(2)[1].config().dilation == 2);
  CHECK(net.stage(3)[0].config().dilation == 2);
  CHECK(net.stage(3)[2].config().dilation == 4);
  CHECK(net.stage(2)[0].config().downsample);
  CHECK(net.stage(2)[0].config().stride == 1);
}

TEST_CASE("ResNet out_indices, frozen_stages and norm_eval") {
  manual_seed(1);
  ResNetOptions o = kTiny;
  o.out_indices = {1, 3};
  o.frozen_stages = 1;
  BasicResNet<float, Cpu, Tiny> net(o);
  auto x = random_tensor<float>(Shape{2, 3, 32, 32}, 5);
  net.set_training(true);
  auto outs = run(net, x);
  CHECK_FALSE(outs.c2.defined());
  CHECK(outs.c3.shape() == Shape{2, 32, 4, 4});
  CHECK_FALSE(outs.c4.defined());
  CHECK(outs.c5.shape() == Shape{2, 128, 1, 1});
  // Frozen: the stem and layer1 stay in eval mode (running stats untouched), layer2 trains.
  auto& stem_bn = net.stem().get<1>();
  CHECK_FALSE(stem_bn.training());
  int frozen_bn_training = 0, live_bn_training = 0;
  net.stage(0)[1].for_each_norm([&](auto& n) { frozen_bn_training += n.training(); });
  net.stage(1)[0].for_each_norm([&](auto& n) { live_bn_training += n.training(); });
  CHECK(frozen_bn_training == 0);
  CHECK(live_bn_training == 4);
  CHECK(stem_bn.num_batches_tracked()[0] == 0.0f);
  // Trainable parameters leave out the stem and layer1.
  std::vector<std::string> trainable;
  net.visit_trainable_parameters("", [&](const std::string& n, auto&) { trainable.push_back(n); });
  CHECK_FALSE(has(trainable, "conv1.weight"));
  CHECK_FALSE(has(trainable, "layer1.0.conv1.weight"));
  CHECK(has(trainable, "layer2.0.conv1.weight"));
  // norm_eval: every norm in eval mode while the model trains.
  o.frozen_stages = -1;
  o.norm_eval = true;
  BasicResNet<float, Cpu, Tiny> ne(o);
  ne.set_training(true);
  run(ne, x);
  int training_norms = 0;
  ne.stage(1)[0].for_each_norm([&](auto& n) { training_norms += n.training(); });
  CHECK(training_norms == 0);
  CHECK_FALSE(ne.stem().get<1>().training());
  CHECK(ne.stem().get<1>().num_batches_tracked()[0] == 0.0f);
  // ... and back in training without norm_eval.
  BasicResNet<float, Cpu, Tiny> plain(kTiny);
  plain.set_training(true);
  run(plain, x);
  CHECK(plain.stem().get<1>().num_batches_tracked()[0] == 1.0f);
  plain.set_training(false);
  CHECK_FALSE(plain.stem().get<1>().training());
}

TEST_CASE("ResNet with FrozenBatchNorm2d: norms are buffers, no norm parameters") {
  manual_seed(2);
  BasicResNet<float, Cpu, Tiny, Norm<FrozenBatchNorm2d<>>> net(kTiny);
  auto p = param_shapes(net);
  CHECK(p.count("bn1.weight") == 0);
  CHECK(p.count("layer1.0.conv1.weight") == 1);
  CHECK(has(buffer_names(net), "bn1.running_var"));
  CHECK(has(buffer_names(net), "layer1.0.bn1.weight"));
  auto outs = run(net, random_tensor<float>(Shape{1, 3, 32, 32}, 1));
  CHECK(outs.defined().size() == 4);
}

TEST_CASE("ResNet errors name the backbone and the shapes") {
  manual_seed(3);
  BasicResNet<float, Cpu, Tiny> net(kTiny);
  CHECK_THROWS_WITH_AS(run(net, random_tensor<float>(Shape{1, 4, 32, 32}, 1)),
                       doctest::Contains("ResNet(depth=17): expected input with 3 channels, got shape [1, 4, 32, 32]"),
                       Error);
  CHECK_THROWS_WITH_AS(net.setup(Shape{1, 3, 32}), doctest::Contains("ResNet(depth=17)"), Error);
  CHECK_THROWS_WITH_AS((BasicResNet<float, Cpu, Tiny>({.out_indices = {0, 4}})),
                       doctest::Contains("out_indices must be in [0, 4), got 4"), Error);
  CHECK_THROWS_WITH_AS((BasicResNet<float, Cpu, Tiny>({.frozen_stages = 5})),
                       doctest::Contains("frozen_stages must be in [-1, 4], got 5"), Error);
  CHECK_THROWS_WITH_AS((BasicResNet<float, Cpu, Tiny>({.base_channels = 0})),
                       doctest::Contains("base_channels must be positive, got 0"), Error);
  // A plugin that cannot be built for the stage's channels names itself.
  using Gc = BasicResNet<float, Cpu, Tiny, Plugin<GCBlock<std::ratio<1, 64>>, AfterConv1, AllStages>>;
  CHECK_THROWS_WITH_AS(Gc{kTiny}, doctest::Contains("ratio=1/64, pooling=attention, fusion=add): planes = int("), Error);
  // A gradient for a stage that is not an output, or of the wrong shape.
  ResNetOptions two = kTiny;
  two.out_indices = {1, 3};
  BasicResNet<float, Cpu, Tiny> net2(two);
  const auto x = random_tensor<float>(Shape{2, 3, 32, 32}, 1);
  auto y = run(net2, x);
  Tensor<float, Cpu> dx(Shape{2, 3, 32, 32});
  FeatureMaps<float, Cpu> dy;
  dy.c2 = random_tensor<float>(Shape{2, 16, 8, 8}, 2);
  CHECK_THROWS_WITH_AS(net2.backward(Context{}, x, y, dy, dx),
                       doctest::Contains("a gradient arrived for c2, which is not in out_indices"), Error);
  dy = FeatureMaps<float, Cpu>{};
  dy.c3 = random_tensor<float>(Shape{2, 32, 3, 3}, 2);
  CHECK_THROWS_WITH_AS(net2.backward(Context{}, x, y, dy, dx),
                       doctest::Contains("output gradient c3 has shape [2, 32, 3, 3], expected [2, 32, 4, 4]"), Error);
  // Unknown plugin names in a block are refused.
  ResNetOptions twice = kTiny;
  twice.plugins = {{.block = gc_options(0, {1, 4})}, {.block = gc_options(0, {1, 2})}};
  CHECK_THROWS_WITH_AS((BasicResNet<float, Cpu, Tiny>(twice)), doctest::Contains("two plugins named 'context_block'"), Error);
  twice.plugins[1].postfix = "_2";
  CHECK(param_shapes(*std::make_unique<BasicResNet<float, Cpu, Tiny>>(twice)).count("layer2.0.context_block_2.conv_mask.weight") == 1);
  FPN<> fpn({.in_channels = {16, 32}, .out_channels = 8, .num_outs = 3});
  CHECK_THROWS_WITH_AS(fpn.setup({Shape{1, 16, 8, 8}, Shape{1, 31, 4, 4}}),
                       doctest::Contains("expected input 1 with 32 channels, got shape [1, 31, 4, 4]"), Error);
  CHECK_THROWS_WITH_AS(FPN<>({.in_channels = {16, 32}, .out_channels = 8, .num_outs = 1}),
                       doctest::Contains("num_outs (1) must be at least the number of inputs (2)"), Error);
}

// Random weights everywhere: the GC/SE last convs start at zero (identity-like) and a DCN's
// zero-initialized offsets would sample on the grid; randomized, every gradient matters.
template <class Net>
void randomize(Net& net, std::uint64_t seed, double scale) {
  Rng rng(seed);
  net.visit_parameters("", [&](const std::string&, auto& prm) {
    for (index_t i = 0; i < prm.value.numel(); ++i) prm.value[i] += scale * rng.normal();
  });
}
testing::GradCheckOptions backbone_check() {
  testing::GradCheckOptions g;
  g.input_probes = 12;
  g.param_probes = 3;  // plus two random directions through every parameter tensor
  g.tolerance = 1e-4;
  // A small step: ReLU and max-pool kinks lie close to some inputs of a deep net, and a
  // difference across one is no derivative (1e-6 crosses kinks on these inputs, 1e-7 does not;
  // the rounding noise it adds is within the error's noise term).
  g.eps = 1e-7;
  return g;
}

TEST_CASE("ResNet gradient check (double): tiny net, plugins at all positions, several outputs") {
  manual_seed(4);
  using Net = BasicResNet<double, Cpu, Tiny,
                          Plugin<GCBlock<std::ratio<1, 4>, fusion::MulAdd>, AfterConv3, Stages<0, 1, 1, 0>>,
                          Plugin<SE<2>, AfterConv2, Stages<1, 0, 1, 0>>,
                          Plugin<SimplifiedNL<>, AfterConv1, Stages<0, 0, 0, 1>>>;
  ResNetOptions o = kTiny;
  o.out_indices = {0, 2, 3};
  Net net(o);
  auto p = param_shapes(net);
  CHECK(p.count("layer2.0.context_block.channel_mul_conv.0.weight") == 1);
  CHECK(p.count("layer1.1.se_block.conv1.conv.weight") == 1);
  CHECK(p.count("layer4.0.simplified_nl_block.conv_mask.weight") == 1);
  randomize(net, 9, 0.2);
  // 32x32: c5 is 2x2, so its BatchNorm sees 8 values per channel (with 2 it is nearly a sign
  // function, too curved for central differences).
  auto r = testing::check_gradients(net, random_tensor<double>(Shape{2, 3, 32, 32}, 1), backbone_check());
  INFO(r.report);
  CHECK(r.ok);
  int tensors = 1;  // the input
  for (auto& [n, prm] : named_parameters(net)) tensors += prm->value.numel() > 1;
  CHECK(r.directions == 2 * tensors);
}

TEST_CASE("ResNeXt + DCN-stage + deep stem + D8, gradient check (double)") {
  manual_seed(5);
  using Net = BasicResNet<double, Cpu, Blocks<1, 1, 2, 1>, DeepStem, ResNeXt<2, 32>, D8, Dcn<Stages<0, 0, 1, 1>>>;
  ResNetOptions o = kTiny;
  o.out_indices = {1, 3};
  Net net(o);
  CHECK(param_shapes(net).at("layer1.0.conv2.weight") == Shape{4, 2, 3, 3});  // width = floor(4 * 32 / 64) * 2
  CHECK(param_shapes(net).count("layer3.1.conv2.conv_offset.weight") == 1);
  randomize(net, 11, 0.1);
  auto r = testing::check_gradients(net, random_tensor<double>(Shape{2, 3, 24, 24}, 2), backbone_check());
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("FPN: mmdet names, shapes (nearest to the lower size, extra max-pool level), gradients") {
  manual_seed(6);
  FPN<> fpn({.in_channels = {256, 512, 1024, 2048}, .out_channels = 256, .num_outs = 5});
  auto p = param_shapes(fpn);
  CHECK(p.at("lateral_convs.0.conv.weight") == Shape{256, 256, 1, 1});
  CHECK(p.at("lateral_convs.3.conv.bias") == Shape{256});
  CHECK(p.at("fpn_convs.0.conv.bias") == Shape{256});
  CHECK(p.at("fpn_convs.3.conv.weight") == Shape{256, 256, 3, 3});
  CHECK(p.size() == 16);
  // Odd sizes: the top-down path interpolates to the lower level's size.
  auto s = fpn.setup(std::vector<Shape>{Shape{1, 256, 25, 19}, Shape{1, 512, 13, 10}, Shape{1, 1024, 7, 5},
                                        Shape{1, 2048, 4, 3}});
  CHECK(s[4] == Shape{1, 256, 2, 2});

  // Backbone and neck as one module; only c3..c5 go to a three-level FPN.
  using Net = BasicResNet<double, Cpu, Tiny>;
  ResNetOptions o = kTiny;
  o.out_indices = {1, 2, 3};
  Chain<Net, FPN<double>> net(Net(o), FPN<double>({.in_channels = {32, 64, 128}, .out_channels = 4, .num_outs = 5}));
  CHECK(param_shapes(net).count("neck.fpn_convs.2.conv.weight") == 1);
  CHECK(param_shapes(net).count("backbone.layer1.0.conv1.weight") == 1);
  auto r = testing::check_gradients(net, random_tensor<double>(Shape{2, 3, 36, 28}, 3), backbone_check());
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("FPN as a module: PyTorch parity through the module parity helper (three maps in, five levels out)") {
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/fpn.safetensors");
  FPN<> fpn({.in_channels = {8, 16, 32}, .out_channels = 6, .num_outs = 5});
  auto r = testing::run_module_parity(fpn, f, "c3_c5");
  INFO(r.report);
  CHECK(r.ok);
  CHECK(r.report.find("c3_c5.y.4") != std::string::npos);    // every level compared
  CHECK(r.report.find("c3_c5.dx.c5") != std::string::npos);  // every input gradient
  CHECK(r.report.find("c3_c5.grad.fpn_convs.2.conv.weight") != std::string::npos);
}

TEST_CASE("ResNet eval mode (fused BatchNorm + ReLU + residual): gradient check against the layer-by-layer backward") {
  manual_seed(7);
  using Net = BasicResNet<double, Cpu, Tiny, Plugin<GCBlock<std::ratio<1, 4>>, AfterConv3, Stages<0, 1, 0, 0>>>;
  Net net(kTiny);
  randomize(net, 13, 0.2);
  Rng rng(14);
  net.visit_buffers("", [&](const std::string& n, auto& b) {
    if (n.ends_with("running_mean"))
      for (index_t i = 0; i < b.numel(); ++i) b[i] = 0.3 * rng.normal();
    if (n.ends_with("running_var"))
      for (index_t i = 0; i < b.numel(); ++i) b[i] = 0.5 + rng.uniform();
  });
  net.set_training(false);
  auto r = testing::check_gradients(net, random_tensor<double>(Shape{2, 3, 32, 32}, 4), backbone_check());
  INFO(r.report);
  CHECK(r.ok);
}

// Every SyncBatchNorm2d below `l` takes the collective path even with one rank.
template <class L>
void force_sync_all(L& l) {
  if constexpr (requires { l.force_sync(true); }) {
    l.force_sync(true);
  } else if constexpr (requires { l.for_each_child([](std::string_view, auto&) {}); }) {
    l.for_each_child([](std::string_view, auto& c) { force_sync_all(c); });
  }
}

TEST_CASE("ResNet with SyncBatchNorm2d (single process, collective path): BatchNorm2d's names, trains as BatchNorm2d") {
  manual_seed(8);
  BasicResNet<double, Cpu, Tiny, Norm<SyncBatchNorm2d<>>> sync(kTiny);
  manual_seed(8);
  BasicResNet<double, Cpu, Tiny> plain(kTiny);
  auto p = param_shapes(sync);
  CHECK(p == param_shapes(plain));
  CHECK(buffer_names(sync) == buffer_names(plain));
  force_sync_all(sync);
  // Three SGD steps on L = mean(c5^2) + mean(c3^2): the same losses and parameters as with
  // BatchNorm2d, and the loss falls.
  const auto x = random_tensor<double>(Shape{4, 3, 32, 32}, 1);
  auto step = [&](auto& net) {
    FeatureMaps<double, Cpu> y, dy;
    net.forward(Context{}, x, y);
    double loss = 0;
    for (auto* t : {&y.c3, &y.c5}) {
      Tensor<double, Cpu>& d = t == &y.c3 ? dy.c3 : dy.c5;
      d = Tensor<double, Cpu>(t->shape());
      for (index_t i = 0; i < t->numel(); ++i) {
        loss += (*t)[i] * (*t)[i] / double(t->numel());
        d[i] = 2 * (*t)[i] / double(t->numel());
      }
    }
    Tensor<double, Cpu> dx;
    net.backward(Context{}, x, y, dy, dx);
    net.visit_parameters("", [](const std::string&, auto& prm) {
      for (index_t i = 0; i < prm.value.numel(); ++i) prm.value[i] -= 0.05 * prm.grad[i];
    });
    return loss;
  };
  std::vector<double> sync_losses, plain_losses;
  for (int k = 0; k < 3; ++k) {
    sync_losses.push_back(step(sync));
    plain_losses.push_back(step(plain));
    CHECK(sync_losses[k] == doctest::Approx(plain_losses[k]).epsilon(1e-10));
  }
  CHECK(sync_losses[2] < sync_losses[0]);
  auto sp = named_parameters(sync), pp = named_parameters(plain);
  for (std::size_t k = 0; k < sp.size(); ++k) {
    CAPTURE(sp[k].first);
    const auto& a = sp[k].second->value;
    const auto& b = pp[k].second->value;
    double diff = 0, scale = 1e-12;
    for (index_t i = 0; i < a.numel(); ++i) {
      diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
      scale = std::max(scale, std::abs(double(b[i])));
    }
    CHECK(diff / scale < 1e-9);
  }
  CHECK(sync.stage(1)[0].bn1().batch_norm().num_batches_tracked()[0] == 3.0);
}
