// Deformable convolution on the device: DeformConv2d / ModulatedDeformConv2d and the DCNv2
// pack instantiated with Cuda against their CPU instantiation (the kernel bodies are written
// once). Skips visibly without a GPU.
#include "cuda_test_support.hpp"
#include "gcnet/layers/deform_conv2d.hpp"
#include "gcnet/layers/deform_conv2d_pack.hpp"

using namespace gcnet;
using test::random_tensor;
using test::relative_error;

TEST_CASE("ModulatedDeformConv2d<float, Cuda> equals the CPU: output and every gradient") {
  GCNET_REQUIRE_CUDA_DEVICE();
  const DeformConv2dOptions o{.in = 8, .out = 6, .kernel = 3, .stride = {1, 2}, .padding = 1, .groups = 2,
                              .deform_groups = 2, .bias = true};
  ModulatedDeformConv2d<float, Cpu> cpu(o);
  ModulatedDeformConv2d<float, Cuda> dev(o);
  dev.weight().value = to_backend<Cuda>(cpu.weight().value);
  dev.bias()->value = to_backend<Cuda>(cpu.bias()->value);
  const Shape in{2, 8, 9, 10};
  const auto x = random_tensor<float>(in, 1);
  auto off = random_tensor<float>(cpu.offset_shape(in), 2);
  for (index_t i = 0; i < off.numel(); ++i) off[i] *= 3.0f;  // many samples outside the image
  const auto mask = random_tensor<float>(cpu.mask_shape(in), 3);
  Tensor<float, Cpu> y, dx = zeros<float>(in), doff = zeros<float>(off.shape()), dmask = zeros<float>(mask.shape());
  cpu.forward(x, off, mask, y);
  const auto dy = random_tensor<float>(y.shape(), 4);
  cpu.backward(x, off, mask, y, dy, dx, doff, dmask);

  const auto dxx = to_backend<Cuda>(x), doffx = to_backend<Cuda>(off), dmaskx = to_backend<Cuda>(mask);
  Tensor<float, Cuda> dy_dev = to_backend<Cuda>(dy), y_dev;
  auto gx = to_backend<Cuda>(zeros<float>(in)), goff = to_backend<Cuda>(zeros<float>(off.shape()));
  auto gmask = to_backend<Cuda>(zeros<float>(mask.shape()));
  dev.forward(dxx, doffx, dmaskx, y_dev);
  dev.backward(dxx, doffx, dmaskx, y_dev, dy_dev, gx, goff, gmask);
  CHECK(relative_error(to_backend<Cpu>(y_dev), y) < 1e-5);
  CHECK(relative_error(to_backend<Cpu>(gx), dx) < 1e-5);
  CHECK(relative_error(to_backend<Cpu>(goff), doff) < 1e-5);
  CHECK(relative_error(to_backend<Cpu>(gmask), dmask) < 1e-5);
  CHECK(relative_error(to_backend<Cpu>(dev.weight().grad), cpu.weight().grad) < 1e-5);
  CHECK(relative_error(to_backend<Cpu>(dev.bias()->grad), cpu.bias()->grad) < 1e-5);
}

TEST_CASE("DeformConv2dPack<float, Cuda> equals the CPU at initialization") {
  GCNET_REQUIRE_CUDA_DEVICE();
  const DeformConv2dOptions o{.in = 4, .out = 4, .kernel = 3, .padding = 1};
  DeformConv2dPack<float, Cpu> cpu(o);
  DeformConv2dPack<float, Cuda> dev(o);
  dev.weight().value = to_backend<Cuda>(cpu.weight().value);
  const auto x = random_tensor<float>(Shape{2, 4, 7, 7}, 5);
  Tensor<float, Cpu> y;
  Tensor<float, Cuda> y_dev;
  cpu.forward(x, y);
  dev.forward(to_backend<Cuda>(x), y_dev);
  CHECK(relative_error(to_backend<Cpu>(y_dev), y) < 1e-5);
}
