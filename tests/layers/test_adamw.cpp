#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/optim/adamw.hpp"
#include "gcnet/optim/lr_schedule.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/errors.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;

namespace {
Tensor<double> randn(Rng& rng, const Shape& s) {
  Tensor<double> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = rng.normal();
  return t;
}
}  // namespace

TEST_CASE("AdamW: two groups under mmengine's poly schedule match torch.optim.AdamW step by step") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/optim.safetensors");
  const std::string c = "adamw_poly";
  std::map<std::string, Param<double, Cpu>> p;
  for (const char* k : {"conv.weight", "bn.weight"}) p.emplace(k, Param<double, Cpu>(f.tensor<double>(c + ".p0." + k)));
  auto opts = [&](int g) {
    const std::string q = c + ".g" + std::to_string(g) + "_";
    return AdamW<double>::Options{.lr = f.meta_double(q + "lr"), .beta1 = f.meta_double(q + "beta1"),
                                  .beta2 = f.meta_double(q + "beta2"), .eps = f.meta_double(q + "eps"),
                                  .weight_decay = f.meta_double(q + "weight_decay")};
  };
  AdamW<double> opt({{{{"conv.weight", &p.at("conv.weight")}}, opts(0)}, {{{"bn.weight", &p.at("bn.weight")}}, opts(1)}});
  const PolyLr sched({.max_iters = f.meta_int(c + ".max_iters"), .power = f.meta_double(c + ".power"),
                      .eta_min = f.meta_double(c + ".eta_min")});
  const int steps = static_cast<int>(f.meta_int(c + ".steps"));
  REQUIRE(steps > 1);
  for (int s = 0; s < steps; ++s) {
    CAPTURE(s);
    for (auto& [k, prm] : p) copy(f.tensor<double>(c + ".g" + std::to_string(s) + "." + k), prm.grad);
    opt.apply_schedule(sched, s);
    opt.step();
    for (auto& [k, prm] : p) {
      CAPTURE(k);
      CHECK(testing::relative_error(prm.value, f.tensor<double>(c + ".p" + std::to_string(s + 1) + "." + k)) <= 1e-12);
    }
  }
}

TEST_CASE("AdamW: state() and load_state() resume exactly; no gradient, no update") {
  Rng rng(8);
  Param<double, Cpu> a(randn(rng, Shape{3, 2})), b(randn(rng, Shape{2}));
  const AdamW<double>::Options o{.lr = 0.01, .weight_decay = 0.05};
  AdamW<double> opt({{"a", &a}, {"b", &b}}, o);
  const Tensor<double> b0 = clone(b.value);
  a.grad = randn(rng, a.value.shape());
  b.grad = Tensor<double>();  // b has no gradient: it must not move, nor get state
  opt.step();
  CHECK(test::max_abs_diff(b.value, b0) == 0.0);
  CHECK(opt.state().size() == 3);  // a.exp_avg, a.exp_avg_sq, a.step
  b.grad = randn(rng, b.value.shape());
  opt.step();
  // A copy of the parameters and a fresh optimizer loaded from state() continue identically.
  Param<double, Cpu> a2(clone(a.value)), b2(clone(b.value));
  AdamW<double> resumed({{"a", &a2}, {"b", &b2}}, o);
  for (auto& [name, t] : opt.state()) resumed.load_state(name, to_backend<Cpu>(*t));
  for (int s = 0; s < 3; ++s) {
    a.grad = randn(rng, a.value.shape());
    b.grad = randn(rng, b.value.shape());
    a2.grad = clone(a.grad);
    b2.grad = clone(b.grad);
    opt.step();
    resumed.step();
  }
  CHECK(test::max_abs_diff(a.value, a2.value) == 0.0);
  CHECK(test::max_abs_diff(b.value, b2.value) == 0.0);
}

TEST_CASE("AdamW: bad options and state are clear errors") {
  Param<double, Cpu> a(full<double>(Shape{2}, 1.0));
  CHECK(test::error_of([&] { AdamW<double>({{"a", &a}}, {.lr = -1}); }).find("invalid learning rate") != std::string::npos);
  CHECK(test::error_of([&] { AdamW<double>({{"a", &a}}, {.beta1 = 1.0}); }).find("betas must be in [0, 1)") != std::string::npos);
  CHECK(test::error_of([&] { AdamW<double>({{"a", &a}, {"a", &a}}, {}); }).find("appears more than once") != std::string::npos);
  AdamW<double> opt({{"a", &a}}, {});
  CHECK(test::error_of([&] { opt.load_state("a.exp_avg", full<double>(Shape{3}, 0.0)); }).find("has shape") != std::string::npos);
  CHECK(test::error_of([&] { opt.load_state("a.step", full<double>(Shape{1}, 1.5)); }).find("non-negative whole number") != std::string::npos);
  CHECK(test::error_of([&] { opt.load_state("b.exp_avg", full<double>(Shape{2}, 0.0)); }).find("no parameter for state 'b.exp_avg'") != std::string::npos);
  a.grad = full<double>(Shape{3}, 1.0);
  CHECK(test::error_of([&] { opt.step(); }).find("gradient of 'a' has shape") != std::string::npos);
}
