#pragma once
// Parity against reference fixtures (safetensors files written by tools/fixtures/*.py
// with PyTorch in float64). A case named C holds:
//   C.x, C.y, C.dy, C.dx             input, expected output, output gradient, expected dx
//   C.param.<name> / C.grad.<name>   parameter values (state-dict names) / expected grads
//   C.buffer.<name>                  buffers loaded before forward (optional)
//   C.buffer_out.<name>              expected buffers after forward (optional)
// and metadata "C.<key>" describing the layer's options (read by the test).
// Errors are normwise relative: max|a - e| / max(max|e|, 1e-12), per tensor.
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "gcnet/core/module.hpp"
#include "gcnet/core/transfer.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::testing {

// max|a - e| / max|e|; NaN anywhere (an unwritten element) gives +inf.
template <class T>
double relative_error(const Tensor<T, Cpu>& actual, const Tensor<double, Cpu>& expected) {
  GCNET_CHECK(actual.shape() == expected.shape(), "relative_error: shape ", actual.shape().str(),
              " vs expected ", expected.shape().str());
  double diff = 0, scale = 1e-12;
  for (index_t i = 0; i < expected.numel(); ++i) {
    const double a = static_cast<double>(actual[i]);
    if (!std::isfinite(a)) return INFINITY;
    diff = std::max(diff, std::abs(a - expected[i]));
    scale = std::max(scale, std::abs(expected[i]));
  }
  return diff / scale;
}

struct ParityResult {
  bool ok = true;
  double max_error = 0;
  std::string report;  // one line per compared tensor
  void add(const std::string& what, double err, double tol) {
    max_error = std::max(max_error, err);
    const bool good = err <= tol;
    ok = ok && good;
    std::ostringstream os;
    os << (good ? "  ok   " : "  FAIL ") << what << ": relative error " << err << "\n";
    report += os.str();
  }
};

template <class T, class B>
Tensor<T, Cpu> to_host(const Tensor<T, B>& t) {
  return to_backend<Cpu>(t);
}

// Loads C.param.* and C.buffer.* into the layer by state-dict name; every parameter
// of the layer must be in the fixture.
template <HasNumerics L>
void load_case_state(L& layer, const io::SafetensorsReader& f, const std::string& c) {
  using T = typename L::value_type;
  using B = typename L::backend_type;
  visit_parameters(layer, "", [&](const std::string& name, Param<T, B>& p) {
    auto host = f.template tensor<T>(c + ".param." + name);
    GCNET_CHECK(host.shape() == p.value.shape(), f.path(), ": parameter '", name, "' has shape ",
                host.shape().str(), ", layer expects ", p.value.shape().str());
    p.load(host, f.path());  // in place: shared parameters stay shared
  });
  visit_buffers(layer, "", [&](const std::string& name, Tensor<T, B>& b) {
    if (!f.contains(c + ".buffer." + name)) return;
    auto host = f.template tensor<T>(c + ".buffer." + name);
    GCNET_CHECK(host.shape() == b.shape(), f.path(), ": buffer '", name, "' has shape ",
                host.shape().str(), ", layer expects ", b.shape().str());
    copy(to_backend<B>(host), b);  // in place
  });
}

// Runs forward and backward of `layer` (a leaf layer) on case `c` and compares everything the fixture
// holds. The layer's options must already match the case; its mode is set from
// metadata "C.training" when present.
template <Layer L>
ParityResult run_parity(L& layer, const io::SafetensorsReader& f, const std::string& c,
                        double tolerance = 1e-4) {
  using T = typename L::value_type;
  using B = typename L::backend_type;
  using Tn = Tensor<T, B>;
  ParityResult r;
  if (f.metadata().count(c + ".training")) set_training(layer, f.meta(c + ".training") == "1");
  load_case_state(layer, f, c);

  const Tn x = to_backend<B>(f.template tensor<T>(c + ".x"));
  const auto y_ref = f.template tensor<double>(c + ".y");
  Tn y = to_backend<B>(full<T>(y_ref.shape(), std::numeric_limits<T>::quiet_NaN()));
  layer.forward(x, y);
  r.add(c + ".y", relative_error(to_host(y), y_ref), tolerance);

  visit_buffers(layer, "", [&](const std::string& name, Tn& b) {
    if (f.contains(c + ".buffer_out." + name))
      r.add(c + ".buffer_out." + name, relative_error(to_host(b), f.template tensor<double>(c + ".buffer_out." + name)), tolerance);
  });

  if (!f.contains(c + ".dy")) return r;
  const Tn dy = to_backend<B>(f.template tensor<T>(c + ".dy"));
  Tn dx = to_backend<B>(zeros<T>(x.shape()));
  visit_parameters(layer, "", [&](const std::string&, Param<T, B>& p) {
    p.grad = to_backend<B>(full<T>(p.value.shape(), std::numeric_limits<T>::quiet_NaN()));
  });
  layer.backward(x, y, dy, dx);
  if (f.contains(c + ".dx")) r.add(c + ".dx", relative_error(to_host(dx), f.template tensor<double>(c + ".dx")), tolerance);
  visit_parameters(layer, "", [&](const std::string& name, Param<T, B>& p) {
    const std::string key = c + ".grad." + name;
    GCNET_CHECK(f.contains(key), f.path(), ": no expected gradient '", key, "'");
    r.add(key, relative_error(to_host(p.grad), f.template tensor<double>(key)), tolerance);
  });
  return r;
}

// Modules (and layers) with several inputs and outputs. The fixture names each tensor by its
// field name (core/fields.hpp):  C.x.<field>, C.y.<field>, C.dy.<field>, C.dx.<field>
// (C.x / C.y / ... for a single tensor), plus C.param.* / C.grad.* / C.buffer.* as above.
// `layout` gives the input's structure (e.g. a vector's size); every tensor of it named in the
// fixture is loaded. Outputs without a C.y entry, or gradients without a C.dy entry, are not
// compared / not fed.
template <Component M>
ParityResult run_module_parity(M& m, const io::SafetensorsReader& f, const std::string& c, double tolerance = 1e-4,
                               input_of<M> layout = {}) {
  using T = typename M::value_type;
  using B = typename M::backend_type;
  using Tn = Tensor<T, B>;
  auto key = [&](const char* what, const std::string& field) {
    return c + "." + what + (field.empty() ? "" : "." + field);
  };
  ParityResult r;
  Context ctx;
  if constexpr (Module<M>) ctx.training = m.training();
  if (f.metadata().count(c + ".training")) {
    ctx.training = f.meta(c + ".training") == "1";
    set_training(m, ctx.training);
  }
  load_case_state(m, f, c);

  input_of<M> x = std::move(layout);
  for_each_tensor(x, [&](const std::string& name, auto& t, bool) {
    using E = typename std::remove_cvref_t<decltype(t)>::value_type;
    if (f.contains(key("x", name))) t = to_backend<B>(f.template tensor<E>(key("x", name)));
  });
  output_of<M> y;
  gcnet::forward(m, ctx, x, y);
  int compared = 0;
  for_each_tensor(y, [&](const std::string& name, auto& t, bool) {
    using E = typename std::remove_cvref_t<decltype(t)>::value_type;
    if (!f.contains(key("y", name))) return;
    ++compared;
    if constexpr (Scalar<E>) {
      r.add(key("y", name), relative_error(to_host(t), f.template tensor<double>(key("y", name))), tolerance);
    } else {
      const auto e = f.template tensor<E>(key("y", name));
      const auto a = to_host(t);
      bool same = a.shape() == e.shape();
      for (index_t i = 0; same && i < e.numel(); ++i) same = a[i] == e[i];
      r.add(key("y", name) + " (exact)", same ? 0.0 : INFINITY, tolerance);
    }
  });
  GCNET_CHECK(compared > 0, f.path(), ": case '", c, "' has no expected output (", key("y", ""), "*)");
  visit_buffers(m, "", [&](const std::string& name, Tn& b) {
    if (f.contains(c + ".buffer_out." + name))
      r.add(c + ".buffer_out." + name, relative_error(to_host(b), f.template tensor<double>(c + ".buffer_out." + name)),
            tolerance);
  });

  bool any_dy = false;
  output_of<M> dy = y;
  for_each_tensor(dy, [&](const std::string& name, auto& t, bool diff) {
    using Tt = std::remove_cvref_t<decltype(t)>;
    using E = typename Tt::value_type;
    if constexpr (Scalar<E>) {
      if (diff && f.contains(key("dy", name))) {
        t = to_backend<B>(f.template tensor<E>(key("dy", name)));
        any_dy = true;
        return;
      }
    }
    t = Tt();
  });
  if (!any_dy) return r;
  input_of<M> dx;
  zero_grad_like(x, dx);
  visit_parameters(m, "", [&](const std::string&, Param<T, B>& p) { fill(p.grad, std::numeric_limits<T>::quiet_NaN()); });
  gcnet::backward(m, ctx, x, y, dy, dx);
  for_each_tensor(dx, [&](const std::string& name, auto& t, bool) {
    using E = typename std::remove_cvref_t<decltype(t)>::value_type;
    if constexpr (Scalar<E>)
      if (t.defined() && f.contains(key("dx", name)))
        r.add(key("dx", name), relative_error(to_host(t), f.template tensor<double>(key("dx", name))), tolerance);
  });
  visit_parameters(m, "", [&](const std::string& name, Param<T, B>& p) {
    const std::string k = c + ".grad." + name;
    GCNET_CHECK(f.contains(k), f.path(), ": no expected gradient '", k, "'");
    r.add(k, relative_error(to_host(p.grad), f.template tensor<double>(k)), tolerance);
  });
  return r;
}

}  // namespace gcnet::testing
