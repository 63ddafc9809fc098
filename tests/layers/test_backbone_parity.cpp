// Backbones against PyTorch (tools/fixtures/backbones.py -> tests/fixtures/backbone_*.safetensors):
// torchvision ResNet-50 / ResNeXt-50 32x4d and plain-torch mmdet GC-ResNet-50 + FPN, DCN / DCNv2
// ResNet-50 and mmseg's dilated ResNetV1c-50 (D8). Weights come from the hash init on both sides
// (tests/support/hash_init.hpp), so a fixture holds only the input, the outputs and gradients
// of the probe L = sum_k sum(out_k^2) / numel(out_k). Float32 against float64, 1e-4 normwise.
// Also: strict checkpoint loading of a backbone names the offending tensors, and the
// "backbone_torchvision_import" ctest step (tools/convert_checkpoint.py resnet50-test).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gcnet/io/checkpoint.hpp"
#include "gcnet/models/fpn.hpp"
#include "gcnet/models/resnet.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/files.hpp"
#include "support/fixture_compare.hpp"
#include "support/hash_init.hpp"

using namespace gcnet;
using namespace test;  // support/fixture_compare.hpp
namespace fs = std::filesystem;

namespace {

constexpr double kTolerance = 1e-4;
using Tn = Tensor<float, Cpu>;

io::SafetensorsReader open_fixture(const std::string& model) {
  return io::SafetensorsReader(std::string(GCNET_FIXTURE_DIR) + "/backbone_" + model + ".safetensors");
}

void check_result(const testing::ParityResult& r, const std::string& model) {
  INFO(model, ": max relative error ", r.max_error, "\n", r.report);
  CHECK(r.ok);
  MESSAGE(model, ": max relative error ", r.max_error);
}

// Backbone (and optional FPN on all its outputs) on the fixture: names, outputs, gradients.
template <class Net, class Neck = FPN<float, Cpu>>
void run_backbone_parity(const std::string& model, Net& net, Neck* neck = nullptr) {
  const auto f = open_fixture(model);
  REQUIRE(f.meta("model") == model);
  test::hash_init(net);
  if (neck) test::hash_init(*neck, "neck.");
  net.set_training(false);  // BatchNorm on the (hash-initialized) running statistics

  auto params = param_shapes(net, "");
  auto buffers = buffer_shapes(net, "");
  if (neck) {
    params.merge(param_shapes(*neck, "neck."));
    buffers.merge(buffer_shapes(*neck, "neck."));
  }
  check_same_names(params, fixture_names(f, "params"), model + " parameters");
  check_same_names(buffers, fixture_names(f, "buffers"), model + " buffers");

  testing::ParityResult r;
  const Tn x = f.tensor<float>("input");
  const Context ctx = Context::eval();
  FeatureMaps<float, Cpu> outs, douts;
  std::vector<Tn> fpn_outs;
  net.forward(ctx, x, outs);
  for (int k = 0; k < 4; ++k) {
    REQUIRE(outs.stage(k).defined());
    const auto key = "out." + std::to_string(k);
    r.add(key, testing::relative_error(outs.stage(k), f.tensor<double>(key)), kTolerance);
    douts.stage(k) = probe_gradient(outs.stage(k));
  }
  if (neck) {
    neck->forward(ctx, outs, fpn_outs);
    REQUIRE(fpn_outs.size() == 5);
    for (std::size_t k = 0; k < fpn_outs.size(); ++k) {
      const auto key = "fpn." + std::to_string(k);
      r.add(key, testing::relative_error(fpn_outs[k], f.tensor<double>(key)), kTolerance);
    }
    std::vector<Tn> dfpn;
    for (const auto& o : fpn_outs) dfpn.push_back(probe_gradient(o));
    neck->backward(ctx, outs, fpn_outs, dfpn, douts);  // adds the neck's share to the backbone's own
  }
  Tn dx(x.shape());
  fill(dx, 0.0f);
  net.backward(ctx, x, outs, douts, dx);
  r.add("grad.input", testing::relative_error(dx, f.tensor<double>("grad.input")), kTolerance);
  compare_parameter_gradients(net, "", f, r);
  if (neck) compare_parameter_gradients(*neck, "neck.", f, r);
  check_result(r, model);
}

// A model's state with one tensor left out, one of the wrong shape and one extra: what a
// checkpoint of a slightly different architecture looks like.
// (Checkpoints take anything whose state can be visited; this is not a model, only state.)
template <class M>
struct DamagedState {
  using value_type = float;
  using backend_type = Cpu;
  M& m;
  std::string drop, reshape;
  Param<float, Cpu> wrong{full<float>(Shape{3}, 1.0f)}, extra{full<float>(Shape{2}, 1.0f)};
  void visit_parameters(const std::string& p, const ParamVisitor<float, Cpu>& f) {
    m.visit_parameters(p, [&](const std::string& n, Param<float, Cpu>& t) {
      if (n == drop) return;
      f(n, n == reshape ? wrong : t);
    });
    f(p + "fc.weight", extra);
  }
  void visit_buffers(const std::string& p, const BufferVisitor<float, Cpu>& f) { m.visit_buffers(p, f); }
};

// A copy of the parameter called `name`.
template <class M>
Tn parameter(M& m, const std::string& name) {
  Tn out;
  m.visit_parameters("", ParamVisitor<float, Cpu>([&](const std::string& n, Param<float, Cpu>& p) {
    if (n == name) out = clone(p.value);
  }));
  REQUIRE_MESSAGE(out.defined(), "no parameter '", name, "'");
  return out;
}

bool same_values(const Tn& a, const Tn& b) {
  if (!(a.shape() == b.shape())) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}

}  // namespace

TEST_CASE("backbone parity: torchvision resnet50") {
  ResNet50 net;
  run_backbone_parity("resnet50", net);
}

TEST_CASE("backbone parity: torchvision resnext50_32x4d") {
  ResNeXt50_32x4d net;
  run_backbone_parity("resnext50_32x4d", net);
}

TEST_CASE("backbone parity: mmdet GC-ResNet-50 r16 c3-c5 with FPN, the plugin chosen at run time") {
  // The runtime form: the same compiled type as plain ResNet-50, GC r16 given as an option; the
  // type expression GcResNet50 is that type with this option filled in.
  ResNetOptions o = resnet_depth(50);
  o.plugins = {{.block = gc_options(0, {1, 16}), .position = Position::AfterConv3, .stages = {false, true, true, true}}};
  ResNetBackbone<> net(o);
  static_assert(std::is_base_of_v<ResNetBackbone<>, GcResNet50> && std::is_base_of_v<ResNetBackbone<>, ResNet50>);
  CHECK(GcResNet50().describe() == net.describe());
  FPN<float, Cpu> neck({.in_channels = {256, 512, 1024, 2048}, .out_channels = 256, .num_outs = 5});
  run_backbone_parity("gc_resnet50_fpn", net, &neck);
}

// One backbone type, the plugin chosen at run time: the block it builds in layer1.0 (from the
// option alone) matches the PyTorch block fixture of each variant (tools/fixtures/blocks.py).
TEST_CASE("one backbone type runs none / SE / GC (r4, r16, avg, mul) / SNL chosen at run time: fixtures") {
  struct Variant {
    const char* fixture;
    const char* case_name;
    GlobalContextOptions block;
    index_t base_channels;  // so that layer1's output (AfterConv3) has the case's channels
  };
  const std::vector<Variant> variants{
      {"blocks_gc", "gc_c16_7x7_att_add", gc_options(0, {1, 4}), 4},                                       // GC r4
      {"blocks_gc_c256", "gc_c256_7x7_att_muladd", gc_options(0, {1, 16}, Pooling::Attention, Fusion::MulAdd), 64},  // r16
      {"blocks_gc", "gc_c16_7x7_avg_add", gc_options(0, {1, 4}, Pooling::Average), 4},                     // avg
      {"blocks_gc", "gc_c16_7x7_att_mul", gc_options(0, {1, 4}, Pooling::Attention, Fusion::Mul), 4},      // mul
      {"blocks_se", "se_c16_7x7", se_options(0, 4), 4},
      {"blocks_se", "se_c64_7x7", se_options(0, 16), 16},
      {"blocks_snl", "snl_c16_7x7", snl_options(0), 4},
  };
  for (const auto& v : variants) {
    CAPTURE(v.case_name);
    ResNetOptions o{.stem_channels = 8, .base_channels = v.base_channels, .blocks = {1, 1, 1, 1}};
    o.plugins = {{.block = v.block, .position = Position::AfterConv3, .stages = {true, false, false, false}}};
    ResNetBackbone<> net(o);  // the same type for every variant
    REQUIRE(net.stage(0)[0].plugins().size() == 1);
    auto* block = plugin_layer<GlobalContextBlock<float, Cpu>>(*net.stage(0)[0].plugins()[0].plugin);
    REQUIRE(block != nullptr);
    const io::SafetensorsReader f(std::string(GCNET_FIXTURE_DIR) + "/" + v.fixture + ".safetensors");
    auto r = testing::run_parity(*block, f, v.case_name);
    INFO(r.report);
    CHECK(r.ok);
  }
  // "none": plain ResNet-50 above ("backbone parity: torchvision resnet50") is this type too.
  static_assert(std::is_same_v<ResNet50::backbone_type, ResNetBackbone<>>);
}

TEST_CASE("backbone parity: mmseg ResNetV1c-50 D8") {
  ResNetV1cD8_50 net;
  run_backbone_parity("resnetv1c50_d8", net);
}

TEST_CASE("backbone parity: mmdet ResNet-50 with DCN on c3-c5") {
  ResNet<resnet::Depth50, resnet::Dcn<resnet::Stages<0, 1, 1, 1>>> net;
  run_backbone_parity("dcn_resnet50", net);
}

TEST_CASE("backbone parity: mmdet ResNet-50 with DCNv2 on c5") {
  ResNet<resnet::Depth50, resnet::DcnV2<resnet::Stages<0, 0, 0, 1>>> net;
  run_backbone_parity("dcnv2_resnet50", net);
}

TEST_CASE("backbone checkpoint: strict load lists missing, mis-shaped and unexpected tensors") {
  const auto dir = test::scratch_dir("backbone_parity", "strict");
  // ResNet-50's structure and names at 1/8 of the width (the files stay small).
  const ResNetOptions narrow{.stem_channels = 8, .base_channels = 8};
  ResNet50 saved(narrow);
  test::hash_init(saved);
  DamagedState<ResNet50> damaged{saved, "layer3.2.conv1.weight", "bn1.weight"};
  io::save_checkpoint((dir / "damaged.safetensors").string(), damaged, nullptr);

  ResNet50 fresh(narrow);
  const Tn before = parameter(fresh, "conv1.weight");
  CHECK_THROWS_WITH_AS(io::load_checkpoint((dir / "damaged.safetensors").string(), fresh, nullptr),
                       doctest::Contains("1 missing: layer3.2.conv1.weight; 1 unexpected: fc.weight; "
                                         "1 mis-shaped: bn1.weight (checkpoint [3], model [8])"),
                       gcnet::Error);
  // Nothing was loaded.
  CHECK(same_values(parameter(fresh, "conv1.weight"), before));

  // Non-strict: the report lists the same names and the rest is loaded.
  const auto r = io::load_checkpoint((dir / "damaged.safetensors").string(), fresh, nullptr, {.strict = false});
  CHECK(r.missing == std::vector<std::string>{"layer3.2.conv1.weight"});
  CHECK(r.unexpected == std::vector<std::string>{"fc.weight"});
  CHECK(r.mis_shaped == std::vector<std::string>{"bn1.weight"});
  CHECK(same_values(parameter(fresh, "conv1.weight"), parameter(saved, "conv1.weight")));
  CHECK_FALSE(same_values(parameter(fresh, "conv1.weight"), before));

  // The intact state round-trips strictly.
  io::save_checkpoint((dir / "whole.safetensors").string(), saved, nullptr);
  ResNet50 again(narrow);
  CHECK(io::load_checkpoint((dir / "whole.safetensors").string(), again, nullptr).complete());
}

// The C++ step of the ctest "backbone_torchvision_import" (tools/convert_checkpoint.py
// resnet50-test): a torchvision resnet50 .pth converted to safetensors loads strictly into
// ResNet50 and reproduces torchvision's stage outputs.
TEST_CASE("backbone checkpoint: torchvision resnet50 checkpoint (driven by tools/convert_checkpoint.py)" *
          doctest::skip()) {
  const char* dir_env = std::getenv("GCNET_RESNET50_IMPORT_DIR");
  REQUIRE_MESSAGE(dir_env != nullptr, "run through ctest -R backbone_torchvision_import");
  const fs::path dir(dir_env);
  ResNet50 net;
  const auto r = io::load_checkpoint((dir / "resnet50.safetensors").string(), net, nullptr);  // strict
  CHECK(r.complete());
  const io::SafetensorsReader io_ref((dir / "io.safetensors").string());
  FeatureMaps<float, Cpu> outs;
  net.forward(Context::eval(), io_ref.tensor<float>("x"), outs);
  for (int k = 0; k < 4; ++k) {
    CAPTURE(k);
    CHECK(testing::relative_error(outs.stage(k), io_ref.tensor<double>("out." + std::to_string(k))) <= kTolerance);
  }
}
