#pragma once
// Parameter initializers matching PyTorch's defaults and mmcv's weight_init helpers.
// They fill host tensors from an Rng (the global one by default) and are used by layer
// constructors before the tensor moves to its backend.
#include <cmath>
#include <string>

#include "gcnet/core/error.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/core/tensor.hpp"

namespace gcnet::init {

enum class FanMode { FanIn, FanOut };
enum class Distribution { Normal, Uniform };

// fan_in / fan_out as torch.nn.init._calculate_fan_in_and_fan_out: dims [out, in, *receptive].
inline index_t fan(const Shape& s, FanMode mode) {
  GCNET_CHECK(s.rank() >= 2, "init: fan needs a tensor of rank >= 2, got shape ", s.str());
  index_t receptive = 1;
  for (int d = 2; d < s.rank(); ++d) receptive *= s[d];
  return (mode == FanMode::FanIn ? s[1] : s[0]) * receptive;
}

// torch.nn.init.calculate_gain
inline double gain(const std::string& nonlinearity, double param = 0.01) {
  if (nonlinearity == "linear" || nonlinearity == "conv2d" || nonlinearity == "sigmoid" ||
      nonlinearity == "conv_transpose2d")
    return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  detail::fail("init::gain: unknown nonlinearity '", nonlinearity, "'");
}

template <class T>
void constant(Tensor<T, Cpu>& t, double value) {
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(value);
}
template <class T>
void uniform(Tensor<T, Cpu>& t, double lo, double hi, Rng& rng = global_rng()) {
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(rng.uniform(lo, hi));
}
template <class T>
void normal(Tensor<T, Cpu>& t, double mean, double std, Rng& rng = global_rng()) {
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(rng.normal(mean, std));
}

// torch.nn.init.kaiming_uniform_ / kaiming_normal_.
template <class T>
void kaiming(Tensor<T, Cpu>& t, double a, FanMode mode, const std::string& nonlinearity,
             Distribution dist, Rng& rng = global_rng()) {
  const double std = gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan(t.shape(), mode)));
  if (dist == Distribution::Normal) normal(t, 0.0, std, rng);
  else uniform(t, -std * std::sqrt(3.0), std * std::sqrt(3.0), rng);
}

// torch.nn.init.xavier_uniform_ / xavier_normal_.
template <class T>
void xavier(Tensor<T, Cpu>& t, double g, Distribution dist, Rng& rng = global_rng()) {
  const double fi = static_cast<double>(fan(t.shape(), FanMode::FanIn));
  const double fo = static_cast<double>(fan(t.shape(), FanMode::FanOut));
  const double std = g * std::sqrt(2.0 / (fi + fo));
  if (dist == Distribution::Normal) normal(t, 0.0, std, rng);
  else uniform(t, -std * std::sqrt(3.0), std * std::sqrt(3.0), rng);
}

// PyTorch's default for Conv*d / Linear: weight kaiming_uniform_(a=sqrt(5)), i.e.
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
template <class T>
void torch_default_weight(Tensor<T, Cpu>& w, Rng& rng = global_rng()) {
  kaiming(w, std::sqrt(5.0), FanMode::FanIn, "leaky_relu", Distribution::Uniform, rng);
}
template <class T>
void torch_default_bias(Tensor<T, Cpu>& b, index_t fan_in, Rng& rng = global_rng()) {
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  uniform(b, -bound, bound, rng);
}

}  // namespace gcnet::init
