// The ResNet Bottleneck two ways: ResBottleneck (models/res_block.hpp, what the backbones use)
// and the same block composed of layers with Seq and Residual (models/composed_bottleneck.hpp):
// mmdet names, PyTorch parity of both on one fixture, gradients, and the errors of compositions
// that do not fit.
#include <doctest/doctest.h>

#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/models/composed_bottleneck.hpp"
#include "gcnet/models/res_block.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"

using namespace gcnet;

TEST_CASE("Bottleneck: state-dict names are mmdet's") {
  auto block = make_composed_bottleneck_down(64, 64, 2);
  std::vector<std::string> params, buffers;
  for (auto& [n, p] : named_parameters(block)) params.push_back(n);
  for (auto& [n, b] : named_buffers(block)) buffers.push_back(n);
  CHECK(params == std::vector<std::string>{"conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight",
                                           "bn2.bias", "conv3.weight", "bn3.weight", "bn3.bias",
                                           "downsample.0.weight", "downsample.1.weight", "downsample.1.bias"});
  CHECK(std::find(buffers.begin(), buffers.end(), "bn1.running_mean") != buffers.end());
  CHECK(std::find(buffers.begin(), buffers.end(), "downsample.1.running_var") != buffers.end());
  CHECK(block.setup(Shape{2, 64, 56, 56}) == Shape{2, 256, 28, 28});
}

TEST_CASE("ResBottleneck: PyTorch parity (torchvision Bottleneck, train, and eval with the norms folded)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/bottleneck.safetensors");
  using Block = ResBottleneck<BatchNorm2d<>, Conv2d<>>;
  {
    Block block({.inplanes = 8, .planes = 4, .width = 4, .stride = 2, .downsample = true});
    auto r = testing::run_parity(block, f, "down_train");
    INFO(r.report);
    CHECK(r.ok);
  }
  {
    Block block({.inplanes = 16, .planes = 4, .width = 4});
    auto r = testing::run_parity(block, f, "identity_eval");
    INFO(r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("Bottleneck composed of layers: PyTorch parity (torchvision Bottleneck, train and eval)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/bottleneck.safetensors");
  {
    auto block = make_composed_bottleneck_down(8, 4, 2);
    auto r = testing::run_parity(block, f, "down_train");
    INFO(r.report);
    CHECK(r.ok);
  }
  {
    auto block = make_composed_bottleneck(16, 4);
    auto r = testing::run_parity(block, f, "identity_eval");
    INFO(r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("Bottleneck: gradient check (double), train mode") {
  manual_seed(3);
  auto block = make_composed_bottleneck_down<double>(4, 2, 2);
  testing::GradCheckOptions o;
  o.input_probes = 30;
  o.param_probes = 4;
  auto r = testing::check_gradients(block, Shape{2, 4, 5, 5}, o);
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("Seq of Conv2d and BatchNorm2d that do not fit: the error names both layers and the shape") {
  using Net = Seq<Conv2d<>, BatchNorm2d<>, Conv2d<>>;
  Net net{Conv2d<>({.in = 3, .out = 16, .kernel = 3, .padding = 1}), BatchNorm2d<>(16),
          Conv2d<>({.in = 32, .out = 8, .kernel = 3})};
  net.named({"conv1", "bn1", "conv2"});
  const char* msg =
      "Seq element 2 'conv2' (Conv2d(32, 8, kernel=3x3, stride=1, padding=0)) does not fit the output of element 1 "
      "'bn1' (BatchNorm2d(16";
  CHECK_THROWS_WITH_AS(net.setup(Shape{2, 3, 8, 8}), doctest::Contains(msg), Error);
  CHECK_THROWS_WITH_AS(net.setup(Shape{2, 3, 8, 8}), doctest::Contains("of shape [2, 16, 8, 8]"), Error);
  CHECK_THROWS_WITH_AS(net.setup(Shape{2, 3, 8, 8}),
                       doctest::Contains("expected input with 32 channels, got shape [2, 16, 8, 8]"), Error);
  // Feeding the first layer the wrong channel count names it and the input shape.
  CHECK_THROWS_WITH_AS(net.setup(Shape{2, 4, 8, 8}),
                       doctest::Contains("Seq element 0 'conv1' (Conv2d(3, 16, kernel=3x3, stride=1, padding=1)) given "
                                         "input of shape [2, 4, 8, 8]"),
                       Error);
  CHECK_THROWS_WITH_AS(make_composed_bottleneck(64, 64), doctest::Contains("needs inplanes == 4 * planes"), Error);
}
