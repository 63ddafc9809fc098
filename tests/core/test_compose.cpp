#include <doctest/doctest.h>

#include "gcnet/compose/branch.hpp"
#include "gcnet/compose/repeat.hpp"
#include "gcnet/compose/residual.hpp"
#include "gcnet/compose/seq.hpp"
#include "gcnet/compose/tap.hpp"
#include "gcnet/layers/relu.hpp"
#include "gcnet/layers/sigmoid.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "support/channel_scale.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;
using test::max_abs_diff;
using test::ChannelScale;

namespace {
template <class L>
Tensor<typename L::value_type> run(L& l, const Tensor<typename L::value_type>& x) {
  Tensor<typename L::value_type> y;
  l.forward(x, y);
  return y;
}
}  // namespace

// Compositions that do not fit are rejected at compile time (concepts at every combinator).
template <class... Ls>
concept CanSeq = requires { typename Seq<Ls...>; sizeof(Seq<Ls...>); };
static_assert(CanSeq<ReLU<float>, Sigmoid<float>>);
static_assert(!CanSeq<ReLU<float>, ReLU<double>>, "mixing float and double layers must not compile");
static_assert(!CanSeq<ReLU<float>, int>, "a non-layer must not compile");
static_assert(!CanSeq<>, "an empty Seq must not compile");
static_assert(Layer<Seq<ReLU<double>, Residual<ChannelScale<double>>>>);

TEST_CASE("Seq: forward is the composition of its layers, names follow named()") {
  manual_seed(1);
  Seq<ChannelScale<double>, ReLU<double>, ChannelScale<double>> s{ChannelScale<double>(3), ReLU<double>(),
                                                                  ChannelScale<double>(3)};
  s.named({"conv1", "relu", "bn1"});
  const auto x = random_tensor<double>(Shape{2, 3, 4, 4}, 11);
  auto a = run(s.get<0>(), x);
  auto b = run(s.get<1>(), a);
  auto c = run(s.get<2>(), b);
  CHECK(max_abs_diff(run(s, x), c) == 0.0);

  std::vector<std::string> names;
  for (auto& [n, p] : named_parameters(s)) names.push_back(n);
  CHECK(names == std::vector<std::string>{"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"});
  CHECK(parameter_count(s) == 12);
}

TEST_CASE("Seq: a misfit names both layers and the shape, at setup and at forward") {
  Seq<ChannelScale<float>, ChannelScale<float>> s{ChannelScale<float>(3), ChannelScale<float>(4)};
  s.named({"conv1", "conv2"});
  const std::string expected =
      "Seq element 1 'conv2' (ChannelScale(4)) does not fit the output of element 0 'conv1' "
      "(ChannelScale(3)) of shape [2, 3, 5, 5]: ChannelScale(4): expected input with 4 channels";
  CHECK_THROWS_WITH_AS(s.setup(Shape{2, 3, 5, 5}), doctest::Contains(expected.c_str()), Error);
  Tensor<float> y;
  CHECK_THROWS_WITH_AS(s.forward(random_tensor<float>(Shape{2, 3, 5, 5}, 1), y),
                       doctest::Contains(expected.c_str()), Error);
}

TEST_CASE("Seq: gradient check through three layers") {
  manual_seed(2);
  Seq<ChannelScale<double>, Sigmoid<double>, ChannelScale<double>> s{ChannelScale<double>(4), Sigmoid<double>(),
                                                                     ChannelScale<double>(4)};
  auto r = testing::check_gradients(s, Shape{2, 4, 3, 5});
  INFO(r.report);
  CHECK(r.ok);
  CHECK(r.checked > 40);
}

TEST_CASE("Residual: identity and projection shortcuts, mmdet names, gradients") {
  manual_seed(3);
  using Body = Seq<ChannelScale<double>, ReLU<double>, ChannelScale<double>>;
  Residual<Body> id{Body{ChannelScale<double>(3), ReLU<double>(), ChannelScale<double>(3)}};
  const auto x = random_tensor<double>(Shape{2, 3, 4, 4}, 5);
  auto body_y = run(id.body(), x);
  auto y = run(id, x);
  for (index_t i = 0; i < y.numel(); ++i) CHECK(y[i] == doctest::Approx(body_y[i] + x[i]));
  auto r = testing::check_gradients(id, Shape{2, 3, 4, 4});
  INFO(r.report);
  CHECK(r.ok);

  Residual<Body, ChannelScale<double>> proj{Body{ChannelScale<double>(3), ReLU<double>(), ChannelScale<double>(3)},
                                            ChannelScale<double>(3)};
  proj.body().named({"conv1", "relu", "bn1"});
  std::vector<std::string> names;
  for (auto& [n, p] : named_parameters(proj)) names.push_back(n);
  CHECK(names == std::vector<std::string>{"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias",
                                          "downsample.weight", "downsample.bias"});
  auto r2 = testing::check_gradients(proj, Shape{2, 3, 4, 4});
  INFO(r2.report);
  CHECK(r2.ok);
}

TEST_CASE("Branch: Sum and Concat outputs, summed input gradients") {
  manual_seed(4);
  Concat<ChannelScale<double>, ReLU<double>, Sigmoid<double>> cat{ChannelScale<double>(2), ReLU<double>(),
                                                                  Sigmoid<double>()};
  const auto x = random_tensor<double>(Shape{2, 2, 3, 3}, 8);
  auto y = run(cat, x);
  CHECK(y.shape() == Shape{2, 6, 3, 3});
  auto a = run(cat.get<0>(), x), b = run(cat.get<1>(), x), c = run(cat.get<2>(), x);
  for (index_t n = 0; n < 2; ++n)
    for (index_t ch = 0; ch < 2; ++ch)
      for (index_t i = 0; i < 3; ++i)
        for (index_t j = 0; j < 3; ++j) {
          CHECK(y.at({n, ch, i, j}) == a.at({n, ch, i, j}));
          CHECK(y.at({n, ch + 2, i, j}) == b.at({n, ch, i, j}));
          CHECK(y.at({n, ch + 4, i, j}) == c.at({n, ch, i, j}));
        }
  auto r = testing::check_gradients(cat, Shape{2, 2, 3, 3});
  INFO(r.report);
  CHECK(r.ok);

  Sum<ChannelScale<double>, Sigmoid<double>> sum{ChannelScale<double>(2), Sigmoid<double>()};
  auto r2 = testing::check_gradients(sum, Shape{2, 2, 3, 3});
  INFO(r2.report);
  CHECK(r2.ok);

  Sum<ChannelScale<double>, ChannelScale<double>> bad{ChannelScale<double>(2), ChannelScale<double>(3)};
  CHECK_THROWS_WITH_AS(bad.setup(Shape{1, 2, 3, 3}), doctest::Contains("Sum branch 1 '1' (ChannelScale(3))"), Error);
}

TEST_CASE("Repeat<3, B> equals Seq<B, B, B> with the same parameters") {
  manual_seed(5);
  using Block = Residual<Seq<ChannelScale<double>, ReLU<double>>>;
  auto make = [](std::size_t) { return Block{Seq<ChannelScale<double>, ReLU<double>>{ChannelScale<double>(3), ReLU<double>()}}; };
  Repeat<3, Block> rep(make, 1);
  Seq<Block, Block, Block> seq{make(0), make(1), make(2)};
  // Copy the Repeat's parameters into the Seq.
  auto rp = named_parameters(rep);
  auto sp = named_parameters(seq);
  REQUIRE(rp.size() == sp.size());
  for (std::size_t i = 0; i < rp.size(); ++i) copy(rp[i].second->value, sp[i].second->value);
  CHECK(rp[0].first == "1.0.weight");  // numbered from first_index; body Seq names "0"
  CHECK(sp[0].first == "0.0.weight");
  const auto x = random_tensor<double>(Shape{2, 3, 4, 4}, 9);
  CHECK(max_abs_diff(run(rep, x), run(seq, x)) == 0.0);
  auto r = testing::check_gradients(rep, Shape{2, 3, 4, 4});
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("Tap: exposes an intermediate output and takes a consumer's gradient") {
  manual_seed(6);
  using Net = Seq<Tap<"c2", ChannelScale<double>>, Sigmoid<double>, Tap<"c3", ChannelScale<double>>>;
  Net net{Tap<"c2", ChannelScale<double>>(ChannelScale<double>(2)), Sigmoid<double>(),
          Tap<"c3", ChannelScale<double>>(ChannelScale<double>(2))};
  const auto x = random_tensor<double>(Shape{1, 2, 3, 3}, 10);
  auto y = run(net, x);
  auto first = run(net.get<0>().inner(), x);
  CHECK(max_abs_diff(clone(tap(net, "c2").output()), first) == 0.0);
  CHECK(max_abs_diff(clone(tap(net, "c3").output()), y) == 0.0);
  CHECK_THROWS_WITH_AS(tap(net, "c9"), doctest::Contains("no tap named 'c9'"), Error);
  // Names stay those of the wrapped layers.
  CHECK(named_parameters(net)[0].first == "0.weight");

  // Gradient through the tap: loss = sum(r*y) + sum(g*c2). The tap's gradient must reach
  // the input exactly as if c2 were an output.
  auto dy = random_tensor<double>(y.shape(), 12);
  auto g = random_tensor<double>(first.shape(), 13);
  auto dx = zeros<double>(x.shape());
  tap(net, "c2").add_grad(g);
  net.backward(x, y, dy, dx);
  // Reference: finite differences on x.
  const double eps = 1e-6;
  auto loss = [&](const Tensor<double>& in) {
    auto out = run(net, in);
    double s = 0;
    for (index_t i = 0; i < out.numel(); ++i) s += dy[i] * out[i];
    const auto& c2 = tap(net, "c2").output();
    for (index_t i = 0; i < c2.numel(); ++i) s += g[i] * c2[i];
    return s;
  };
  for (index_t i = 0; i < x.numel(); ++i) {
    auto xp = clone(x), xm = clone(x);
    xp[i] += eps;
    xm[i] -= eps;
    CHECK(dx[i] == doctest::Approx((loss(xp) - loss(xm)) / (2 * eps)).epsilon(1e-6));
  }
}
