#pragma once
// SGD exactly as torch.optim.SGD (momentum, dampening, Nesterov, weight decay), per parameter:
//   g = grad + weight_decay * p
//   buf = g on the first step, else momentum * buf + (1 - dampening) * g
//   g = g + momentum * buf (Nesterov) or buf;   p -= lr * g
//
// Parameter groups and the lr API (apply_schedule, set_lr_factor, lr()) are OptimizerGroups'
// (optimizer_groups.hpp). Sgd(named_parameters(net), options) makes one group; Sgd(groups)
// takes several (see param_groups.hpp for mmdet's paramwise rules, e.g. no weight decay on norm
// and bias parameters). A schedule (lr_schedule.hpp) maps (base lr, iteration) to the lr of that
// iteration; before each step the trainer calls opt.apply_schedule(schedule, iter), iter = 0 for
// the first step.
//
// Checkpoints: state() names each momentum buffer "<param name>.momentum_buffer" (parameter
// names are unique across groups); load_state(name, host tensor) restores one.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/param.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/optim/optimizer_groups.hpp"

namespace gcnet {

// Sgd's options per group (Sgd<T, B>::Options).
struct SgdOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

template <Scalar T = float, Backend B = Cpu>
class Sgd : public OptimizerGroups<T, B, SgdOptions> {
  using Base = OptimizerGroups<T, B, SgdOptions>;
  using Base::flat_;

 public:
  using Options = SgdOptions;
  using typename Base::Group;
  using typename Base::NamedParams;

  Sgd(NamedParams params, Options o) : Sgd(std::vector<Group>{Group{std::move(params), o}}) {}

  explicit Sgd(std::vector<Group> groups) : Base(std::move(groups), "Sgd") {
    for (std::size_t gi = 0; gi < this->groups_.size(); ++gi) {
      const Options& o = this->groups_[gi].options;
      GCNET_CHECK(o.momentum >= 0, "Sgd: invalid momentum ", o.momentum, " in group ", gi);
      GCNET_CHECK(o.weight_decay >= 0, "Sgd: invalid weight_decay ", o.weight_decay, " in group ", gi);
      GCNET_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
                  "Sgd: Nesterov momentum requires a momentum and zero dampening (group ", gi, ")");
    }
    momentum_buffers_.resize(flat_.size());
  }

  void step() {
    for (std::size_t i = 0; i < flat_.size(); ++i) {
      Param<T, B>& prm = *flat_[i].second;
      if (!prm.grad.defined()) continue;  // as torch: no gradient, no update
      const Options& o = this->options_of(i);
      const T lr = static_cast<T>(this->current_lr_of(i)), mom = static_cast<T>(o.momentum),
              damp = static_cast<T>(1 - o.dampening), wd = static_cast<T>(o.weight_decay);
      const bool nesterov = o.nesterov;
      GCNET_CHECK(prm.grad.shape() == prm.value.shape(), "Sgd: gradient of '", flat_[i].first, "' has shape ",
                  prm.grad.shape().str(), ", parameter has ", prm.value.shape().str());
      T* p = prm.value.data();
      const T* g = prm.grad.data();
      const index_t n = prm.value.numel();
      if (o.momentum == 0) {
        for_each_index(B{}, n, [=] GCNET_HD(index_t j) { p[j] -= lr * (g[j] + wd * p[j]); });
        continue;
      }
      Tensor<T, B>& buf_t = momentum_buffers_[i];
      const bool first = !buf_t.defined();
      if (first) buf_t.resize(prm.value.shape());
      T* buf = buf_t.data();
      for_each_index(B{}, n, [=] GCNET_HD(index_t j) {
        const T d = g[j] + wd * p[j];
        buf[j] = first ? d : mom * buf[j] + damp * d;
        p[j] -= lr * (nesterov ? d + mom * buf[j] : buf[j]);
      });
    }
  }

  // Named optimizer state for checkpoints: "<param name>.momentum_buffer" for each parameter
  // that has one (after its first step with a momentum).
  std::vector<std::pair<std::string, Tensor<T, B>*>> state() {
    std::vector<std::pair<std::string, Tensor<T, B>*>> s;
    for (std::size_t i = 0; i < flat_.size(); ++i)
      if (momentum_buffers_[i].defined()) s.emplace_back(flat_[i].first + ".momentum_buffer", &momentum_buffers_[i]);
    return s;
  }

  // Restores one entry of state() by name; throws naming the entry if it is unknown or
  // mis-shaped.
  void load_state(const std::string& name, const Tensor<T, Cpu>& value) {
    for (std::size_t i = 0; i < flat_.size(); ++i) {
      if (name != flat_[i].first + ".momentum_buffer") continue;
      GCNET_CHECK(value.shape() == flat_[i].second->value.shape(), "Sgd: state '", name, "' has shape ",
                  value.shape().str(), ", parameter has ", flat_[i].second->value.shape().str());
      momentum_buffers_[i] = clone(to_backend<B>(value));
      return;
    }
    detail::fail("Sgd: no parameter for state '", name, "'");
  }

 private:
  std::vector<Tensor<T, B>> momentum_buffers_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(Sgd)
}  // namespace gcnet
