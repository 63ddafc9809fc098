// ResNet-50 + FPN as ONE module (Chain): gradient check in double through every stage and
// level, a Trainer run on it, and a copy trained alone that leaves its original unchanged.
// (Widths are narrow; depth and structure are ResNet-50's, with GC r4 in the 13 blocks of c3-c5.)
#include <doctest/doctest.h>

#include <filesystem>

#include "gcnet/compose/chain.hpp"
#include "gcnet/models/fpn.hpp"
#include "gcnet/models/resnet.hpp"
#include "gcnet/optim/sgd.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/train/trainer.hpp"
#include "support/files.hpp"

using namespace gcnet;

namespace {

template <class T>
Tensor<T, Cpu> random_tensor(const Shape& s, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Tensor<T, Cpu> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(scale * rng.normal());
  return t;
}

// ResNet-50's structure at 1/16 of the width (stem 8, base 4), GC r4 on c3-c5 as GCNet.
ResNetOptions narrow_r50() {
  ResNetOptions o = resnet_depth(50);
  o.stem_channels = 8;
  o.base_channels = 4;
  o.plugins = {{.block = gc_options(0, {1, 4})}};
  return o;
}
template <class T>
using R50Fpn = Chain<ResNetBackbone<T, Cpu>, FPN<T, Cpu>>;
template <class T>
R50Fpn<T> make_r50_fpn() {
  return R50Fpn<T>(ResNetBackbone<T, Cpu>(narrow_r50()),
                   FPN<T, Cpu>({.in_channels = {16, 32, 64, 128}, .out_channels = 8, .num_outs = 5}));
}

// Images and fixed random targets for the five FPN levels; L = sum_k mean((P_k - target_k)^2).
struct Batch {
  Tensor<float, Cpu> images;
};
class RandomImages {
 public:
  index_t batches_per_epoch() const { return 4; }
  void seek(std::int64_t b) { next_ = b; }
  Batch next() { return {random_tensor<float>(Shape{2, 3, 64, 64}, 100 + static_cast<std::uint64_t>(next_++ % 4))}; }

 private:
  std::int64_t next_ = 0;
};
NamedLosses fpn_regression(const std::vector<Tensor<float, Cpu>>& levels, std::vector<Tensor<float, Cpu>>& dlevels) {
  double loss = 0;
  for (std::size_t k = 0; k < levels.size(); ++k) {
    const auto target = random_tensor<float>(levels[k].shape(), 900 + k, 0.5);
    const double n = double(levels[k].numel());
    for (index_t i = 0; i < levels[k].numel(); ++i) {
      const double d = double(levels[k][i]) - double(target[i]);
      loss += d * d / n;
      dlevels[k][i] += static_cast<float>(2 * d / n);
    }
  }
  return {{"loss_fpn", loss}};
}

template <class M>
std::vector<Tensor<float, Cpu>> parameter_values(M& m) {
  std::vector<Tensor<float, Cpu>> v;
  visit_parameters(m, "", [&](const std::string&, auto& p) { v.push_back(clone(p.value)); });
  return v;
}

}  // namespace

TEST_CASE("ResNet-50 + FPN as one module: gradient check (double) through every stage and level") {
  manual_seed(1);
  auto net = make_r50_fpn<double>();
  CHECK(named_parameters(net.first()).size() == 159 + 8 * 13);  // ResNet-50, and GC r4 in c3-c5's 13 blocks
  Rng rng(2);
  visit_parameters(net, "", [&](const std::string&, auto& p) {
    for (index_t i = 0; i < p.value.numel(); ++i) p.value[i] += 0.05 * rng.normal();
  });
  testing::GradCheckOptions g;
  g.input_probes = 10;
  g.param_probes = 0;  // every parameter tensor is checked in full along a random direction instead
  g.directions = 1;
  g.tolerance = 1e-4;
  g.eps = 1e-7;
  auto r = testing::check_gradients(net, random_tensor<double>(Shape{2, 3, 64, 64}, 3), g);
  INFO(r.report);
  CHECK(r.ok);
  CHECK(r.directions == 1 + (263 - 13) + 16);  // the input, tensors of more than one entry (not conv_mask.bias), FPN
  MESSAGE("ResNet-50 + FPN: ", r.checked, " entries and ", r.directions, " directions, max error ", r.max_error);
}

TEST_CASE("ResNet-50 + FPN as one module: the Trainer trains it, a copy trained alone leaves the original unchanged") {
  manual_seed(2);
  auto net = make_r50_fpn<float>();
  auto original = net;  // a deep copy, trained below only through `net`
  const auto before = parameter_values(original);

  const auto dir = test::scratch_dir("backbone_module", "train");
  RandomImages loader;
  Sgd<float> opt(named_parameters(net), {.lr = 0.002, .momentum = 0.9});
  Trainer trainer(net, loader, opt, ConstantLr{},
                  [](const std::vector<Tensor<float, Cpu>>& out, const Batch&, std::vector<Tensor<float, Cpu>>& dout) {
                    return fpn_regression(out, dout);
                  },
                  TrainerOptions{.work_dir = dir.string(), .log_interval = 4, .print = false});
  trainer.run(12);
  const auto& curve = trainer.loss_curve();
  REQUIRE(curve.size() == 3);
  CHECK(curve[2].second < curve[0].second);
  CHECK(std::filesystem::exists(dir / "latest.safetensors"));

  // The original: parameters as before, and its forward as a fresh copy of them gives.
  const auto after = parameter_values(original);
  REQUIRE(after.size() == before.size());
  for (std::size_t k = 0; k < after.size(); ++k)
    for (index_t i = 0; i < after[k].numel(); ++i) REQUIRE(after[k][i] == before[k][i]);
  const auto trained = parameter_values(net);
  bool changed = false;
  for (std::size_t k = 0; k < trained.size(); ++k)
    for (index_t i = 0; i < trained[k].numel() && !changed; ++i) changed = trained[k][i] != before[k][i];
  CHECK(changed);
  // The trained copy's checkpoint loads strictly into the original, which then computes what
  // the trained one does.
  io::load_checkpoint((dir / "latest.safetensors").string(), original, nullptr);
  const auto x = random_tensor<float>(Shape{1, 3, 64, 64}, 5);
  std::vector<Tensor<float, Cpu>> a, b;
  gcnet::forward(original, Context::eval(), x, a);
  gcnet::forward(net, Context::eval(), x, b);
  for (std::size_t k = 0; k < a.size(); ++k)
    for (index_t i = 0; i < a[k].numel(); ++i) REQUIRE(a[k][i] == b[k][i]);
}
