#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "float32_fidelity.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/deform_conv2d.hpp"
#include "gcnet/layers/deform_conv2d_pack.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::meta_size2;
using test::random_tensor;
using test::split_csv;

static_assert(Layer<DeformConv2dPack<float>> && Layer<DeformConv2dPack<double>>);
static_assert(Layer<ModulatedDeformConv2dPack<float>> && Layer<ModulatedDeformConv2dPack<double>>);

// A mask goes only to DCNv2: passing one to DCNv1 (or none to DCNv2) does not compile.
template <class Op>
concept AcceptsMask = requires(Op& op, const Tensor<float>& t, Tensor<float>& y) { op.forward(t, t, t, y); };
template <class Op>
concept AcceptsNoMask = requires(Op& op, const Tensor<float>& t, Tensor<float>& y) { op.forward(t, t, y); };
static_assert(!AcceptsMask<DeformConv2d<float>> && AcceptsNoMask<DeformConv2d<float>>);
static_assert(AcceptsMask<ModulatedDeformConv2d<float>> && !AcceptsNoMask<ModulatedDeformConv2d<float>>);

namespace {

DeformConv2dOptions fixture_options(const io::SafetensorsReader& f, const std::string& c) {
  return {.in = f.meta_int(c + ".in_channels"),
          .out = f.meta_int(c + ".out_channels"),
          .kernel = meta_size2(f, c + ".kernel"),
          .stride = meta_size2(f, c + ".stride"),
          .padding = meta_size2(f, c + ".padding"),
          .dilation = meta_size2(f, c + ".dilation"),
          .groups = f.meta_int(c + ".groups"),
          .deform_groups = f.meta_int(c + ".deform_groups"),
          .bias = f.meta(c + ".bias") == "1"};
}

template <class T>
Tensor<T> nan_tensor(const Shape& s) {
  return full<T>(s, std::numeric_limits<T>::quiet_NaN());
}

// Either op behind one interface: mask is used only by the modulated one.
template <class T>
struct AnyDeformConv {
  std::optional<DeformConv2d<T>> v1;
  std::optional<ModulatedDeformConv2d<T>> v2;
  AnyDeformConv(const DeformConv2dOptions& o, bool modulated) {
    if (modulated) v2.emplace(o);
    else v1.emplace(o);
  }
  detail::DeformConvEngine<T, Cpu>& engine() {
    if (v2) return *v2;
    return *v1;
  }
  void forward(const Tensor<T>& x, const Tensor<T>& off, const Tensor<T>& mask, Tensor<T>& y) {
    if (v2) v2->forward(x, off, mask, y);
    else v1->forward(x, off, y);
  }
  void backward(const Tensor<T>& x, const Tensor<T>& off, const Tensor<T>& mask, const Tensor<T>& y,
                const Tensor<T>& dy, Tensor<T>& dx, Tensor<T>& doff, Tensor<T>& dmask) {
    if (v2) v2->backward(x, off, mask, y, dy, dx, doff, dmask);
    else v1->backward(x, off, y, dy, dx, doff);
  }
};

}  // namespace

TEST_CASE("DeformConv2d / ModulatedDeformConv2d: parity with torchvision.ops.deform_conv2d (float32)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/deform_conv.safetensors");
  const auto cases = split_csv(f.meta("all.op_cases"));
  CHECK(cases.size() >= 7);
  for (const auto& c : cases) {
    const bool modulated = f.meta(c + ".modulated") == "1";
    const auto o = fixture_options(f, c);
    AnyDeformConv<float> op(o, modulated);
    auto& e = op.engine();
    e.weight().value = f.tensor<float>(c + ".weight");
    if (o.bias) e.bias()->value = f.tensor<float>(c + ".bias");
    const auto x = f.tensor<float>(c + ".x"), off = f.tensor<float>(c + ".offset");
    const auto mask = modulated ? f.tensor<float>(c + ".mask") : Tensor<float>();
    const auto y_ref = f.tensor<double>(c + ".y");
    auto y = nan_tensor<float>(y_ref.shape());
    op.forward(x, off, mask, y);
    testing::ParityResult r;
    r.add(c + ".y", testing::relative_error(y, y_ref), 1e-4);

    const auto dy = f.tensor<float>(c + ".dy");
    auto dx = zeros<float>(x.shape()), doff = zeros<float>(off.shape());
    auto dmask = modulated ? zeros<float>(mask.shape()) : Tensor<float>();
    fill(e.weight().grad, std::numeric_limits<float>::quiet_NaN());
    if (o.bias) fill(e.bias()->grad, std::numeric_limits<float>::quiet_NaN());
    op.backward(x, off, mask, y, dy, dx, doff, dmask);
    r.add(c + ".dx", testing::relative_error(dx, f.tensor<double>(c + ".dx")), 1e-4);
    r.add(c + ".doffset", testing::relative_error(doff, f.tensor<double>(c + ".doffset")), 1e-4);
    r.add(c + ".dweight", testing::relative_error(e.weight().grad, f.tensor<double>(c + ".dweight")), 1e-4);
    if (modulated) r.add(c + ".dmask", testing::relative_error(dmask, f.tensor<double>(c + ".dmask")), 1e-4);
    if (o.bias) r.add(c + ".dbias", testing::relative_error(e.bias()->grad, f.tensor<double>(c + ".dbias")), 1e-4);
    INFO(c << ": " << e.describe() << "\n" << r.report);
    CHECK(r.ok);
  }
}

TEST_CASE("Deformable convolution: float32 error at or below PyTorch's float32 error (both against float64)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/deform_conv.safetensors");
  for (const auto& c : split_csv(f.meta("all.op_cases"))) {
    const bool modulated = f.meta(c + ".modulated") == "1";
    const auto o = fixture_options(f, c);
    AnyDeformConv<float> op(o, modulated);
    auto& e = op.engine();
    e.weight().value = f.tensor<float>(c + ".weight");
    if (o.bias) e.bias()->value = f.tensor<float>(c + ".bias");
    const auto x = f.tensor<float>(c + ".x"), off = f.tensor<float>(c + ".offset");
    const auto mask = modulated ? f.tensor<float>(c + ".mask") : Tensor<float>();
    auto y = nan_tensor<float>(f.tensor<double>(c + ".y").shape());
    op.forward(x, off, mask, y);
    auto dx = zeros<float>(x.shape()), doff = zeros<float>(off.shape());
    auto dmask = modulated ? zeros<float>(mask.shape()) : Tensor<float>();
    op.backward(x, off, mask, y, f.tensor<float>(c + ".dy"), dx, doff, dmask);
    test::FidelityResult r;
    r.add(f, c + ".y", y);
    r.add(f, c + ".dx", dx);
    r.add(f, c + ".doffset", doff);
    r.add(f, c + ".dweight", e.weight().grad);
    if (modulated) r.add(f, c + ".dmask", dmask);
    if (o.bias) r.add(f, c + ".dbias", e.bias()->grad);
    INFO(c << ": " << e.describe() << "\n" << r.report);
    CHECK(r.ok);
    CHECK(r.compared == 4 + int(modulated) + int(o.bias));
  }
  for (const auto& c : split_csv(f.meta("all.pack_cases"))) {
    const auto o = fixture_options(f, c);
    test::FidelityResult r;
    if (f.meta(c + ".modulated") == "1") {
      ModulatedDeformConv2dPack<float> pack(o);
      r = test::float32_fidelity(pack, f, c);
    } else {
      DeformConv2dPack<float> pack(o);
      r = test::float32_fidelity(pack, f, c);
    }
    INFO(c << "\n" << r.report);
    CHECK(r.ok);
    CHECK(r.compared >= 4);
  }
}

TEST_CASE("DeformConv2dPack / ModulatedDeformConv2dPack: parity with mmcv's packs on torchvision (float32)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/deform_conv.safetensors");
  const auto cases = split_csv(f.meta("all.pack_cases"));
  CHECK(cases.size() >= 3);
  for (const auto& c : cases) {
    const auto o = fixture_options(f, c);
    testing::ParityResult r;
    std::string what;
    if (f.meta(c + ".modulated") == "1") {
      ModulatedDeformConv2dPack<float> pack(o);
      what = pack.describe();
      r = testing::run_parity(pack, f, c);
    } else {
      DeformConv2dPack<float> pack(o);
      what = pack.describe();
      r = testing::run_parity(pack, f, c);
    }
    INFO(c << ": " << what << "\n" << r.report);
    CHECK(r.ok);
  }
}

namespace {

struct OpVariant {
  DeformConv2dOptions o;
  Shape in;
  bool modulated;
};

// Finite-difference check of every input and parameter gradient of one op (double), with
// sampling positions kept away from integers (where bilinear interpolation has kinks):
// the offsets are integers plus fractions in [0.2, 0.8]. Also checks that dx, doffset and
// dmask accumulate and weight/bias gradients are assigned.
void check_op_gradients(const OpVariant& v, std::uint64_t seed) {
  using Tn = Tensor<double>;
  manual_seed(seed);
  AnyDeformConv<double> op(v.o, v.modulated);
  auto& e = op.engine();
  if (v.o.bias) e.bias()->value = random_tensor<double>(e.bias()->value.shape(), seed + 1);
  Rng rng(seed, 99);
  const Tn x = random_tensor<double>(v.in, seed + 2);
  Tn off(e.offset_shape(v.in));
  for (index_t i = 0; i < off.numel(); ++i)
    off[i] = std::round(2.0 * rng.normal()) + (rng.uniform(0.0, 1.0) < 0.5 ? -1 : 1) * rng.uniform(0.2, 0.8);
  Tn mask;
  if (v.modulated) {
    mask = Tn(e.mask_shape(v.in));
    for (index_t i = 0; i < mask.numel(); ++i) mask[i] = rng.uniform(0.2, 1.0);
  }
  Tn y;
  op.forward(x, off, mask, y);
  const Tn probe = random_tensor<double>(y.shape(), seed + 3);
  auto loss = [&]() {
    Tn yy;
    op.forward(x, off, mask, yy);
    double s = 0;
    for (index_t i = 0; i < yy.numel(); ++i) s += probe[i] * yy[i];
    return s;
  };
  // Pre-filled data gradients: backward must add to them.
  const Tn dx0 = random_tensor<double>(x.shape(), seed + 4), doff0 = random_tensor<double>(off.shape(), seed + 5);
  const Tn dmask0 = v.modulated ? random_tensor<double>(mask.shape(), seed + 6) : Tn();
  Tn dx = clone(dx0), doff = clone(doff0), dmask = v.modulated ? clone(dmask0) : Tn();
  fill(e.weight().grad, std::numeric_limits<double>::quiet_NaN());
  if (v.o.bias) fill(e.bias()->grad, std::numeric_limits<double>::quiet_NaN());
  op.backward(x, off, mask, y, probe, dx, doff, dmask);
  const Tn dw = clone(e.weight().grad);
  const Tn db = v.o.bias ? clone(e.bias()->grad) : Tn();

  int checked = 0;
  double worst = 0;
  auto probe_entries = [&](const char* what, Tn& t, const Tn& grad, const Tn* grad0, int count) {
    for (int k = 0; k < count; ++k) {
      const index_t i = static_cast<index_t>(rng.uniform(0.0, 1.0) * static_cast<double>(t.numel())) % t.numel();
      const double keep = t[i], h = 1e-6;
      t[i] = keep + h;
      const double lp = loss();
      t[i] = keep - h;
      const double lm = loss();
      t[i] = keep;
      const double numeric = (lp - lm) / (2 * h);
      const double analytic = grad[i] - (grad0 ? (*grad0)[i] : 0.0);
      const double err = std::abs(analytic - numeric) / std::max(1.0, std::abs(numeric));
      worst = std::max(worst, err);
      ++checked;
      INFO(e.describe() << " " << what << "[" << i << "]: analytic " << analytic << " vs numeric " << numeric);
      CHECK(err <= 1e-5);
    }
  };
  Tn& xm = const_cast<Tn&>(x);  // perturbed in place and restored
  probe_entries("x", xm, dx, &dx0, 30);
  probe_entries("offset", off, doff, &doff0, 30);
  if (v.modulated) probe_entries("mask", mask, dmask, &dmask0, 20);
  probe_entries("weight", e.weight().value, dw, nullptr, 20);
  if (v.o.bias) probe_entries("bias", e.bias()->value, db, nullptr, 5);
  CHECK(checked >= 80);
  // Weight gradients are assigned: a second backward gives the same values.
  Tn dx2 = zeros<double>(x.shape()), doff2 = zeros<double>(off.shape());
  Tn dmask2 = v.modulated ? zeros<double>(mask.shape()) : Tn();
  op.backward(x, off, mask, y, probe, dx2, doff2, dmask2);
  CHECK(test::max_abs_diff(e.weight().grad, dw) == 0.0);
  // The offset gradient is not trivially zero (most samples are inside the image).
  double norm = 0;
  for (index_t i = 0; i < doff2.numel(); ++i) norm += std::abs(doff2[i]);
  CHECK(norm > 0.1);
}

}  // namespace

TEST_CASE("DeformConv2d / ModulatedDeformConv2d: gradient check (double) for every option variant") {
  const OpVariant variants[] = {
      {{.in = 3, .out = 4, .kernel = 3, .padding = 1}, Shape{2, 3, 5, 5}, false},
      {{.in = 4, .out = 6, .kernel = 3, .stride = 2, .padding = 1, .groups = 2, .deform_groups = 2, .bias = true},
       Shape{2, 4, 6, 5}, false},
      {{.in = 2, .out = 3, .kernel = 3, .padding = 2, .dilation = 2}, Shape{1, 2, 6, 6}, false},
      {{.in = 4, .out = 3, .kernel = 3, .padding = 1, .bias = true}, Shape{2, 4, 4, 5}, true},
      {{.in = 6, .out = 4, .kernel = {3, 2}, .stride = {2, 1}, .padding = {2, 1}, .dilation = {2, 1}, .groups = 2,
        .deform_groups = 3, .bias = true},
       Shape{1, 6, 6, 5}, true},
      {{.in = 4, .out = 2, .kernel = 1, .deform_groups = 4}, Shape{2, 4, 4, 4}, true},
  };
  std::uint64_t seed = 11;
  for (const auto& v : variants) check_op_gradients(v, seed += 10);
}

TEST_CASE("DeformConv2dPack / ModulatedDeformConv2dPack: gradient check (double) with nonzero conv_offset") {
  auto randomize_offsets = [](auto& pack, std::uint64_t seed) {
    auto& w = pack.conv_offset().weight().value;
    w = random_tensor<double>(w.shape(), seed, 0.5);
    auto& b = pack.conv_offset().bias()->value;
    b = random_tensor<double>(b.shape(), seed + 1, 1.0);
  };
  {
    manual_seed(3);
    DeformConv2dPack<double> pack({.in = 3, .out = 4, .kernel = 3, .padding = 1, .bias = true});
    randomize_offsets(pack, 40);
    auto r = testing::check_gradients(pack, Shape{2, 3, 5, 5});
    INFO(pack.describe() << "\n" << r.report);
    CHECK(r.ok);
    CHECK(r.checked > 40);
  }
  {
    manual_seed(4);
    ModulatedDeformConv2dPack<double> pack(
        {.in = 4, .out = 4, .kernel = 3, .stride = 2, .padding = 1, .groups = 2, .deform_groups = 2, .bias = true});
    randomize_offsets(pack, 50);
    auto r = testing::check_gradients(pack, Shape{2, 4, 6, 5});
    INFO(pack.describe() << "\n" << r.report);
    CHECK(r.ok);
    CHECK(r.checked > 40);
  }
}

TEST_CASE("Deformable convolution with zero offsets (and mask 1) equals Conv2d, forward and backward") {
  const DeformConv2dOptions variants[] = {
      {.in = 4, .out = 6, .kernel = 3, .padding = 1, .bias = true},
      {.in = 4, .out = 6, .kernel = 3, .stride = 2, .padding = 2, .dilation = 2, .groups = 2, .deform_groups = 2},
      {.in = 3, .out = 5, .kernel = {3, 5}, .stride = {1, 2}, .padding = {1, 2}, .bias = true},
  };
  std::uint64_t seed = 100;
  for (const auto& o : variants) {
    for (bool modulated : {false, true}) {
      manual_seed(++seed);
      AnyDeformConv<float> op(o, modulated);
      auto& e = op.engine();
      Conv2d<float> conv({.in = o.in, .out = o.out, .kernel = o.kernel, .stride = o.stride, .padding = o.padding,
                          .dilation = o.dilation, .groups = o.groups, .bias = o.bias});
      conv.weight().value = clone(e.weight().value);
      if (o.bias) {
        e.bias()->value = random_tensor<float>(e.bias()->value.shape(), seed);
        conv.bias()->value = clone(e.bias()->value);
      }
      const Shape in{2, o.in, 9, 8};
      const auto x = random_tensor<float>(in, seed + 1);
      const auto off = zeros<float>(e.offset_shape(in));
      const auto mask = full<float>(e.mask_shape(in), 1.0f);
      Tensor<float> y, yc;
      op.forward(x, off, mask, y);
      conv.forward(x, yc);
      INFO(e.describe() << (modulated ? " (mask 1)" : ""));
      CHECK(test::max_abs_diff(y, yc) < 1e-4);
      const auto dy = random_tensor<float>(y.shape(), seed + 2);
      auto dx = zeros<float>(in), dxc = zeros<float>(in), doff = zeros<float>(off.shape());
      auto dmask = zeros<float>(mask.shape());
      op.backward(x, off, mask, y, dy, dx, doff, dmask);
      conv.backward(x, yc, dy, dxc);
      CHECK(test::max_abs_diff(dx, dxc) < 1e-4);
      CHECK(test::max_abs_diff(e.weight().grad, conv.weight().grad) < 1e-3);
      if (o.bias) CHECK(test::max_abs_diff(e.bias()->grad, conv.bias()->grad) < 1e-3);
    }
  }
}

TEST_CASE("DCN packs at initialization: v1 is the plain convolution, v2 is half of it plus the bias") {
  const DeformConv2dOptions o{.in = 4, .out = 5, .kernel = 3, .padding = 1, .deform_groups = 2, .bias = true};
  const Shape in{2, 4, 7, 6};
  const auto x = random_tensor<float>(in, 7);
  Conv2d<float> conv({.in = 4, .out = 5, .kernel = 3, .padding = 1, .bias = false});
  {
    DeformConv2dPack<float> pack({.in = 4, .out = 5, .kernel = 3, .padding = 1});
    conv.weight().value = clone(pack.weight().value);
    Tensor<float> y, yc;
    pack.forward(x, y);
    conv.forward(x, yc);
    CHECK(test::max_abs_diff(y, yc) < 1e-5);
    CHECK(test::max_abs_diff(y, zeros<float>(y.shape())) > 0.1);
  }
  {
    ModulatedDeformConv2dPack<float> pack(o);
    CHECK(test::max_abs_diff(pack.deform_conv().bias()->value, zeros<float>(Shape{5})) == 0.0);  // mmcv: bias 0
    pack.deform_conv().bias()->value = random_tensor<float>(Shape{5}, 8);
    conv.weight().value = clone(pack.weight().value);
    Tensor<float> y, yc;
    pack.forward(x, y);
    conv.forward(x, yc);
    const auto& b = pack.deform_conv().bias()->value;
    for (index_t n = 0; n < 2; ++n)
      for (index_t c = 0; c < 5; ++c)
        for (index_t p = 0; p < 42; ++p) yc[(n * 5 + c) * 42 + p] = 0.5f * yc[(n * 5 + c) * 42 + p] + b[c];
    CHECK(test::max_abs_diff(y, yc) < 1e-5);
  }
}

TEST_CASE("DCN packs: parameter names, shapes and initialization as mmcv") {
  manual_seed(5);
  DeformConv2dPack<float> v1({.in = 8, .out = 4, .kernel = 3, .padding = 1, .deform_groups = 2});
  auto p1 = named_parameters(v1);
  REQUIRE(p1.size() == 3);
  CHECK(p1[0].first == "weight");
  CHECK(p1[1].first == "conv_offset.weight");
  CHECK(p1[2].first == "conv_offset.bias");
  CHECK(p1[1].second->value.shape() == Shape{36, 8, 3, 3});
  CHECK(test::max_abs_diff(p1[1].second->value, zeros<float>(Shape{36, 8, 3, 3})) == 0.0);
  CHECK(test::max_abs_diff(p1[2].second->value, zeros<float>(Shape{36})) == 0.0);
  // kaiming_uniform(a=0, relu), fan_in 72: bound sqrt(6 / 72).
  const double bound1 = std::sqrt(6.0 / 72.0);
  double m1 = 0;
  for (index_t i = 0; i < v1.weight().value.numel(); ++i) m1 = std::max(m1, double(std::abs(v1.weight().value[i])));
  CHECK(m1 <= bound1);
  CHECK(m1 > 0.8 * bound1);

  ModulatedDeformConv2dPack<float> v2({.in = 8, .out = 4, .kernel = 3, .padding = 1, .bias = true});
  auto p2 = named_parameters(v2);
  REQUIRE(p2.size() == 4);
  CHECK(p2[0].first == "weight");
  CHECK(p2[1].first == "bias");
  CHECK(p2[2].first == "conv_offset.weight");
  CHECK(p2[3].first == "conv_offset.bias");
  CHECK(p2[2].second->value.shape() == Shape{27, 8, 3, 3});
  const double bound2 = 1.0 / std::sqrt(72.0);
  double m2 = 0;
  for (index_t i = 0; i < v2.weight().value.numel(); ++i) m2 = std::max(m2, double(std::abs(v2.weight().value[i])));
  CHECK(m2 <= bound2);
  CHECK(m2 > 0.8 * bound2);
  CHECK(v2.describe() == "ModulatedDeformConv2dPack(8, 4, kernel=3x3, stride=1, padding=1)");
}

TEST_CASE("Deformable convolution: one thread and all threads give identical results (deterministic)") {
  const DeformConv2dOptions o{.in = 32, .out = 16, .kernel = 3, .padding = 1, .deform_groups = 2, .bias = true};
  const Shape in{2, 32, 20, 19};
  manual_seed(9);
  ModulatedDeformConv2d<float> op(o);
  const auto x = random_tensor<float>(in, 1);
  const auto off = random_tensor<float>(op.offset_shape(in), 2, 3.0);
  const auto mask = random_tensor<float>(op.mask_shape(in), 3, 0.3, 0.5);
  auto run = [&](int threads) {
    std::vector<Tensor<float>> out(5);
    test::with_threads(threads, [&] {
      op.forward(x, off, mask, out[0]);
      const auto dy = random_tensor<float>(out[0].shape(), 4);
      out[1] = zeros<float>(in);
      out[2] = zeros<float>(off.shape());
      out[3] = zeros<float>(mask.shape());
      op.backward(x, off, mask, out[0], dy, out[1], out[2], out[3]);
      out[4] = clone(op.weight().grad);
    });
    return out;
  };
  const auto a = run(1), b = run(2);
  for (int k = 0; k < 4; ++k) CHECK(test::max_abs_diff(a[k], b[k]) == 0.0);
  CHECK(test::max_abs_diff(a[4], b[4]) < 1e-4);  // the GEMM may block differently per thread count
}

TEST_CASE("Deformable convolution: bad inputs and options give clear errors") {
  DeformConv2d<float> v1({.in = 4, .out = 8, .kernel = 3, .padding = 1});
  ModulatedDeformConv2d<float> v2({.in = 4, .out = 8, .kernel = 3, .padding = 1, .deform_groups = 2});
  const auto x = random_tensor<float>(Shape{2, 4, 6, 6}, 1);
  Tensor<float> y;
  const auto bad_offset = random_tensor<float>(Shape{2, 9, 6, 6}, 2);
  CHECK_THROWS_WITH_AS(
      v1.forward(x, bad_offset, y),
      doctest::Contains("DeformConv2d(4, 8, kernel=3x3, stride=1, padding=1, bias=False): offset tensor must have "
                        "shape [2, 18, 6, 6]"),
      gcnet::Error);
  CHECK_THROWS_WITH_AS(v1.forward(x, bad_offset, y), doctest::Contains("got [2, 9, 6, 6]"), gcnet::Error);
  const auto off2 = random_tensor<float>(Shape{2, 36, 6, 6}, 3);
  const auto bad_mask = random_tensor<float>(Shape{2, 9, 6, 6}, 4);
  CHECK_THROWS_WITH_AS(v2.forward(x, off2, bad_mask, y),
                       doctest::Contains("ModulatedDeformConv2d(4, 8, kernel=3x3, stride=1, padding=1, bias=False, "
                                         "deform_groups=2): mask tensor must have shape [2, 18, 6, 6]"),
                       gcnet::Error);
  const auto x3 = random_tensor<float>(Shape{2, 3, 6, 6}, 5);
  CHECK_THROWS_WITH_AS(v1.forward(x3, bad_offset, y),
                       doctest::Contains("expected input with 4 channels, got shape [2, 3, 6, 6]"), gcnet::Error);
  DeformConv2dPack<float> pack({.in = 4, .out = 8, .kernel = 3, .padding = 1});
  CHECK_THROWS_WITH_AS(pack.setup(Shape{2, 5, 6, 6}),
                       doctest::Contains("DeformConv2dPack(4, 8, kernel=3x3, stride=1, padding=1, bias=False): expected "
                                         "input with 4 channels, got shape [2, 5, 6, 6]"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(DeformConv2d<float>({.in = 6, .out = 8, .kernel = 3, .deform_groups = 4}),
                       doctest::Contains("in channels (6) must be divisible by deform_groups (4)"), gcnet::Error);
  CHECK_THROWS_WITH_AS(DeformConv2d<float>({.in = 4, .out = 8, .kernel = 0}),
                       doctest::Contains("kernel size must be positive"), gcnet::Error);
  CHECK_THROWS_WITH_AS(ModulatedDeformConv2d<float>({.in = 4, .out = 8, .kernel = 3, .deform_groups = 0}),
                       doctest::Contains("deform_groups must be positive, got 0"), gcnet::Error);
}
