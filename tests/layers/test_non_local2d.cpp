#include <doctest/doctest.h>

#include <cmath>
#include <set>
#include <sstream>

#include "float32_fidelity.hpp"
#include "gcnet/blocks/non_local2d.hpp"
#include "gcnet/io/checkpoint.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;
using test::split_csv;

static_assert(Layer<NonLocal2d<float>> && Layer<NonLocal2d<double>>);

namespace {
// Random parameters of a useful size (mmcv's N(0, 0.01) makes the attention nearly uniform
// and zeros_init cuts every gradient behind conv_out).
template <class T>
void randomize(NonLocal2d<T>& nl, std::uint64_t seed) {
  visit_parameters(nl, "", [&](const std::string&, Param<T, Cpu>& p) {
    p.value = random_tensor<T>(p.value.shape(), seed++, 0.5);
  });
}
// Some bias gradients are exactly zero in exact arithmetic: phi's bias under a softmax adds
// theta_i . b to a whole row of scores (softmax is shift invariant), and with norm g's bias
// becomes a per-channel constant that BatchNorm removes. A normwise relative error against a
// reference of ~1e-17 is meaningless there, so those entries must instead be zero up to
// float32 rounding relative to their weight's gradient. Every other entry must pass.
bool parity_ok(const testing::ParityResult& r, NonLocal2d<float>& nl, const io::SafetensorsReader& f,
               const std::string& c) {
  std::istringstream lines(r.report);
  std::string line;
  const auto params = named_parameters(nl);
  while (std::getline(lines, line)) {
    if (line.rfind("  FAIL ", 0) != 0) continue;
    const std::string key = line.substr(7, line.find(':') - 7);  // C.grad.<name>
    const std::string prefix = c + ".grad.";
    if (key.rfind(prefix, 0) != 0) return false;
    const std::string name = key.substr(prefix.size());
    const bool softmax = nl.options().mode == NonLocalMode::EmbeddedGaussian ||
                         nl.options().mode == NonLocalMode::Gaussian;
    const bool phi_bias = name.rfind("phi.", 0) == 0 && name.ends_with("bias");
    const bool g_bias = name.rfind("g.", 0) == 0 && name.ends_with("bias");
    if (!((phi_bias && softmax) || (g_bias && nl.options().norm))) return false;
    const auto expected = f.tensor<double>(key);
    double e = 0, a = 0, wscale = 0;
    for (index_t i = 0; i < expected.numel(); ++i) e = std::max(e, std::abs(expected[i]));
    Param<float, Cpu>* bias = nullptr;
    Param<float, Cpu>* weight = nullptr;
    const std::string stem = name.substr(0, name.size() - 4);
    for (auto& [n, p] : params) {
      if (n == name) bias = p;
      if (n == stem + "weight") weight = p;
    }
    if (!bias || !weight) return false;
    for (index_t i = 0; i < bias->grad.numel(); ++i) a = std::max(a, double(std::abs(bias->grad[i])));
    for (index_t i = 0; i < weight->grad.numel(); ++i) wscale = std::max(wscale, double(std::abs(weight->grad[i])));
    if (!(e < 1e-10 && a <= 1e-4 * std::max(wscale, 1.0))) return false;
  }
  return true;
}

NonLocal2dOptions case_options(const io::SafetensorsReader& f, const std::string& c) {
  return {.in_channels = f.meta_int(c + ".in_channels"),
          .reduction = f.meta_int(c + ".reduction"),
          .use_scale = f.meta(c + ".use_scale") == "1",
          .mode = parse_non_local_mode(f.meta(c + ".mode")),
          .sub_sample = f.meta(c + ".sub_sample") == "1",
          .norm = f.meta(c + ".norm") == "1"};
}

// Parameters whose gradient is exactly zero in exact arithmetic (see parity_ok).
std::set<std::string> exact_zero_gradients(const NonLocal2dOptions& o) {
  std::set<std::string> names;
  const std::string seq = o.sub_sample ? "0.conv." : "conv.";
  if (o.mode == NonLocalMode::EmbeddedGaussian) names.insert("phi." + seq + "bias");
  if (o.norm) names.insert("g." + seq + "bias");
  return names;
}

const NonLocalMode kModes[] = {NonLocalMode::EmbeddedGaussian, NonLocalMode::DotProduct, NonLocalMode::Gaussian,
                               NonLocalMode::Concatenation};
}  // namespace

TEST_CASE("NonLocal2d: parity with a plain-torch mmcv NonLocal2d (float32) on every fixture case") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/non_local.safetensors");
  const auto cases = split_csv(f.meta("all.cases"));
  CHECK(cases.size() >= 14);
  for (const auto& c : cases) {
    NonLocal2d<float> nl(case_options(f, c));
    auto r = testing::run_parity(nl, f, c);
    INFO(c << ": " << nl.describe() << "\n" << r.report);
    CHECK(parity_ok(r, nl, f, c));
  }
}

TEST_CASE("NonLocal2d: float32 error at or below PyTorch's float32 error (both against float64), both 1x1 paths") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/non_local.safetensors");
  auto cases = split_csv(f.meta("all.cases"));
  for (const auto& c : split_csv(f.meta("norm_loaded.cases"))) cases.push_back(c);
  for (const auto& c : cases)
    for (index_t fused_max : {index_t{0}, index_t{256}}) {  // the Conv2d layers; the CPU fused projections
      NonLocal2d<float> nl(case_options(f, c));
      nl.set_fused_max_positions(fused_max);
      auto r = test::float32_fidelity(nl, f, c, exact_zero_gradients(nl.options()));
      INFO(c << ": " << nl.describe() << ", fused up to " << fused_max << " positions\n" << r.report);
      CHECK(r.ok);
      CHECK(r.compared >= 4);
    }
}

// Issue 13: with norm, conv_out.bn.weight and .bias once shared one storage, so a load (in place,
// as the checkpoint loader does) or an optimizer step that wrote one overwrote the other; the
// running statistics still matched, the output was off by O(1).
TEST_CASE("NonLocal2d with norm loaded from a PyTorch state dict by the checkpoint loader matches PyTorch") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/non_local.safetensors");
  for (const auto& c : split_csv(f.meta("norm_loaded.cases"))) {
    NonLocal2d<float> nl(case_options(f, c));
    REQUIRE(nl.options().norm);
    io::load_checkpoint(GCNET_FIXTURE_DIR "/non_local_norm_state.safetensors", nl, nullptr);
    const bool training = f.meta(c + ".training") == "1";
    set_training(nl, training);
    const auto x = f.tensor<float>(c + ".x");
    Tensor<float> y = full<float>(x.shape(), NAN);
    nl.forward(x, y);
    INFO(c);
    CHECK(testing::relative_error(y, f.tensor<double>(c + ".y")) <= 1e-5);
    // The loaded BN affine is PyTorch's, weight and bias each their own.
    const auto params = named_parameters(nl);
    for (const auto& [name, p] : params)
      if (name.rfind("conv_out.bn.", 0) == 0)
        CHECK(testing::relative_error(p->value, f.tensor<double>(c + ".param." + name)) == 0.0);
  }
}

TEST_CASE("NonLocal2d: no two parameters or buffers share storage, and a copy is deep (every mode, norm)") {
  for (auto mode : {NonLocalMode::EmbeddedGaussian, NonLocalMode::DotProduct, NonLocalMode::Gaussian,
                    NonLocalMode::Concatenation})
    for (bool norm : {false, true})
      for (bool zeros : {false, true}) {
        NonLocal2d<float> nl({.in_channels = 8, .mode = mode, .sub_sample = true, .zeros_init = zeros, .norm = norm});
        NonLocal2d<float> copy = nl;
        std::vector<std::pair<std::string, Tensor<float>*>> all;
        for (auto& [n, p] : named_parameters(nl)) {
          all.emplace_back(n, &p->value);
          all.emplace_back(n + " (grad)", &p->grad);
        }
        for (auto& [n, b] : named_buffers(nl)) all.emplace_back(n, b);
        INFO(nl.describe());
        for (std::size_t i = 0; i < all.size(); ++i)
          for (std::size_t j = i + 1; j < all.size(); ++j) {
            INFO(all[i].first << " and " << all[j].first);
            CHECK_FALSE(all[i].second->shares_storage_with(*all[j].second));
          }
        auto theirs = named_parameters(copy);
        auto ours = named_parameters(nl);
        REQUIRE(theirs.size() == ours.size());
        for (std::size_t i = 0; i < ours.size(); ++i)
          CHECK_FALSE(ours[i].second->value.shares_storage_with(theirs[i].second->value));
      }
}

TEST_CASE("NonLocal2d: mmcv init_weights with norm (zeros_init: BN 0/0, else BN weight ~ N(0, 0.01), bias 0)") {
  manual_seed(21);
  NonLocal2d<float> zero({.in_channels = 1024, .norm = true});
  NonLocal2d<float> normal({.in_channels = 1024, .zeros_init = false, .norm = true});
  auto param = [](NonLocal2d<float>& nl, const std::string& name) -> Tensor<float>& {
    for (auto& [n, p] : named_parameters(nl))
      if (n == name) return p->value;
    FAIL("no parameter " << name);
    throw 0;
  };
  for (index_t i = 0; i < 1024; ++i) {
    CHECK(param(zero, "conv_out.bn.weight")[i] == 0.0f);
    CHECK(param(zero, "conv_out.bn.bias")[i] == 0.0f);
    CHECK(param(normal, "conv_out.bn.bias")[i] == 0.0f);
  }
  const auto& gamma = param(normal, "conv_out.bn.weight");
  double sum = 0, ss = 0;
  for (index_t i = 0; i < gamma.numel(); ++i) {
    sum += gamma[i];
    ss += double(gamma[i]) * gamma[i];
  }
  CHECK(std::abs(sum / 1024) < 0.002);
  CHECK(std::sqrt(ss / 1024) == doctest::Approx(0.01).epsilon(0.1));
  // conv_out's conv keeps ConvModule's kaiming normal fan_out 'relu': std sqrt(2 / 1024).
  const auto& w = param(normal, "conv_out.conv.weight");
  double ws = 0;
  for (index_t i = 0; i < w.numel(); ++i) ws += double(w[i]) * w[i];
  CHECK(std::sqrt(ws / w.numel()) == doctest::Approx(std::sqrt(2.0 / 1024)).epsilon(0.05));
}

TEST_CASE("NonLocal2d: gradient check (double) for every mode, with and without sub_sample and norm") {
  for (auto mode : kModes)
    for (bool sub : {false, true})
      for (bool norm : {false, true}) {
        manual_seed(11);
        NonLocal2d<double> nl({.in_channels = 6, .mode = mode, .sub_sample = sub, .zeros_init = false, .norm = norm});
        randomize(nl, 100);
        const Shape in{2, 6, 5, 4};
        auto r = testing::check_gradients(nl, in);
        INFO(nl.describe() << "\n" << r.report);
        CHECK(r.ok);
        CHECK(r.checked > 40);
      }
}

TEST_CASE("NonLocal2d: gradient check across several attention blocks (P > 128)") {
  for (auto mode : kModes) {
    manual_seed(12);
    NonLocal2d<double> nl({.in_channels = 4, .mode = mode, .zeros_init = false});
    nl.set_max_block_rows(40);  // 143 query rows as 4 blocks of 36 (the default would take one)
    randomize(nl, 200);
    auto r = testing::check_gradients(nl, Shape{1, 4, 13, 11});
    INFO(nl.describe() << "\n" << r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("NonLocal2d: zeros_init makes the block the identity") {
  for (auto mode : kModes)
    for (bool norm : {false, true}) {
      manual_seed(3);
      NonLocal2d<float> nl({.in_channels = 8, .mode = mode, .sub_sample = true, .norm = norm});
      const auto x = random_tensor<float>(Shape{2, 8, 6, 7}, 5);
      Tensor<float> y;
      nl.forward(x, y);
      INFO(nl.describe());
      CHECK(test::max_abs_diff(x, y) == 0.0);
    }
  // Without zeros_init the block is not the identity (the check above can fail).
  NonLocal2d<float> nl({.in_channels = 8, .zeros_init = false});
  const auto x = random_tensor<float>(Shape{2, 8, 6, 7}, 5);
  Tensor<float> y;
  nl.forward(x, y);
  CHECK(test::max_abs_diff(x, y) > 0.0);
}

TEST_CASE("NonLocal2d: mmcv state-dict names, initialization and parameter counts") {
  NonLocal2d<float> eg({.in_channels = 16});
  std::vector<std::string> names;
  for (auto& [n, p] : named_parameters(eg)) names.push_back(n);
  CHECK(names == std::vector<std::string>{"g.conv.weight", "g.conv.bias", "conv_out.conv.weight", "conv_out.conv.bias",
                                          "theta.conv.weight", "theta.conv.bias", "phi.conv.weight", "phi.conv.bias"});
  NonLocal2d<float> cat({.in_channels = 16, .mode = NonLocalMode::Concatenation, .sub_sample = true, .norm = true});
  names.clear();
  for (auto& [n, p] : named_parameters(cat)) names.push_back(n);
  CHECK(names == std::vector<std::string>{"g.0.conv.weight", "g.0.conv.bias", "conv_out.conv.weight",
                                          "conv_out.bn.weight", "conv_out.bn.bias", "theta.conv.weight",
                                          "theta.conv.bias", "phi.0.conv.weight", "phi.0.conv.bias",
                                          "concat_project.conv.weight"});
  CHECK(named_buffers(cat).size() == 3);
  NonLocal2d<float> gauss({.in_channels = 16, .mode = NonLocalMode::Gaussian});
  CHECK(named_parameters(gauss).size() == 4);

  // One NL block (reduction 2) at C = 1024: 3 * (1024 * 512 + 512) + 512 * 1024 + 1024 = 2.100 M.
  NonLocal2d<float> big({.in_channels = 1024});
  CHECK(big.parameter_count() == 2099712);
  CHECK(big.inter_channels() == 512);
  NonLocal2d<float> tiny({.in_channels = 3, .reduction = 4});
  CHECK(tiny.inter_channels() == 1);  // max(C / reduction, 1)

  // g/theta/phi ~ N(0, 0.01): the sample std of the 1024x512 weights is close to 0.01.
  double ss = 0;
  const auto& w = named_parameters(big)[0].second->value;
  for (index_t i = 0; i < w.numel(); ++i) ss += double(w[i]) * w[i];
  CHECK(std::sqrt(ss / w.numel()) == doctest::Approx(0.01).epsilon(0.02));
}

TEST_CASE("NonLocal2d: FLOPs count the convolutions and both attention products") {
  NonLocal2d<float> nl({.in_channels = 256});
  const double C = 256, Ci = 128, P = 56.0 * 56.0;
  CHECK(nl.flops(Shape{2, 256, 56, 56}) == doctest::Approx(2 * (4 * 2 * C * Ci * P + 2 * 2 * Ci * P * P)));
  NonLocal2d<float> sub({.in_channels = 256, .sub_sample = true});
  const double Pp = 28.0 * 28.0;
  CHECK(sub.flops(Shape{1, 256, 56, 56}) == doctest::Approx(4 * 2 * C * Ci * P + 2 * 2 * Ci * P * Pp));
}

TEST_CASE("NonLocal2d: bad options and inputs give clear errors") {
  NonLocal2d<float> nl({.in_channels = 8});
  CHECK_THROWS_WITH_AS(nl.setup(Shape{2, 6, 5, 5}),
                       doctest::Contains("NonLocal2d(8, inter_channels=4, mode=embedded_gaussian, use_scale=True): "
                                         "expected input with 8 channels, got shape [2, 6, 5, 5]"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(nl.setup(Shape{2, 8, 0, 5}), doctest::Contains("has a zero extent"), gcnet::Error);
  CHECK_THROWS_WITH_AS(nl.setup(Shape{8, 5, 5}), doctest::Contains("expected a 4-d NCHW input"), gcnet::Error);
  Tensor<float> y;
  CHECK_THROWS_WITH_AS(nl.forward(random_tensor<float>(Shape{1, 4, 3, 3}, 1), y),
                       doctest::Contains("expected input with 8 channels, got shape [1, 4, 3, 3]"), gcnet::Error);
  NonLocal2d<float> sub({.in_channels = 8, .sub_sample = true});
  CHECK_THROWS_WITH_AS(sub.setup(Shape{1, 8, 1, 5}), doctest::Contains("needs H, W >= 2, got shape [1, 8, 1, 5]"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(NonLocal2d<float>({.in_channels = 8, .reduction = 0}),
                       doctest::Contains("NonLocal2d: reduction must be positive, got 0"), gcnet::Error);
  CHECK_THROWS_WITH_AS(NonLocal2d<float>({.in_channels = 0}),
                       doctest::Contains("NonLocal2d: in_channels must be positive, got 0"), gcnet::Error);
  CHECK_THROWS_WITH_AS(NonLocal2d<float>({.in_channels = 8, .mode = static_cast<NonLocalMode>(9)}),
                       doctest::Contains("NonLocal2d: invalid mode (9)"), gcnet::Error);
  CHECK_THROWS_WITH_AS(parse_non_local_mode("embedded"),
                       doctest::Contains("NonLocal2d: unknown mode 'embedded', expected one of gaussian, "
                                         "embedded_gaussian, dot_product, concatenation"),
                       gcnet::Error);
  CHECK(parse_non_local_mode("concatenation") == NonLocalMode::Concatenation);
}
