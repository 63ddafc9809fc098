// The module tier (core/module.hpp): field types, modules with several named inputs and outputs
// (integer tensors among them) through the gradient checker, Chain, one head shared over five
// inputs of different sizes (AppliedToEach), the Context (SyncBatchNorm2d's group, Dropout2d's
// stream), RoIs.
#include <doctest/doctest.h>

#include <cstdint>
#include <set>

#include "gcnet/compose/applied_to_each.hpp"
#include "gcnet/compose/chain.hpp"
#include "gcnet/compose/seq.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/dropout2d.hpp"
#include "gcnet/layers/relu.hpp"
#include "gcnet/layers/sync_batch_norm2d.hpp"
#include "gcnet/ops/rois.hpp"
#include "gcnet/testing/copy_check.hpp"
#include "gcnet/testing/gradient_check.hpp"

using namespace gcnet;

namespace {

using Td = Tensor<double, Cpu>;
using Ti = Tensor<std::int64_t, Cpu>;

Td random_tensor(const Shape& s, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Td t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = scale * rng.normal();
  return t;
}

// Inputs: two feature maps and per-image labels; outputs: a map, a per-image score and the
// labels passed through (an integer tensor flowing between modules).
struct MixIn {
  Td a, b;
  Ti labels;
  GCNET_FIELDS(a, b, labels)
};
struct MixOut {
  Td map, score;
  Ti labels;
  GCNET_FIELDS(map, score, labels)
};

// map = conv(a) * b; score[n] = sum over the map of image n, times (1 + label[n]).
class Mixer {
 public:
  using value_type = double;
  using backend_type = Cpu;
  using input_type = MixIn;
  using output_type = MixOut;

  explicit Mixer(index_t c) : conv_({.in = c, .out = c, .kernel = 3, .padding = 1}) {}

  void forward(const Context& ctx, const MixIn& x, MixOut& y) {
    sync_mode(*this, ctx);
    conv_.forward(x.a, conv_out_);
    y.map.resize(conv_out_.shape());
    for (index_t i = 0; i < y.map.numel(); ++i) y.map[i] = conv_out_[i] * x.b[i];
    const index_t n = x.a.size(0), per = y.map.numel() / n;
    y.score.resize(Shape{n});
    for (index_t k = 0; k < n; ++k) {
      double s = 0;
      for (index_t i = 0; i < per; ++i) s += y.map[k * per + i];
      y.score[k] = s * double(1 + x.labels[k]);
    }
    y.labels = x.labels;
  }
  void backward(const Context&, const MixIn& x, const MixOut& y, const MixOut& dy, MixIn& dx) {
    const index_t n = x.a.size(0), per = y.map.numel() / n;
    Td dmap = zeros<double>(y.map.shape());
    if (dy.map.defined()) copy(dy.map, dmap);
    if (dy.score.defined())
      for (index_t k = 0; k < n; ++k)
        for (index_t i = 0; i < per; ++i) dmap[k * per + i] += dy.score[k] * double(1 + x.labels[k]);
    Td dconv(dmap.shape());
    for (index_t i = 0; i < dmap.numel(); ++i) dconv[i] = dmap[i] * x.b[i];
    if (dx.b.defined())
      for (index_t i = 0; i < dmap.numel(); ++i) dx.b[i] += dmap[i] * conv_out_[i];
    Td scratch;
    Td& da = dx.a.defined() ? dx.a : (scratch = zeros<double>(x.a.shape()));
    conv_.backward(x.a, conv_out_, dconv, da);
  }
  std::string describe() const { return "Mixer"; }
  void set_training(bool t) { training_ = t; }
  bool training() const { return training_; }
  void visit_parameters(const std::string& prefix, const ParamVisitor<double, Cpu>& f) {
    conv_.visit_parameters(prefix + "conv.", f);
  }

 private:
  Conv2d<double> conv_;
  ScratchTensor<double, Cpu> conv_out_;
  bool training_ = true;
};
static_assert(Module<Mixer>);

// An RPN-like head: a shared 3x3 conv + ReLU, then two 1x1 convs (objectness, deltas).
struct HeadOut {
  Td cls, reg;
  GCNET_FIELDS(cls, reg)
};
class TwoBranchHead {
 public:
  using value_type = double;
  using backend_type = Cpu;
  using input_type = Td;
  using output_type = HeadOut;

  explicit TwoBranchHead(index_t c)
      : conv_(Seq<Conv2d<double>, ReLU<double>>(Conv2d<double>({.in = c, .out = c, .kernel = 3, .padding = 1}),
                                                 ReLU<double>())
                  .named({"rpn_conv", ""})),
        cls_({.in = c, .out = 3, .kernel = 1}),
        reg_({.in = c, .out = 12, .kernel = 1}) {}

  void forward(const Context& ctx, const Td& x, HeadOut& y) {
    sync_mode(*this, ctx);
    conv_.forward(x, *hidden_);
    cls_.forward(*hidden_, y.cls);
    reg_.forward(*hidden_, y.reg);
  }
  void backward(const Context&, const Td& x, const HeadOut& y, const HeadOut& dy, Td& dx) {
    *dhidden_ = zeros<double>(hidden_->shape());
    if (dy.cls.defined()) cls_.backward(*hidden_, y.cls, dy.cls, *dhidden_);
    else fill(cls_.weight().grad, 0.0), fill(cls_.bias()->grad, 0.0);
    if (dy.reg.defined()) reg_.backward(*hidden_, y.reg, dy.reg, *dhidden_);
    else fill(reg_.weight().grad, 0.0), fill(reg_.bias()->grad, 0.0);
    Td scratch;
    conv_.backward(x, *hidden_, *dhidden_, dx.defined() ? dx : (scratch = zeros<double>(x.shape())));
  }
  std::string describe() const { return "TwoBranchHead"; }
  void set_training(bool t) { training_ = t; }
  bool training() const { return training_; }
  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view(""), conv_);
    f(std::string_view("rpn_cls"), cls_);
    f(std::string_view("rpn_reg"), reg_);
  }
  void visit_parameters(const std::string& prefix, const ParamVisitor<double, Cpu>& f) {
    for_each_child([&](std::string_view n, auto& c) { gcnet::visit_parameters(c, child_prefix(prefix, n), f); });
  }

 private:
  Seq<Conv2d<double>, ReLU<double>> conv_;
  Conv2d<double> cls_, reg_;
  bool training_ = true;
  ScratchValue<Td> hidden_, dhidden_;
};
static_assert(Module<TwoBranchHead>);

void randomize(auto& c, std::uint64_t seed, double scale = 0.3) {
  Rng rng(seed);
  visit_parameters(c, "", [&](const std::string&, auto& p) {
    for (index_t i = 0; i < p.value.numel(); ++i) p.value[i] = scale * rng.normal();
  });
}

}  // namespace

struct Nested {
  std::vector<Td> feats;
  RoIs<double> rois;
  GCNET_FIELDS(feats, rois)
};

TEST_CASE("fields: names of struct, vector and nested tensors, integer and RoI tensors carry no gradient") {
  Nested n{{Td(Shape{1, 2}), Td(Shape{3})}, {Td(Shape{2, 4}), Ti(Shape{2})}};
  std::vector<std::string> names, differentiable;
  for_each_tensor(n, [&](const std::string& name, auto&, bool diff) {
    names.push_back(name);
    if (diff) differentiable.push_back(name);
  });
  CHECK(names == std::vector<std::string>{"feats.0", "feats.1", "rois.boxes", "rois.image"});
  CHECK(differentiable == std::vector<std::string>{"feats.0", "feats.1"});

  MixIn x{random_tensor(Shape{2, 3}, 1), Td(), Ti(Shape{2})};
  MixIn g;
  zero_grad_like(x, g);
  CHECK(g.a.shape() == Shape{2, 3});
  CHECK(g.a[0] == 0.0);
  CHECK_FALSE(g.b.defined());       // undefined in x: no gradient
  CHECK_FALSE(g.labels.defined());  // integer: no gradient

  MixIn c = clone_fields(x);
  CHECK_FALSE(c.a.shares_storage_with(x.a));
  CHECK(c.a[1] == x.a[1]);
}

TEST_CASE("module with several named inputs and outputs (integer ones among them): gradient check") {
  manual_seed(1);
  Mixer m(3);
  randomize(m, 2);
  MixIn x{random_tensor(Shape{2, 3, 5, 4}, 3), random_tensor(Shape{2, 3, 5, 4}, 4), Ti(Shape{2})};
  x.labels[0] = 2;
  x.labels[1] = 0;
  testing::GradCheckOptions o;
  o.input_probes = 30;
  auto r = testing::check_gradients(m, x, o);
  INFO(r.report);
  CHECK(r.ok);
  CHECK(r.checked > 30);
}

TEST_CASE("gradient checker: a module's wrong input gradient, even a tiny one, fails") {
  // Mixer with a dx.b scaled by 1 + 1e-3 on gradients of size ~1e-7: an absolute criterion
  // (|a - n| <= 1e-5 max(1, |n|)) would pass it; the tensor-relative one must not.
  struct Wrong : Mixer {
    using Mixer::Mixer;
    void backward(const Context& c, const MixIn& x, const MixOut& y, const MixOut& dy, MixIn& dx) {
      MixIn fresh;
      zero_grad_like(x, fresh);
      Mixer::backward(c, x, y, dy, fresh);
      for (index_t i = 0; i < dx.a.numel(); ++i) dx.a[i] += fresh.a[i];
      for (index_t i = 0; i < dx.b.numel(); ++i) dx.b[i] += fresh.b[i] * (1 + 1e-3);
    }
  };
  manual_seed(1);
  Wrong m(3);
  randomize(m, 2, 1e-7);
  MixIn x{random_tensor(Shape{1, 3, 4, 4}, 3), random_tensor(Shape{1, 3, 4, 4}, 4), Ti(Shape{1})};
  x.labels[0] = 1;
  auto r = testing::check_gradients(m, x);
  CHECK_FALSE(r.ok);
  CHECK(r.report.find("db") != std::string::npos);
}

TEST_CASE("Chain: a layer into a module, names under the child names, gradient check") {
  manual_seed(2);
  using Pre = Seq<Conv2d<double>, ReLU<double>>;
  Chain<Pre, TwoBranchHead> net(Pre(Conv2d<double>({.in = 2, .out = 4, .kernel = 1}), ReLU<double>()),
                                TwoBranchHead(4), {"pre", "head"});
  std::set<std::string> names;
  for (auto& [n, p] : named_parameters(net)) names.insert(n);
  CHECK(names.count("pre.0.weight") == 1);
  CHECK(names.count("head.rpn_conv.weight") == 1);
  CHECK(names.count("head.rpn_reg.bias") == 1);
  randomize(net, 3);
  auto r = testing::check_gradients(net, random_tensor(Shape{2, 2, 6, 5}, 4));
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("AppliedToEach: one head on five levels of different sizes, gradients summed over the calls") {
  manual_seed(3);
  AppliedToEach<TwoBranchHead> heads(TwoBranchHead(4));
  randomize(heads, 5);
  std::vector<Td> levels;
  for (index_t k = 0; k < 5; ++k) levels.push_back(random_tensor(Shape{2, 4, 12 >> k | 1, 9 >> k | 1}, 10 + k));
  // One set of parameters, named as the head's.
  CHECK(named_parameters(heads).size() == 6);
  testing::GradCheckOptions o;
  o.param_probes = 6;
  auto r = testing::check_gradients(heads, levels, o);
  INFO(r.report);
  CHECK(r.ok);
  // Each call kept its own activations: call 0's output still matches a fresh run on level 0.
  std::vector<HeadOut> ys;
  gcnet::forward(heads, Context{}, levels, ys);
  HeadOut alone;
  TwoBranchHead copy = heads.head();
  gcnet::forward(copy, Context{}, levels[0], alone);
  for (index_t i = 0; i < alone.cls.numel(); ++i) REQUIRE(ys[0].cls[i] == alone.cls[i]);
  // A parameter step on the head reaches every call (shared values).
  heads.head().visit_parameters("", [](const std::string&, Param<double, Cpu>& p) { fill(p.value, 0.01); });
  gcnet::forward(heads, Context{}, levels, ys);
  for (auto& [n, p] : named_parameters(heads.call(4))) CHECK(p->value[0] == 0.01);
  // The head's copies share with the head explicitly; nothing inside one component shares.
  CHECK(testing::shared_storage(heads).empty());
}

TEST_CASE("AppliedToEach and Chain: a copy is deep") {
  manual_seed(4);
  AppliedToEach<TwoBranchHead> heads(TwoBranchHead(3));
  randomize(heads, 6);
  std::vector<Td> a{random_tensor(Shape{1, 3, 6, 6}, 1), random_tensor(Shape{1, 3, 3, 3}, 2)};
  std::vector<Td> b{random_tensor(Shape{1, 3, 6, 6}, 3), random_tensor(Shape{1, 3, 3, 3}, 4)};
  auto r = testing::check_copy_is_deep(heads, a, b);
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("Context: SyncBatchNorm2d takes its process group from it, without one it cannot train") {
  SyncBatchNorm2d<double> bn(3);
  const Td x = random_tensor(Shape{2, 3, 4, 4}, 1);
  Td y;
  CHECK_THROWS_WITH_AS(bn.forward(x, y), doctest::Contains("no process group"), Error);
  CHECK_FALSE(bn.has_communicator());
  Context ctx;
  bind_context(bn, ctx);
  CHECK(bn.has_communicator());
  bn.forward(x, y);  // one rank: BatchNorm2d
  CHECK(y.shape() == x.shape());
  // Inside a composition, bind_context reaches it through the combinators.
  Seq<Conv2d<double>, SyncBatchNorm2d<double>> net(Conv2d<double>({.in = 3, .out = 3, .kernel = 1}),
                                                   SyncBatchNorm2d<double>(3));
  CHECK_THROWS_WITH_AS(net.forward(x, y), doctest::Contains("no process group"), Error);
  gcnet::forward(net, ctx, x, y);
  CHECK(net.get<1>().has_communicator());
  // Eval mode needs no group.
  SyncBatchNorm2d<double> eval_bn(3);
  eval_bn.set_training(false);
  eval_bn.forward(x, y);
}

TEST_CASE("Context: Dropout2d masks follow the step's random stream (a resumed run draws the same)") {
  Dropout2d<double> d(0.5, /*seed=*/7);
  const Td x = full<double>(Shape{2, 16, 1, 1}, 1.0);
  auto mask_at = [&](std::uint64_t seed, std::uint64_t step) {
    Context ctx;
    ctx.rng = RngStream{seed, step};
    Td y;
    gcnet::forward(d, ctx, x, y);
    return clone(y);
  };
  const Td s3 = mask_at(1, 3), s4 = mask_at(1, 4), s3_again = mask_at(1, 3), other_seed = mask_at(2, 3);
  auto same = [](const Td& a, const Td& b) {
    for (index_t i = 0; i < a.numel(); ++i)
      if (a[i] != b[i]) return false;
    return true;
  };
  CHECK(same(s3, s3_again));
  CHECK_FALSE(same(s3, s4));
  CHECK_FALSE(same(s3, other_seed));
}

TEST_CASE("RoIs: per-image lists and mmdet's [K, 5] layout, malformed RoIs are named") {
  std::vector<Tensor<float, Cpu>> lists{Tensor<float, Cpu>(Shape{2, 4}), Tensor<float, Cpu>(Shape{0, 4}),
                                        Tensor<float, Cpu>(Shape{1, 4})};
  for (index_t i = 0; i < 8; ++i) lists[0][i] = float(i);
  for (index_t i = 0; i < 4; ++i) lists[2][i] = float(10 + i);
  const RoIs<float> r = ops::rois_from_lists(lists);
  CHECK(r.size() == 3);
  CHECK(r.image[2] == 2);
  CHECK(r.boxes[2 * 4 + 1] == 11.0f);
  const auto m = ops::to_mmdet_rois(r);
  CHECK(m.shape() == Shape{3, 5});
  CHECK(m[2 * 5] == 2.0f);
  const auto back = ops::rois_to_lists(ops::from_mmdet_rois(m), 3);
  CHECK(back[0].shape() == Shape{2, 4});
  CHECK(back[1].shape() == Shape{0, 4});
  CHECK(back[2][3] == 13.0f);
  CHECK_THROWS_WITH_AS(ops::rois_to_lists(r, 2), doctest::Contains("RoI 2 belongs to image 2, but the batch has 2"),
                       Error);
  RoIs<float> bad{Tensor<float, Cpu>(Shape{3, 5}), Tensor<std::int64_t, Cpu>(Shape{3})};
  CHECK_THROWS_WITH_AS(check_rois(bad, 1, "RoIAlign"), doctest::Contains("RoIAlign: RoI boxes must have shape [K, 4]"),
                       Error);
}
