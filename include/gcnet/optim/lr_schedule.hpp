#pragma once
// Learning-rate schedules by iteration: `double lr(double base_lr, std::int64_t iter) const`
// gives the lr of iteration `iter` (0 = the first optimizer step) for a parameter group whose
// base lr is base_lr. Closed forms of mmengine's chained schedulers, stepped once per
// iteration after optimizer.step() (so iteration k runs with the value after k scheduler
// steps). Sgd::apply_schedule(schedule, iter) applies one to every group.
//
// Two conventions exist for where a schedule ends; Convention picks one:
//  mmengine (mmdet 3.x / mmseg 1.x, default): LinearLR(begin=0, end=W) and PolyLR(end=M) use
//    total_iters = end - begin - 1, so the warmup factor reaches 1 AT iteration W-1 and poly
//    reaches eta_min at iteration M-1:
//      warmup factor(k) = s + (1 - s) * min(k, W-1) / (W-1)    (torch LinearLR, total_iters=W-1)
//      poly lr(k) = (base - eta_min) * (1 - min(k, M-1)/(M-1))^power + eta_min
//  mmcv (mmcv 0.x/1.x LrUpdaterHook: mmdet 2.x, mmseg 0.x, the official GCNet repo):
//      warmup factor(k) = s + (1 - s) * k / W for k < W, then 1   (torch LinearLR, total_iters=W)
//      poly lr(k) = (base - eta_min) * (1 - min(k, M)/M)^power + eta_min
// Multi-step decay is the same in both: lr * gamma^(number of milestones <= k); milestones
// given in epochs become iterations as epoch * iters_per_epoch (mmengine's
// build_iter_from_epoch), i.e. decay starts with the first iteration of that (0-based) epoch.
// Warmup and decay multiply (mmengine chains LinearLR and MultiStepLR on the same lr).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/core/error.hpp"

namespace gcnet {

enum class Convention { mmengine, mmcv };

// Linear warmup factor over the first `iters` iterations (iters = 0: no warmup).
struct LinearWarmup {
  double start_factor = 0.001;
  std::int64_t iters = 0;
  Convention convention = Convention::mmengine;

  void validate() const {
    GCNET_CHECK(start_factor >= 0 && start_factor <= 1, "LinearWarmup: start_factor must be in [0, 1], got ",
                start_factor);
    GCNET_CHECK(iters >= 0, "LinearWarmup: iters must be >= 0, got ", iters);
    GCNET_CHECK(iters != 1 || convention == Convention::mmcv,
                "LinearWarmup: 1 warmup iteration with the mmengine convention would keep the start factor forever "
                "(mmengine's LinearLR with end=1); use 0 for no warmup");
  }
  double factor(std::int64_t iter) const {
    if (iters == 0) return 1.0;
    const std::int64_t span = convention == Convention::mmengine ? iters - 1 : iters;
    if (iter >= span) return 1.0;
    return start_factor + (1.0 - start_factor) * static_cast<double>(iter) / static_cast<double>(span);
  }
};

// Linear warmup, then lr * gamma at each milestone (mmdet's 1x/2x schedules).
class WarmupMultiStepLr {
 public:
  struct Options {
    LinearWarmup warmup = {};
    std::vector<std::int64_t> milestones = {};  // in iterations, increasing
    double gamma = 0.1;
    // Non-empty: the milestones are these fractions of the run's length instead (mmdet's 1x:
    // 8/12 and 11/12), recomputed by set_max_iters; `milestones` then holds them in iterations.
    std::vector<double> milestone_fractions = {};
  };
  explicit WarmupMultiStepLr(Options o) : opt_(std::move(o)) {
    opt_.warmup.validate();
    GCNET_CHECK(opt_.gamma > 0, "WarmupMultiStepLr: gamma must be > 0, got ", opt_.gamma);
    GCNET_CHECK(opt_.milestones.empty() || opt_.milestone_fractions.empty(),
                "WarmupMultiStepLr: give milestones in iterations or as fractions of the run, not both");
    for (std::size_t i = 0; i < opt_.milestone_fractions.size(); ++i) {
      const double f = opt_.milestone_fractions[i];
      GCNET_CHECK(f > 0 && f <= 1 && (i == 0 || f >= opt_.milestone_fractions[i - 1]),
                  "WarmupMultiStepLr: milestone fractions must be increasing and in (0, 1], got ", f, " at position ",
                  i);
    }
    check_milestones();
  }
  // Milestones at fractions of a run of max_iters iterations, following set_max_iters.
  static WarmupMultiStepLr over_run(LinearWarmup warmup, std::vector<double> fractions, std::int64_t max_iters,
                                    double gamma = 0.1) {
    WarmupMultiStepLr s({.warmup = warmup, .gamma = gamma, .milestone_fractions = std::move(fractions)});
    s.set_max_iters(max_iters);
    return s;
  }
  // Milestones in epochs (mmdet: {8, 11} for 1x, {16, 22} for 2x).
  static WarmupMultiStepLr by_epochs(LinearWarmup warmup, const std::vector<std::int64_t>& epochs,
                                     std::int64_t iters_per_epoch, double gamma = 0.1) {
    GCNET_CHECK(iters_per_epoch > 0, "WarmupMultiStepLr: iters_per_epoch must be > 0, got ", iters_per_epoch);
    std::vector<std::int64_t> m;
    for (auto e : epochs) m.push_back(e * iters_per_epoch);
    return WarmupMultiStepLr({.warmup = warmup, .milestones = m, .gamma = gamma});
  }
  // mmdet 3.x schedule_1x / 2x: LinearLR(start_factor=0.001, end=500), MultiStepLR([8, 11] / [16, 22]).
  static WarmupMultiStepLr mmdet_1x(std::int64_t iters_per_epoch) {
    return by_epochs({.start_factor = 0.001, .iters = 500}, {8, 11}, iters_per_epoch);
  }
  static WarmupMultiStepLr mmdet_2x(std::int64_t iters_per_epoch) {
    return by_epochs({.start_factor = 0.001, .iters = 500}, {16, 22}, iters_per_epoch);
  }

  double factor(std::int64_t iter) const {
    double f = opt_.warmup.factor(iter);
    for (auto m : opt_.milestones)
      if (m <= iter) f *= opt_.gamma;
    return f;
  }
  double lr(double base_lr, std::int64_t iter) const { return base_lr * factor(iter); }
  const Options& options() const { return opt_; }
  // A new run length, from the next lr() on (a Trainer re-planning a time budget): the milestones
  // move with it. Milestones given in iterations cannot follow: an error.
  void set_max_iters(std::int64_t max_iters) {
    GCNET_CHECK(!opt_.milestone_fractions.empty() || opt_.milestones.empty(),
                "WarmupMultiStepLr: milestones given in iterations cannot follow a new run length; give "
                "milestone_fractions (over_run)");
    GCNET_CHECK(max_iters > 0, "WarmupMultiStepLr: max_iters must be > 0, got ", max_iters);
    opt_.milestones.clear();
    for (double f : opt_.milestone_fractions)
      opt_.milestones.push_back(std::max<std::int64_t>(1, std::llround(f * static_cast<double>(max_iters))));
    check_milestones();
  }

 private:
  void check_milestones() const {
    for (std::size_t i = 0; i < opt_.milestones.size(); ++i)
      GCNET_CHECK(opt_.milestones[i] > 0 && (i == 0 || opt_.milestones[i] >= opt_.milestones[i - 1]),
                  "WarmupMultiStepLr: milestones must be positive and increasing, got ", opt_.milestones[i],
                  " at position ", i);
  }
  Options opt_;
};

// Polynomial decay to eta_min over max_iters iterations (mmseg: power 0.9, eta_min 1e-4).
class PolyLr {
 public:
  struct Options {
    std::int64_t max_iters = 0;
    double power = 0.9;
    double eta_min = 1e-4;
    Convention convention = Convention::mmengine;
  };
  explicit PolyLr(Options o) : opt_(o) {
    GCNET_CHECK(opt_.max_iters > 0, "PolyLr: max_iters must be > 0, got ", opt_.max_iters);
    GCNET_CHECK(opt_.power >= 0, "PolyLr: power must be >= 0, got ", opt_.power);
    GCNET_CHECK(opt_.eta_min >= 0, "PolyLr: eta_min must be >= 0, got ", opt_.eta_min);
  }
  double lr(double base_lr, std::int64_t iter) const {
    const std::int64_t span = opt_.convention == Convention::mmengine ? opt_.max_iters - 1 : opt_.max_iters;
    if (span <= 0) return base_lr;  // mmengine PolyLR(end=1): never decays
    const double k = static_cast<double>(iter < span ? iter : span);
    return (base_lr - opt_.eta_min) * std::pow(1.0 - k / static_cast<double>(span), opt_.power) + opt_.eta_min;
  }
  const Options& options() const { return opt_; }
  // A new length, from the next lr() on (a Trainer re-planning a time budget).
  void set_max_iters(std::int64_t max_iters) {
    GCNET_CHECK(max_iters > 0, "PolyLr: max_iters must be > 0, got ", max_iters);
    opt_.max_iters = max_iters;
  }

 private:
  Options opt_;
};

// The base learning rate throughout (the trainer's default schedule).
struct ConstantLr {
  double lr(double base_lr, std::int64_t /*iter*/) const { return base_lr; }
};

}  // namespace gcnet
