// Trainer: exact resume, the log.json records, checkpoint intervals, the NaN stop, and the
// log plot.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gcnet/gcnet.hpp"
#include "gcnet/train/log_plot.hpp"
#include "gcnet/train/time_budget.hpp"
#include "gcnet/train/trainer.hpp"

using namespace gcnet;
namespace fs = std::filesystem;

namespace {

struct Batch {
  Tensor<float> images;
  Tensor<std::int64_t> labels;
};

// A small reproducible dataset with the data loader's interface: sample i comes from Philox
// stream (seed, 1000 + i); each epoch's order is a shuffle drawn from (seed, epoch).
class TinyLoader {
 public:
  TinyLoader(std::uint64_t seed, index_t samples, index_t batch) : seed_(seed), samples_(samples), batch_(batch) {}
  index_t batches_per_epoch() const { return samples_ / batch_; }
  void seek(std::int64_t global_batch) { next_ = global_batch; }
  Batch next() {
    const std::int64_t epoch = next_ / batches_per_epoch(), pos = next_ % batches_per_epoch();
    ++next_;
    std::vector<index_t> order(static_cast<std::size_t>(samples_));
    for (index_t i = 0; i < samples_; ++i) order[static_cast<std::size_t>(i)] = i;
    Rng shuffle(seed_, static_cast<std::uint64_t>(epoch));
    for (index_t i = samples_ - 1; i > 0; --i)
      std::swap(order[static_cast<std::size_t>(i)], order[shuffle.below(static_cast<std::uint64_t>(i + 1))]);
    Batch b{Tensor<float>(Shape{batch_, 2, 12, 12}), Tensor<std::int64_t>(Shape{batch_})};
    for (index_t j = 0; j < batch_; ++j) {
      const index_t s = order[static_cast<std::size_t>(pos * batch_ + j)];
      Rng r(seed_, 1000 + static_cast<std::uint64_t>(s));
      b.labels[j] = static_cast<std::int64_t>(r.below(3));
      for (index_t k = 0; k < 288; ++k) b.images[j * 288 + k] = static_cast<float>(r.normal() + 0.5 * b.labels[j] * (k % 2));
    }
    return b;
  }

 private:
  std::uint64_t seed_;
  index_t samples_, batch_;
  std::int64_t next_ = 0;
};

// 12x12 images: Conv2d takes its multi-threaded band path (at least 128 output positions),
// whose weight gradient must not depend on thread timing for resume to be exact.
using Net = Seq<Conv2d<>, BatchNorm2d<>, ReLU<>, GlobalAvgPool2d<>, Flatten<>, Linear<>>;
Net make_net(std::uint64_t seed) {
  manual_seed(seed);
  return Net{Conv2d<>({.in = 2, .out = 4, .kernel = 3, .padding = 1}), BatchNorm2d<>(4), ReLU<>(), GlobalAvgPool2d<>(),
             Flatten<>(), Linear<>(4, 3)};
}

// Depends on the iteration, so a resumed run that lost track of it shows.
struct TestSchedule {
  double lr(double base, std::int64_t it) const { return it < 3 ? base * (0.25 + 0.25 * it) : base * std::pow(0.9, it); }
};

// One training session: model, loader, optimizer, trainer, and the losses it saw.
struct Session {
  Net net;
  TinyLoader loader;
  Sgd<float> opt;
  CrossEntropyLoss<float> ce;
  std::vector<double> losses;
  int nan_at = -1;  // the call (1-based) whose loss is NaN
  Trainer<Net, TinyLoader, Sgd<float>, TestSchedule> trainer;

  Session(std::uint64_t init_seed, TrainerOptions o)
      : net(make_net(init_seed)),
        loader(5, 12, 4),
        opt(named_parameters(net), {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3}),
        trainer(net, loader, opt, TestSchedule{}, [this](const Tensor<float>& y, const Batch& b, Tensor<float>& dy) {
          double l = ce.forward(y, b.labels);
          ce.backward(dy);
          losses.push_back(l);
          if (static_cast<int>(losses.size()) == nan_at) l = std::numeric_limits<double>::quiet_NaN();
          return NamedLosses{{"loss_cls", l}, {"loss_half", 0.5 * l}};
        }, std::move(o)) {}
};

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("gcnet_test_trainer_" + std::to_string(getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TrainerOptions quiet(const fs::path& dir, std::int64_t log_interval = 2, std::int64_t ckpt = 0) {
  TrainerOptions o;
  o.work_dir = dir.string();
  o.log_interval = log_interval;
  o.checkpoint_interval = ckpt;
  o.print = false;
  return o;
}

std::vector<fs::path> logs_in(const fs::path& dir) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().string().ends_with(".log.json")) v.push_back(e.path());
  return v;
}

std::vector<nlohmann::json> read_lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<nlohmann::json> v;
  for (std::string line; std::getline(in, line);) v.push_back(nlohmann::json::parse(line));
  return v;
}

// Every parameter and buffer bit-identical.
bool same_state(Net& a, Net& b) {
  auto pa = named_parameters(a), pb = named_parameters(b);
  auto ba = named_buffers(a), bb = named_buffers(b);
  std::vector<std::pair<const Tensor<float>*, const Tensor<float>*>> pairs;
  for (std::size_t i = 0; i < pa.size(); ++i) pairs.emplace_back(&pa[i].second->value, &pb[i].second->value);
  for (std::size_t i = 0; i < ba.size(); ++i) pairs.emplace_back(ba[i].second, bb[i].second);
  for (auto [x, y] : pairs)
    if (x->shape() != y->shape() || std::memcmp(x->data(), y->data(), sizeof(float) * x->numel()) != 0) return false;
  return true;
}

}  // namespace

TEST_CASE("resume continues bit for bit: same losses and parameters as an uninterrupted run") {
  constexpr int k = 5;  // mid-epoch (3 batches per epoch), after the schedule's warmup
  const fs::path dir_a = fresh_dir("uninterrupted"), dir_b = fresh_dir("interrupted");
  Session a(11, quiet(dir_a));
  a.trainer.run(2 * k);
  REQUIRE(a.losses.size() == 2 * k);

  std::vector<double> resumed_losses;
  {
    Session b(11, quiet(dir_b, 2, k));
    b.trainer.run(k);
    resumed_losses = b.losses;
  }
  REQUIRE(fs::exists(dir_b / "latest.safetensors"));
  // New objects with another initialization: everything must come from the checkpoint.
  Session c(12345, quiet(dir_b, 2, k));
  CHECK_FALSE(same_state(c.net, a.net));
  c.trainer.resume((dir_b / "latest.safetensors").string());
  CHECK(c.trainer.iter() == k);
  c.trainer.run(2 * k);
  resumed_losses.insert(resumed_losses.end(), c.losses.begin(), c.losses.end());

  REQUIRE(resumed_losses.size() == a.losses.size());
  for (std::size_t i = 0; i < a.losses.size(); ++i) {
    CAPTURE(i);
    CHECK(resumed_losses[i] == a.losses[i]);  // exact, not approximate
  }
  CHECK(same_state(c.net, a.net));
  CHECK(c.trainer.lr() == a.trainer.lr());
  CHECK(a.losses.back() != a.losses.front());  // it trained
}

TEST_CASE("log.json: a meta line, then one mmdet-shaped record per log interval") {
  const fs::path dir = fresh_dir("log");
  Session s(3, quiet(dir, 3));
  s.trainer.run(7);
  const auto logs = logs_in(dir);
  REQUIRE(logs.size() == 1);
  CHECK(logs[0] == s.trainer.log_path());
  const auto lines = read_lines(logs[0]);
  REQUIRE(lines.size() == 4);  // meta + iterations 3, 6 and the last, 7
  CHECK(lines[0].contains("env_info"));
  CHECK(lines[0]["iters_per_epoch"] == 3);
  const int iters[] = {3, 6, 7};
  for (int r = 0; r < 3; ++r) {
    const auto& rec = lines[static_cast<std::size_t>(r + 1)];
    for (const char* key : {"mode", "epoch", "iter", "lr", "loss_cls", "loss_half", "loss", "time", "data_time", "memory"})
      CHECK_MESSAGE(rec.contains(key), key);
    CHECK(rec["mode"] == "train");
    CHECK(rec["iter"] == iters[r]);
    CHECK(rec["epoch"] == (iters[r] - 1) / 3 + 1);
    CHECK(rec["memory"].get<double>() > 0);
    CHECK(rec["time"].get<double>() >= rec["data_time"].get<double>());
    CHECK(rec["loss"].get<double>() == doctest::Approx(1.5 * rec["loss_cls"].get<double>()));
  }
  // The record's losses are the means over its interval.
  const double mean_first = (s.losses[0] + s.losses[1] + s.losses[2]) / 3;
  CHECK(lines[1]["loss_cls"].get<double>() == doctest::Approx(mean_first).epsilon(1e-12));
  CHECK(lines[3]["loss_cls"].get<double>() == doctest::Approx(s.losses[6]).epsilon(1e-12));
  CHECK(lines[3]["lr"].get<double>() == doctest::Approx(TestSchedule{}.lr(0.1, 6)));
}

TEST_CASE("run_epochs logs the iteration within the epoch") {
  const fs::path dir = fresh_dir("epochs");
  Session s(3, quiet(dir, 2));
  s.trainer.run_epochs(2);
  CHECK(s.trainer.iter() == 6);
  const auto lines = read_lines(logs_in(dir).at(0));
  // Every 2 iterations within the epoch and at each epoch's end (3 batches per epoch).
  REQUIRE(lines.size() == 5);
  const int expected[4][2] = {{1, 2}, {1, 3}, {2, 2}, {2, 3}};
  for (int r = 0; r < 4; ++r) {
    CHECK(lines[static_cast<std::size_t>(r + 1)]["epoch"] == expected[r][0]);
    CHECK(lines[static_cast<std::size_t>(r + 1)]["iter"] == expected[r][1]);
  }
  CHECK(lines[0]["by_epoch"] == true);
  const TrainLog log = read_train_log(logs_in(dir).at(0).string());
  CHECK(log.iter == std::vector<double>{2, 3, 5, 6});
}

TEST_CASE("checkpoints every N iterations and at the end, with the iteration in the metadata") {
  const fs::path dir = fresh_dir("ckpt");
  Session s(3, quiet(dir, 10, 3));
  s.trainer.run(7);
  for (const char* f : {"iter_3.safetensors", "iter_6.safetensors", "iter_7.safetensors", "latest.safetensors"})
    CHECK_MESSAGE(fs::exists(dir / f), f);
  CHECK_FALSE(fs::exists(dir / "iter_1.safetensors"));
  CHECK_FALSE(fs::exists(dir / "iter_4.safetensors"));
  CHECK(io::read_checkpoint_metadata((dir / "latest.safetensors").string()).at("iter") == "7");
  CHECK(io::read_checkpoint_metadata((dir / "iter_3.safetensors").string()).at("iter") == "3");
  CHECK(s.trainer.last_checkpoint() == (dir / "latest.safetensors").string());
}

TEST_CASE("a deadline stops training at the iteration reached, with a log record and a checkpoint") {
  const fs::path dir = fresh_dir("deadline");
  TrainerOptions o = quiet(dir, 10);
  o.deadline = std::chrono::steady_clock::now();  // already passed: one iteration, then the stop
  Session s(3, o);
  s.trainer.run(7);
  CHECK(s.trainer.stopped_by_deadline());
  CHECK(s.trainer.iter() == 1);
  CHECK(io::read_checkpoint_metadata((dir / "latest.safetensors").string()).at("iter") == "1");
  const auto lines = read_lines(logs_in(dir).at(0));
  REQUIRE(lines.size() == 2);  // the meta line and the record of the iteration done
  CHECK(lines[1]["iter"] == 1);

  // A deadline far away changes nothing: the run ends at max_iters.
  const fs::path dir2 = fresh_dir("deadline_far");
  TrainerOptions far = quiet(dir2, 10);
  far.deadline = std::chrono::steady_clock::now() + std::chrono::hours(1);
  Session t(3, far);
  t.trainer.run(7);
  CHECK_FALSE(t.trainer.stopped_by_deadline());
  CHECK(t.trainer.iter() == 7);
}

TEST_CASE("replan: an answer at a log interval becomes the run's length") {
  const fs::path dir = fresh_dir("replan");
  TrainerOptions o = quiet(dir, 2);
  int calls = 0;
  o.replan = [&calls](std::int64_t iter, std::int64_t planned, double per_iter) {
    ++calls;
    CHECK(per_iter > 0);
    return iter == 2 ? planned + 3 : planned;
  };
  Session s(3, o);
  s.trainer.run(4);
  CHECK(s.trainer.iter() == 7);
  CHECK(calls == 3);  // after iterations 2, 4 and 6; not after the last
  CHECK(io::read_checkpoint_metadata((dir / "latest.safetensors").string()).at("iter") == "7");
}

TEST_CASE("PolyLr::set_max_iters: the lr follows the new length") {
  PolyLr p({.max_iters = 11, .power = 1.0, .eta_min = 0});
  CHECK(p.lr(1.0, 5) == doctest::Approx(0.5));
  p.set_max_iters(21);
  CHECK(p.lr(1.0, 5) == doctest::Approx(0.75));
  CHECK_THROWS_WITH_AS(p.set_max_iters(0), doctest::Contains("max_iters must be > 0"), Error);
}

TEST_CASE("TimeBudget: the plan, re-plans in the first half only, and too short a budget") {
  using Clock = std::chrono::steady_clock;
  const TimeBudget b(100.0, Clock::now());
  // The hard end keeps min(1 s, 2%) for the final save: 99 s, 97% of it planned.
  const auto to_end = std::chrono::duration<double>(b.deadline() - Clock::now()).count();
  CHECK(to_end == doctest::Approx(99.0).epsilon(0.01));
  const std::int64_t n = b.plan(0.5);
  CHECK(n >= 190);
  CHECK(n <= 193);  // floor(0.97 * 99 / 0.5) = 192
  CHECK(b.iterations_left(0.25) == doctest::Approx(2 * n).epsilon(0.02));
  const auto replan = b.replanner();
  CHECK(replan(10, 100, 0.5) == 10 + b.iterations_left(0.5));  // first half: what fits from here
  CHECK(replan(60, 100, 0.5) == 100);                          // second half: kept
  const TimeBudget past(1.0, Clock::now() - std::chrono::seconds(5));
  CHECK(past.iterations_left(0.1) == 0);
  CHECK_THROWS_WITH_AS((void)past.plan(0.1), doctest::Contains("--time-budget 1 s leaves no time to train"), Error);
  CHECK_THROWS_WITH_AS(TimeBudget(0.0, Clock::now()), doctest::Contains("positive number of seconds"), Error);
  CHECK_THROWS_WITH_AS((void)b.iterations_left(0.0), doctest::Contains("seconds per iteration must be positive"), Error);
}

TEST_CASE("a NaN loss stops training naming the iteration and keeps the last good checkpoint") {
  const fs::path dir = fresh_dir("nan");
  Session s(3, quiet(dir, 1, 2));
  s.nan_at = 5;
  CHECK_THROWS_WITH_AS(s.trainer.run(8),
                       doctest::Contains("training stopped at iteration 5 (epoch 2): loss 'loss_cls' is nan"),
                       gcnet::Error);
  CHECK(s.trainer.iter() == 4);
  CHECK(fs::exists(dir / "iter_4.safetensors"));
  CHECK_FALSE(fs::exists(dir / "iter_5.safetensors"));
  CHECK_FALSE(fs::exists(dir / "iter_6.safetensors"));
  CHECK(io::read_checkpoint_metadata((dir / "latest.safetensors").string()).at("iter") == "4");
  try {
    Session t(3, quiet(fresh_dir("nan2"), 1, 2));
    t.nan_at = 5;
    t.trainer.run(8);
  } catch (const gcnet::Error& e) {
    CHECK(std::string(e.what()).find("last good checkpoint is") != std::string::npos);
    CHECK(std::string(e.what()).find("latest.safetensors from iteration 4") != std::string::npos);
  }
  // With no checkpoint yet the message says so.
  Session u(3, quiet(fresh_dir("nan3"), 1, 0));
  u.nan_at = 1;
  CHECK_THROWS_WITH_AS(u.trainer.run(3), doctest::Contains("no checkpoint was written before"), gcnet::Error);
}

TEST_CASE("resume from a file that is not a trainer checkpoint names the file") {
  const fs::path dir = fresh_dir("bad_resume");
  Session s(3, quiet(dir));
  CHECK_THROWS_WITH_AS(s.trainer.resume((dir / "missing.safetensors").string()),
                       doctest::Contains("missing.safetensors"), gcnet::Error);
}

TEST_CASE("plot: a trainer's log becomes an SVG with loss and lr panels") {
  const fs::path dir = fresh_dir("plot");
  Session s(3, quiet(dir, 2));
  s.trainer.run(8);
  const std::string svg_path = (dir / "curve.svg").string();
  plot_train_log(s.trainer.log_path().string(), svg_path);
  std::ifstream in(svg_path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string svg = ss.str();
  CHECK(svg.starts_with("<?xml"));
  CHECK(svg.find("<svg") != std::string::npos);
  CHECK(svg.ends_with("</svg>\n"));
  CHECK(svg.find(">loss_cls<") != std::string::npos);
  CHECK(svg.find(">learning rate<") != std::string::npos);
  std::size_t polylines = 0;
  for (std::size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) ++polylines;
  CHECK(polylines == 4);  // loss, loss_cls, loss_half; lr

  const TrainLog log = read_train_log(s.trainer.log_path().string());
  CHECK(log.iter == std::vector<double>{2, 4, 6, 8});
  CHECK(log.loss_names.front() == "loss");
}

TEST_CASE("plot: epoch-based logs are placed on the global iteration axis") {
  const fs::path dir = fresh_dir("plot_epochs");
  const fs::path p = dir / "e.log.json";
  std::ofstream(p) << R"({"env_info": "x", "by_epoch": true, "iters_per_epoch": 10})" "\n"
                   << R"({"mode": "train", "epoch": 1, "iter": 10, "lr": 0.1, "loss": 2.0})" "\n"
                   << R"({"mode": "val", "epoch": 1, "iter": 10, "lr": 0.1, "mAP": 0.3})" "\n"
                   << R"({"mode": "train", "epoch": 2, "iter": 5, "lr": 0.1, "loss": 1.5})" "\n";
  const TrainLog log = read_train_log(p.string());
  CHECK(log.iter == std::vector<double>{10, 15});
  CHECK(log.losses.at("loss") == std::vector<double>{2.0, 1.5});
}

TEST_CASE("plot: a missing or malformed log is an error naming the file") {
  const fs::path dir = fresh_dir("plot_bad");
  const std::string missing = (dir / "nope.log.json").string();
  CHECK_THROWS_WITH_AS(read_train_log(missing), doctest::Contains("nope.log.json: cannot open"), gcnet::Error);

  const fs::path bad = dir / "bad.log.json";
  std::ofstream(bad) << R"({"env_info": "x"})" "\n" << "{\"mode\": \"train\", \"iter\": 1,\n";
  CHECK_THROWS_WITH_AS(plot_train_log(bad.string(), (dir / "bad.svg").string()),
                       doctest::Contains("bad.log.json: line 2 is not valid JSON"), gcnet::Error);
  CHECK_FALSE(fs::exists(dir / "bad.svg"));

  const fs::path empty = dir / "empty.log.json";
  std::ofstream(empty) << R"({"env_info": "x"})" "\n";
  CHECK_THROWS_WITH_AS(read_train_log(empty.string()), doctest::Contains("empty.log.json: no training records"),
                       gcnet::Error);

  const fs::path no_lr = dir / "nolr.log.json";
  std::ofstream(no_lr) << R"({"mode": "train", "iter": 1, "loss": 1})" "\n";
  CHECK_THROWS_WITH_AS(read_train_log(no_lr.string()), doctest::Contains("nolr.log.json: line 1 (a train record) has no number 'lr'"),
                       gcnet::Error);
}
