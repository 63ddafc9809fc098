#pragma once
// OptimizerGroups<T, B, Options>: what Sgd and AdamW share. Parameter groups (torch's
// param_groups: each group has its own Options, whose lr is the group's BASE lr), the CURRENT lr
// of each group and the lr API the Trainer and the schedules use:
//   apply_schedule(schedule, iter)  every group's lr = schedule.lr(group base lr, iter), so groups
//                                   with different base lrs keep their ratios (mmengine's
//                                   schedulers work per param_group);
//   set_lr_factor(f)                lr = f * base lr;  set_lr(x): every group's lr = x;
//   lr()                            group 0's current lr (what mmdet logs).
// Base lrs never change, so a resumed run only needs the iteration to recover every lr.
// params() lists every parameter, group by group; names are unique across groups.
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/core/param.hpp"

namespace gcnet {

template <Scalar T, Backend B, class Options>
class OptimizerGroups {
 public:
  using NamedParams = std::vector<std::pair<std::string, Param<T, B>*>>;
  struct Group {
    NamedParams params;
    Options options;  // options.lr: the group's base lr
  };

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
  template <class Schedule>
  void apply_schedule(const Schedule& schedule, std::int64_t iter) {
    for (std::size_t g = 0; g < groups_.size(); ++g) current_lr_[g] = schedule.lr(groups_[g].options.lr, iter);
  }

  std::size_t num_groups() const { return groups_.size(); }
  const Group& group(std::size_t g) const { return groups_.at(g); }
  const NamedParams& params() const { return flat_; }

 protected:
  // `who` names the optimizer in errors ("Sgd: invalid learning rate -1 in group 0").
  OptimizerGroups(std::vector<Group> groups, const char* who) : groups_(std::move(groups)) {
    GCNET_CHECK(!groups_.empty(), who, ": no parameter groups");
    std::set<std::string> names;
    std::set<const Param<T, B>*> seen;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
      GCNET_CHECK(groups_[gi].options.lr >= 0, who, ": invalid learning rate ", groups_[gi].options.lr, " in group ", gi);
      current_lr_.push_back(groups_[gi].options.lr);
      for (auto& [name, p] : groups_[gi].params) {
        GCNET_CHECK(p != nullptr, who, ": parameter '", name, "' is null");
        GCNET_CHECK(names.insert(name).second && seen.insert(p).second, who, ": parameter '", name,
                    "' appears more than once (in one group or in several)");
        flat_.emplace_back(name, p);
        group_of_.push_back(gi);
      }
    }
  }

  // The options and the current lr of flat parameter i's group.
  const Options& options_of(std::size_t i) const { return groups_[group_of_[i]].options; }
  double current_lr_of(std::size_t i) const { return current_lr_[group_of_[i]]; }

  std::vector<Group> groups_;
  std::vector<double> current_lr_;
  NamedParams flat_;                   // every parameter, group by group
  std::vector<std::size_t> group_of_;  // flat index -> group
};

}  // namespace gcnet
