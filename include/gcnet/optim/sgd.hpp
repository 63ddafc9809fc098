#pragma once
// SGD exactly as torch.optim.SGD (momentum, dampening, Nesterov, weight decay), per parameter:
//   g = grad + weight_decay * p
//   buf = g on the first step, else momentum * buf + (1 - dampening) * g
//   g = g + momentum * buf (Nesterov) or buf;   p -= lr * g
//
// Parameter groups (torch's param_groups): every group has its own Options; a group's
// Options::lr is its BASE lr. Sgd(named_parameters(net), options) makes one group;
// Sgd(groups) takes several (see param_groups.hpp for mmdet's paramwise rules, e.g. no
// weight decay on norm and bias parameters).
//
// Learning-rate schedules: a schedule (lr_schedule.hpp) maps (base lr, iteration) to the lr
// of that iteration. Before each step the trainer calls
//     opt.apply_schedule(schedule, iter);        // iter = 0 for the first step
// which sets every group's CURRENT lr to schedule.lr(group base lr, iter), so groups with
// different base lrs (bias_lr_mult) keep their ratios and poly's eta_min stays absolute,
// as mmengine's schedulers do per param_group. set_lr_factor(f) sets lr = f * base lr;
// set_lr(x) sets every group's current lr to x (for a single group); lr() reports group
// 0's current lr (what mmdet logs). Base lrs never change, so a resumed run only needs the
// iteration to recover every lr.
//
// Checkpoints: state() names each momentum buffer "<param name>.momentum_buffer" (parameter
// names are unique across groups); load_state(name, host tensor) restores one.
#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/core/extern_instances.hpp"
#include "gcnet/core/param.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class Sgd {
 public:
  using NamedParams = std::vector<std::pair<std::string, Param<T, B>*>>;
  struct Options {
    double lr = 0.01;
    double momentum = 0;
    double dampening = 0;
    double weight_decay = 0;
    bool nesterov = false;
  };
  struct Group {
    NamedParams params;
    Options options;  // options.lr: the group's base lr
  };

  Sgd(NamedParams params, Options o) : Sgd(std::vector<Group>{Group{std::move(params), o}}) {}

  explicit Sgd(std::vector<Group> groups) : groups_(std::move(groups)) {
    GCNET_CHECK(!groups_.empty(), "Sgd: no parameter groups");
    std::set<std::string> names;
    std::set<const Param<T, B>*> seen;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      const Options& o = groups_[gi].options;
      GCNET_CHECK(o.lr >= 0, "Sgd: invalid learning rate ", o.lr, " in group ", gi);
      GCNET_CHECK(o.momentum >= 0, "Sgd: invalid momentum ", o.momentum, " in group ", gi);
      GCNET_CHECK(o.weight_decay >= 0, "Sgd: invalid weight_decay ", o.weight_decay, " in group ", gi);
      GCNET_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
                  "Sgd: Nesterov momentum requires a momentum and zero dampening (group ", gi, ")");
      current_lr_.push_back(o.lr);
      for (auto& [name, p] : groups_[gi].params) {
        GCNET_CHECK(p != nullptr, "Sgd: parameter '", name, "' is null");
        GCNET_CHECK(names.insert(name).second && seen.insert(p).second, "Sgd: parameter '", name,
                    "' appears more than once (in one group or in several)");
        flat_.emplace_back(name, p);
        group_of_.push_back(gi);
      }
    }
    momentum_buffers_.resize(flat_.size());
  }

  // Current lr of group 0 / of group g; base lr of group g.
  double lr() const { return current_lr_[0]; }
  double lr(std::size_t g) const { return current_lr_.at(g); }
  double base_lr(std::size_t g) const { return groups_.at(g).options.lr; }
  void set_lr(double lr) {
    for (double& l : current_lr_) l = lr;
  }
  void set_lr(std::size_t g, double lr) { current_lr_.at(g) = lr; }
  void set_lr_factor(double factor) {
    for (std::size_t g = 0; g < groups_.size(); ++g) current_lr_[g] = factor * groups_[g].options.lr;
  }
  // Every group's lr = schedule.lr(group base lr, iter); iter = 0 for the first step.
  template <class Schedule>
  void apply_schedule(const Schedule& schedule, std::int64_t iter) {
    for (std::size_t g = 0; g < groups_.size(); ++g) current_lr_[g] = schedule.lr(groups_[g].options.lr, iter);
  }

  std::size_t num_groups() const { return groups_.size(); }
  const Group& group(std::size_t g) const { return groups_.at(g); }
  // All parameters, group by group.
  const NamedParams& params() const { return flat_; }

  void step() {
    for (std::size_t i = 0; i < flat_.size(); ++i) {
      Param<T, B>& prm = *flat_[i].second;
      if (!prm.grad.defined()) continue;  // as torch: no gradient, no update
      const Options& o = groups_[group_of_[i]].options;
      const T lr = static_cast<T>(current_lr_[group_of_[i]]), mom = static_cast<T>(o.momentum),
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
  std::vector<Group> groups_;
  std::vector<double> current_lr_;
  NamedParams flat_;                    // every parameter, group by group
  std::vector<std::size_t> group_of_;   // flat index -> group
  std::vector<Tensor<T, B>> momentum_buffers_;
};

}  // namespace gcnet

// Compiled once per program with GCNET_EXTERN_LAYERS (core/extern_instances.hpp).
namespace gcnet {
GCNET_EXTERN_CLASS(Sgd)
}  // namespace gcnet
