// The segmentation examples run as a user would (paths in GCNET_TRAIN_SEG / GCNET_TEST_SEG): a tiny
// training run at a reduced --img-scale with AdamW, whose checkpoint tells gcnet_test_seg the test
// scale (mmseg's test Resize), and the overrides of that scale.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "../support/run_program.hpp"

namespace fs = std::filesystem;
using gcnet::test::Run;

namespace {


fs::path work_root() { return fs::temp_directory_path() / ("gcnet_test_seg_cli_" + std::to_string(::getpid())); }

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A narrow segmentor trained for 3 iterations on 4 scenes resized to 64x64, once per process.
const fs::path& trained() {
  static const fs::path dir = [] {
    const fs::path d = work_root() / "train";
    fs::remove_all(d);
    const Run r = gcnet::test::run_program(GCNET_TRAIN_SEG,
                      "--scenes 4 --batch 2 --iters 3 --log-interval 1 --threads 1 --base-channels 4 --stem-channels 4 "
                      "--head-channels 8 --aux-channels 4 --img-scale 64 --optimizer adamw --lr 0.001 "
                      "--weight-decay 0.01 --work-dir '" + d.string() + "'");
    INFO(r.output);
    REQUIRE(r.status == 0);
    return d;
  }();
  return dir;
}

}  // namespace

TEST_CASE("gcnet_train_seg at --img-scale 64 with AdamW: the log says so, the checkpoint keeps the optimizer state") {
  const fs::path& d = trained();
  REQUIRE(fs::exists(d / "latest.safetensors"));
  std::string log;
  for (const auto& e : fs::directory_iterator(d))
    if (e.path().extension() == ".json") log = read_text(e.path());
  CHECK(log.find("\"optimizer\":\"adamw\"") != std::string::npos);
  CHECK(log.find("\"img_scale\":64") != std::string::npos);
  const std::string ckpt = read_text(d / "latest.safetensors");
  CHECK(ckpt.find(".exp_avg_sq") != std::string::npos);
  CHECK(ckpt.find("\"img_scale\":\"64\"") != std::string::npos);
}

TEST_CASE("gcnet_test_seg tests at the checkpoint's scale unless told otherwise") {
  const fs::path& d = trained();
  const std::string ckpt = "'" + (d / "latest.safetensors").string() + "'";
  for (const auto& [args, scale] : {std::pair<std::string, std::string>{"", "64"}, {"--img-scale 0", "0"},
                                    {"--img-scale 96 --aug-test --ratios 1 --no-flip", "96"}}) {
    CAPTURE(args);
    const fs::path out = work_root() / ("eval_" + scale + ".json");
    const Run r = gcnet::test::run_program(GCNET_TEST_SEG, ckpt + " --scenes 4 --threads 1 " + args + " --out '" + out.string() + "'");
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK(r.output.find("mIoU") != std::string::npos);
    CHECK(read_text(out).find("\"img_scale\": " + scale) != std::string::npos);
  }
}

TEST_CASE("gcnet_train_seg refuses a resume whose optimizer differs") {
  const fs::path& d = trained();
  const Run r = gcnet::test::run_program(GCNET_TRAIN_SEG, "--scenes 4 --batch 2 --iters 4 --threads 1 --base-channels 4 --stem-channels 4 "
                                     "--head-channels 8 --aux-channels 4 --img-scale 64 --lr 0.001 --weight-decay 0.01 "
                                     "--work-dir '" + (work_root() / "resumed").string() + "' --resume '" +
                                     (d / "latest.safetensors").string() + "'");
  INFO(r.output);
  CHECK(r.status != 0);
  CHECK(r.output.find("optimizer adamw -> sgd") != std::string::npos);
}

TEST_CASE("gcnet_train_seg --time-budget plans the schedule from the measured speed and trains within the budget") {
  const fs::path d = work_root() / "budget";
  const std::string small = "--scenes 4 --batch 2 --threads 1 --base-channels 4 --stem-channels 4 --head-channels 8 "
                            "--aux-channels 4 --img-scale 64 --log-interval 50 ";
  const auto t0 = std::chrono::steady_clock::now();
  const Run r = gcnet::test::run_program(GCNET_TRAIN_SEG, small + "--time-budget 4 --work-dir '" + d.string() + "'");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(r.output);
  REQUIRE(r.status == 0);
  const auto [planned, trained] = gcnet::test::budget_counts(r.output);
  CHECK(planned > 50);  // a 64x64 four-channel segmentor takes milliseconds per iteration
  CHECK(trained > 50);
  CHECK(took < 6.0);  // the budget, with room for the process's start and end
  // The log's meta line has the plan, its last record and the checkpoint the iterations trained;
  // the scratch folder is gone.
  std::string log;
  for (const auto& e : fs::directory_iterator(d))
    if (e.path().extension() == ".json") log = read_text(e.path());
  CHECK(log.find("\"max_iters\":" + std::to_string(planned)) != std::string::npos);
  CHECK(log.find("\"iter\":" + std::to_string(trained) + ",") != std::string::npos);
  CHECK(read_text(d / "latest.safetensors").find("\"iter\":\"" + std::to_string(trained) + "\"") != std::string::npos);
  CHECK_FALSE(fs::exists(d / ".speed-probe"));
}

TEST_CASE("gcnet_train_seg --time-budget: too short a budget, or with --iters, is refused with a clear error") {
  const std::string small = "--scenes 4 --batch 2 --threads 1 --base-channels 4 --stem-channels 4 --head-channels 8 "
                            "--aux-channels 4 --img-scale 64 --work-dir '" + (work_root() / "refused").string() + "' ";
  const Run too_short = gcnet::test::run_program(GCNET_TRAIN_SEG, small + "--time-budget 0.001");
  INFO(too_short.output);
  CHECK(too_short.status != 0);
  CHECK(too_short.output.find("leaves no time to train") != std::string::npos);
  const Run both = gcnet::test::run_program(GCNET_TRAIN_SEG, small + "--time-budget 10 --iters 5");
  INFO(both.output);
  CHECK(both.status != 0);
  CHECK(both.output.find("excludes") != std::string::npos);
}
