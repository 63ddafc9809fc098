// BasicBlock ResNets (ResNet-18/34; models/res_basic_block.hpp, BasicResNetBackbone):
//  - torchvision resnet18 parity, full width (hash-initialized weights on both sides), eval and
//    train mode: c2..c5, the input gradient and every parameter gradient for a random dy, the
//    running statistics after the train forward;
//  - mmseg ResNetV1c-18 D8 with GC after conv2 (bn2) on c3-c5, narrow, random weights loaded
//    strictly from a checkpoint by mmseg names, the same comparisons;
//  - the V1c D8 form with GC at base_channels 16: gradient check (double), output stride 8,
//    state-dict names, deep copies, every output element written;
//  - structure (names, parameter and MAC counts as torchvision), errors.
// Fixtures: tools/fixtures/basic_resnets.py -> tests/fixtures/basic_resnet*.safetensors.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "gcnet/io/checkpoint.hpp"
#include "gcnet/models/counting.hpp"
#include "gcnet/models/resnet.hpp"
#include "gcnet/testing/copy_check.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/fixture_compare.hpp"
#include "support/hash_init.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;  // support/layer_testing.hpp
using test::check_same_names, test::fixture_names;  // support/fixture_compare.hpp

namespace {

constexpr double kTolerance = 1e-4;
using Tn = Tensor<float, Cpu>;

const std::string kFixture = std::string(GCNET_FIXTURE_DIR) + "/basic_resnet.safetensors";

// Case `c` of the fixture on `net` (weights already loaded): names, then eval and train mode.
template <class Net>
void run_case(Net& net, const std::string& c) {
  const io::SafetensorsReader f(kFixture);
  check_same_names(test::param_shapes(net, ""), fixture_names(f, c + ".params"), c + " parameters");
  check_same_names(test::buffer_shapes(net, ""), fixture_names(f, c + ".buffers"), c + " buffers");
  const Tn x = f.tensor<float>(c + ".x");
  FeatureMaps<float, Cpu> dy;
  for (int k = 0; k < 4; ++k) dy.stage(k) = f.tensor<float>(c + ".dy." + std::to_string(k));
  for (const std::string mode : {"eval", "train"}) {
    CAPTURE(mode);
    const std::string p = c + "." + mode + ".";
    testing::ParityResult r;
    const Context ctx = mode == "train" ? Context::train() : Context::eval();
    FeatureMaps<float, Cpu> y;
    net.forward(ctx, x, y);
    for (int k = 0; k < 4; ++k) {
      REQUIRE(y.stage(k).defined());
      r.add(p + "y." + std::to_string(k), testing::relative_error(y.stage(k), f.tensor<double>(p + "y." + std::to_string(k))),
            kTolerance);
    }
    visit_parameters(net, "", [](const std::string&, Param<float, Cpu>& prm) {
      fill(prm.grad, std::numeric_limits<float>::quiet_NaN());  // assigned, every entry
    });
    Tn dx = zeros<float, Cpu>(x.shape());
    net.backward(ctx, x, y, dy, dx);
    r.add(p + "dx", testing::relative_error(dx, f.tensor<double>(p + "dx")), kTolerance);
    test::compare_parameter_gradients(net, "", f, r, p, kTolerance);
    if (mode == "train") {
      int buffers = 0;
      visit_buffers(net, "", [&](const std::string& n, Tn& b) {
        if (!f.contains(p + "buffer_out." + n)) return;
        ++buffers;
        r.add(p + "buffer_out." + n, testing::relative_error(b, f.tensor<double>(p + "buffer_out." + n)), kTolerance);
      });
      CHECK(buffers > 0);
    }
    MESSAGE(c, " ", mode, ": max relative error ", r.max_error, " (ReLU margin ", f.meta(c + ".relu_margin"), ")");
    INFO(c, " ", mode, ": max relative error ", r.max_error, "\n", r.report);
    CHECK(r.ok);
  }
}

// mmseg ResNetV1c-D8 options: deep stem (a type), strides (1, 2, 1, 1), dilations (1, 1, 2, 4),
// contract_dilation, GC (`ratio`) after conv2 (after bn2, before the residual add) on c3-c5.
ResNetOptions v1c_d8_gc(int depth, index_t stem, index_t base, PlanesRatio ratio) {
  ResNetOptions o = resnet_depth(depth);
  o.stem_channels = stem;
  o.base_channels = base;
  o.strides = {1, 2, 1, 1};
  o.dilations = {1, 1, 2, 4};
  o.contract_dilation = true;
  o.plugins = {{.block = gc_options(0, ratio), .position = Position::AfterConv2, .stages = {false, true, true, true}}};
  return o;
}
template <class T>
using V1c = BasicResNetBackbone<T, Cpu, BatchNorm2d<T, Cpu>, true>;

// Random weights everywhere (GC's last conv starts at zero), and random running statistics.
template <class Net>
void randomize(Net& net, std::uint64_t seed, double scale) {
  Rng rng(seed);
  visit_parameters(net, "", [&](const std::string&, auto& prm) {
    for (index_t i = 0; i < prm.value.numel(); ++i) prm.value[i] += scale * rng.normal();
  });
  visit_buffers(net, "", [&](const std::string& n, auto& b) {
    if (n.ends_with("running_mean"))
      for (index_t i = 0; i < b.numel(); ++i) b[i] = 0.3 * rng.normal();
    if (n.ends_with("running_var"))
      for (index_t i = 0; i < b.numel(); ++i) b[i] = 0.5 + rng.uniform();
  });
}

testing::GradCheckOptions backbone_check() {
  testing::GradCheckOptions g;
  g.input_probes = 12;
  g.param_probes = 2;  // plus a random direction through every parameter tensor
  g.directions = 1;
  g.tolerance = 1e-4;
  g.eps = 1e-7;  // ReLU and max-pool kinks lie close to some inputs of a deep net
  return g;
}

}  // namespace

TEST_CASE("BasicBlock ResNet-18/34: torchvision names and shapes, parameter and MAC counts, depth, describe") {
  manual_seed(0);
  BasicResNetBackbone<> r18(resnet_depth(18));
  static_assert(std::is_same_v<BasicResNetBackbone<>::block_type, ResBasicBlock<BatchNorm2d<float, Cpu>>>);
  static_assert(std::is_same_v<ResNetBackbone<>::block_type, ResBottleneck<BatchNorm2d<float, Cpu>, Conv2d<float, Cpu>>>);
  CHECK(r18.depth() == 18);
  CHECK(r18.describe() == "ResNet(depth=18)");
  CHECK(r18.out_channels() == std::vector<index_t>{64, 128, 256, 512});
  auto p = test::param_shapes(r18, "");
  CHECK(p.at("conv1.weight") == Shape{64, 3, 7, 7});
  CHECK(p.at("layer1.0.conv1.weight") == Shape{64, 64, 3, 3});
  CHECK(p.at("layer1.1.conv2.weight") == Shape{64, 64, 3, 3});
  CHECK(p.count("layer1.0.downsample.0.weight") == 0);  // 64 -> 64, stride 1: identity shortcut
  CHECK(p.at("layer2.0.conv1.weight") == Shape{128, 64, 3, 3});
  CHECK(p.at("layer2.0.downsample.0.weight") == Shape{128, 64, 1, 1});
  CHECK(p.at("layer2.0.downsample.1.weight") == Shape{128});
  CHECK(p.at("layer4.1.bn2.bias") == Shape{512});
  CHECK(p.count("layer4.2.conv1.weight") == 0);
  CHECK(p.count("layer1.0.conv3.weight") == 0);
  CHECK(test::buffer_shapes(r18, "").count("layer3.0.downsample.1.running_var") == 1);
  CHECK(count_parameters(r18) == 11176512);  // torchvision resnet18 without fc
  const auto rows = count_blocks(r18, Shape{1, 3, 224, 224});
  CHECK(total_macs(rows) == doctest::Approx(1813561344.0).epsilon(1e-12));  // torchvision's convolutions
  CHECK(rows.back().output == Shape{1, 512, 7, 7});
  CHECK(r18.stage(1)[0].describe() == "ResBasicBlock(64, 128, stride=2, downsample)");

  BasicResNetBackbone<> r34(resnet_depth(34));
  CHECK(r34.depth() == 34);
  CHECK(count_parameters(r34) == 21284672);
  CHECK(total_macs(count_blocks(r34, Shape{1, 3, 224, 224})) == doctest::Approx(3663249408.0).epsilon(1e-12));
  CHECK(test::param_shapes(r34, "").count("layer3.5.conv2.weight") == 1);
  CHECK(resnet_depth(34).blocks == resnet_depth(50).blocks);  // told apart by resnet_depth's `depth`
}

TEST_CASE("BasicBlock ResNet-18 parity: torchvision resnet18 (full width, hash init), eval and train") {
  BasicResNetBackbone<> net(resnet_depth(18));
  test::hash_init(net);
  run_case(net, "resnet18");
}

TEST_CASE("BasicBlock ResNetV1c-18 D8 + GC after conv2 on c3-c5 parity: mmseg names, loaded from a checkpoint") {
  V1c<float> net(v1c_d8_gc(18, 16, 4, {1, 2}));
  const auto report =
      io::load_checkpoint(std::string(GCNET_FIXTURE_DIR) + "/basic_resnet_v1c18_d8_gc_state.safetensors", net, nullptr);
  CHECK(report.complete());  // strict: every name and shape matched
  run_case(net, "v1c18_d8_gc");
}

TEST_CASE("BasicBlock ResNetV1c-18 D8, GC after conv2 on c3-c5, base_channels 16: structure and gradient check") {
  manual_seed(1);
  V1c<double> net(v1c_d8_gc(18, 16, 16, {1, 4}));
  CHECK(net.describe() == "ResNet(depth=18, deep_stem, GCBlock(0, ratio=1/4, pooling=attention, fusion=add)@after_conv2)");
  // Names: the deep stem, the GC blocks of stages 2-4 (none in stage 1), no conv3.
  auto p = test::param_shapes(net, "");
  CHECK(p.at("stem.0.weight") == Shape{8, 3, 3, 3});
  CHECK(p.at("stem.6.weight") == Shape{16, 8, 3, 3});
  CHECK(p.at("layer3.0.context_block.conv_mask.weight") == Shape{1, 64, 1, 1});
  CHECK(p.at("layer2.1.context_block.channel_add_conv.0.weight") == Shape{8, 32, 1, 1});
  CHECK(p.at("layer4.1.context_block.channel_add_conv.1.weight") == Shape{32, 1, 1});  // LayerNorm
  CHECK(p.at("layer4.0.context_block.channel_add_conv.3.weight") == Shape{128, 32, 1, 1});
  CHECK(p.count("layer1.0.context_block.conv_mask.weight") == 0);
  CHECK(p.at("layer3.0.downsample.0.weight") == Shape{64, 32, 1, 1});  // channels change, stride 1
  CHECK(p.count("layer3.0.conv3.weight") == 0);
  CHECK(p.count("conv1.weight") == 0);
  // Dilations: conv1 of block 0 contracted (2 -> 1, 4 -> 2), conv2 always a plain 3x3.
  CHECK(net.stage(2)[0].conv1().options().dilation.h == 1);
  CHECK(net.stage(2)[1].conv1().options().dilation.h == 2);
  CHECK(net.stage(3)[0].conv1().options().dilation.h == 2);
  CHECK(net.stage(3)[1].conv1().options().dilation.h == 4);
  CHECK(net.stage(3)[1].conv1().options().padding.h == 4);
  CHECK(net.stage(3)[1].conv2().options().dilation.h == 1);
  CHECK(net.stage(3)[1].conv2().options().padding.h == 1);
  CHECK(net.stage(2)[0].conv1().options().stride.h == 1);
  // Output stride 8 from layer2 on.
  const auto s = net.setup(Shape{2, 3, 32, 32});
  CHECK(s[0] == Shape{2, 16, 8, 8});
  CHECK(s[1] == Shape{2, 32, 4, 4});
  CHECK(s[2] == Shape{2, 64, 4, 4});
  CHECK(s[3] == Shape{2, 128, 4, 4});
  CHECK(testing::shared_storage(net).empty());

  randomize(net, 9, 0.1);
  // Training mode: every output written (NaN-filled first), dx accumulated, every parameter
  // gradient assigned, analytic against central differences.
  auto r = testing::check_gradients(net, random_tensor<double>(Shape{2, 3, 32, 32}, 1), backbone_check());
  MESSAGE("V1c-18 D8 GC (train): ", r.checked, " entries, ", r.directions, " directions, max error ", r.max_error);
  INFO(r.report);
  CHECK(r.ok);
  int tensors = 1;  // the input, and every parameter tensor of more than one entry
  for (auto& [n, prm] : named_parameters(net)) tensors += prm->value.numel() > 1;
  CHECK(r.directions == tensors);

  // Eval mode: the fused forward (folded BatchNorms), then the layer-by-layer backward.
  net.set_training(false);
  auto eval_check = backbone_check();
  eval_check.input_probes = 6;
  eval_check.param_probes = 1;
  auto re = testing::check_gradients(net, random_tensor<double>(Shape{2, 3, 32, 32}, 2), eval_check);
  INFO(re.report);
  CHECK(re.ok);
  net.set_training(true);

  // A copy is deep: training it leaves the original's parameters, buffers and backward alone.
  auto c = testing::check_copy_is_deep(net, random_tensor<double>(Shape{2, 3, 32, 32}, 3),
                                       random_tensor<double>(Shape{2, 3, 32, 32}, 4));
  INFO(c.report);
  CHECK(c.ok);
}

TEST_CASE("BasicBlock plugins at both positions (SE after conv1, GC + SNL after conv2), norm_eval: gradient check") {
  manual_seed(2);
  ResNetOptions o{.stem_channels = 8, .base_channels = 4, .blocks = {2, 1, 1, 1}};
  o.out_indices = {0, 2, 3};
  o.plugins = {{.block = se_options(0, 2), .position = Position::AfterConv1, .stages = {true, false, true, false}},
               {.block = gc_options(0, {1, 2}), .position = Position::AfterConv2, .stages = {true, true, false, true}},
               {.block = snl_options(0), .position = Position::AfterConv2, .stages = {true, false, false, false}}};
  BasicResNetBackbone<double> net(o);
  CHECK(net.depth() == 12);
  auto p = test::param_shapes(net, "");
  CHECK(p.count("layer1.1.se_block.conv1.conv.weight") == 1);
  CHECK(p.count("layer1.0.simplified_nl_block.conv_mask.weight") == 1);
  CHECK(p.at("layer4.0.context_block.conv_mask.weight") == Shape{1, 32, 1, 1});
  randomize(net, 11, 0.2);
  auto r = testing::check_gradients(net, random_tensor<double>(Shape{2, 3, 32, 32}, 5), backbone_check());
  INFO(r.report);
  CHECK(r.ok);
  // norm_eval: every norm of the backbone in eval mode while training, plugins' included.
  o.norm_eval = true;
  BasicResNetBackbone<double> frozen(o);
  frozen.set_training(true);
  CHECK_FALSE(frozen.stage(0)[0].bn2().training());
  CHECK_FALSE(frozen.stage(1)[0].downsample_norm()->training());
}

TEST_CASE("BasicBlock ResNet errors: depth of the other block family, AfterConv3, groups, bad input") {
  manual_seed(3);
  CHECK_THROWS_WITH_AS((ResNetBackbone<>(resnet_depth(18))),
                       doctest::Contains("depth 18 is a BasicBlock ResNet, but this backbone type is built of "
                                         "Bottlenecks: use BasicResNetBackbone"),
                       Error);
  CHECK_THROWS_WITH_AS((BasicResNetBackbone<>(resnet_depth(50))),
                       doctest::Contains("depth 50 is a Bottleneck ResNet, but this backbone type is built of "
                                         "BasicBlocks: use ResNetBackbone"),
                       Error);
  CHECK_THROWS_WITH_AS(resnet_depth(20), doctest::Contains("depth 20 is not one of 18, 34 (BasicBlock"), Error);
  ResNetOptions bad_depth;
  bad_depth.depth = 26;
  CHECK_THROWS_WITH_AS((BasicResNetBackbone<>(bad_depth)), doctest::Contains("depth 26 is not one of"), Error);

  ResNetOptions o{.stem_channels = 8, .base_channels = 4, .blocks = {1, 1, 1, 1}};
  o.plugins = {{.block = gc_options(0, {1, 4}), .position = Position::AfterConv3}};
  CHECK_THROWS_WITH_AS((BasicResNetBackbone<>(o)),
                       doctest::Contains("at after_conv3: a BasicBlock has no conv3; use AfterConv2 (after bn2"), Error);
  o.plugins.clear();
  const ContextPlugin gc4{.block = gc_options(0, {1, 4})};
  std::vector<CustomPlugin<float, Cpu>> custom{{.position = Position::AfterConv3, .make = [&](index_t c) {
                                                  return make_context_plugin<float, Cpu>(gc4, c);
                                                }}};
  CHECK_THROWS_WITH_AS((BasicResNetBackbone<>(o, custom)), doctest::Contains("custom plugin 0 at after_conv3"), Error);
  // The block itself refuses the position too.
  using Block = ResBasicBlock<BatchNorm2d<float, Cpu>>;
  ResBlockConfig c{.inplanes = 4, .planes = 4};
  std::vector<PlacedPlugin<float, Cpu>> placed;
  placed.push_back({Position::AfterConv3, make_context_plugin<float, Cpu>(gc4, 4)});
  CHECK_THROWS_WITH_AS((Block(c, std::move(placed))),
                       doctest::Contains("a BasicBlock has no conv3, so plugin position after_conv3 does not exist"),
                       Error);
  CHECK_THROWS_WITH_AS((Block(ResBlockConfig{.inplanes = 4, .planes = 8})),
                       doctest::Contains("without a downsample the block needs stride 1 and inplanes == planes"),
                       Error);
  ResNetOptions grouped = o;
  grouped.groups = 32;
  grouped.base_width = 4;
  CHECK_THROWS_WITH_AS((BasicResNetBackbone<>(grouped)),
                       doctest::Contains("a BasicBlock ResNet has no grouped convolutions"), Error);

  // Bad input: channels, rank.
  BasicResNetBackbone<> net(o);
  FeatureMaps<float, Cpu> y;
  CHECK_THROWS_WITH_AS(net.forward(Context::train(), random_tensor<float>(Shape{1, 4, 32, 32}, 1), y),
                       doctest::Contains("ResNet(depth=10): expected input with 3 channels, got shape [1, 4, 32, 32]"),
                       Error);
  CHECK_THROWS_WITH_AS(net.setup(Shape{1, 3, 32}), doctest::Contains("ResNet(depth=10)"), Error);
  Block block(ResBlockConfig{.inplanes = 8, .planes = 16, .stride = 2, .downsample = true});
  Tn out;
  CHECK_THROWS_WITH_AS(block.forward(random_tensor<float>(Shape{1, 4, 8, 8}, 2), out),
                       doctest::Contains("ResBasicBlock(8, 16, stride=2, downsample): expected input with 8 channels, "
                                         "got shape [1, 4, 8, 8]"),
                       Error);
}

// The segmentation configs use SyncBatchNorm2d (one process: BatchNorm2d's numbers) and the deep
// stem; FrozenBatchNorm2d keeps its statistics and affine as buffers.
TEST_CASE("BasicBlock ResNetV1c with SyncBatchNorm2d (one process) computes what BatchNorm2d does; FrozenBatchNorm2d") {
  ResNetOptions o{.stem_channels = 8, .base_channels = 4, .blocks = {1, 2, 1, 1}};
  o.plugins = {{.block = gc_options(0, {1, 2}), .position = Position::AfterConv2}};
  manual_seed(4);
  BasicResNetBackbone<double, Cpu, SyncBatchNorm2d<double, Cpu>, true> sync(o);
  manual_seed(4);
  V1c<double> plain(o);
  CHECK(test::param_shapes(sync, "") == test::param_shapes(plain, ""));
  CHECK(test::buffer_shapes(sync, "") == test::buffer_shapes(plain, ""));
  const auto x = random_tensor<double>(Shape{2, 3, 32, 32}, 6);
  FeatureMaps<double, Cpu> ys, yp, dy;
  sync.forward(Context::train(), x, ys);
  plain.forward(Context::train(), x, yp);
  for (int k = 0; k < 4; ++k) {
    dy.stage(k) = random_tensor<double>(yp.stage(k).shape(), 10 + static_cast<std::uint64_t>(k));
    CHECK(testing::relative_error(ys.stage(k), yp.stage(k)) < 1e-12);
  }
  auto dxs = zeros<double, Cpu>(x.shape()), dxp = zeros<double, Cpu>(x.shape());
  sync.backward(Context::train(), x, ys, dy, dxs);
  plain.backward(Context::train(), x, yp, dy, dxp);
  CHECK(testing::relative_error(dxs, dxp) < 1e-12);

  manual_seed(4);
  BasicResNetBackbone<double, Cpu, FrozenBatchNorm2d<double, Cpu>> frozen(o);
  CHECK(test::param_shapes(frozen, "").count("layer2.0.bn2.weight") == 0);
  CHECK(test::buffer_shapes(frozen, "").count("layer2.0.bn2.weight") == 1);
  auto r = testing::check_gradients(frozen, x, backbone_check());
  INFO(r.report);
  CHECK(r.ok);
}
