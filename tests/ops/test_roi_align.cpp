#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/ops/roi_align.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"
#include "support/errors.hpp"

using namespace gcnet;
using gcnet::test::error_of;
using ops::RoIAlignOptions;
using test::random_tensor;
using testing::relative_error;

namespace {
const std::string kFixture = std::string(GCNET_FIXTURE_DIR) + "/detops_roi.safetensors";

template <class T>
Tensor<T> filled(const Shape& s, T v) {
  Tensor<T> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = v;
  return t;
}

template <class T>
RoIs<T> make_rois(std::vector<std::vector<double>> rows) {
  RoIs<T> r;
  const auto k = static_cast<index_t>(rows.size());
  r.boxes = Tensor<T>(Shape{k, 4});
  r.image = Tensor<std::int64_t>(Shape{k});
  for (index_t i = 0; i < k; ++i) {
    const auto& row = rows[static_cast<std::size_t>(i)];
    r.image[i] = static_cast<std::int64_t>(row[0]);
    for (int c = 0; c < 4; ++c) r.boxes[i * 4 + c] = static_cast<T>(row[static_cast<std::size_t>(c + 1)]);
  }
  return r;
}

RoIAlignOptions case_options(const io::SafetensorsReader& f, const std::string& c) {
  const Size2 out = test::meta_size2(f, c + ".out");
  return {.out_h = out.h, .out_w = out.w, .spatial_scale = f.meta_double(c + ".scale"),
          .sampling_ratio = static_cast<int>(f.meta_int(c + ".sampling")), .aligned = test::meta_flag(f, c + ".aligned")};
}

// Forward into a NaN-filled output and backward into a random dx (data gradients accumulate):
// returns {y, dx - dx0}.
template <class T>
std::pair<Tensor<T>, Tensor<T>> run(const Tensor<T>& x, const RoIs<T>& rois, const RoIAlignOptions& o,
                                    const Tensor<T>& dy) {
  Tensor<T> y = filled(Shape{rois.size(), x.size(1), o.out_h, o.out_w}, std::numeric_limits<T>::quiet_NaN());
  ops::roi_align_forward(x, rois, o, y);
  const Tensor<T> dx0 = random_tensor<T>(x.shape(), 99);
  Tensor<T> dx = clone(dx0);
  ops::roi_align_backward(rois, o, dy, dx);
  for (index_t i = 0; i < dx.numel(); ++i) dx[i] -= dx0[i];
  return {y, dx};
}

// Central differences of L = sum(r * roi_align(x)) at every entry of x (the op is linear in x,
// so the differences are exact up to rounding).
Tensor<double> numeric_gradient(const Tensor<double>& x, const RoIs<double>& rois, const RoIAlignOptions& o,
                                const Tensor<double>& r) {
  Tensor<double> xp = clone(x), g(x.shape());
  const double eps = 1e-3;
  auto loss = [&] {
    const auto y = ops::roi_align(xp, rois, o);
    double s = 0;
    for (index_t i = 0; i < y.numel(); ++i) s += r[i] * y[i];
    return s;
  };
  for (index_t i = 0; i < x.numel(); ++i) {
    xp[i] = x[i] + eps;
    const double up = loss();
    xp[i] = x[i] - eps;
    const double down = loss();
    xp[i] = x[i];
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

}  // namespace

TEST_CASE("roi_align: torchvision parity in double (aligned and not, sampling 0 and 2, the reference 14.3 vectors)") {
  io::SafetensorsReader f(kFixture);
  for (const std::string name : {"a1_s0", "a1_s2", "a0_s0", "a0_s2", "ref143"}) {
    const std::string c = "align." + name;
    CAPTURE(c);
    const auto o = case_options(f, c);
    const auto x = f.tensor<double>(c + ".x");
    const auto rois5 = f.tensor<double>(c + ".rois");
    const auto rois = ops::from_mmdet_rois(rois5);
    const auto [y, dx] = run(x, rois, o, f.tensor<double>(c + ".dy"));
    CHECK(relative_error(y, f.tensor<double>(c + ".y")) <= 1e-13);
    CHECK(relative_error(dx, f.tensor<double>(c + ".dx")) <= 1e-13);
    // The [K, 5] overloads give the same.
    CHECK(test::max_abs_diff(ops::roi_align(x, rois5, o), y) == 0.0);
    Tensor<double> dx5(x.shape());
    fill(dx5, 0.0);
    ops::roi_align_backward(rois5, o, f.tensor<double>(c + ".dy"), dx5);
    CHECK(test::max_abs_diff(dx5, dx) <= 1e-15);
  }
}

TEST_CASE("roi_align: the reference 14.3 zero-size RoI gives all zeros - RoIs outside the map give zeros and no gradient") {
  io::SafetensorsReader f(kFixture);
  const std::string c = "align.ref143";
  const auto x = f.tensor<double>(c + ".x");
  const auto rois = ops::from_mmdet_rois(f.tensor<double>(c + ".rois"));
  const auto y = ops::roi_align(x, rois, case_options(f, c));
  for (index_t i = 2 * 2 * 9; i < 3 * 2 * 9; ++i) CHECK(y[i] == 0.0);  // rois[2] = [0, 10, 10, 10, 10]
  bool nonzero = false;
  for (index_t i = 0; i < 2 * 9; ++i) nonzero = nonzero || y[i] != 0.0;
  CHECK(nonzero);
  // Wholly outside (every sample beyond [-1, H] x [-1, W]) and, aligned, inverted: 0 either way.
  const auto outside = make_rois<double>({{0, 60, 60, 70, 70}, {1, 12, 8, 9, 14}, {1, 12, 14, 15, 9}});
  for (int sampling : {0, 2}) {
    const RoIAlignOptions o{.out_h = 3, .out_w = 3, .spatial_scale = 0.5, .sampling_ratio = sampling};
    const auto [yo, dxo] = run(x, outside, o, random_tensor<double>(Shape{3, 2, 3, 3}, 5));
    CHECK(test::max_abs_diff(yo, filled(yo.shape(), 0.0)) == 0.0);
    CHECK(test::max_abs_diff(dxo, filled(dxo.shape(), 0.0)) == 0.0);
  }
}

TEST_CASE("roi_align: float32 against torchvision's float32 (7x7, stride 4, adaptive)") {
  io::SafetensorsReader f(kFixture);
  const std::string c = "align.f32";
  const auto o = case_options(f, c);
  const auto x = f.tensor<float>(c + ".x");
  const auto rois = ops::from_mmdet_rois(f.tensor<float>(c + ".rois"));
  const auto [y, dx] = run(x, rois, o, f.tensor<float>(c + ".dy"));
  CHECK(o.out_h == 7);
  CHECK(relative_error(y, f.tensor<double>(c + ".y")) <= 2e-6);
  CHECK(relative_error(dx, f.tensor<double>(c + ".dx")) <= 2e-6);
}

TEST_CASE("roi_align: gradient check in double against central differences") {
  const auto x = random_tensor<double>(Shape{2, 2, 6, 7}, 1);
  // Inside, partly outside on each side, zero size, larger than the map, tiny.
  const auto rois = make_rois<double>({{0, 1.3, 2.2, 9.9, 8.1}, {1, -3, -2, 5, 4}, {0, 10, 1, 16, 13},
                                       {1, 4, 4, 4, 4}, {0, -5, -5, 20, 18}, {1, 6.1, 3.2, 6.9, 3.8}});
  for (bool aligned : {true, false})
    for (int sampling : {0, 2, 3}) {
      CAPTURE(aligned);
      CAPTURE(sampling);
      const RoIAlignOptions o{.out_h = 3, .out_w = 2, .spatial_scale = 0.75, .sampling_ratio = sampling,
                              .aligned = aligned};
      const auto r = random_tensor<double>(Shape{6, 2, 3, 2}, 2);
      const auto [y, dx] = run(x, rois, o, r);
      const auto numeric = numeric_gradient(x, rois, o, r);
      CHECK(relative_error(dx, numeric) <= 1e-9);
      double norm = 0;
      for (index_t i = 0; i < dx.numel(); ++i) norm += std::abs(dx[i]);
      CHECK(norm > 1.0);  // the RoIs do reach the map
    }
}

TEST_CASE("roi_align: the same bits on 1 and 2 threads, forward and backward (deterministic accumulation)") {
  const auto x = random_tensor<float>(Shape{2, 16, 40, 50}, 3);
  std::vector<std::vector<double>> rows;
  Rng g(4);
  for (int k = 0; k < 200; ++k) {
    const double cx = g.uniform(-10, 210), cy = g.uniform(-10, 170), w = g.uniform(0, 120), h = g.uniform(0, 120);
    rows.push_back({static_cast<double>(k % 2), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2});
  }
  const auto rois = make_rois<float>(rows);
  const RoIAlignOptions o{.out_h = 7, .out_w = 7, .spatial_scale = 0.25};
  const auto dy = random_tensor<float>(Shape{200, 16, 7, 7}, 5);
  std::pair<Tensor<float>, Tensor<float>> one, two;
  test::with_threads(1, [&] { one = run(x, rois, o, dy); });
  test::with_threads(2, [&] { two = run(x, rois, o, dy); });
  CHECK(test::max_abs_diff(one.first, two.first) == 0.0);
  CHECK(test::max_abs_diff(one.second, two.second) == 0.0);
}

TEST_CASE("roi_align: a plan over some RoIs writes only their rows - forward reads uint8 maps") {
  const auto x = random_tensor<double>(Shape{2, 3, 8, 9}, 6);
  const auto rois = make_rois<double>({{0, 1, 1, 12, 10}, {1, 3, 2, 7, 15}, {0, 0, 5, 16, 16}});
  const RoIAlignOptions o{.out_h = 2, .out_w = 2, .spatial_scale = 0.5};
  const auto all = ops::roi_align(x, rois, o);
  const std::vector<index_t> rows{2, 0};
  const auto plan = ops::roi_align_plan(rois, 2, 8, 9, o, &rows);
  auto y = filled(Shape{3, 3, 2, 2}, -7.0);
  ops::roi_align_forward(plan, x, y);
  for (index_t i = 0; i < y.numel(); ++i) CHECK(y[i] == (i / 12 == 1 ? -7.0 : all[i]));
  Tensor<std::uint8_t> m(Shape{2, 3, 8, 9});
  Tensor<double> md(m.shape());
  for (index_t i = 0; i < m.numel(); ++i) md[i] = m[i] = static_cast<std::uint8_t>((i * 37) % 5 == 0);
  auto ym = filled(Shape{3, 3, 2, 2}, -7.0);
  ops::roi_align_forward(ops::roi_align_plan(rois, 2, 8, 9, o), m, ym);
  CHECK(test::max_abs_diff(ym, ops::roi_align(md, rois, o)) == 0.0);
}

TEST_CASE("roi_align: bad input names the function and what was expected") {
  const auto x = random_tensor<float>(Shape{1, 2, 5, 5}, 7);
  const RoIAlignOptions o{};
  CHECK(error_of([&] { ops::roi_align(random_tensor<float>(Shape{2, 5, 5}, 1), make_rois<float>({}), o); })
            .find("roi_align: input must have shape [N, C, H, W]") != std::string::npos);
  CHECK(error_of([&] { ops::roi_align(x, make_rois<float>({{1, 0, 0, 2, 2}}), o); })
            .find("roi_align: RoI 0 belongs to image 1, but the batch has 1 images") != std::string::npos);
  CHECK(error_of([&] { ops::roi_align(x, make_rois<float>({{0, 0, 0, 2, 2}, {0, 0, NAN, 2, 2}}), o); })
            .find("roi_align: RoI 1 has a non-finite coordinate") != std::string::npos);
  CHECK(error_of([&] { ops::roi_align(x, make_rois<float>({{0, 0, 0, 2, 2}}), {.out_h = 0}); })
            .find("roi_align: output size must be at least 1x1") != std::string::npos);
  CHECK(error_of([&] { ops::roi_align(x, make_rois<float>({{0, 0, 0, 2, 2}}), {.spatial_scale = -1}); })
            .find("spatial_scale must be positive") != std::string::npos);
  CHECK(error_of([&] { ops::roi_align(x, make_rois<float>({{0, 0, 0, 1e9, 1e9}}), {.out_h = 1, .out_w = 1}); })
            .find("needs a sampling grid of") != std::string::npos);
  CHECK(error_of([&] { ops::roi_align(x, random_tensor<float>(Shape{1, 4}, 1), o); })
            .find("from_mmdet_rois: expected rois of shape [K, 5]") != std::string::npos);
  CHECK(error_of([&] { ops::roi_align(x, filled(Shape{1, 5}, -1.0f), o); })
            .find("from_mmdet_rois: row 0 has image index -1") != std::string::npos);
  Tensor<float> dx(Shape{1, 2, 5, 5});
  CHECK(error_of([&] { ops::roi_align_backward(make_rois<float>({{0, 0, 0, 2, 2}}), o, Tensor<float>(Shape{1, 2, 6, 7}), dx); })
            .find("roi_align_backward: output gradient has shape [1, 2, 6, 7], expected [1, 2, 7, 7]") != std::string::npos);
}
