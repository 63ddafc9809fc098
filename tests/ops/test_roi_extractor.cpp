#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/ops/roi_extractor.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/layer_testing.hpp"
#include "support/errors.hpp"

using namespace gcnet;
using gcnet::test::error_of;
using ops::RoIExtractorOptions;
using ops::RoILevelMapping;
using test::random_tensor;
using testing::relative_error;

namespace {
const std::string kFixture = std::string(GCNET_FIXTURE_DIR) + "/detops_roi.safetensors";

// Square RoIs of side s (s = sqrt(w h)) centred at (50, 40), image 0.
template <class T>
RoIs<T> squares(const std::vector<double>& sides) {
  RoIs<T> r;
  const auto k = static_cast<index_t>(sides.size());
  r.boxes = Tensor<T>(Shape{k, 4});
  r.image = Tensor<std::int64_t>(Shape{k});
  for (index_t i = 0; i < k; ++i) {
    const double s = sides[static_cast<std::size_t>(i)];
    r.boxes[i * 4 + 0] = static_cast<T>(50 - s / 2), r.boxes[i * 4 + 1] = static_cast<T>(40 - s / 2);
    r.boxes[i * 4 + 2] = static_cast<T>(50 + s / 2), r.boxes[i * 4 + 3] = static_cast<T>(40 + s / 2);
    r.image[i] = 0;
  }
  return r;
}

template <class T>
std::vector<Tensor<T>> pyramid(index_t n, index_t c, index_t h, index_t w, std::uint64_t seed, int levels = 4) {
  std::vector<Tensor<T>> out;
  for (int l = 0; l < levels; ++l)
    out.push_back(random_tensor<T>(Shape{n, c, (h + (1 << l) - 1) >> l, (w + (1 << l) - 1) >> l}, seed + l));
  return out;
}

}  // namespace

TEST_CASE("map_roi_levels: the FPN level boundaries of the reference (112, 224, 448), float and double") {
  const std::vector<double> sides{1, 56, 111.9, 112, 150, 223.99, 224, 300, 447, 448, 2000, 0};
  const std::vector<int> expected{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 0};
  CHECK(ops::map_roi_levels(squares<float>(sides)) == expected);
  CHECK(ops::map_roi_levels(squares<double>(sides)) == expected);
  const auto tv = ops::torchvision_roi_extractor_options();
  CHECK(ops::map_roi_levels(squares<float>(sides), tv) == expected);
  CHECK(ops::map_roi_levels(squares<double>(sides), tv) == expected);
  // Non-square: s = sqrt(w h) = sqrt(56 * 224) = 112 -> P3; fewer levels clamp at the coarsest.
  auto r = squares<double>({0});
  r.boxes[0] = 0, r.boxes[1] = 0, r.boxes[2] = 56, r.boxes[3] = 224;
  CHECK(ops::map_roi_levels(r) == std::vector<int>{1});
  RoIExtractorOptions two;
  two.strides = {4, 8};
  CHECK(ops::map_roi_levels(squares<double>({50, 120, 500}), two) == std::vector<int>{0, 1, 1});
  // A RoI with one side inverted has a NaN scale in mmdet: no level.
  r.boxes[2] = -10;
  CHECK(ops::map_roi_levels(r) == std::vector<int>{-1});
}

TEST_CASE("roi_extract: mmdet SingleRoIExtractor and torchvision MultiScaleRoIAlign parity, forward and backward") {
  io::SafetensorsReader f(kFixture);
  for (const std::string name : {"mmdet", "tv"}) {
    const std::string c = "extract." + name;
    CAPTURE(c);
    const bool tv = f.meta(c + ".mapping") == "torchvision";
    const RoIExtractorOptions o = tv ? ops::torchvision_roi_extractor_options(7) : RoIExtractorOptions{};
    CHECK(o.sampling_ratio == f.meta_int(c + ".sampling"));
    CHECK(o.aligned == test::meta_flag(f, c + ".aligned"));
    std::vector<Tensor<double>> feats, dfeats, dfeats0;
    for (int l = 0; l < 4; ++l) {
      feats.push_back(f.tensor<double>(c + ".feat" + std::to_string(l)));
      dfeats0.push_back(random_tensor<double>(feats.back().shape(), 10 + l));
      dfeats.push_back(clone(dfeats0.back()));
    }
    const auto rois = ops::from_mmdet_rois(f.tensor<double>(c + ".rois"));
    const auto level = f.tensor<double>(c + ".level");
    const auto mapped = ops::map_roi_levels(rois, o);
    int levels_seen = 0;
    for (index_t k = 0; k < rois.size(); ++k) {
      CHECK(mapped[static_cast<std::size_t>(k)] == static_cast<int>(level[k]));
      levels_seen |= 1 << mapped[static_cast<std::size_t>(k)];
    }
    CHECK(levels_seen == 15);  // every level has RoIs
    Tensor<double> y(Shape{rois.size(), 1, 7, 7});
    fill(y, std::numeric_limits<double>::quiet_NaN());
    ops::roi_extract_forward(feats, rois, o, y);
    CHECK(relative_error(y, f.tensor<double>(c + ".y")) <= 1e-13);
    ops::roi_extract_backward(rois, o, f.tensor<double>(c + ".dy"), dfeats);
    for (int l = 0; l < 4; ++l) {
      CAPTURE(l);
      Tensor<double> d = clone(dfeats[static_cast<std::size_t>(l)]);
      for (index_t i = 0; i < d.numel(); ++i) d[i] -= dfeats0[static_cast<std::size_t>(l)][i];
      CHECK(relative_error(d, f.tensor<double>(c + ".dfeat" + std::to_string(l))) <= 1e-13);
    }
  }
}

TEST_CASE("roi_extract: rows follow the input order - each row is RoIAlign on its level") {
  const auto feats = pyramid<double>(2, 3, 40, 48, 1);
  RoIs<double> rois;
  const std::vector<std::vector<double>> rows{{1, 10, 10, 300, 280}, {0, 3, 4, 30, 40},   {1, 50, 20, 200, 150},
                                              {0, 0, 0, 120, 130},   {1, 5, 5, 700, 600}, {0, 20, 30, 60, 50}};
  rois.boxes = Tensor<double>(Shape{6, 4});
  rois.image = Tensor<std::int64_t>(Shape{6});
  for (index_t k = 0; k < 6; ++k) {
    rois.image[k] = static_cast<std::int64_t>(rows[static_cast<std::size_t>(k)][0]);
    for (int c = 0; c < 4; ++c) rois.boxes[k * 4 + c] = rows[static_cast<std::size_t>(k)][static_cast<std::size_t>(c + 1)];
  }
  const RoIExtractorOptions o;
  const auto y = ops::roi_extract(feats, rois, o);
  const auto level = ops::map_roi_levels(rois, o);
  CHECK(level == std::vector<int>{2, 0, 1, 1, 3, 0});
  for (index_t k = 0; k < 6; ++k) {
    RoIs<double> one;
    one.boxes = rois.boxes.slice(k, k + 1);
    one.image = rois.image.slice(k, k + 1);
    const auto l = static_cast<std::size_t>(level[static_cast<std::size_t>(k)]);
    const auto expect = ops::roi_align(feats[l], one, o.level_options(l));
    for (index_t i = 0; i < expect.numel(); ++i) CHECK(y[k * expect.numel() + i] == expect[i]);
  }
  // An FPN's fifth level (P6) is not used: the same result with it passed along.
  auto five = feats;
  five.push_back(random_tensor<double>(Shape{2, 3, 2, 2}, 9));
  CHECK(test::max_abs_diff(ops::roi_extract(five, rois, o), y) == 0.0);
}

TEST_CASE("roi_extract: backward matches central differences on every level (double)") {
  const auto feats = pyramid<double>(1, 2, 20, 24, 3);
  const std::vector<double> sides{30, 100, 130, 260, 500, 70};
  auto rois = squares<double>(sides);
  for (index_t k = 0; k < rois.size(); ++k) rois.boxes[k * 4] -= 7.0 * static_cast<double>(k);  // vary the positions
  const RoIExtractorOptions o;
  const auto r = random_tensor<double>(Shape{6, 2, 7, 7}, 4);
  std::vector<Tensor<double>> g;
  for (const auto& fl : feats) g.push_back(zeros<double>(fl.shape()));
  ops::roi_extract_backward(rois, o, r, g);
  auto loss = [&](const std::vector<Tensor<double>>& fs) {
    const auto y = ops::roi_extract(fs, rois, o);
    double s = 0;
    for (index_t i = 0; i < y.numel(); ++i) s += r[i] * y[i];
    return s;
  };
  auto xp = feats;
  for (auto& t : xp) t = clone(t);
  for (std::size_t l = 0; l < 4; ++l) {
    CAPTURE(l);
    Tensor<double> numeric(feats[l].shape());
    double norm = 0;
    for (index_t i = 0; i < numeric.numel(); ++i) {
      xp[l][i] = feats[l][i] + 1e-3;
      const double up = loss(xp);
      xp[l][i] = feats[l][i] - 1e-3;
      const double down = loss(xp);
      xp[l][i] = feats[l][i];
      numeric[i] = (up - down) / 2e-3;
      norm += std::abs(numeric[i]);
    }
    CHECK(norm > 0.1);
    CHECK(relative_error(g[l], numeric) <= 1e-9);
  }
}

TEST_CASE("roi_extract: a RoI without a level gets zeros - bad input names what was expected") {
  const auto feats = pyramid<float>(1, 2, 16, 16, 5);
  auto rois = squares<float>({40, 40});
  rois.boxes[4 + 2] = 0;  // x2 < x1: negative area
  const auto y = ops::roi_extract(feats, rois);
  bool first_nonzero = false;
  for (index_t i = 0; i < 98; ++i) first_nonzero = first_nonzero || y[i] != 0.0f;
  CHECK(first_nonzero);
  for (index_t i = 98; i < 196; ++i) CHECK(y[i] == 0.0f);
  const std::vector<Tensor<float>> three(feats.begin(), feats.begin() + 3);
  CHECK(error_of([&] { ops::roi_extract(three, rois); }).find("roi_extract: 4 strides but only 3 feature levels") !=
        std::string::npos);
  auto odd = feats;
  odd[2] = random_tensor<float>(Shape{1, 3, 4, 4}, 1);
  CHECK(error_of([&] { ops::roi_extract(odd, rois); })
            .find("roi_extract: feature levels[2] has shape [1, 3, 4, 4], feature levels[0] [1, 2, 16, 16]") !=
        std::string::npos);
  RoIExtractorOptions bad;
  bad.strides = {4, 0};
  CHECK(error_of([&] { ops::roi_extract(feats, rois, bad); }).find("stride of level 1 must be positive") !=
        std::string::npos);
  RoIExtractorOptions tv = ops::torchvision_roi_extractor_options();
  tv.strides = {4, 16};
  CHECK(error_of([&] { ops::map_roi_levels(rois, tv); }).find("strides that double from level to level") !=
        std::string::npos);
  auto g = feats;
  CHECK(error_of([&] { ops::roi_extract_backward(rois, RoIExtractorOptions{}, Tensor<float>(Shape{2, 2, 5, 5}), g); })
            .find("roi_extract_backward: output gradient has shape [2, 2, 5, 5], expected [2, 2, 7, 7]") !=
        std::string::npos);
}
