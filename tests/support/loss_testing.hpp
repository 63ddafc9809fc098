#pragma once
// Helpers shared by the loss tests: option parsing from fixture metadata, PyTorch parity of
// a loss's value and gradient, and a finite-difference gradient check in double.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/loss/reduction.hpp"
#include "gcnet/testing/parity.hpp"

namespace loss_testing {
using namespace gcnet;

inline Reduction parse_reduction(const std::string& s) {
  if (s == "mean") return Reduction::mean;
  if (s == "sum") return Reduction::sum;
  if (s == "none") return Reduction::none;
  if (s == "mean_all") return Reduction::mean_all;
  FAIL("unknown reduction " << s);
  return Reduction::mean;
}

// "0.5,1,2" -> {0.5, 1, 2}; "" -> {}.
inline std::vector<double> parse_list(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stod(item));
  return out;
}

inline Tensor<std::int64_t> labels(const Tensor<double>& t) {
  Tensor<std::int64_t> out(t.shape());
  for (index_t i = 0; i < t.numel(); ++i) out[i] = static_cast<std::int64_t>(t[i]);
  return out;
}

// Compares the value of `forward()` (already run) and the gradient of `loss` with case `c`.
// The gradient is accumulated onto a non-zero tensor (backward adds).
template <class Loss>
void check_parity(Loss& loss, float value, const io::SafetensorsReader& f, const std::string& c) {
  CAPTURE(c);
  const bool none = f.meta(c + ".reduction") == "none";
  const auto ref = f.tensor<double>(c + ".loss");
  if (none) {
    CHECK(testing::relative_error(loss.losses(), ref) <= 1e-4);
    double sum = 0, scale = 1e-12;
    for (index_t i = 0; i < ref.numel(); ++i) sum += ref[i], scale = std::max(scale, std::abs(ref[i]));
    CHECK(std::abs(value - sum) <= 1e-4 * scale * static_cast<double>(ref.numel()));
  } else {
    CHECK(std::abs(value - ref[0]) <= 1e-4 * std::abs(ref[0]));
  }
  const auto expected = f.tensor<double>(c + ".dinput");
  auto d = full<float>(expected.shape(), 0.25f);
  if (none)
    loss.backward(d, f.tensor<float>(c + ".dlosses"));
  else
    loss.backward(d);
  for (index_t i = 0; i < d.numel(); ++i) d[i] -= 0.25f;
  CHECK(testing::relative_error(d, expected) <= 1e-4);
}

// Central differences of `objective` at every entry of x against `analytic`.
inline void check_gradient(Tensor<double> x, const std::function<double(const Tensor<double>&)>& objective,
                           const Tensor<double>& analytic, double eps = 1e-6, double tol = 1e-6) {
  REQUIRE(analytic.shape() == x.shape());
  for (index_t i = 0; i < x.numel(); ++i) {
    const double saved = x[i];
    x[i] = saved + eps;
    const double lp = objective(x);
    x[i] = saved - eps;
    const double lm = objective(x);
    x[i] = saved;
    const double num = (lp - lm) / (2 * eps);
    INFO("element " << i << ": analytic " << analytic[i] << " numeric " << num);
    CHECK(std::abs(analytic[i] - num) <= tol * std::max(1.0, std::abs(num)));
  }
}

inline Tensor<double> random_normal(const Shape& s, Rng& rng, double scale = 1) {
  Tensor<double> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = scale * rng.normal();
  return t;
}

// sum(probe * losses): the objective whose gradient backward(d, probe) gives for reduction none.
template <class Loss>
double probed_sum(const Loss& loss, const Tensor<double>& probe) {
  double s = 0;
  for (index_t i = 0; i < probe.numel(); ++i) s += probe[i] * loss.losses()[i];
  return s;
}

}  // namespace loss_testing
