// The trainer under bad numbers, limits and edge cases (issue 14): a NaN input or gradient
// stops training at the iteration it appears in, naming the tensor; an infinite BatchNorm
// buffer never replaces latest.safetensors; a file-size limit is an error, not a silent
// death; temporary files of killed runs are cleaned; a resume with other settings is
// refused unless allowed; resuming a finished run says so.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gcnet/gcnet.hpp"
#include "gcnet/train/trainer.hpp"

#include "support/files.hpp"

using namespace gcnet;
namespace fs = std::filesystem;

namespace {

struct Batch {
  Tensor<float> images;
  Tensor<std::int64_t> labels;
};

// Reproducible batches (global batch g from Philox stream (seed, g)); `tamper` may change
// batch g before it is returned, to inject NaN or huge values at a chosen iteration.
class Loader {
 public:
  explicit Loader(index_t batch = 4, index_t per_epoch = 3) : batch_(batch), per_epoch_(per_epoch) {}
  index_t batches_per_epoch() const { return per_epoch_; }
  void seek(std::int64_t g) { next_ = g; }
  Batch next() {
    const std::int64_t g = next_++;
    Rng r(5, 1000 + static_cast<std::uint64_t>(g));
    Batch b{Tensor<float>(Shape{batch_, 2, 6, 6}), Tensor<std::int64_t>(Shape{batch_})};
    for (index_t j = 0; j < batch_; ++j) b.labels[j] = static_cast<std::int64_t>(r.below(3));
    for (index_t k = 0; k < b.images.numel(); ++k) b.images[k] = static_cast<float>(r.normal());
    if (tamper) tamper(g, b);
    return b;
  }
  std::function<void(std::int64_t, Batch&)> tamper;

 private:
  index_t batch_, per_epoch_;
  std::int64_t next_ = 0;
};

// BatchNorm first, so that huge inputs reach its statistics directly.
using Net = Seq<BatchNorm2d<>, Conv2d<>, ReLU<>, GlobalAvgPool2d<>, Flatten<>, Linear<>>;
Net make_net() {
  manual_seed(3);
  return Net{BatchNorm2d<>(2), Conv2d<>({.in = 2, .out = 4, .kernel = 3, .padding = 1}), ReLU<>(), GlobalAvgPool2d<>(),
             Flatten<>(), Linear<>(4, 3)};
}

struct Session {
  Net net = make_net();
  Loader loader;
  Sgd<float> opt{named_parameters(net), {.lr = 0.05, .momentum = 0.9}};
  CrossEntropyLoss<float> ce;
  // (iteration (1-based), dy) -> may damage the output gradient.
  std::function<void(int, Tensor<float>&)> damage_dy;
  int calls = 0;
  Trainer<Net, Loader, Sgd<float>> trainer;

  Session(TrainerOptions o, index_t batch = 4, index_t per_epoch = 3)
      : loader(batch, per_epoch),
        trainer(net, loader, opt, ConstantLr{}, [this](const Tensor<float>& y, const Batch& b, Tensor<float>& dy) {
          const double l = ce.forward(y, b.labels);
          ce.backward(dy);
          ++calls;
          if (damage_dy) damage_dy(calls, dy);
          return NamedLosses{{"loss_cls", l}};
        }, std::move(o)) {}
};

fs::path fresh(const std::string& name) { return test::scratch_dir("training_health", name); }

TrainerOptions quiet(const fs::path& dir, std::int64_t log_interval, std::int64_t ckpt) {
  TrainerOptions o;
  o.work_dir = dir.string();
  o.log_interval = log_interval;
  o.checkpoint_interval = ckpt;
  o.print = false;
  return o;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// Every tensor of a checkpoint is finite.
bool all_finite(const fs::path& ckpt) {
  io::SafetensorsReader r(ckpt.string());
  for (const auto& n : r.names()) {
    const auto t = r.tensor<double>(n);
    for (index_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(t[i])) return false;
  }
  return true;
}

int log_files(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().string().ends_with(".log.json");
  return n;
}

}  // namespace

// Finding 5: ReLU(NaN) was 0, so a NaN pixel never reached the loss while backward wrote NaN
// into the weights; training stopped (at a save) long after. Now the loss of that very
// iteration is NaN.
TEST_CASE("a NaN in the input stops training at that iteration and the last checkpoint stays good") {
  const fs::path dir = fresh("nan_input");
  Session s(quiet(dir, 10, 2));
  s.loader.tamper = [](std::int64_t g, Batch& b) {
    if (g == 4) b.images[7] = std::numeric_limits<float>::quiet_NaN();  // the 5th iteration's batch
  };
  const std::string e = error_of([&] { s.trainer.run(12); });
  CHECK(e.find("training stopped at iteration 5 (epoch 2): loss 'loss_cls' is nan") != std::string::npos);
  CHECK(e.find("the last good checkpoint is " + (dir / "latest.safetensors").string() + " from iteration 4") !=
        std::string::npos);
  CHECK(io::read_checkpoint_metadata((dir / "latest.safetensors").string()).at("iter") == "4");
  CHECK(all_finite(dir / "latest.safetensors"));
}

// Finding 5: a NaN gradient with a finite loss (here from the loss's own gradient) was caught
// only when the parameters were saved, long after; now before the step of that iteration.
TEST_CASE("a non-finite gradient stops training before the step, naming the iteration and the tensor") {
  const fs::path dir = fresh("nan_grad");
  Session s(quiet(dir, 10, 0));
  s.damage_dy = [](int call, Tensor<float>& dy) {
    if (call == 3) dy[1] = std::numeric_limits<float>::infinity();
  };
  const std::string e = error_of([&] { s.trainer.run(9); });
  CHECK(e.find("training stopped at iteration 3 (epoch 1): gradient of '") != std::string::npos);
  CHECK(e.find("' is not finite (") != std::string::npos);
  CHECK(e.find("no checkpoint was written before") != std::string::npos);
  CHECK(s.trainer.iter() == 2);
  for (const auto& [name, p] : named_parameters(s.net))  // the step was not taken
    for (index_t i = 0; i < p->value.numel(); ++i) CHECK(std::isfinite(p->value[i]));
}

// Finding 6: inputs of 1e38 made BatchNorm's running_var infinite with a finite loss, and the
// next save overwrote latest.safetensors with it.
TEST_CASE("an infinite BatchNorm buffer stops training and never replaces latest.safetensors") {
  const fs::path dir = fresh("inf_buffer");
  Session s(quiet(dir, 10, 2));
  s.loader.tamper = [](std::int64_t g, Batch& b) {
    if (g == 2)
      for (index_t k = 0; k < 36; ++k) b.images[k] = 1e38f;  // iteration 3, channel 0 of image 0
  };
  const std::string e = error_of([&] { s.trainer.run(6); });
  CHECK(e.find("training stopped at iteration 3 (epoch 1): buffer '0.running_var' is not finite (inf at element 0)") !=
        std::string::npos);
  CHECK(io::read_checkpoint_metadata((dir / "latest.safetensors").string()).at("iter") == "2");
  CHECK(all_finite(dir / "latest.safetensors"));
  CHECK_FALSE(fs::exists(dir / "iter_4.safetensors"));
}

// Finding 7: under `ulimit -f` the trainer died of SIGXFSZ without a message, leaving a
// temporary file. Run in a child process with the limit between the log's size and a
// checkpoint's.
TEST_CASE("under a file-size limit the trainer stops with an error and leaves no temporary file") {
  const fs::path probe = fresh("fsize_probe");
  {
    Session s(quiet(probe, 100, 0));
    s.trainer.run(2);
  }
  std::uintmax_t log_size = 0;
  for (const auto& f : fs::directory_iterator(probe))
    if (f.path().string().ends_with(".log.json")) log_size = f.file_size();
  const std::uintmax_t ckpt_size = fs::file_size(probe / "latest.safetensors");
  const rlim_t limit = static_cast<rlim_t>(log_size + 256);
  REQUIRE(limit < ckpt_size);

  const fs::path dir = fresh("fsize");
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 5;
    try {
#if defined(_OPENMP)
      omp_set_num_threads(1);  // the parent's OpenMP thread team does not exist in the child
#endif
      struct rlimit lim {};
      lim.rlim_cur = lim.rlim_max = limit;
      if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(3);
      Session s(quiet(dir, 100, 0));
      const std::string e = error_of([&] { s.trainer.run(2); });
      code = e.find("iter_2.safetensors: cannot write: File too large (the file-size limit, ulimit -f, was reached)") !=
                     std::string::npos ? 0 : 4;
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  CHECK_MESSAGE(code == 0, "child exit status ", code, " (", 128 + SIGXFSZ, ": killed by SIGXFSZ)");
  for (const auto& f : fs::directory_iterator(dir)) {
    CAPTURE(f.path().string());
    CHECK(f.path().string().ends_with(".log.json"));  // no checkpoint, no temporary file
  }
}

// Finding 7: temporary files of a killed run stayed forever; the next save removes them.
TEST_CASE("the next save removes temporary files that killed runs left in the work folder") {
  const fs::path dir = fresh("stale");
  const pid_t dead = ::fork();
  REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);  // a pid that no longer runs, as after kill -9
  const fs::path stale = dir / ("latest.safetensors.tmp-" + std::to_string(dead) + "-0");
  test::spit(stale, "half a checkpoint");
  Session s(quiet(dir, 10, 0));
  s.trainer.run(2);
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(dir / "latest.safetensors"));
}

// Finding 8: resuming with another seed or batch size was silently accepted and no longer exact.
TEST_CASE("resume refuses a checkpoint recorded with other run settings") {
  const fs::path dir = fresh("settings");
  TrainerOptions o = quiet(dir, 10, 0);
  o.seed = 3;
  o.run_settings = {{"batch", "4"}, {"lr", "0.05"}};
  {
    Session s(o);
    s.trainer.run(4);
  }
  const std::string ckpt = (dir / "latest.safetensors").string();
  TrainerOptions other = o;
  other.seed = 4;
  Session a(other);
  std::string e = error_of([&] { a.trainer.resume(ckpt); });
  CHECK(e.find(ckpt + ": the run would not continue exactly, its settings differ from the checkpoint's: seed 3 -> 4") == 0);
  CHECK(a.trainer.iter() == 0);
  other = o;
  other.run_settings["batch"] = "3";
  Session b(other, 3, 4);  // batch 3: 4 batches per epoch
  e = error_of([&] { b.trainer.resume(ckpt); });
  CHECK(e.find("batch 4 -> 3, iters_per_epoch 3 -> 4") != std::string::npos);
  CHECK(e.find("allow_settings_change") != std::string::npos);
  // The same settings resume.
  Session c(o);
  c.trainer.resume(ckpt);
  CHECK(c.trainer.iter() == 4);
}

TEST_CASE("resume accepts other run settings when allowed") {
  const fs::path dir = fresh("settings_allowed");
  TrainerOptions o = quiet(dir, 10, 0);
  o.seed = 3;
  {
    Session s(o);
    s.trainer.run(4);
  }
  o.seed = 4;
  o.allow_settings_change = true;
  Session a(o);
  a.trainer.resume((dir / "latest.safetensors").string());
  CHECK(a.trainer.iter() == 4);
  a.trainer.run(6);
  CHECK(io::read_checkpoint_metadata((dir / "latest.safetensors").string()).at("run.seed") == "4");
}

// Finding 8: resuming a finished run started an empty log, and the demo then failed on it
// with a misleading message.
TEST_CASE("resuming a finished run trains nothing and writes no new log") {
  const fs::path dir = fresh("finished");
  {
    Session s(quiet(dir, 10, 0));
    s.trainer.run(4);
  }
  REQUIRE(log_files(dir) == 1);
  Session s(quiet(dir, 10, 0));
  s.trainer.resume((dir / "latest.safetensors").string());
  CHECK_NOTHROW(s.trainer.run(4));
  CHECK(s.trainer.iter() == 4);
  CHECK(s.calls == 0);
  CHECK(log_files(dir) == 1);
}
