// The compile-time example of issue 6: GC-ResNet-50 (GC r16 after conv3 on c3-c5) with an FPN
// neck, instantiated on the CPU, one eval forward on a small input. Its compile time is kept
// as a benchmark (docs/performance.md, "Build times").
//   gcnet_backbone_example [SIZE]
#include <cstdio>
#include <cstdlib>

#include "gcnet/models/counting.hpp"
#include "gcnet/models/fpn.hpp"
#include "gcnet/models/resnet.hpp"

using namespace gcnet;
using namespace gcnet::resnet;

// The backbone is one type expression (the same type as gcnet::GcResNet50).
using GcR50 = ResNet<Depth50, Plugin<GCBlock<std::ratio<1, 16>>, AfterConv3, Stages<0, 1, 1, 1>>>;
static_assert(std::is_same_v<GcR50, GcResNet50>);

int main(int argc, char** argv) {
  const index_t size = argc > 1 ? std::atoi(argv[1]) : 64;
  manual_seed(0);
  GcR50 backbone;
  FPN<> neck({.in_channels = backbone.out_channels(), .out_channels = 256, .num_outs = 5});

  Tensor<float> x(Shape{1, 3, size, size});
  Rng rng(1);
  for (index_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(rng.normal());
  FeatureMaps<float> feats;
  std::vector<Tensor<float>> outs;
  backbone.forward(Context::eval(), x, feats);
  neck.forward(Context::eval(), feats, outs);

  std::printf("%s: %.2f M parameters, %.2f GMACs at %lldx%lld\n", backbone.describe().c_str(),
              double(count_parameters(backbone)) / 1e6, total_macs(count_blocks(backbone, x.shape())) / 1e9,
              static_cast<long long>(size), static_cast<long long>(size));
  std::printf("neck: %.2f M parameters\n", double(count_parameters(neck)) / 1e6);
  for (std::size_t i = 0; i < outs.size(); ++i) std::printf("  P%zu %s\n", i + 2, outs[i].shape().str().c_str());
  return 0;
}
