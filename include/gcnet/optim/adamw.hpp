#pragma once
// AdamW exactly as torch.optim.AdamW (amsgrad off, maximize off), per parameter at step t
// (t = 1 on a parameter's first update):
//   p   *= 1 - lr * weight_decay                       (decoupled weight decay)
//   m    = beta1 * m + (1 - beta1) * grad
//   v    = beta2 * v + (1 - beta2) * grad^2
//   p   -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// mmseg / mmdet configs use it as optim_wrapper=dict(optimizer=dict(type='AdamW', lr=...,
// betas=(0.9, 0.999), weight_decay=0.01)).
//
// Groups, base and current lrs and schedules are OptimizerGroups' (optimizer_groups.hpp), as Sgd's.
// Checkpoints: state() names "<param name>.exp_avg", "<param name>.exp_avg_sq" and
// "<param name>.step" (a one-element tensor, as torch keeps `step` per parameter).
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/core/param.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/core/transfer.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/optim/optimizer_groups.hpp"

namespace gcnet {

// AdamW's options per group (AdamW<T, B>::Options).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

template <Scalar T = float, Backend B = Cpu>
class AdamW : public OptimizerGroups<T, B, AdamWOptions> {
  using Base = OptimizerGroups<T, B, AdamWOptions>;
  using Base::flat_;

 public:
  using Options = AdamWOptions;
  using typename Base::Group;
  using typename Base::NamedParams;

  AdamW(NamedParams params, Options o) : AdamW(std::vector<Group>{Group{std::move(params), o}}) {}

  explicit AdamW(std::vector<Group> groups) : Base(std::move(groups), "AdamW") {
    for (std::size_t gi = 0; gi < this->groups_.size(); ++gi) {
      const Options& o = this->groups_[gi].options;
      GCNET_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "AdamW: betas must be in [0, 1), got (",
                  o.beta1, ", ", o.beta2, ") in group ", gi);
      GCNET_CHECK(o.eps >= 0, "AdamW: invalid eps ", o.eps, " in group ", gi);
      GCNET_CHECK(o.weight_decay >= 0, "AdamW: invalid weight_decay ", o.weight_decay, " in group ", gi);
    }
    exp_avg_.resize(flat_.size());
    exp_avg_sq_.resize(flat_.size());
    steps_.resize(flat_.size());
  }

  void step() {
    for (std::size_t i = 0; i < flat_.size(); ++i) {
      Param<T, B>& prm = *flat_[i].second;
      if (!prm.grad.defined()) continue;  // as torch: no gradient, no update
      GCNET_CHECK(prm.grad.shape() == prm.value.shape(), "AdamW: gradient of '", flat_[i].first, "' has shape ",
                  prm.grad.shape().str(), ", parameter has ", prm.value.shape().str());
      const Options& o = this->options_of(i);
      if (!exp_avg_[i].defined()) {
        exp_avg_[i] = zeros<T, B>(prm.value.shape());
        exp_avg_sq_[i] = zeros<T, B>(prm.value.shape());
      }
      const double t = static_cast<double>(++steps_[i]);
      const double lr = this->current_lr_of(i);
      // torch's _single_tensor_adamw: step_size = lr / bc1, denom = sqrt(v) / sqrt(bc2) + eps.
      const T decay = static_cast<T>(1 - lr * o.weight_decay), b1 = static_cast<T>(o.beta1),
              b2 = static_cast<T>(o.beta2), step_size = static_cast<T>(lr / (1 - std::pow(o.beta1, t))),
              inv_sqrt_bc2 = static_cast<T>(1 / std::sqrt(1 - std::pow(o.beta2, t))), eps = static_cast<T>(o.eps);
      T* p = prm.value.data();
      const T* g = prm.grad.data();
      T* m = exp_avg_[i].data();
      T* v = exp_avg_sq_[i].data();
      for_each_index(B{}, prm.value.numel(), [=] GCNET_HD(index_t j) {
        p[j] *= decay;
        m[j] += (T(1) - b1) * (g[j] - m[j]);  // torch's lerp_(grad, 1 - beta1)
        v[j] = b2 * v[j] + (T(1) - b2) * g[j] * g[j];
        p[j] -= step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_bc2 + eps);
      });
    }
  }

  // Named optimizer state for checkpoints (parameters that have been updated at least once).
  std::vector<std::pair<std::string, Tensor<T, B>*>> state() {
    std::vector<std::pair<std::string, Tensor<T, B>*>> s;
    step_tensors_.resize(flat_.size());
    for (std::size_t i = 0; i < flat_.size(); ++i) {
      if (!exp_avg_[i].defined()) continue;
      step_tensors_[i] = to_backend<B>(full<T, Cpu>(Shape{1}, static_cast<T>(steps_[i])));
      s.emplace_back(flat_[i].first + ".exp_avg", &exp_avg_[i]);
      s.emplace_back(flat_[i].first + ".exp_avg_sq", &exp_avg_sq_[i]);
      s.emplace_back(flat_[i].first + ".step", &step_tensors_[i]);
    }
    return s;
  }

  // Restores one entry of state() by name; throws naming the entry if it is unknown or mis-shaped.
  void load_state(const std::string& name, const Tensor<T, Cpu>& value) {
    for (std::size_t i = 0; i < flat_.size(); ++i) {
      const std::string& p = flat_[i].first;
      if (name.size() <= p.size() || name.compare(0, p.size(), p) != 0 || name[p.size()] != '.') continue;
      const std::string what = name.substr(p.size() + 1);
      if (what == "step") {
        GCNET_CHECK(value.numel() == 1 && value[0] >= 0 && value[0] == std::floor(value[0]), "AdamW: state '", name,
                    "' must be one non-negative whole number, got shape ", value.shape().str());
        steps_[i] = static_cast<std::int64_t>(value[0]);
        return;
      }
      if (what != "exp_avg" && what != "exp_avg_sq") continue;
      GCNET_CHECK(value.shape() == flat_[i].second->value.shape(), "AdamW: state '", name, "' has shape ",
                  value.shape().str(), ", parameter has ", flat_[i].second->value.shape().str());
      (what == "exp_avg" ? exp_avg_[i] : exp_avg_sq_[i]) = clone(to_backend<B>(value));
      return;
    }
    detail::fail("AdamW: no parameter for state '", name, "'");
  }

 private:
  std::vector<Tensor<T, B>> exp_avg_, exp_avg_sq_, step_tensors_;
  std::vector<std::int64_t> steps_;
};

}  // namespace gcnet
