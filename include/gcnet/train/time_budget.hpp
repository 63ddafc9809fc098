#pragma once
// A training time budget: "train as many iterations as fit in S seconds on this machine".
// The example programs' --time-budget: a few iterations of a throwaway copy of the run are timed
// (time_iterations), the schedule is planned from that speed (plan), the first half of the run
// re-sizes it to its own measured speed at each log interval (replanner, for
// TrainerOptions::replan), and the deadline ends training in any case (TrainerOptions::deadline).
// Why all three: a few seconds are a poor sample of a machine whose speed drifts (the same
// iteration measured 0.031-0.053 s in probes on one 2-core machine).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <utility>

#include "gcnet/core/error.hpp"
#include "gcnet/dist/communicator.hpp"
#include "gcnet/train/trainer.hpp"

namespace gcnet {

class TimeBudget {
 public:
  using Clock = std::chrono::steady_clock;

  // `seconds` counted from `start` (the program's start: set-up and timing are part of it). The
  // hard end is a little before the budget's, for the final checkpoint and curve.
  TimeBudget(double seconds, Clock::time_point start) : seconds_(seconds), start_(start) {
    GCNET_CHECK(std::isfinite(seconds) && seconds > 0, "TimeBudget: the budget must be a positive number of seconds, got ",
                seconds);
    const double reserve = std::min(1.0, 0.02 * seconds);
    deadline_ = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds - reserve));
  }

  double seconds() const { return seconds_; }
  Clock::time_point deadline() const { return deadline_; }
  double spent() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  // The iterations that fit before the deadline at per_iter_s each, leaving 3% for the speed
  // varying (the first plan and every re-plan).
  std::int64_t iterations_left(double per_iter_s) const {
    GCNET_CHECK(std::isfinite(per_iter_s) && per_iter_s > 0, "TimeBudget: seconds per iteration must be positive, got ",
                per_iter_s);
    const double left = std::chrono::duration<double>(deadline_ - Clock::now()).count();
    return static_cast<std::int64_t>(std::clamp(std::floor(0.97 * left / per_iter_s), 0.0, 1e9));
  }

  // The schedule's first length from the timed speed: the same on every rank (the smallest), an
  // error naming the numbers when not even one iteration fits.
  std::int64_t plan(double per_iter_s) const {
    std::int64_t planned = iterations_left(per_iter_s);
    dist::default_communicator().all_reduce(&planned, 1, dist::ReduceOp::Min);
    GCNET_CHECK(planned >= 1, "--time-budget ", seconds_, " s leaves no time to train: set-up and timing took ",
                spent(), " s and one iteration takes ", per_iter_s, " s");
    return planned;
  }

  // TrainerOptions::replan: during the first half of the run, the schedule's length becomes what
  // fits at the run's own mean speed; the second half keeps it (its lr schedule is under way).
  std::function<std::int64_t(std::int64_t, std::int64_t, double)> replanner() const {
    return [budget = *this](std::int64_t iter, std::int64_t planned, double per_iter_s) {
      return 2 * iter > planned ? planned : iter + budget.iterations_left(per_iter_s);
    };
  }

  // A run under this budget: the deadline ends it, and its first half follows its own speed.
  void apply(TrainerOptions& o) const {
    o.deadline = deadline_;
    o.replan = replanner();
  }

 private:
  double seconds_;
  Clock::time_point start_, deadline_;
};

// A budgeted run's last line (rank 0): the iterations trained, and whether the budget's end cut
// the schedule short (the budget tests read this line).
template <class Trainer>
void print_budget_outcome(const Trainer& trainer) {
  if (trainer.rank() == 0)
    std::printf("trained %lld iterations in the time budget%s\n", static_cast<long long>(trainer.iter()),
                trainer.stopped_by_deadline() ? " (its end stopped the schedule early)" : "");
}

// Seconds per iteration of `trainer` (a throwaway copy of the run: same model, data, batch,
// threads and ranks): `warmup` iterations untimed (first touches of memory, the loader's queue
// filling), then `timed` more. Under data parallelism every rank gets the slowest rank's time.
template <class Trainer>
double time_iterations(Trainer& trainer, std::int64_t warmup, std::int64_t timed) {
  GCNET_CHECK(warmup >= 0 && timed > 0, "time_iterations: need warmup >= 0 and timed > 0, got ", warmup, ", ", timed);
  trainer.run(warmup);
  const auto t0 = std::chrono::steady_clock::now();
  trainer.run(warmup + timed);
  double per_iter = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                    static_cast<double>(timed);
  dist::default_communicator().all_reduce(&per_iter, 1, dist::ReduceOp::Max);
  return per_iter;
}

// Seconds per iteration of a run on this machine, from a throwaway copy of it: `run_copy(options,
// time)` builds the run's Trainer (same model type, data, batch, threads, ranks) with `options`
// and returns time(trainer). The copy works in WORK_DIR/.speed-probe, removed afterwards, prints
// nothing and draws another random stream (seed + 1).
template <class RunCopy>
double time_speed_probe(TrainerOptions run, std::int64_t warmup, std::int64_t timed, RunCopy&& run_copy) {
  TrainerOptions o = std::move(run);
  o.work_dir = (std::filesystem::path(o.work_dir) / ".speed-probe").string();
  o.seed += 1;
  o.log_interval = warmup + timed;
  o.checkpoint_interval = 0;
  o.print = false;
  o.deadline.reset();
  o.replan = nullptr;
  const double per_iter =
      run_copy(o, [&](auto& trainer) { return time_iterations(trainer, warmup, timed); });
  if (dist::default_communicator().rank() == 0) std::filesystem::remove_all(o.work_dir);
  return per_iter;
}

}  // namespace gcnet
