// Checkpoints: model + Sgd state + metadata round trips, strict and non-strict loading,
// the acceptance error cases (truncated, wrong-shaped, corrupt header, missing file), and
// atomicity under a real mid-write failure. The PyTorch .pth round trip runs from ctest
// through tools/convert_checkpoint.py (the skipped case at the end is its C++ step).
#include <doctest/doctest.h>

#include <sys/resource.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gcnet/io/checkpoint.hpp"
#include "gcnet/models/composed_bottleneck.hpp"
#include "gcnet/optim/sgd.hpp"
#include "gcnet/testing/parity.hpp"

#include "support/files.hpp"

using namespace gcnet;
namespace fs = std::filesystem;

namespace {

using test::has;
using test::slurp;
using test::spit;
fs::path scratch(const std::string& name) { return test::scratch_dir("checkpoint", name); }

Tensor<float, Cpu> random_input(const Shape& s, std::uint64_t seed) {
  Tensor<float, Cpu> t(s);
  Rng rng(seed);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(rng.normal());
  return t;
}

// One SGD step on sum(y * probe): moves weights, BN running stats and momentum buffers.
template <class Net>
void train_step(Net& net, Sgd<float>& opt, std::uint64_t seed) {
  const auto x = random_input(Shape{2, 8, 6, 6}, seed);
  Tensor<float, Cpu> y, dx(x.shape());
  net.forward(x, y);
  const auto dy = random_input(y.shape(), seed + 1);
  fill(dx, 0.0f);
  net.backward(x, y, dy, dx);
  opt.step();
}

using Block = ComposedBottleneckDown<float>;
Block make_block() { return make_composed_bottleneck_down<float>(8, 4, 2); }

// All model tensors (parameters and buffers) by name, as host copies.
std::map<std::string, Tensor<float, Cpu>> snapshot(Block& b) {
  std::map<std::string, Tensor<float, Cpu>> m;
  for (auto& [n, p] : named_parameters(b)) m[n] = clone(p->value);
  for (auto& [n, t] : named_buffers(b)) m[n] = clone(*t);
  return m;
}
bool same(const Tensor<float, Cpu>& a, const Tensor<float, Cpu>& b) {
  if (!(a.shape() == b.shape())) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}

// A trained block + optimizer saved at `path`; returns the block's tensors.
std::map<std::string, Tensor<float, Cpu>> save_trained(const std::string& path) {
  manual_seed(11);
  auto net = make_block();
  Sgd<float> opt(named_parameters(net), {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
  train_step(net, opt, 100);
  train_step(net, opt, 200);
  io::save_checkpoint(path, net, &opt, {{"iter", "2"}, {"epoch", "1"}, {"seed", "11"}});
  return snapshot(net);
}

}  // namespace

TEST_CASE("checkpoint: model, Sgd momentum and metadata round trip, then training continues identically") {
  const fs::path dir = scratch("roundtrip");
  const std::string path = (dir / "ckpt.safetensors").string();
  manual_seed(11);
  auto a = make_block();
  Sgd<float> opt_a(named_parameters(a), {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
  train_step(a, opt_a, 100);
  train_step(a, opt_a, 200);
  io::save_checkpoint(path, a, &opt_a, {{"iter", "2"}, {"epoch", "1"}, {"seed", "11"}});

  manual_seed(99);  // different initial weights
  auto b = make_block();
  Sgd<float> opt_b(named_parameters(b), {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
  const auto r = io::load_checkpoint(path, b, &opt_b);
  CHECK(r.complete());
  CHECK(r.optimizer_loaded);
  CHECK(r.meta_int("iter") == 2);
  CHECK(r.metadata.at("seed") == "11");
  CHECK(r.metadata.at("gcnet_version") == io::kGcnetVersion);
  CHECK(r.metadata.at("format") == "pt");
  const auto sa = snapshot(a), sb = snapshot(b);
  REQUIRE(sa.size() == sb.size());
  for (auto& [n, t] : sa) {
    CAPTURE(n);
    CHECK(same(t, sb.at(n)));
  }
  CHECK(sa.at("bn1.num_batches_tracked")[0] == 2.0f);
  REQUIRE(opt_b.state().size() == opt_a.state().size());
  for (std::size_t i = 0; i < opt_a.state().size(); ++i) CHECK(same(*opt_a.state()[i].second, *opt_b.state()[i].second));
  // The stored layout: mmdet names, optimizer prefix, I64 count.
  io::SafetensorsReader f(path);
  CHECK(f.contains("downsample.0.weight"));
  CHECK(f.contains("optimizer.conv1.weight.momentum_buffer"));
  CHECK(f.entry("bn2.num_batches_tracked").dtype == "I64");
  CHECK(io::read_checkpoint_metadata(path).at("epoch") == "1");
  // One more identical step on both: same weights (the momentum state really was restored).
  train_step(a, opt_a, 300);
  train_step(b, opt_b, 300);
  const auto ta = snapshot(a), tb = snapshot(b);
  for (auto& [n, t] : ta) {
    CAPTURE(n);
    CHECK(same(t, tb.at(n)));
  }
}

TEST_CASE("checkpoint: saved without an optimizer, loaded with nullptr, a strict optimizer request fails") {
  const fs::path dir = scratch("noopt");
  const std::string path = (dir / "model.safetensors").string();
  manual_seed(5);
  auto a = make_block();
  io::save_checkpoint(path, a, nullptr, {{"iter", "0"}});
  manual_seed(6);
  auto b = make_block();
  const auto r = io::load_checkpoint(path, b, nullptr);
  CHECK(r.complete());
  CHECK(!r.optimizer_loaded);
  CHECK(same(snapshot(a).at("conv2.weight"), snapshot(b).at("conv2.weight")));
  Sgd<float> opt(named_parameters(b), {.lr = 0.1, .momentum = 0.9});
  CHECK_THROWS_WITH_AS(io::load_checkpoint(path, b, &opt),
                       has(path + ": checkpoint does not match the model (strict load, nothing was loaded): 1 missing: "
                                  "optimizer.* (saved without an optimizer)"),
                       Error);
  const auto rn = io::load_checkpoint(path, b, &opt, {.strict = false});
  CHECK(!rn.optimizer_loaded);
  CHECK(rn.missing == std::vector<std::string>{"optimizer.* (saved without an optimizer)"});
  // A checkpoint WITH optimizer state loads into a model alone.
  const std::string full_path = (dir / "full.safetensors").string();
  save_trained(full_path);
  CHECK(io::load_checkpoint(full_path, b, nullptr).complete());
}

namespace {
// The trained checkpoint rewritten with one tensor dropped, one added and two reshaped.
std::string write_damaged(const fs::path& dir) {
  const std::string good = (dir / "good.safetensors").string();
  save_trained(good);
  io::SafetensorsReader f(good);
  io::SafetensorsWriter w;
  for (auto& [k, v] : f.metadata()) w.add_metadata(k, v);
  for (const auto& n : f.names()) {
    if (n == "bn2.running_var") continue;                                              // missing
    if (n == "conv3.weight") w.add(n, random_input(Shape{16, 4, 1, 2}, 1));            // mis-shaped
    else if (n == "optimizer.bn1.bias.momentum_buffer") w.add(n, random_input(Shape{5}, 2));  // mis-shaped
    else w.add(n, f.tensor<float>(n));
  }
  w.add("head.fc.weight", random_input(Shape{3, 3}, 3));                // unexpected
  w.add("optimizer.nothing.momentum_buffer", random_input(Shape{2}, 4));  // unexpected
  const std::string bad = (dir / "damaged.safetensors").string();
  w.write(bad);
  return bad;
}
}  // namespace

TEST_CASE("checkpoint: strict load lists every missing, unexpected and mis-shaped tensor and loads nothing") {
  const std::string bad = write_damaged(scratch("strict"));
  manual_seed(7);
  auto net = make_block();
  Sgd<float> opt(named_parameters(net), {.lr = 0.1, .momentum = 0.9});
  const auto before = snapshot(net);
  try {
    io::load_checkpoint(bad, net, &opt);
    FAIL("strict load accepted a damaged checkpoint");
  } catch (const Error& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.rfind(bad + ": checkpoint does not match the model", 0) == 0);
    CHECK(m.find("1 missing: bn2.running_var") != std::string::npos);
    CHECK(m.find("2 unexpected: head.fc.weight, optimizer.nothing.momentum_buffer") != std::string::npos);
    CHECK(m.find("conv3.weight (checkpoint [16, 4, 1, 2], model [16, 4, 1, 1])") != std::string::npos);
    CHECK(m.find("optimizer.bn1.bias.momentum_buffer (checkpoint [5], parameter [4])") != std::string::npos);
  }
  const auto after = snapshot(net);
  for (auto& [n, t] : before) CHECK(same(t, after.at(n)));
  CHECK(opt.state().empty());
}

TEST_CASE("checkpoint: non-strict load loads the rest and reports the lists") {
  const fs::path dir = scratch("nonstrict");
  const std::string bad = write_damaged(dir);
  manual_seed(7);
  auto net = make_block();
  const auto before = snapshot(net);
  Sgd<float> opt(named_parameters(net), {.lr = 0.1, .momentum = 0.9});
  const auto r = io::load_checkpoint(bad, net, &opt, {.strict = false});
  CHECK(!r.complete());
  CHECK(r.missing == std::vector<std::string>{"bn2.running_var"});
  CHECK(r.unexpected == std::vector<std::string>{"head.fc.weight", "optimizer.nothing.momentum_buffer"});
  CHECK(r.mis_shaped == std::vector<std::string>{"conv3.weight", "optimizer.bn1.bias.momentum_buffer"});
  CHECK(r.optimizer_loaded);
  io::SafetensorsReader f(bad);
  const auto after = snapshot(net);
  CHECK(same(after.at("conv1.weight"), f.tensor<float>("conv1.weight")));  // loaded
  CHECK(same(after.at("conv3.weight"), before.at("conv3.weight")));        // mis-shaped: kept
  CHECK(same(after.at("bn2.running_var"), before.at("bn2.running_var")));  // missing: kept
  CHECK(opt.state().size() == named_parameters(net).size() - 1);           // all but bn1.bias
}

TEST_CASE("checkpoint: truncated, wrong-shaped, corrupt header and missing files are clear errors") {
  const fs::path dir = scratch("acceptance");
  const std::string good = (dir / "good.safetensors").string();
  save_trained(good);
  const std::string bytes = slurp(good);
  manual_seed(3);
  auto net = make_block();

  const std::string truncated = (dir / "truncated.safetensors").string();
  spit(truncated, bytes.substr(0, bytes.size() - 64));  // cut inside the last tensors' data
  CHECK_THROWS_WITH_AS(io::load_checkpoint(truncated, net, nullptr), has(truncated + ": tensor '"), Error);
  CHECK_THROWS_WITH_AS(io::load_checkpoint(truncated, net, nullptr), doctest::Contains("file truncated?"), Error);

  const std::string corrupt = (dir / "corrupt.safetensors").string();
  std::string c = bytes;
  c[20] = '\x07';
  spit(corrupt, c);
  CHECK_THROWS_WITH_AS(io::load_checkpoint(corrupt, net, nullptr), has(corrupt + ": corrupt header (not valid JSON"),
                       Error);
  CHECK_THROWS_WITH_AS(io::read_checkpoint_metadata(corrupt), has(corrupt + ": corrupt header"), Error);

  const std::string wrong = (dir / "wrong_shape.safetensors").string();
  {
    manual_seed(3);
    auto other = make_composed_bottleneck_down<float>(8, 8, 2);  // planes 8 instead of 4
    io::save_checkpoint(wrong, other, nullptr);
  }
  CHECK_THROWS_WITH_AS(io::load_checkpoint(wrong, net, nullptr),
                       has(wrong + ": checkpoint does not match the model (strict load, nothing was loaded): "),
                       Error);
  CHECK_THROWS_WITH_AS(io::load_checkpoint(wrong, net, nullptr),
                       doctest::Contains("conv1.weight (checkpoint [8, 8, 1, 1], model [4, 8, 1, 1])"), Error);

  const std::string missing = (dir / "does_not_exist.safetensors").string();
  CHECK_THROWS_WITH_AS(io::load_checkpoint(missing, net, nullptr), has(missing + ": cannot open: no such file"), Error);
  CHECK_THROWS_WITH_AS(io::read_checkpoint_metadata(missing), has(missing + ": cannot open: no such file"), Error);
}

TEST_CASE("checkpoint: a save that fails mid-write keeps the previous checkpoint and leaves no temporary file") {
  const fs::path dir = scratch("atomic");
  const std::string path = (dir / "latest.safetensors").string();
  save_trained(path);
  const std::string before = slurp(path);
  manual_seed(8);
  auto big = make_composed_bottleneck_down<float>(64, 64, 1);  // ~300 KB of tensors
  // A real I/O failure: a file-size limit makes write() fail with EFBIG part way.
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  rlimit small = old;
  small.rlim_cur = 64 * 1024;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  bool threw = false;
  std::string msg;
  try {
    io::save_checkpoint(path, big, nullptr, {{"iter", "99"}});
  } catch (const Error& e) {
    threw = true;
    msg = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  CHECK(threw);
  CHECK(msg.rfind(path + ": cannot write: ", 0) == 0);
  CHECK(slurp(path) == before);
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  // A folder that does not exist.
  const std::string nowhere = (dir / "missing_folder" / "c.safetensors").string();
  CHECK_THROWS_WITH_AS(io::save_checkpoint(nowhere, big, nullptr), has(nowhere + ": cannot write: folder"), Error);
  fs::remove_all(dir);
}

// The C++ step of the ctest "checkpoint_pth_roundtrip" (tools/convert_checkpoint.py self-test):
// load a converted torchvision Bottleneck, check eval-mode outputs against PyTorch's, save.
TEST_CASE("checkpoint: converted PyTorch Bottleneck (driven by tools/convert_checkpoint.py)" * doctest::skip()) {
  const char* dir_env = std::getenv("GCNET_PTH_ROUNDTRIP_DIR");
  REQUIRE_MESSAGE(dir_env != nullptr, "run through ctest -R checkpoint_pth_roundtrip");
  const fs::path dir(dir_env);
  io::SafetensorsReader io_ref((dir / "io.safetensors").string());
  const auto in = io_ref.tensor<float>("x");
  auto block = make_composed_bottleneck_down<float>(in.size(1), io_ref.meta_int("planes"), io_ref.meta_int("stride"));
  const auto r = io::load_checkpoint((dir / "converted.safetensors").string(), block, nullptr);
  CHECK(r.complete());
  CHECK(r.meta_int("iter") == io_ref.meta_int("iter"));
  set_training(block, false);
  Tensor<float, Cpu> y;
  block.forward(in, y);
  CHECK(testing::relative_error(y, io_ref.tensor<double>("y")) <= 1e-5);
  io::save_checkpoint((dir / "gcnet.safetensors").string(), block, nullptr, r.metadata);
}
