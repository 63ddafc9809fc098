#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/optim/lr_schedule.hpp"

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
std::vector<double> parse_doubles(const std::string& s) {
  std::vector<double> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    out.push_back(std::stod(s.substr(pos, end - pos)));
    pos = end + 1;
  }
  return out;
}

template <class S>
void check_sequence(const S& s, const io::SafetensorsReader& f, const std::string& c) {
  const auto lrs = f.tensor<double>(c + ".lrs");  // [iters, groups]
  const auto base = parse_doubles(f.meta(c + ".base_lrs"));
  REQUIRE(lrs.shape() == Shape{f.meta_int(c + ".iters"), static_cast<index_t>(base.size())});
  for (index_t k = 0; k < lrs.shape()[0]; ++k)
    for (index_t g = 0; g < lrs.shape()[1]; ++g) {
      const double expected = lrs[k * lrs.shape()[1] + g], actual = s.lr(base[static_cast<std::size_t>(g)], k);
      INFO(c << " iter " << k << " group " << g << ": " << actual << " vs torch " << expected);
      CHECK(std::abs(actual - expected) <= 1e-9 * expected);
    }
}
}  // namespace

TEST_CASE("WarmupMultiStepLr: matches torch LinearLR + MultiStepLR stepped per iteration, both conventions") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/optim.safetensors");
  for (const char* name : {"lr_mmdet_mmengine", "lr_mmcv_warmup", "lr_overlap"}) {
    const std::string c = name;
    WarmupMultiStepLr s({.warmup = {.start_factor = f.meta_double(c + ".start_factor"),
                                    .iters = f.meta_int(c + ".warmup_iters"),
                                    .convention = f.meta(c + ".convention") == "mmcv" ? Convention::mmcv : Convention::mmengine},
                         .milestones = parse_ints(f.meta(c + ".milestones")),
                         .gamma = f.meta_double(c + ".gamma")});
    check_sequence(s, f, c);
  }
}

TEST_CASE("PolyLr: matches mmengine's PolyLR recurrence and torch PolynomialLR (mmcv convention)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/optim.safetensors");
  for (const char* name : {"lr_poly_mmengine", "lr_poly_mmcv"}) {
    const std::string c = name;
    PolyLr s({.max_iters = f.meta_int(c + ".max_iters"), .power = f.meta_double(c + ".power"),
              .eta_min = f.meta_double(c + ".eta_min"),
              .convention = f.meta(c + ".convention") == "mmcv" ? Convention::mmcv : Convention::mmengine});
    check_sequence(s, f, c);
  }
}

TEST_CASE("Schedules: mmdet 1x/2x and mmseg poly values") {
  const auto s1 = WarmupMultiStepLr::mmdet_1x(100);
  CHECK(s1.lr(0.02, 0) == doctest::Approx(0.02 * 0.001));
  CHECK(s1.lr(0.02, 250) == doctest::Approx(0.02 * (0.001 + 0.999 * 250.0 / 499.0)));
  CHECK(s1.lr(0.02, 499) == doctest::Approx(0.02));
  CHECK(s1.lr(0.02, 799) == doctest::Approx(0.02));
  CHECK(s1.lr(0.02, 800) == doctest::Approx(0.002));
  CHECK(s1.lr(0.02, 1100) == doctest::Approx(0.0002));
  const auto s2 = WarmupMultiStepLr::mmdet_2x(100);
  CHECK(s2.lr(0.02, 1599) == doctest::Approx(0.02));
  CHECK(s2.lr(0.02, 1600) == doctest::Approx(0.002));
  CHECK(s2.lr(0.02, 2200) == doctest::Approx(0.0002));
  // mmseg 40k: (0.01 - 1e-4) * (1 - it/39999)^0.9 + 1e-4 (mmengine), it/40000 (mmcv 0.x).
  PolyLr p({.max_iters = 40000}), legacy({.max_iters = 40000, .convention = Convention::mmcv});
  CHECK(p.lr(0.01, 0) == doctest::Approx(0.01));
  CHECK(p.lr(0.01, 20000) == doctest::Approx((0.01 - 1e-4) * std::pow(1 - 20000.0 / 39999.0, 0.9) + 1e-4));
  CHECK(p.lr(0.01, 39999) == doctest::Approx(1e-4));
  CHECK(p.lr(0.01, 50000) == doctest::Approx(1e-4));
  CHECK(legacy.lr(0.01, 20000) == doctest::Approx((0.01 - 1e-4) * std::pow(0.5, 0.9) + 1e-4));
}

TEST_CASE("WarmupMultiStepLr over a run: steps at fractions of its length, moved by set_max_iters") {
  auto s = WarmupMultiStepLr::over_run({.start_factor = 0.5, .iters = 3}, {8.0 / 12, 11.0 / 12}, 120);
  CHECK(s.options().milestones == std::vector<std::int64_t>{80, 110});
  CHECK(s.factor(0) == doctest::Approx(0.5));
  CHECK(s.factor(79) == doctest::Approx(1.0));
  CHECK(s.factor(80) == doctest::Approx(0.1));
  CHECK(s.factor(110) == doctest::Approx(0.01));
  s.set_max_iters(240);  // a time budget's re-plan: the steps move with the run
  CHECK(s.options().milestones == std::vector<std::int64_t>{160, 220});
  CHECK(s.factor(100) == doctest::Approx(1.0));
  CHECK(s.factor(160) == doctest::Approx(0.1));
  s.set_max_iters(1);  // never before the first iteration
  CHECK(s.options().milestones == std::vector<std::int64_t>{1, 1});
  CHECK_THROWS_WITH_AS(s.set_max_iters(0), doctest::Contains("max_iters must be > 0"), Error);
  WarmupMultiStepLr fixed({.milestones = {5, 8}});
  CHECK_THROWS_WITH_AS(fixed.set_max_iters(20), doctest::Contains("cannot follow a new run length"), Error);
  CHECK_THROWS_WITH_AS(WarmupMultiStepLr::over_run({}, {0.9, 0.5}, 10),
                       doctest::Contains("fractions must be increasing and in (0, 1], got 0.5 at position 1"), Error);
  CHECK_THROWS_WITH_AS(WarmupMultiStepLr::over_run({}, {0.0}, 10), doctest::Contains("in (0, 1], got 0"), Error);
  CHECK_THROWS_WITH_AS(WarmupMultiStepLr({.milestones = {3}, .milestone_fractions = {0.5}}),
                       doctest::Contains("not both"), Error);
}

TEST_CASE("Schedules: invalid options are clear errors") {
  CHECK_THROWS_WITH_AS(WarmupMultiStepLr({.warmup = {.start_factor = 1.5, .iters = 10}}),
                       doctest::Contains("start_factor must be in [0, 1], got 1.5"), Error);
  CHECK_THROWS_WITH_AS(WarmupMultiStepLr({.warmup = {.start_factor = 0.1, .iters = 1}}),
                       doctest::Contains("use 0 for no warmup"), Error);
  CHECK_THROWS_WITH_AS(WarmupMultiStepLr({.milestones = {5, 3}}),
                       doctest::Contains("milestones must be positive and increasing, got 3 at position 1"), Error);
  CHECK_THROWS_WITH_AS(WarmupMultiStepLr::by_epochs({}, {8, 11}, 0), doctest::Contains("iters_per_epoch must be > 0"), Error);
  CHECK_THROWS_WITH_AS(PolyLr({.max_iters = 0}), doctest::Contains("PolyLr: max_iters must be > 0, got 0"), Error);
  CHECK_THROWS_WITH_AS(PolyLr({.max_iters = 10, .eta_min = -1}), doctest::Contains("eta_min must be >= 0"), Error);
}
