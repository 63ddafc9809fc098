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

#include "gcnet/core/layer.hpp"
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
template <Layer L>
void load_case_state(L& layer, const io::SafetensorsReader& f, const std::string& c) {
  using T = typename L::value_type;
  using B = typename L::backend_type;
  visit_parameters(layer, "", [&](const std::string& name, Param<T, B>& p) {
    auto host = f.template tensor<T>(c + ".param." + name);
    GCNET_CHECK(host.shape() == p.value.shape(), f.path(), ": parameter '", name, "' has shape ",
                host.shape().str(), ", layer expects ", p.value.shape().str());
    p.value = to_backend<B>(host);
  });
  visit_buffers(layer, "", [&](const std::string& name, Tensor<T, B>& b) {
    if (!f.contains(c + ".buffer." + name)) return;
    auto host = f.template tensor<T>(c + ".buffer." + name);
    GCNET_CHECK(host.shape() == b.shape(), f.path(), ": buffer '", name, "' has shape ",
                host.shape().str(), ", layer expects ", b.shape().str());
    b = to_backend<B>(host);
  });
}

// Runs forward and backward of `layer` on case `c` and compares everything the fixture
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

}  // namespace gcnet::testing
