#pragma once
// check_gradients: the public gradient checker (double precision, CPU), for leaf layers and for
// modules with several inputs and outputs (core/module.hpp).
//   check_gradients(layer, input_shape [, options])     random input x ~ N(0, input_scale^2)
//   check_gradients(component, input [, options])       a given input (any field type)
// For loss L = sum over the differentiable outputs of sum(r * y), with a random probe r, it
// checks the contract on the way:
//  - every output element is written (outputs are filled with NaN, then forward runs again),
//  - data gradients accumulate (dx is pre-filled with random values, subtracted after; a second
//    backward from zero must give the same dx),
//  - parameter gradients are assigned and complete (pre-filled with NaN; a second backward
//    must give the same values, not twice them),
// and compares backward() with central differences:
//  - entries: `input_probes` random input entries and `param_probes` entries of every
//    parameter tensor;
//  - directions: for every parameter tensor and every differentiable input tensor, `directions`
//    random unit directions v, comparing sum(g * v) with (L(p + eps v) - L(p - eps v)) / 2 eps.
//    Every entry of the tensor takes part, so a gradient wrong anywhere fails.
// Errors are relative to the scale of the tensor's gradient (max |g| for entries, |g| for
// directions), plus the rounding noise of the differences, so a wrong gradient fails whatever
// its magnitude:   error = |analytic - numeric| / (scale + noise / tolerance),
// noise = 16 * 2^-52 * sum|r * y| / (2 eps) (what rounding leaves of L's differences).
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "gcnet/core/module.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::testing {

struct GradCheckOptions {
  std::uint64_t seed = 1;
  int input_probes = 40;        // input entries checked by finite differences
  int param_probes = 12;        // entries checked per parameter tensor
  int directions = 2;           // random directions per parameter tensor and input tensor
  double eps = 1e-6;            // central-difference step
  double tolerance = 1e-5;      // see the error above
  double input_scale = 1.0;     // layer overload: x ~ N(0, input_scale^2)
  bool check_input_grad = true;
  std::function<void()> before_forward;        // e.g. re-seed a dropout mask
  const Tensor<double, Cpu>* input = nullptr;  // layer overload: use this input instead of a random one
  std::optional<Context> context;              // default: the component's current mode, one process
};

struct GradCheckResult {
  bool ok = true;
  double max_error = 0;  // worst error as defined above
  int checked = 0;       // entries compared
  int directions = 0;    // random directions compared
  std::string report;
};

namespace detail {
using Td = Tensor<double, Cpu>;

inline void fail_check(GradCheckResult& r, const std::string& msg) {
  r.ok = false;
  r.report += msg + "\n";
}

// The differentiable double tensors of a field value, with their names.
template <class X>
std::vector<std::pair<std::string, Td*>> gradient_tensors(X& x) {
  std::vector<std::pair<std::string, Td*>> out;
  for_each_tensor(x, [&](const std::string& name, auto& t, bool diff) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(t)>, Td>) {
      if (diff && t.defined()) out.emplace_back(name.empty() ? "x" : name, const_cast<Td*>(&t));
    }
  });
  return out;
}

inline double max_abs(const Td& t) {
  double m = 0;
  for (index_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(t[i]));
  return m;
}
inline double norm2(const Td& t) {
  double s = 0;
  for (index_t i = 0; i < t.numel(); ++i) s += t[i] * t[i];
  return std::sqrt(s);
}

class Recorder {
 public:
  Recorder(GradCheckResult& r, double tolerance) : r_(r), tol_(tolerance) {}
  void set_noise(double noise) { noise_ = noise; }
  void record(const std::string& what, double analytic, double numeric, double scale, bool direction = false) {
    const double err = std::abs(analytic - numeric) / (scale + noise_ / tol_);
    ++(direction ? r_.directions : r_.checked);
    if (!(err <= r_.max_error)) r_.max_error = std::isnan(err) ? INFINITY : std::max(r_.max_error, err);
    if (!(err <= tol_)) {
      r_.ok = false;
      std::ostringstream os;
      os << what << ": analytic " << analytic << " vs numeric " << numeric << " (error " << err << ", scale " << scale
         << ")\n";
      r_.report += os.str();
    }
  }

 private:
  GradCheckResult& r_;
  double tol_, noise_ = 0;
};

template <Component C>
Context default_context(C& c) {
  Context ctx;
  if constexpr (Module<C>) ctx.training = c.training();
  return ctx;
}
}  // namespace detail

// Any component: a leaf layer (input a Tensor) or a module (input its input_type), in double on the CPU.
template <Component C>
  requires std::same_as<typename C::value_type, double> && std::same_as<typename C::backend_type, Cpu>
GradCheckResult check_gradients(C& c, const input_of<C>& input, GradCheckOptions opt = {}) {
  using detail::Td;
  using X = input_of<C>;
  using Y = output_of<C>;
  GradCheckResult res;
  detail::Recorder rec(res, opt.tolerance);
  Rng rng(opt.seed, 0x67726164ull);  // "grad"
  const Context ctx = opt.context ? *opt.context : detail::default_context(c);
  X x = clone_fields(input);
  auto run_forward = [&](const X& in, Y& out) {
    if (opt.before_forward) opt.before_forward();
    gcnet::forward(c, ctx, in, out);
  };

  // Forward, then again into NaN-filled outputs: every element must be written.
  Y y;
  run_forward(x, y);
  for_each_tensor(y, [](const std::string&, auto& t, bool) {
    using E = typename std::remove_cvref_t<decltype(t)>::value_type;
    if constexpr (Scalar<E>)
      if (t.defined()) fill(t, std::numeric_limits<E>::quiet_NaN());
  });
  run_forward(x, y);
  std::string unwritten;
  for_each_tensor(y, [&](const std::string& name, auto& t, bool) {
    using E = typename std::remove_cvref_t<decltype(t)>::value_type;
    if constexpr (Scalar<E>)
      for (index_t i = 0; unwritten.empty() && t.defined() && i < t.numel(); ++i)
        if (!std::isfinite(t[i]))
          unwritten = "output " + (name.empty() ? std::string() : "'" + name + "' ") + "element " + std::to_string(i);
  });
  if (!unwritten.empty()) {
    detail::fail_check(res, unwritten + " not written or not finite");
    return res;
  }

  // The probe r (the output gradient) and the loss L = sum(r * y).
  Y probe = clone_fields(y);
  for_each_tensor(probe, [&](const std::string&, auto& t, bool diff) {
    using Tn = std::remove_cvref_t<decltype(t)>;
    if constexpr (std::is_same_v<Tn, Td>) {
      if (diff && t.defined()) {
        for (index_t i = 0; i < t.numel(); ++i) t[i] = rng.normal();
        return;
      }
    }
    t = Tn();  // no gradient arrives at integer or non-differentiable outputs
  });
  auto loss_of = [&](const Y& out, double* magnitude = nullptr) {
    double s = 0, m = 0;
    for_each_tensor_pair(out, probe, [&](const std::string&, const auto& o, const auto& r, bool) {
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(r)>, Td>) {
        if (!r.defined()) return;
        for (index_t i = 0; i < r.numel(); ++i) {
          s += r[i] * o[i];
          m += std::abs(r[i] * o[i]);
        }
      }
    });
    if (magnitude) *magnitude = m;
    return s;
  };
  double magnitude = 0;
  loss_of(y, &magnitude);
  rec.set_noise(16 * 0x1p-52 * magnitude / (2 * opt.eps));

  // Backward: dx pre-filled with random values (accumulation), parameter gradients with NaN.
  X dx_init;
  zero_grad_like(x, dx_init);
  for (auto& [name, t] : detail::gradient_tensors(dx_init))
    for (index_t i = 0; i < t->numel(); ++i) (*t)[i] = rng.normal();
  X dx = clone_fields(dx_init);
  auto params = named_parameters(c);
  for (auto& [name, p] : params) fill(p->grad, std::numeric_limits<double>::quiet_NaN());
  gcnet::backward(c, ctx, x, y, probe, dx);

  std::vector<Td> pgrads;
  for (auto& [name, p] : params) {
    for (index_t i = 0; i < p->grad.numel(); ++i)
      if (!std::isfinite(p->grad[i])) {
        detail::fail_check(res, "gradient of parameter '" + name + "' entry " + std::to_string(i) +
                                    " not written or not finite");
        return res;
      }
    pgrads.push_back(clone(p->grad));
  }
  // The analytic input gradients, dx - dx_init.
  auto dxs = detail::gradient_tensors(dx);
  auto dx0 = detail::gradient_tensors(dx_init);
  std::vector<Td> igrads;
  for (std::size_t k = 0; k < dxs.size(); ++k) {
    Td g = clone(*dxs[k].second);
    for (index_t i = 0; i < g.numel(); ++i) g[i] -= (*dx0[k].second)[i];
    igrads.push_back(std::move(g));
  }
  // A second backward, from dx = 0: the same parameter gradients (assigned, not accumulated)
  // and the same input gradients (so the first one added to dx rather than overwrote it).
  {
    X dx2;
    zero_grad_like(x, dx2);
    gcnet::backward(c, ctx, x, y, probe, dx2);
    for (std::size_t k = 0; k < params.size(); ++k)
      for (index_t i = 0; i < pgrads[k].numel(); ++i)
        if (std::abs(params[k].second->grad[i] - pgrads[k][i]) > 1e-12 * std::max(1.0, std::abs(pgrads[k][i]))) {
          detail::fail_check(res, "parameter '" + params[k].first +
                                      "': a second backward changed its gradient (accumulated instead of assigned?)");
          return res;
        }
    auto d2 = detail::gradient_tensors(dx2);
    for (std::size_t k = 0; k < d2.size() && opt.check_input_grad; ++k) {
      const double scale = detail::max_abs(igrads[k]);
      for (index_t i = 0; i < igrads[k].numel(); ++i)
        if (!(std::abs((*d2[k].second)[i] - igrads[k][i]) <= 1e-9 * std::max(scale, 1e-300))) {
          detail::fail_check(res, "input gradient '" + d2[k].first + "' entry " + std::to_string(i) +
                                      ": a backward into dx = 0 gave " + std::to_string((*d2[k].second)[i]) +
                                      ", one into a pre-filled dx added " + std::to_string(igrads[k][i]) +
                                      " (dx assigned instead of accumulated?)");
          return res;
        }
    }
  }

  Y yp, ym;
  auto numeric_along = [&](Td& t, const Td* dir, index_t entry) {
    const Td saved = clone(t);
    auto shift = [&](double s) {
      if (dir) {
        for (index_t i = 0; i < t.numel(); ++i) t[i] = saved[i] + s * (*dir)[i];
      } else {
        t[entry] = saved[entry] + s;
      }
    };
    shift(opt.eps);
    run_forward(x, yp);
    const double lp = loss_of(yp);
    shift(-opt.eps);
    run_forward(x, ym);
    const double lm = loss_of(ym);
    copy(saved, t);
    return (lp - lm) / (2 * opt.eps);
  };
  auto random_direction = [&](const Shape& s) {
    Td v(s);
    for (index_t i = 0; i < v.numel(); ++i) v[i] = rng.normal();
    const double n = detail::norm2(v);
    for (index_t i = 0; i < v.numel(); ++i) v[i] /= n;
    return v;
  };
  auto dot = [](const Td& a, const Td& b) {
    double s = 0;
    for (index_t i = 0; i < a.numel(); ++i) s += a[i] * b[i];
    return s;
  };
  // Entry probes and directions of one tensor t whose analytic gradient is g.
  auto check_tensor = [&](const std::string& name, Td& t, const Td& g, int probes) {
    const index_t n = t.numel();
    const double scale = detail::max_abs(g);
    const int count = static_cast<int>(std::min<index_t>(n, probes));
    for (int k = 0; k < count; ++k) {
      const index_t i = count == n ? k : static_cast<index_t>(rng.below(static_cast<std::uint64_t>(n)));
      rec.record(name + "[" + std::to_string(i) + "]", g[i], numeric_along(t, nullptr, i), scale);
    }
    for (int d = 0; d < opt.directions && n > 1; ++d) {
      const Td v = random_direction(t.shape());
      rec.record(name + " along random direction " + std::to_string(d), dot(g, v), numeric_along(t, &v, 0),
                 detail::norm2(g), true);
    }
  };

  if (opt.check_input_grad) {
    auto xs = detail::gradient_tensors(x);
    index_t total = 0;
    for (auto& [name, t] : xs) total += t->numel();
    // Input entries spread over the input tensors in proportion to their sizes.
    for (std::size_t k = 0; k < xs.size(); ++k) {
      const int share = total > 0 ? static_cast<int>(std::ceil(double(opt.input_probes) * double(xs[k].second->numel()) /
                                                              double(total)))
                                  : 0;
      const std::string name = xs[k].first == "x" ? "dx" : "d" + xs[k].first;
      check_tensor(name, *xs[k].second, igrads[k], share);
    }
  }
  for (std::size_t k = 0; k < params.size(); ++k)
    check_tensor(params[k].first, params[k].second->value, pgrads[k], opt.param_probes);
  return res;
}

// A leaf layer on a random input of `input_shape` (or opt.input).
template <Layer L>
  requires std::same_as<typename L::value_type, double> && std::same_as<typename L::backend_type, Cpu>
GradCheckResult check_gradients(L& layer, const Shape& input_shape, GradCheckOptions opt = {}) {
  Rng rng(opt.seed, 0x696e7075ull);  // "inpu"
  const Shape out_shape = layer.setup(input_shape);
  Tensor<double, Cpu> x(input_shape);
  if (opt.input) {
    require_shape(*opt.input, input_shape, "check_gradients", "given input");
    copy(*opt.input, x);
  } else {
    for (index_t i = 0; i < x.numel(); ++i) x[i] = opt.input_scale * rng.normal();
  }
  Tensor<double, Cpu> y;
  layer.forward(x, y);
  GCNET_CHECK(y.shape() == out_shape, layer.describe(), ": forward gave shape ", y.shape().str(),
              " but setup promised ", out_shape.str());
  return check_gradients(layer, x, std::move(opt));
}

}  // namespace gcnet::testing
