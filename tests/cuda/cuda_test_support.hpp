#pragma once
// Helpers shared by the CUDA tests: the visible skip without a device, random tensors and
// error norms.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gcnet/cuda.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::test {

// True when a CUDA device is usable. Otherwise prints the line that tests/cuda/CMakeLists.txt
// tells ctest to count as "skipped" and returns false; with GCNET_CUDA_REQUIRE_DEVICE=1 in
// the environment (a GPU machine's CI) a missing device fails the test instead.
inline bool cuda_device_or_skip() {
  if (cuda::available()) return true;
  const char* required = std::getenv("GCNET_CUDA_REQUIRE_DEVICE");
  if (required && *required && std::string(required) != "0")
    FAIL("no CUDA device (" << cuda::unavailable_reason() << ") but GCNET_CUDA_REQUIRE_DEVICE is set");
  std::printf("SKIPPED: no CUDA device (%s)\n", cuda::unavailable_reason().c_str());
  std::fflush(stdout);
  return false;
}

// Values ~ N(0, 1) from a fixed seed: never all zeros, reproducible.
template <class T>
Tensor<T, Cpu> random_tensor(const Shape& s, std::uint64_t seed) {
  Rng rng(seed, 0x63756461ull);  // "cuda"
  Tensor<T, Cpu> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(rng.normal());
  return t;
}

// ||a - b|| / ||b|| over all elements (contiguous host tensors of one shape).
template <class T>
double relative_error(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b) {
  REQUIRE(a.shape() == b.shape());
  double diff = 0, norm = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    diff += d * d;
    norm += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-300);
}

// Largest |a - b| (NaN anywhere gives NaN, which fails every <= check).
template <class T>
double max_abs_diff(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (std::isnan(d)) return d;
    m = std::max(m, d);
  }
  return m;
}

}  // namespace gcnet::test

// First statement of a test that needs a GPU.
#define GCNET_REQUIRE_CUDA_DEVICE() \
  if (!::gcnet::test::cuda_device_or_skip()) return
