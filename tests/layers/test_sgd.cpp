#include <doctest/doctest.h>

#include <functional>
#include <limits>
#include <map>
#include <memory>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/optim/clip_grad.hpp"
#include "gcnet/optim/lr_schedule.hpp"
#include "gcnet/optim/param_groups.hpp"
#include "gcnet/optim/sgd.hpp"
#include "gcnet/testing/parity.hpp"

using namespace gcnet;

namespace {
std::vector<std::int64_t> parse_ints(const std::string& s) {
  std::vector<std::int64_t> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    out.push_back(std::stoll(s.substr(pos, end - pos)));
    pos = end + 1;
  }
  return out;
}

// Any schedule behind one type, for the fixture-driven tests.
struct AnySchedule {
  std::function<double(double, std::int64_t)> f;
  double lr(double base, std::int64_t iter) const { return f(base, iter); }
};

AnySchedule schedule_from(const io::SafetensorsReader& f, const std::string& c) {
  const Convention conv = f.meta(c + ".convention") == "mmcv" ? Convention::mmcv : Convention::mmengine;
  if (f.meta(c + ".schedule") == "warmup") {
    WarmupMultiStepLr s({.warmup = {.start_factor = f.meta_double(c + ".start_factor"),
                                    .iters = f.meta_int(c + ".warmup_iters"),
                                    .convention = conv},
                         .milestones = parse_ints(f.meta(c + ".milestones")),
                         .gamma = f.meta_double(c + ".gamma")});
    return {[s](double b, std::int64_t k) { return s.lr(b, k); }};
  }
  PolyLr s({.max_iters = f.meta_int(c + ".max_iters"), .power = f.meta_double(c + ".power"),
            .eta_min = f.meta_double(c + ".eta_min"), .convention = conv});
  return {[s](double b, std::int64_t k) { return s.lr(b, k); }};
}

struct Net {  // a conv (weight, bias) and a norm layer (weight, bias of the same shape)
  std::map<std::string, Param<double, Cpu>> p;
  std::vector<std::pair<std::string, Param<double, Cpu>*>> named() {
    std::vector<std::pair<std::string, Param<double, Cpu>*>> out;
    for (const char* k : {"conv.weight", "conv.bias", "bn.weight", "bn.bias"}) out.emplace_back(k, &p.at(k));
    return out;
  }
};
}  // namespace

TEST_CASE("Sgd: matches torch.optim.SGD step by step") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/train.safetensors");
  for (const char* v : {"plain", "momentum", "dampening", "nesterov"}) {
    CAPTURE(v);
    const std::string c = std::string("sgd_") + v;
    auto meta = [&](const char* k, double def) {
      return f.metadata().count(c + "." + k) ? f.meta_double(c + "." + k) : def;
    };
    Param<double, Cpu> p(f.tensor<double>(c + ".p0"));
    Sgd<double> opt({{"w", &p}}, {.lr = meta("lr", 0), .momentum = meta("momentum", 0), .dampening = meta("dampening", 0),
                                  .weight_decay = meta("weight_decay", 0), .nesterov = meta("nesterov", 0) != 0});
    for (int s = 0; s < 5; ++s) {
      copy(f.tensor<double>(c + ".g" + std::to_string(s)), p.grad);
      opt.step();
      CHECK(testing::relative_error(p.value, f.tensor<double>(c + ".p" + std::to_string(s + 1))) <= 1e-12);
    }
  }
}

TEST_CASE("Sgd: parameter groups + clip_grad_norm + schedules match torch step by step") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/optim.safetensors");
  for (const char* name : {"train_mmdet", "train_nesterov_poly", "train_dampening_l1norm"}) {
    const std::string c = name;
    CAPTURE(c);
    auto meta = [&](const std::string& k, double def) {
      return f.metadata().count(c + "." + k) ? f.meta_double(c + "." + k) : def;
    };
    Net net;
    for (const char* k : {"conv.weight", "conv.bias", "bn.weight", "bn.bias"})
      net.p.emplace(k, Param<double, Cpu>(f.tensor<double>(c + ".p0." + k)));
    const Sgd<double>::Options base{.lr = meta("lr", 0), .momentum = meta("momentum", 0),
                                    .dampening = meta("dampening", 0), .weight_decay = meta("weight_decay", 0),
                                    .nesterov = meta("nesterov", 0) != 0};
    auto groups = paramwise_groups<double, Cpu>(net.named(), base,
                                                {.bias_lr_mult = meta("bias_lr_mult", 1),
                                                 .bias_decay_mult = meta("bias_decay_mult", 1),
                                                 .norm_decay_mult = meta("norm_decay_mult", 1)});
    Sgd<double> opt(std::move(groups));
    const AnySchedule sched = schedule_from(f, c);
    const double max_norm = meta("max_norm", 0), norm_type = meta("norm_type", 2);
    const auto norms = f.tensor<double>(c + ".total_norm");
    const int steps = static_cast<int>(f.meta_int(c + ".steps"));
    for (int s = 0; s < steps; ++s) {
      CAPTURE(s);
      for (auto& [k, p] : net.p) copy(f.tensor<double>(c + ".g" + std::to_string(s) + "." + k), p.grad);
      const double total = clip_grad_norm(opt.params(), max_norm, norm_type);
      CHECK(std::abs(total - norms[s]) <= 1e-12 * norms[s]);
      opt.apply_schedule(sched, s);
      opt.step();
      for (auto& [k, p] : net.p) {
        CAPTURE(k);
        CHECK(testing::relative_error(p.value, f.tensor<double>(c + ".p" + std::to_string(s + 1) + "." + k)) <= 1e-10);
      }
    }
  }
}

TEST_CASE("paramwise_groups: mmdet's rules, norm layers found by weight/bias shape") {
  Net net;
  net.p.emplace("conv.weight", Param<double, Cpu>(full<double>(Shape{4, 3, 3, 3}, 1.0)));
  net.p.emplace("conv.bias", Param<double, Cpu>(full<double>(Shape{4}, 1.0)));
  net.p.emplace("bn.weight", Param<double, Cpu>(full<double>(Shape{4}, 1.0)));
  net.p.emplace("bn.bias", Param<double, Cpu>(full<double>(Shape{4}, 1.0)));
  const auto norms = norm_parameter_names(net.named());
  CHECK(norms == std::set<std::string>{"bn.weight", "bn.bias"});
  auto g = paramwise_groups<double, Cpu>(net.named(), {.lr = 0.02, .momentum = 0.9, .weight_decay = 1e-4},
                                         {.bias_lr_mult = 2, .bias_decay_mult = 0, .norm_decay_mult = 0});
  REQUIRE(g.size() == 3);
  CHECK(g[0].params.size() == 1);
  CHECK(g[0].params[0].first == "conv.weight");
  CHECK(g[0].options.weight_decay == 1e-4);
  CHECK(g[1].params[0].first == "conv.bias");
  CHECK(g[1].options.lr == 0.04);
  CHECK(g[1].options.weight_decay == 0);
  CHECK(g[2].params.size() == 2);
  CHECK(g[2].options.lr == 0.02);
  CHECK(g[2].options.weight_decay == 0);
  // Equal options share one group; a custom is_norm overrides the shape rule.
  CHECK(paramwise_groups<double, Cpu>(net.named(), {.lr = 0.1}, {}).size() == 1);
  auto custom = paramwise_groups<double, Cpu>(net.named(), {.lr = 0.1, .weight_decay = 1},
                                              {.norm_decay_mult = 0, .is_norm = [](const std::string&) { return false; }});
  CHECK(custom.size() == 1);
}

TEST_CASE("Sgd: lr API with groups, state() and load_state() resume exactly") {
  Rng rng(5);
  auto randn = [&](const Shape& s) {
    Tensor<double> t(s);
    for (index_t i = 0; i < t.numel(); ++i) t[i] = rng.normal();
    return t;
  };
  Param<double, Cpu> a(randn(Shape{3, 2})), b(randn(Shape{2}));
  auto make = [&](Param<double, Cpu>& pa, Param<double, Cpu>& pb) {
    return Sgd<double>({{{{"a", &pa}}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3}},
                        {{{"b", &pb}}, {.lr = 0.2, .momentum = 0.9}}});
  };
  Sgd<double> opt = make(a, b);
  CHECK(opt.num_groups() == 2);
  opt.set_lr_factor(0.5);
  CHECK(opt.lr(0) == doctest::Approx(0.05));
  CHECK(opt.lr(1) == doctest::Approx(0.1));
  CHECK(opt.base_lr(1) == 0.2);
  opt.apply_schedule(PolyLr({.max_iters = 11, .power = 1, .eta_min = 0}), 5);
  CHECK(opt.lr() == doctest::Approx(0.05));
  CHECK(opt.lr(1) == doctest::Approx(0.1));
  opt.set_lr(0.3);
  CHECK(opt.lr(1) == 0.3);
  CHECK(opt.state().empty());

  std::vector<Tensor<double>> grads;
  for (int s = 0; s < 6; ++s) grads.push_back(randn(Shape{3, 2})), grads.push_back(randn(Shape{2}));
  auto step = [&](Sgd<double>& o, Param<double, Cpu>& pa, Param<double, Cpu>& pb, int s) {
    copy(grads[2 * s], pa.grad);
    copy(grads[2 * s + 1], pb.grad);
    o.apply_schedule(WarmupMultiStepLr({.warmup = {.start_factor = 0.1, .iters = 3}, .milestones = {4}}), s);
    o.step();
  };
  for (int s = 0; s < 3; ++s) step(opt, a, b, s);
  // Resume: copy parameters and optimizer state into fresh objects.
  Param<double, Cpu> a2(clone(a.value)), b2(clone(b.value));
  Sgd<double> opt2 = make(a2, b2);
  auto st = opt.state();
  REQUIRE(st.size() == 2);
  CHECK(st[0].first == "a.momentum_buffer");
  CHECK(st[1].first == "b.momentum_buffer");
  for (auto& [n, t] : st) opt2.load_state(n, *t);
  for (int s = 3; s < 6; ++s) step(opt, a, b, s), step(opt2, a2, b2, s);
  for (index_t i = 0; i < a.value.numel(); ++i) CHECK(a.value[i] == a2.value[i]);
  for (index_t i = 0; i < b.value.numel(); ++i) CHECK(b.value[i] == b2.value[i]);
  CHECK_THROWS_WITH_AS(opt2.load_state("c.momentum_buffer", zeros<double>(Shape{2})),
                       doctest::Contains("no parameter for state 'c.momentum_buffer'"), Error);
  CHECK_THROWS_WITH_AS(opt2.load_state("b.momentum_buffer", zeros<double>(Shape{3})),
                       doctest::Contains("state 'b.momentum_buffer' has shape [3], parameter has [2]"), Error);
}

TEST_CASE("clip_grad_norm: total norm, clipping only above max_norm, inf norm") {
  Param<float, Cpu> a(full<float>(Shape{3}, 0.f)), b(full<float>(Shape{20000}, 0.f));  // b: several blocks
  fill(a.grad, 0.f);
  fill(b.grad, 0.f);
  a.grad[0] = 3.f, a.grad[1] = -4.f, b.grad[12345] = 12.f;  // norm 13
  std::vector<std::pair<std::string, Param<float, Cpu>*>> ps{{"a", &a}, {"b", &b}};
  CHECK(clip_grad_norm(ps, 100.0) == doctest::Approx(13.0));
  CHECK(a.grad[1] == -4.f);  // not clipped
  CHECK(clip_grad_norm(ps, 6.5) == doctest::Approx(13.0));
  CHECK(a.grad[1] == doctest::Approx(-2.0).epsilon(1e-6));
  CHECK(b.grad[12345] == doctest::Approx(6.0).epsilon(1e-6));
  CHECK(clip_grad_norm(ps, 1.0, std::numeric_limits<double>::infinity()) == doctest::Approx(6.0).epsilon(1e-6));
  CHECK(b.grad[12345] == doctest::Approx(1.0).epsilon(1e-5));
  CHECK_THROWS_WITH_AS(clip_grad_norm(ps, 1.0, 0.0), doctest::Contains("norm_type must be > 0"), Error);
  CHECK_THROWS_WITH_AS(clip_grad_norm(ps, -1.0), doctest::Contains("max_norm must be >= 0, got -1"), Error);
}

TEST_CASE("Sgd: invalid options are clear errors") {
  Param<float, Cpu> p(full<float>(Shape{2}, 1.0f)), q(full<float>(Shape{2}, 1.0f));
  CHECK_THROWS_WITH_AS(Sgd<float>({{"w", &p}}, {.lr = -1}), doctest::Contains("invalid learning rate -1"), Error);
  CHECK_THROWS_WITH_AS(Sgd<float>({{"w", &p}}, {.lr = 0.1, .nesterov = true}),
                       doctest::Contains("Nesterov momentum requires a momentum"), Error);
  CHECK_THROWS_WITH_AS(Sgd<float>({{{{"w", &p}}, {.lr = 0.1}}, {{{"v", &q}}, {.lr = 0.1, .weight_decay = -2}}}),
                       doctest::Contains("invalid weight_decay -2 in group 1"), Error);
  CHECK_THROWS_WITH_AS(Sgd<float>({{{{"w", &p}}, {.lr = 0.1}}, {{{"w2", &p}}, {.lr = 0.1}}}),
                       doctest::Contains("parameter 'w2' appears more than once"), Error);
  CHECK_THROWS_WITH_AS(Sgd<float>(std::vector<Sgd<float>::Group>{}), doctest::Contains("no parameter groups"), Error);
}
