#pragma once
// Helpers for layer tests: reading layer options from a parity fixture's metadata
// (tools/fixtures/*.py writes pairs as "h,w", booleans as 0/1 and "none" for an option
// left at PyTorch's default), listing its cases, random tensors, and running code with a
// given number of threads.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "gcnet/core/rng.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/layers/size2.hpp"

namespace gcnet::test {

// Case names of a fixture: every C with a tensor "C.x", sorted.
inline std::vector<std::string> fixture_cases(const io::SafetensorsReader& f) {
  std::vector<std::string> out;
  for (const auto& n : f.names())
    if (n.size() > 2 && n.compare(n.size() - 2, 2, ".x") == 0) out.push_back(n.substr(0, n.size() - 2));
  return out;
}

inline bool meta_is_none(const io::SafetensorsReader& f, const std::string& key) { return f.meta(key) == "none"; }

inline bool meta_flag(const io::SafetensorsReader& f, const std::string& key) { return f.meta(key) == "1"; }

// "h,w" (or a single number for both).
inline Size2 meta_size2(const io::SafetensorsReader& f, const std::string& key) {
  const std::string v = f.meta(key);
  const auto comma = v.find(',');
  if (comma == std::string::npos) return Size2(std::stoll(v));
  return Size2(std::stoll(v.substr(0, comma)), std::stoll(v.substr(comma + 1)));
}
inline std::optional<Size2> meta_optional_size2(const io::SafetensorsReader& f, const std::string& key) {
  if (meta_is_none(f, key)) return std::nullopt;
  return meta_size2(f, key);
}
// A tensor of N(shift, scale^2) values from its own reproducible stream.
template <class T>
Tensor<T> random_tensor(const Shape& s, std::uint64_t seed, double scale = 1.0, double shift = 0.0) {
  Rng rng(seed);
  Tensor<T> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(shift + scale * rng.normal());
  return t;
}

// "a,b,c" -> {"a", "b", "c"}.
inline std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto comma = s.find(',', start);
    out.push_back(s.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// max |a - b| over two tensors of the same shape (+inf on a shape mismatch or NaN).
template <class T>
double max_abs_diff(const Tensor<T>& a, const Tensor<T>& b) {
  if (!(a.shape() == b.shape())) return INFINITY;
  double d = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    const double e = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (!(e <= d)) d = std::isnan(e) ? INFINITY : e;
  }
  return d;
}

// Runs f() with OpenMP limited to `threads` threads, restoring the previous limit.
template <class F>
void with_threads(int threads, F&& f) {
#if defined(_OPENMP)
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  f();
  omp_set_num_threads(saved);
#else
  (void)threads;
  f();
#endif
}

}  // namespace gcnet::test
