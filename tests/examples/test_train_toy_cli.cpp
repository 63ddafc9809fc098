// The demo's command-line edges (issue 14, finding 8), run as a user would: gcnet_train_toy
// (path in GCNET_TRAIN_TOY) with tiny settings, its exit status and output checked.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "../support/run_program.hpp"

namespace fs = std::filesystem;
using gcnet::test::Run;

namespace {

// Runs the demo with `args` (stdout and stderr together), at most `seconds` long.
gcnet::test::Run train_toy(const std::string& args, int seconds = 60) {
  return gcnet::test::run_program(GCNET_TRAIN_TOY, args, seconds);
}

fs::path fresh(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("gcnet_test_train_toy_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Small and fast: 16 images of 8x8, batches of 4.
std::string tiny(const fs::path& dir, int iters, int batch = 4) {
  return "--iters " + std::to_string(iters) + " --samples 16 --size 8 --batch " + std::to_string(batch) +
         " --log-interval 2 --work-dir '" + dir.string() + "'";
}

}  // namespace

TEST_CASE("--seed -1 is refused (it became 2^64 - 1)") {
  const Run r = train_toy(tiny(fresh("seed"), 2) + " --seed -1");
  INFO(r.output);
  CHECK(r.status != 0);
  CHECK(r.output.find("--seed") != std::string::npos);
  CHECK(r.output.find("negative") != std::string::npos);
}

TEST_CASE("a FIFO given as --resume is refused at once instead of hanging") {
  const fs::path dir = fresh("fifo");
  const fs::path fifo = dir / "latest.safetensors";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const Run r = train_toy(tiny(dir, 2) + " --resume '" + fifo.string() + "'", 20);
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK(r.output.find(fifo.string() + ": cannot open: not a regular file") != std::string::npos);
}

TEST_CASE("resuming a finished run says there is nothing to train") {
  const fs::path dir = fresh("finished");
  REQUIRE(train_toy(tiny(dir, 4)).status == 0);
  const Run r = train_toy(tiny(dir, 4) + " --resume '" + (dir / "latest.safetensors").string() + "'");
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find("is at iteration 4, the end of a run of --iters 4: nothing to train") != std::string::npos);
}

TEST_CASE("resuming with another --seed or --batch is refused unless --allow-settings-change") {
  const fs::path dir = fresh("settings");
  REQUIRE(train_toy(tiny(dir, 4) + " --seed 1 --checkpoint-interval 2").status == 0);
  const std::string ckpt = " --resume '" + (dir / "iter_2.safetensors").string() + "'";
  Run r = train_toy(tiny(dir, 4) + " --seed 2" + ckpt);
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK(r.output.find("settings differ from the checkpoint's: seed 1 -> 2") != std::string::npos);
  r = train_toy(tiny(dir, 4, 8) + " --seed 1" + ckpt);
  CHECK(r.status == 2);
  CHECK(r.output.find("batch 4 -> 8") != std::string::npos);
  r = train_toy(tiny(dir, 4) + " --seed 1" + ckpt);  // the same settings: continues
  CHECK(r.status == 0);
  r = train_toy(tiny(dir, 4) + " --seed 2 --allow-settings-change" + ckpt);
  CHECK(r.status == 0);
  CHECK(r.output.find("warning: resuming") != std::string::npos);
}
