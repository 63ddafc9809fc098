#pragma once
// check_gradients(layer, input_shape): the public gradient checker (double precision).
// For loss = sum(r * layer(x)) with a random probe r, it compares backward() against
// central differences at a random subset of inputs and of every parameter's entries,
// and checks the layer contract on the way:
//  - every output element is written (y is pre-filled with NaN),
//  - data gradients accumulate (dx is pre-filled with random values, subtracted after),
//  - parameter gradients are assigned and complete (pre-filled with NaN; a second
//    backward must give the same values, not twice them).
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "gcnet/core/layer.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::testing {

struct GradCheckOptions {
  std::uint64_t seed = 1;
  int input_probes = 40;        // input entries checked by finite differences
  int param_probes = 12;        // entries checked per parameter tensor
  double eps = 1e-6;            // central-difference step
  double tolerance = 1e-5;      // |analytic - numeric| <= tolerance * max(1, |numeric|)
  double input_scale = 1.0;     // x ~ N(0, input_scale^2)
  bool check_input_grad = true;
  std::function<void()> before_forward;  // e.g. re-seed a dropout mask
  const Tensor<double, Cpu>* input = nullptr;  // use this input instead of a random one
};

struct GradCheckResult {
  bool ok = true;
  double max_error = 0;  // worst |analytic - numeric| / max(1, |numeric|)
  int checked = 0;
  std::string report;
};

namespace detail {
inline void record(GradCheckResult& r, const GradCheckOptions& o, const std::string& what,
                   double analytic, double numeric) {
  const double err = std::abs(analytic - numeric) / std::max(1.0, std::abs(numeric));
  ++r.checked;
  if (!(err <= r.max_error)) r.max_error = std::isnan(err) ? INFINITY : std::max(r.max_error, err);
  if (!(err <= o.tolerance)) {
    r.ok = false;
    std::ostringstream os;
    os << what << ": analytic " << analytic << " vs numeric " << numeric << " (error " << err << ")\n";
    r.report += os.str();
  }
}
inline void fail_check(GradCheckResult& r, const std::string& msg) {
  r.ok = false;
  r.report += msg + "\n";
}
}  // namespace detail

template <Layer L>
  requires std::same_as<typename L::value_type, double> && std::same_as<typename L::backend_type, Cpu>
GradCheckResult check_gradients(L& layer, const Shape& input_shape, GradCheckOptions opt = {}) {
  using Tn = Tensor<double, Cpu>;
  GradCheckResult res;
  Rng rng(opt.seed, 0x67726164ull);  // "grad"
  const Shape out_shape = layer.setup(input_shape);

  Tn x(input_shape);
  if (opt.input) {
    require_shape(*opt.input, input_shape, "check_gradients", "given input");
    copy(*opt.input, x);
  } else {
    for (index_t i = 0; i < x.numel(); ++i) x[i] = opt.input_scale * rng.normal();
  }

  auto run_forward = [&](const Tn& in, Tn& out) {
    if (opt.before_forward) opt.before_forward();
    layer.forward(in, out);
  };

  // Forward with NaN-filled output: every element must be written.
  Tn y = full<double>(out_shape, std::numeric_limits<double>::quiet_NaN());
  run_forward(x, y);
  GCNET_CHECK(y.shape() == out_shape, layer.describe(), ": forward gave shape ", y.shape().str(),
              " but setup promised ", out_shape.str());
  for (index_t i = 0; i < y.numel(); ++i)
    if (!std::isfinite(y[i])) {
      detail::fail_check(res, "output element " + std::to_string(i) + " not written or not finite");
      return res;
    }

  Tn probe(out_shape);
  for (index_t i = 0; i < probe.numel(); ++i) probe[i] = rng.normal();
  auto loss_of = [&](const Tn& out) {
    double s = 0;
    for (index_t i = 0; i < out.numel(); ++i) s += probe[i] * out[i];
    return s;
  };

  // Backward: dx pre-filled with random values (accumulation), parameter grads with NaN.
  Tn dx_init(input_shape);
  for (index_t i = 0; i < dx_init.numel(); ++i) dx_init[i] = rng.normal();
  Tn dx = clone(dx_init);
  auto params = named_parameters(layer);
  for (auto& [name, p] : params) fill(p->grad, std::numeric_limits<double>::quiet_NaN());
  layer.backward(x, y, probe, dx);

  std::vector<Tn> pgrads;
  for (auto& [name, p] : params) {
    for (index_t i = 0; i < p->grad.numel(); ++i)
      if (!std::isfinite(p->grad[i])) {
        detail::fail_check(res, "gradient of parameter '" + name + "' entry " + std::to_string(i) +
                                    " not written or not finite");
        return res;
      }
    pgrads.push_back(clone(p->grad));
  }
  // A second backward must assign the same parameter gradients.
  {
    Tn dx2 = zeros<double>(input_shape);
    layer.backward(x, y, probe, dx2);
    for (std::size_t k = 0; k < params.size(); ++k)
      for (index_t i = 0; i < pgrads[k].numel(); ++i)
        if (std::abs(params[k].second->grad[i] - pgrads[k][i]) > 1e-12 * std::max(1.0, std::abs(pgrads[k][i]))) {
          detail::fail_check(res, "parameter '" + params[k].first +
                                      "': a second backward changed its gradient (accumulated instead of assigned?)");
          return res;
        }
  }

  Tn yp, ym;
  auto numeric = [&](double& v) {
    const double saved = v;
    v = saved + opt.eps;
    run_forward(x, yp);
    const double lp = loss_of(yp);
    v = saved - opt.eps;
    run_forward(x, ym);
    const double lm = loss_of(ym);
    v = saved;
    return (lp - lm) / (2 * opt.eps);
  };

  if (opt.check_input_grad) {
    const index_t n = x.numel();
    const int probes = static_cast<int>(std::min<index_t>(n, opt.input_probes));
    for (int k = 0; k < probes; ++k) {
      const index_t i = probes == n ? k : static_cast<index_t>(rng.below(static_cast<std::uint64_t>(n)));
      const double num = numeric(x[i]);
      detail::record(res, opt, "dx[" + std::to_string(i) + "]", dx[i] - dx_init[i], num);
    }
  }
  for (std::size_t k = 0; k < params.size(); ++k) {
    auto& p = *params[k].second;
    const index_t n = p.value.numel();
    const int probes = static_cast<int>(std::min<index_t>(n, opt.param_probes));
    for (int j = 0; j < probes; ++j) {
      const index_t i = probes == n ? j : static_cast<index_t>(rng.below(static_cast<std::uint64_t>(n)));
      const double num = numeric(p.value[i]);
      detail::record(res, opt, params[k].first + "[" + std::to_string(i) + "]", pgrads[k][i], num);
    }
  }
  return res;
}

}  // namespace gcnet::testing
