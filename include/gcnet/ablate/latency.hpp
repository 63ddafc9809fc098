#pragma once
// Forward and forward+backward latency, measured the same way for every variant: `warmup`
// untimed calls of each, then `repeats` rounds in which every variant is timed once, in turn
// (interleaved, as scripts/bench does, so that a change in the machine's load hits all variants
// alike instead of whichever ran during it), and the median per variant (robust to the
// occasional slow call on a shared machine). fwd: eval-mode forward (inference); fwd+bwd:
// training-mode forward and backward with an all-ones output gradient, no optimizer step. A
// layer is left in training mode; its BatchNorm running statistics change (measure a copy that
// is not evaluated afterwards).
#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "gcnet/core/layer.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::ablate {

struct Latency {
  double fwd_ms = 0, fwd_bwd_ms = 0;
};

inline double median(std::vector<double> v) {
  GCNET_CHECK(!v.empty(), "median: no values");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// What to time for one variant.
struct LatencyProbe {
  std::function<void()> fwd, fwd_bwd;
};

inline std::vector<Latency> measure_latencies(const std::vector<LatencyProbe>& probes, int warmup, int repeats) {
  GCNET_CHECK(warmup >= 0 && repeats >= 1, "measure_latencies: warmup must be >= 0 and repeats >= 1, got ", warmup,
              " and ", repeats);
  using Clock = std::chrono::steady_clock;
  auto ms = [](auto&& f) {
    const auto t0 = Clock::now();
    f();
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  const std::size_t n = probes.size();
  std::vector<std::vector<double>> fwd(n), both(n);
  for (int i = 0; i < warmup; ++i)
    for (const auto& p : probes) {
      p.fwd();
      p.fwd_bwd();
    }
  for (int r = 0; r < repeats; ++r) {
    for (std::size_t k = 0; k < n; ++k) fwd[k].push_back(ms(probes[k].fwd));
    for (std::size_t k = 0; k < n; ++k) both[k].push_back(ms(probes[k].fwd_bwd));
  }
  std::vector<Latency> out(n);
  for (std::size_t k = 0; k < n; ++k) out[k] = {median(fwd[k]), median(both[k])};
  return out;
}

// The probe of a layer on input x (y, dy, dx kept in `scratch`, which must outlive the probe).
template <class Net>
LatencyProbe layer_probe(Net& net, const Tensor<float, Cpu>& x, std::vector<Tensor<float, Cpu>>& scratch) {
  scratch.resize(3);
  Tensor<float, Cpu>* y = &scratch[0];
  Tensor<float, Cpu>* dy = &scratch[1];
  Tensor<float, Cpu>* dx = &scratch[2];  // stays undefined: no input gradient
  return {[&net, &x, y] {
            set_training(net, false);
            net.forward(x, *y);
          },
          [&net, &x, y, dy, dx] {
            set_training(net, true);
            net.forward(x, *y);
            dy->resize(y->shape());
            fill(*dy, 1.0f);
            net.backward(x, *y, *dy, *dx);
          }};
}

// One layer alone (not interleaved).
template <class Net>
Latency measure_latency(Net& net, const Tensor<float, Cpu>& x, int warmup, int repeats) {
  GCNET_CHECK(warmup >= 0 && repeats >= 1, "measure_latency: warmup must be >= 0 and repeats >= 1, got ", warmup,
              " and ", repeats);
  using Clock = std::chrono::steady_clock;
  Tensor<float, Cpu> y, dy, dx;
  auto time = [&](auto&& f) {
    std::vector<double> ms;
    for (int i = 0; i < warmup + repeats; ++i) {
      const auto t0 = Clock::now();
      f();
      const double el = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (i >= warmup) ms.push_back(el);
    }
    return median(ms);
  };
  Latency l;
  set_training(net, false);
  l.fwd_ms = time([&] { net.forward(x, y); });
  set_training(net, true);
  l.fwd_bwd_ms = time([&] {
    net.forward(x, y);
    dy.resize(y.shape());
    fill(dy, 1.0f);
    net.backward(x, y, dy, dx);  // dx undefined: no input gradient
  });
  return l;
}

}  // namespace gcnet::ablate
