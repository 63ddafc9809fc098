#pragma once
// Trainer: the training loop every example binary needs (mmdet's runner, reduced).
// The model is a Component (core/module.hpp): a leaf layer, or a module with several inputs
// and outputs (a backbone with its neck, a segmentor). Its input comes from the batch: the
// batch's images when the model takes one tensor, else the input function given with
// set_input(). One iteration: batch = loader.next(); lr = schedule.lr(base_lr, iter); forward
// with the step's Context (training, the data-parallel group for SyncBatchNorm2d, the random
// stream (seed, iteration) for dropout); the user's loss callback (named losses, writes
// d loss/d output into every output it uses); backward; optional gradient clipping by global
// norm; optimizer step. Around it: a progress line and a record in
// <work_dir>/<timestamp>.log.json per log interval, checkpoints every N iterations and at
// the end (iter_<N>.safetensors + latest.safetensors), exact resume, and a stop with a clear
// error on a NaN/Inf loss or training state that never overwrites the last good checkpoint.
//
// Health checks (train/health_check.hpp): every health_check_interval iterations the
// gradients and buffers are checked for NaN/Inf before the optimizer step, and everything
// (parameters, buffers, optimizer state) at each log interval and before each save; the
// error names the iteration and the first bad tensor. Run settings (train/run_settings.hpp):
// the seed, the loader's batches per epoch and TrainerOptions::run_settings are recorded in
// every checkpoint, and resume() refuses a checkpoint recorded with other values unless
// allow_settings_change.
//
// Exact resume: a checkpoint holds the parameters, buffers, optimizer state and the
// iteration; resume() restores them and seeks the loader to the same global batch index, so
// the resumed run sees the same batches, lrs and state as an uninterrupted one (bit for bit
// on the CPU at a fixed thread count).
//
// Data parallel: when the communicator (TrainerOptions::communicator, else
// dist::default_communicator(), which is the MPI world in a program started by
// `mpirun -np K` that includes gcnet/dist/mpi_communicator.hpp) has K > 1 ranks, every rank
// runs this loop on its shard of each global batch (loader.shard(rank, K)); rank 0's
// parameters and buffers are broadcast before the first step, gradients are averaged with
// one all-reduce per step (dist::DataParallel) before clipping, and the logged losses are
// the means over ranks. Only rank 0 prints, writes the log and saves checkpoints.
#include <algorithm>
#include <concepts>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/core/error.hpp"
#include "gcnet/core/module.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/dist/communicator.hpp"
#include "gcnet/dist/data_parallel.hpp"
#include "gcnet/io/atomic_file.hpp"
#include "gcnet/io/checkpoint.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/optim/clip_grad.hpp"
#include "gcnet/optim/lr_schedule.hpp"
#include "gcnet/train/health_check.hpp"
#include "gcnet/train/json_log.hpp"
#include "gcnet/train/peak_memory.hpp"
#include "gcnet/train/progress.hpp"
#include "gcnet/train/run_settings.hpp"

namespace gcnet {

// Named losses of one iteration, e.g. {{"loss_cls", 0.69}, {"loss_aux", 0.2}}. As mmseg's
// parse_losses, the entries whose name contains "loss" are summed into "loss"; the others (such
// as "decode.acc_seg") are logged as they are.
using NamedLosses = std::vector<std::pair<std::string, double>>;

struct TrainerOptions {
  std::string work_dir = "work";
  std::int64_t log_interval = 10;         // iterations per progress line / log record
  std::int64_t checkpoint_interval = 0;   // 0: a checkpoint at the end only
  double max_grad_norm = 0;               // > 0: clip gradients to this global L2 norm
  bool print = true;                      // progress lines on stdout
  std::uint64_t seed = 0;                 // recorded in the log's meta line
  std::string exp_name = "gcnet";
  nlohmann::json config = nlohmann::json::object();  // recorded in the log's meta line
  std::map<std::string, std::string> metadata{};     // added to every checkpoint
  // Data-parallel group; unset: dist::default_communicator(). One rank: plain training.
  std::optional<dist::CommunicatorRef> communicator{};
  // What a resume must keep to continue the run exactly (batch size, data, lr...; the seed
  // and the loader's batches per epoch are added): recorded in every checkpoint, compared by
  // resume(), which refuses a difference unless allow_settings_change.
  RunSettings run_settings{};
  bool allow_settings_change = false;
  // Iterations between NaN/Inf checks of the gradients and buffers (0: only at log intervals
  // and saves, where everything is checked). Checks of CUDA tensors copy them to the host.
  std::int64_t health_check_interval = 1;
  // Set: training stops once this time has passed, even before max_iters, with a log record and
  // a checkpoint at the iteration reached (a time budget's hard limit). Checked after every
  // iteration; under data parallelism the ranks agree (one small all-reduce per iteration).
  std::optional<std::chrono::steady_clock::time_point> deadline{};
  // Set: called after each log interval with (iteration, max_iters, seconds per iteration of
  // this run so far); a different value it returns (not below the iteration) becomes the run's
  // max_iters, e.g. a time budget re-sized to the speed measured; a schedule with
  // set_max_iters(m) (PolyLr, WarmupMultiStepLr::over_run) is told. Under data parallelism the
  // largest answer of the ranks wins.
  std::function<std::int64_t(std::int64_t, std::int64_t, double)> replan{};
};

template <Component Model, class Loader, class Optimizer, class Schedule = ConstantLr>
class Trainer {
 public:
  using T = typename Model::value_type;
  using B = typename Model::backend_type;
  using Input = input_of<Model>;
  using Output = output_of<Model>;
  using Batch = std::remove_cvref_t<decltype(std::declval<Loader&>().next())>;
  // (output, batch, doutput) -> named losses; doutput arrives with every differentiable output
  // tensor zeroed and shaped like it, and the callback adds d loss / d output into it.
  using LossFn = std::function<NamedLosses(const Output& output, const Batch& batch, Output& doutput)>;
  // batch -> the model's input.
  using InputFn = std::function<Input(const Batch& batch)>;

  Trainer(Model& model, Loader& loader, Optimizer& opt, Schedule schedule, LossFn loss_fn, TrainerOptions options)
      : model_(model), loader_(loader), opt_(opt), schedule_(std::move(schedule)), loss_fn_(std::move(loss_fn)),
        opt_o_(std::move(options)), base_lr_(opt.lr()),
        dp_(opt_o_.communicator ? *opt_o_.communicator : dist::default_communicator()) {
    GCNET_CHECK(loss_fn_, "Trainer: no loss function given");
    GCNET_CHECK(opt_o_.log_interval > 0, "Trainer: log_interval must be positive, got ", opt_o_.log_interval);
    GCNET_CHECK(opt_o_.checkpoint_interval >= 0, "Trainer: checkpoint_interval must be >= 0, got ",
                opt_o_.checkpoint_interval);
    GCNET_CHECK(!opt_o_.work_dir.empty(), "Trainer: work_dir is empty");
    GCNET_CHECK(opt_o_.health_check_interval >= 0, "Trainer: health_check_interval must be >= 0, got ",
                opt_o_.health_check_interval);
    if (dp_.active()) {
      if constexpr (requires { loader_.shard(0, 1); }) {
        loader_.shard(dp_.rank(), dp_.size());
      } else {
        detail::fail("Trainer: data-parallel training over ", dp_.size(),
                     " ranks needs a loader with shard(rank, world_size) (e.g. data::DataLoader)");
      }
      if (dp_.rank() != 0) opt_o_.print = false;  // rank 0 reports for all
    }
    // Only a batch whose images ARE the model's input: a struct input (a detector's DetBatch) must
    // not be aggregate-built from the images alone, dropping its other fields.
    if constexpr (requires(const Batch& b) { requires std::convertible_to<decltype(b.images), Input>; })
      input_fn_ = [](const Batch& b) { return Input(b.images); };
  }

  // How the model's input is made from a batch (needed when it is not the batch's images).
  void set_input(InputFn fn) {
    GCNET_CHECK(fn, "Trainer::set_input: empty function");
    input_fn_ = std::move(fn);
  }

  // Restores model, optimizer, iteration and loader position from a checkpoint written by
  // this trainer; the next run() continues exactly where that run was.
  void resume(const std::string& path) {
    // The settings first: a refused resume leaves the model as it was.
    const auto changes = check_resume_settings(path, io::read_checkpoint_metadata(path), run_settings(),
                                               opt_o_.allow_settings_change);
    const auto report = io::load_checkpoint(path, model_, &opt_);  // strict: everything must match
    GCNET_CHECK(report.metadata.count("iter"), path, ": not a trainer checkpoint (no 'iter' in its metadata)");
    GCNET_CHECK(report.optimizer_loaded, path, ": has no optimizer state, so training cannot resume exactly");
    for (const auto& c : changes)
      if (opt_o_.print) std::printf("warning: resuming %s with a changed setting (allowed): %s\n", path.c_str(), c.c_str());
    iter_ = report.meta_int("iter");
    GCNET_CHECK(iter_ >= 0, path, ": metadata 'iter' is negative: ", iter_);
    loader_.seek(iter_);
    fully_checked_at_ = -1;  // the state was replaced
    last_checkpoint_ = path;
    last_checkpoint_iter_ = iter_;
    if (opt_o_.print) std::printf("resumed from %s at iteration %lld\n", path.c_str(), static_cast<long long>(iter_));
  }

  // Trains until `max_epochs` epochs of the loader are done; logs "iter" within the epoch
  // as mmdet's epoch-based runner does.
  void run_epochs(std::int64_t max_epochs) {
    GCNET_CHECK(max_epochs > 0, "Trainer: max_epochs must be positive, got ", max_epochs);
    by_epoch_ = true;
    run(max_epochs * batches_per_epoch());
  }

  // Trains until the global iteration count reaches `max_iters`.
  void run(std::int64_t max_iters) {
    GCNET_CHECK(max_iters > 0, "Trainer: max_iters must be positive, got ", max_iters);
    max_iters_ = max_iters;
    if (iter_ >= max_iters) {  // e.g. a finished run resumed with the same iteration count
      if (opt_o_.print)
        std::printf("nothing to train: already at iteration %lld of %lld%s%s\n", static_cast<long long>(iter_),
                    static_cast<long long>(max_iters), last_checkpoint_.empty() ? "" : " in ", last_checkpoint_.c_str());
      return;
    }
    io::ignore_file_size_signal();  // a file-size limit is then a write error, not a silent death
    open_log();
    GCNET_CHECK(input_fn_, "Trainer: the model's input is not the batch's images: give it with set_input()");
    set_training(model_, true);
    if (dp_.active() && !state_broadcast_) {  // every rank starts from rank 0's state
      dp_.broadcast_state(model_);
      state_broadcast_ = true;
    }
    const auto run_start = Clock::now();
    const std::int64_t first_iter = iter_;
    stopped_by_deadline_ = false;
    while (iter_ < max_iters_) {
      const auto t0 = Clock::now();
      const Batch batch = loader_.next();
      const auto t1 = Clock::now();
      set_lr();

      const Input input = input_fn_(batch);
      Context ctx;
      ctx.communicator = dp_.communicator();
      ctx.rng = RngStream{opt_o_.seed, static_cast<std::uint64_t>(iter_)};
      gcnet::forward(model_, ctx, input, output_);
      zero_grad_like(output_, doutput_);
      NamedLosses losses = loss_fn_(output_, batch, doutput_);
      GCNET_CHECK(!losses.empty(), "Trainer: the loss function returned no losses at iteration ", iter_ + 1);
      mean_over_ranks(losses);  // all ranks see the same values: a NaN stops them all
      double total = 0;
      for (const auto& [name, v] : losses) {
        if (!std::isfinite(v)) stop_on_bad_loss(name, v);
        if (name.find("loss") != std::string::npos) total += v;  // others are metrics (acc_seg)
      }
      if (!std::isfinite(total)) stop_on_bad_loss("loss", total);

      // No input gradient is wanted: a module skips it (undefined dx), a layer writes scratch.
      if constexpr (Layer<Model>) zero_grad_like(input, dinput_);
      gcnet::backward(model_, ctx, input, output_, doutput_, dinput_);
      dp_.average_gradients(opt_.params());
      if (opt_o_.max_grad_norm > 0) clip_grad_norm(opt_.params(), opt_o_.max_grad_norm);
      // Before the step, so a bad gradient never reaches the parameters or the momentum.
      if (opt_o_.health_check_interval > 0 && (iter_ + 1) % opt_o_.health_check_interval == 0)
        check_health(iter_ + 1, {.parameters = false, .gradients = true, .buffers = true, .optimizer_state = false});
      opt_.step();
      ++iter_;

      accumulate(losses, total, seconds(t0, Clock::now()), seconds(t0, t1));
      // A passed deadline makes this the run's last iteration: logged and saved as an end.
      const bool out_of_time = iter_ < max_iters_ && deadline_passed();
      if (out_of_time && opt_o_.print)
        std::printf("time is up: stopping at iteration %lld of %lld\n", static_cast<long long>(iter_),
                    static_cast<long long>(max_iters_));
      if (log_due(max_iters_) || out_of_time) {
        check_health(iter_, {});
        const double mean_iter_s = seconds(run_start, Clock::now()) / static_cast<double>(iter_ - first_iter);
        write_interval(mean_iter_s);
        if (opt_o_.replan && iter_ < max_iters_ && !out_of_time) replan(mean_iter_s);
      }
      if ((opt_o_.checkpoint_interval > 0 && iter_ % opt_o_.checkpoint_interval == 0) || iter_ == max_iters_ ||
          out_of_time)
        save();
      if (out_of_time) {
        stopped_by_deadline_ = true;
        return;
      }
    }
  }

  // Whether the last run() stopped at TrainerOptions::deadline before its max_iters.
  bool stopped_by_deadline() const { return stopped_by_deadline_; }

  std::int64_t iter() const { return iter_; }
  std::int64_t batches_per_epoch() const {
    const auto n = static_cast<std::int64_t>(loader_.batches_per_epoch());
    GCNET_CHECK(n > 0, "Trainer: the loader has no batches per epoch");
    return n;
  }
  double lr() const { return lr_; }
  const std::filesystem::path& log_path() const { return log_.path(); }
  std::filesystem::path work_dir() const { return opt_o_.work_dir; }
  // The latest checkpoint written (or resumed from); empty before the first.
  const std::string& last_checkpoint() const { return last_checkpoint_; }
  // (iteration, mean total loss) of each log interval of this process's runs.
  const std::vector<std::pair<std::int64_t, double>>& loss_curve() const { return loss_curve_; }
  int rank() const { return dp_.rank(); }
  int world_size() const { return dp_.size(); }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

  bool writes_files() const { return dp_.rank() == 0; }

  void replan(double mean_iter_s) {
    std::int64_t m = opt_o_.replan(iter_, max_iters_, mean_iter_s);
    if (dp_.active()) dp_.communicator().all_reduce(&m, 1, dist::ReduceOp::Max);  // every rank the same
    m = m > iter_ ? m : iter_;
    if (m == max_iters_) return;
    if constexpr (requires { schedule_.set_max_iters(m); }) schedule_.set_max_iters(m);
    if (opt_o_.print)
      std::printf("re-planned: %lld iterations instead of %lld\n", static_cast<long long>(m),
                  static_cast<long long>(max_iters_));
    max_iters_ = m;
  }

  bool deadline_passed() {
    if (!opt_o_.deadline) return false;
    std::int64_t passed = Clock::now() >= *opt_o_.deadline ? 1 : 0;
    if (dp_.active()) dp_.communicator().all_reduce(&passed, 1, dist::ReduceOp::Max);  // one rank late: all stop
    return passed != 0;
  }

  // Each loss becomes its mean over the ranks (one small all-reduce).
  void mean_over_ranks(NamedLosses& losses) {
    if (!dp_.active()) return;
    loss_values_.resize(losses.size());
    for (std::size_t i = 0; i < losses.size(); ++i) loss_values_[i] = losses[i].second;
    dp_.communicator().all_reduce(loss_values_.data(), static_cast<index_t>(loss_values_.size()), dist::ReduceOp::Sum);
    for (std::size_t i = 0; i < losses.size(); ++i) losses[i].second = loss_values_[i] / dp_.size();
  }

  void open_log() {
    if (log_.is_open() || !writes_files()) return;
    log_ = JsonLog(opt_o_.work_dir);
    char env[160];
    std::snprintf(env, sizeof env, "gcnet; C++ %ld; %d threads", static_cast<long>(__cplusplus), num_threads());
    log_.write({{"env_info", env},
                {"config", opt_o_.config},
                {"seed", opt_o_.seed},
                {"exp_name", opt_o_.exp_name},
                {"by_epoch", by_epoch_},
                {"iters_per_epoch", batches_per_epoch()},
                {"max_iters", max_iters_},
                {"start_iter", iter_},
                {"world_size", dp_.size()}});
  }

  // Every group's lr for iteration iter_ (0 = the first step). Sgd applies the schedule to
  // each group's base lr; other optimizers get schedule.lr(initial lr, iter).
  void set_lr() {
    if constexpr (requires { opt_.apply_schedule(schedule_, iter_); }) {
      opt_.apply_schedule(schedule_, iter_);
      lr_ = opt_.lr();
    } else {
      lr_ = schedule_.lr(base_lr_, iter_);
      opt_.set_lr(lr_);
    }
  }

  // Iteration mode: every log_interval iterations and at the end. Epoch mode, as mmdet:
  // every log_interval iterations within the epoch and at each epoch's end.
  bool log_due(std::int64_t max_iters) const {
    if (iter_ == max_iters) return true;
    if (!by_epoch_) return iter_ % opt_o_.log_interval == 0;
    const std::int64_t in_epoch = (iter_ - 1) % batches_per_epoch() + 1;
    return in_epoch % opt_o_.log_interval == 0 || in_epoch == batches_per_epoch();
  }

  void accumulate(const NamedLosses& losses, double total, double time_s, double data_time_s) {
    for (const auto& [name, v] : losses) {
      auto it = std::find_if(window_.begin(), window_.end(), [&](const auto& e) { return e.first == name; });
      if (it == window_.end()) window_.emplace_back(name, v);
      else it->second += v;
    }
    window_total_ += total;
    window_time_ += time_s;
    window_data_time_ += data_time_s;
    ++window_count_;
  }

  // One progress line and one log record with the interval's means; resets the window.
  void write_interval(double mean_iter_s) {
    const double n = static_cast<double>(window_count_);
    const std::int64_t ipe = batches_per_epoch();
    const std::int64_t epoch = (iter_ - 1) / ipe + 1, iter_in_epoch = (iter_ - 1) % ipe + 1;
    nlohmann::json rec = {{"mode", "train"}, {"epoch", epoch}, {"iter", by_epoch_ ? iter_in_epoch : iter_}, {"lr", lr_}};
    ProgressLine line;
    line.by_epoch = by_epoch_;
    line.epoch = epoch;
    line.iter_in_epoch = iter_in_epoch;
    line.iters_per_epoch = ipe;
    line.iter = iter_;
    line.max_iters = max_iters_;
    line.lr = lr_;
    for (const auto& [name, sum] : window_) {
      rec[name] = sum / n;
      line.losses.emplace_back(name, sum / n);
    }
    const double mean_total = window_total_ / n;
    const long memory = peak_rss_mb();
    rec["loss"] = mean_total;
    rec["time"] = window_time_ / n;
    rec["data_time"] = window_data_time_ / n;
    rec["memory"] = memory;
    if (writes_files()) log_.write(rec);
    loss_curve_.emplace_back(iter_, mean_total);
    if (opt_o_.print) {
      line.losses.emplace_back("loss", mean_total);
      line.time_s = window_time_ / n;
      line.data_time_s = window_data_time_ / n;
      line.memory_mb = memory;
      line.iters_per_s = mean_iter_s > 0 ? 1 / mean_iter_s : 0;
      line.eta_s = mean_iter_s * static_cast<double>(max_iters_ - iter_);
      std::printf("%s\n", line.str().c_str());
      std::fflush(stdout);
    }
    window_.clear();
    window_total_ = window_time_ = window_data_time_ = 0;
    window_count_ = 0;
  }

  // The settings resume() compares with a checkpoint's: the caller's, the seed, the loader's
  // batches per epoch.
  RunSettings run_settings() const {
    RunSettings s = opt_o_.run_settings;
    s["seed"] = std::to_string(opt_o_.seed);
    s["iters_per_epoch"] = std::to_string(batches_per_epoch());
    return s;
  }

  // Stops training (on every rank) when the state has a NaN/Inf, naming the iteration (1-based,
  // as logged) and the first bad tensor (train/health_check.hpp).
  void check_health(std::int64_t iteration, HealthCheckParts parts) {
    const bool everything = parts.parameters && parts.gradients && parts.buffers && parts.optimizer_state;
    if (everything && fully_checked_at_ == iteration) return;  // the log interval's check, before a save
    const std::optional<NonFinite> bad = first_non_finite(model_, &opt_, parts);
    std::int64_t any = bad ? 1 : 0;
    if (dp_.active()) dp_.communicator().all_reduce(&any, 1, dist::ReduceOp::Max);
    if (!any) {
      if (everything) fully_checked_at_ = iteration;
      return;
    }
    const std::int64_t epoch = (iteration - 1) / batches_per_epoch() + 1;
    detail::fail("training stopped at iteration ", iteration, " (epoch ", epoch, "): ",
                 bad ? bad->str() : "another rank found a non-finite training state (see its error)",
                 "; nothing from this iteration is saved; ", last_good_text());
  }

  // Saves iter_<N>.safetensors, then latest.safetensors, after checking that the whole state
  // (parameters, gradients, buffers, optimizer state) is finite: a bad state is never saved,
  // the last good checkpoint stays.
  void save() {
    check_health(iter_, {});
    if (!writes_files()) {  // the parameters are the same on every rank; rank 0 saves them
      last_checkpoint_iter_ = iter_;
      return;
    }
    std::map<std::string, std::string> meta = opt_o_.metadata;
    meta["iter"] = std::to_string(iter_);
    meta["epoch"] = std::to_string(iter_ / batches_per_epoch());
    meta["iters_per_epoch"] = std::to_string(batches_per_epoch());
    meta["lr"] = std::to_string(lr_);
    meta["seed"] = std::to_string(opt_o_.seed);
    meta["by_epoch"] = by_epoch_ ? "true" : "false";
    record_run_settings(run_settings(), meta);
    const std::filesystem::path dir = opt_o_.work_dir;
    std::filesystem::create_directories(dir);
    io::save_checkpoint((dir / ("iter_" + std::to_string(iter_) + ".safetensors")).string(), model_, &opt_, meta);
    const std::string latest = (dir / "latest.safetensors").string();
    io::save_checkpoint(latest, model_, &opt_, meta);
    last_checkpoint_ = latest;
    last_checkpoint_iter_ = iter_;
    if (opt_o_.print) std::printf("saved checkpoint %s (iteration %lld)\n", latest.c_str(), static_cast<long long>(iter_));
  }

  std::string last_good_text() const {
    if (last_checkpoint_.empty()) return "no checkpoint was written before";
    return "the last good checkpoint is " + last_checkpoint_ + " from iteration " + std::to_string(last_checkpoint_iter_);
  }

  [[noreturn]] void stop_on_bad_loss(const std::string& name, double value) {
    const std::int64_t it = iter_ + 1;  // 1-based, as logged
    detail::fail("training stopped at iteration ", it, " (epoch ", (it - 1) / batches_per_epoch() + 1, "): loss '",
                 name, "' is ", value, "; ", last_good_text());
  }

  Model& model_;
  Loader& loader_;
  Optimizer& opt_;
  Schedule schedule_;
  LossFn loss_fn_;
  InputFn input_fn_;
  TrainerOptions opt_o_;
  double base_lr_, lr_ = 0;
  std::int64_t iter_ = 0, max_iters_ = 0;
  bool by_epoch_ = false;
  JsonLog log_;
  std::string last_checkpoint_;
  std::int64_t last_checkpoint_iter_ = 0;
  std::int64_t fully_checked_at_ = -1;  // the iteration whose whole state was last found finite
  // The current log interval's sums.
  NamedLosses window_;
  double window_total_ = 0, window_time_ = 0, window_data_time_ = 0;
  std::int64_t window_count_ = 0;
  std::vector<std::pair<std::int64_t, double>> loss_curve_;
  // Scratch reused every iteration.
  Output output_, doutput_;
  Input dinput_;
  // Data parallel (inactive with one rank).
  dist::DataParallel<T, B> dp_;
  bool state_broadcast_ = false;
  bool stopped_by_deadline_ = false;
  std::vector<double> loss_values_;
};

}  // namespace gcnet
