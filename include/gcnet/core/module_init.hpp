#pragma once
// mmcv's module initializers (mmcv.cnn.utils.weight_init: kaiming_init, normal_init,
// constant_init, xavier_init, uniform_init) for any layer exposing `Param& weight()` and
// `Param* bias()` (nullptr when it has none), e.g. Conv2d, ConvTranspose2d, Linear.
// Defaults are mmcv's.
#include "gcnet/core/init.hpp"
#include "gcnet/core/param.hpp"

namespace gcnet::init {

template <class L>
concept HasWeight = requires(L& l) {
  l.weight().value;
  l.bias();
};

namespace detail {
// Runs `fill` on a host copy of the parameter and stores it back on its backend.
template <class T, class B, class F>
void reinit(Param<T, B>& p, F&& fill) {
  Tensor<T, Cpu> host(p.value.shape());
  fill(host);
  p.value = to_backend<B>(host);
}
template <HasWeight L>
void set_bias(L& l, double bias) {
  if (auto* b = l.bias()) reinit(*b, [&](auto& t) { constant(t, bias); });
}
}  // namespace detail

// mmcv kaiming_init(module, a=0, mode='fan_out', nonlinearity='relu', bias=0, distribution='normal').
template <HasWeight L>
void kaiming_init(L& l, double a = 0, FanMode mode = FanMode::FanOut, const std::string& nonlinearity = "relu",
                  double bias = 0, Distribution dist = Distribution::Normal, Rng& rng = global_rng()) {
  detail::reinit(l.weight(), [&](auto& t) { kaiming(t, a, mode, nonlinearity, dist, rng); });
  detail::set_bias(l, bias);
}

// mmcv normal_init(module, mean=0, std=1, bias=0).
template <HasWeight L>
void normal_init(L& l, double mean = 0, double std = 1, double bias = 0, Rng& rng = global_rng()) {
  detail::reinit(l.weight(), [&](auto& t) { normal(t, mean, std, rng); });
  detail::set_bias(l, bias);
}

// mmcv constant_init(module, val, bias=0).
template <HasWeight L>
void constant_init(L& l, double val, double bias = 0) {
  detail::reinit(l.weight(), [&](auto& t) { constant(t, val); });
  detail::set_bias(l, bias);
}

// mmcv xavier_init(module, gain=1, bias=0, distribution='normal').
template <HasWeight L>
void xavier_init(L& l, double g = 1, double bias = 0, Distribution dist = Distribution::Normal,
                 Rng& rng = global_rng()) {
  detail::reinit(l.weight(), [&](auto& t) { xavier(t, g, dist, rng); });
  detail::set_bias(l, bias);
}

// mmcv uniform_init(module, a=0, b=1, bias=0).
template <HasWeight L>
void uniform_init(L& l, double a = 0, double b = 1, double bias = 0, Rng& rng = global_rng()) {
  detail::reinit(l.weight(), [&](auto& t) { uniform(t, a, b, rng); });
  detail::set_bias(l, bias);
}

}  // namespace gcnet::init
