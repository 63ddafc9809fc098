// Runs under `mpirun -np K` (K = 2 and 3, see CMakeLists.txt): every TEST_CASE executes on
// all ranks together over the MPI world communicator. Each rank builds the same global batch
// from a fixed seed, takes its shard, and compares the distributed result with the
// single-process one on the whole batch, which it computes itself.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <numeric>
#include <vector>

#include "dist_testing.hpp"
#include "gcnet/compose/seq.hpp"
#include "gcnet/data/datasets.hpp"
#include "gcnet/data/loader.hpp"
#include "gcnet/dist/data_parallel.hpp"
#include "gcnet/dist/mpi_communicator.hpp"
#include "gcnet/dist/tensor_collectives.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/flatten.hpp"
#include "gcnet/layers/global_avg_pool2d.hpp"
#include "gcnet/layers/linear.hpp"
#include "gcnet/layers/relu.hpp"
#include "gcnet/layers/sync_batch_norm2d.hpp"
#include "gcnet/loss/cross_entropy.hpp"
#include "gcnet/optim/sgd.hpp"
#include "gcnet/testing/parity.hpp"
#include "gcnet/train/trainer.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;
using test::randomize_bn;
using test::rel_err;
using test::rows;

namespace {

dist::CommunicatorRef world() {
  dist::CommunicatorRef w = dist::default_communicator();  // MPI: this program runs under mpirun
  REQUIRE(w.size() == dist::launched_world_size());
  return w;
}

// First row of each rank's shard for per-rank batch sizes `sizes`.
std::vector<index_t> offsets(const std::vector<index_t>& sizes) {
  std::vector<index_t> off(sizes.size() + 1, 0);
  std::partial_sum(sizes.begin(), sizes.end(), off.begin() + 1);
  return off;
}

// Per-rank batch sizes of one scenario for K ranks.
std::vector<std::vector<index_t>> scenarios(int K) {
  std::vector<std::vector<index_t>> s;
  s.push_back(std::vector<index_t>(static_cast<std::size_t>(K), 2));  // even
  std::vector<index_t> uneven, with_empty;
  for (int r = 0; r < K; ++r) {
    uneven.push_back(1 + 2 * r);           // 1, 3, 5
    with_empty.push_back(r == 0 ? 0 : r + 1);  // rank 0 has no samples
  }
  s.push_back(uneven);
  s.push_back(with_empty);
  return s;
}

// SyncBatchNorm2d over the world vs BatchNorm2d on the concatenated batch, two steps
// (running statistics move twice).
template <class T>
void check_sync_bn_equals_bn(const BatchNorm2dOptions& o, const std::vector<index_t>& sizes, double tol) {
  dist::CommunicatorRef comm = world();
  const int rank = comm.rank();
  const auto off = offsets(sizes);
  BatchNorm2d<T> bn(o);
  randomize_bn(bn, 11);
  SyncBatchNorm2d<T> sync = to_sync_batch_norm(bn, comm);
  for (int step = 0; step < 2; ++step) {
    CAPTURE(step);
    const index_t total = off.back();
    const Tensor<T> x = random_tensor<T>(Shape{total, o.channels, 3, 4}, 100 + step, 2.0, 0.5);
    const Tensor<T> dy = random_tensor<T>(x.shape(), 200 + step);
    Tensor<T> y, dx = random_tensor<T>(x.shape(), 300 + step);  // dx accumulates into random values
    bn.forward(x, y);
    const Tensor<T> dx_before = clone(dx);
    bn.backward(x, y, dy, dx);

    const index_t b = off[static_cast<std::size_t>(rank)], e = off[static_cast<std::size_t>(rank) + 1];
    const Tensor<T> xs = rows(x, b, e), dys = rows(dy, b, e);
    Tensor<T> ys, dxs = rows(dx_before, b, e);
    sync.forward(xs, ys);
    sync.backward(xs, ys, dys, dxs);
    if (e > b) {
      CHECK(rel_err(ys, rows(y, b, e)) < tol);
      CHECK(rel_err(dxs, rows(dx, b, e)) < tol);
    } else {
      CHECK(ys.shape() == Shape{0, o.channels, 3, 4});
    }
    if (o.track_running_stats) {
      CHECK(rel_err(sync.batch_norm().running_mean(), bn.running_mean()) < tol);
      CHECK(rel_err(sync.batch_norm().running_var(), bn.running_var()) < tol);
      CHECK(sync.batch_norm().num_batches_tracked()[0] == bn.num_batches_tracked()[0]);
    }
    if (o.affine) {  // local parameter gradients; their sum over ranks is BN's
      for (auto [mine, ref] : {std::pair{sync.batch_norm().weight(), bn.weight()}, std::pair{sync.batch_norm().bias(), bn.bias()}}) {
        Tensor<T> g = clone(mine->grad);
        if constexpr (dist::CommElement<T>) dist::all_reduce(comm, g, dist::ReduceOp::Sum);
        CHECK(rel_err(g, ref->grad) < tol);
      }
    }
  }
}

}  // namespace

TEST_CASE("MPI communicator: all_reduce sum/max/min, all_gather, broadcast, barrier") {
  dist::CommunicatorRef comm = world();
  const int r = comm.rank(), K = comm.size();
  CHECK(K >= 2);
  CHECK(comm.name().find("mpi") == 0);
  std::vector<double> d{1.0 + r, -2.0 * r};
  comm.all_reduce(d.data(), 2, dist::ReduceOp::Sum);
  CHECK(d[0] == doctest::Approx(K + K * (K - 1) / 2.0));
  CHECK(d[1] == doctest::Approx(-1.0 * K * (K - 1)));
  std::vector<float> f{static_cast<float>(r), static_cast<float>(-r)};
  comm.all_reduce(f.data(), 2, dist::ReduceOp::Max);
  CHECK(f[0] == K - 1);
  CHECK(f[1] == 0);
  std::vector<std::int64_t> i{10 + r};
  comm.all_reduce(i.data(), 1, dist::ReduceOp::Min);
  CHECK(i[0] == 10);
  std::vector<std::int64_t> mine{r, 100 * r}, all(static_cast<std::size_t>(2 * K), -1);
  comm.all_gather(mine.data(), 2, all.data());
  for (int q = 0; q < K; ++q) {
    CHECK(all[2 * static_cast<std::size_t>(q)] == q);
    CHECK(all[2 * static_cast<std::size_t>(q) + 1] == 100 * q);
  }
  Tensor<float> t = random_tensor<float>(Shape{3, 2}, 7 + static_cast<std::uint64_t>(r));
  const Tensor<float> from_last = random_tensor<float>(Shape{3, 2}, 7 + static_cast<std::uint64_t>(K - 1));
  dist::broadcast(comm, t, K - 1);
  CHECK(rel_err(t, from_last) == 0);
  Tensor<double> g;
  dist::all_gather(comm, random_tensor<double>(Shape{2}, 50 + static_cast<std::uint64_t>(r)), g);
  CHECK(g.shape() == Shape{K, 2});
  for (int q = 0; q < K; ++q)
    CHECK(rel_err(g.slice(q, q + 1).reshape(Shape{2}), random_tensor<double>(Shape{2}, 50 + static_cast<std::uint64_t>(q))) == 0);
  comm.barrier();
}

TEST_CASE("SyncBatchNorm2d over ranks equals BatchNorm2d on the concatenated batch (double)") {
  const int K = world().size();
  for (const auto& sizes : scenarios(K)) {
    CAPTURE(sizes[0]);
    CAPTURE(sizes[1]);
    check_sync_bn_equals_bn<double>({.channels = 3}, sizes, 1e-10);
    check_sync_bn_equals_bn<double>({.channels = 2, .momentum = std::nullopt}, sizes, 1e-10);
    check_sync_bn_equals_bn<double>({.channels = 2, .affine = false}, sizes, 1e-10);
    check_sync_bn_equals_bn<double>({.channels = 2, .track_running_stats = false}, sizes, 1e-10);
  }
}

TEST_CASE("SyncBatchNorm2d over ranks equals BatchNorm2d on the concatenated batch (float)") {
  for (const auto& sizes : scenarios(world().size())) check_sync_bn_equals_bn<float>({.channels = 4}, sizes, 1e-5);
}

TEST_CASE("SyncBatchNorm2d parity with PyTorch (float32, fixture tools/fixtures/sync_batch_norm.py)") {
  dist::CommunicatorRef comm = world();
  const int r = comm.rank(), K = comm.size();
  const io::SafetensorsReader f(GCNET_FIXTURE_DIR "/sync_batch_norm.safetensors");
  int ran = 0;
  for (const std::string& c : test::fixture_cases(f)) {
    if (f.meta_int(c + ".ranks") != K) continue;
    CAPTURE(c);
    ++ran;
    std::vector<index_t> sizes;
    for (const std::string& v : test::split_csv(f.meta(c + ".shards"))) sizes.push_back(std::stoll(v));
    const auto off = offsets(sizes);
    const index_t b = off[static_cast<std::size_t>(r)], e = off[static_cast<std::size_t>(r) + 1];
    BatchNorm2dOptions o{.channels = f.meta_int(c + ".channels"), .eps = f.meta_double(c + ".eps")};
    if (test::meta_is_none(f, c + ".momentum")) o.momentum = std::nullopt;
    else o.momentum = f.meta_double(c + ".momentum");
    o.affine = test::meta_flag(f, c + ".affine");
    SyncBatchNorm2d<float> sync(o, comm);
    testing::load_case_state(sync, f, c);

    const Tensor<float> x = rows(f.tensor<float>(c + ".x"), b, e), dy = rows(f.tensor<float>(c + ".dy"), b, e);
    Tensor<float> y, dx = zeros<float>(x.shape());
    sync.forward(x, y);
    sync.backward(x, y, dy, dx);
    CHECK(testing::relative_error(y, rows(f.tensor<double>(c + ".y"), b, e)) < 1e-4);
    CHECK(testing::relative_error(dx, rows(f.tensor<double>(c + ".dx"), b, e)) < 1e-4);
    visit_buffers(sync, "", [&](const std::string& name, Tensor<float>& t) {
      if (f.contains(c + ".buffer_out." + name))
        CHECK(testing::relative_error(t, f.tensor<double>(c + ".buffer_out." + name)) < 1e-4);
    });
    CHECK(f.contains(c + ".buffer_out.running_var"));
    visit_parameters(sync, "", [&](const std::string& name, Param<float, Cpu>& p) {
      Tensor<float> g = clone(p.grad);
      dist::all_reduce(comm, g, dist::ReduceOp::Sum);  // local gradients; DDP would average them
      CHECK(testing::relative_error(g, f.tensor<double>(c + ".grad." + name)) < 1e-4);
    });
  }
  CHECK(ran >= 2);
}

TEST_CASE("SyncBatchNorm2d in eval mode is BatchNorm2d with no communication") {
  dist::CommunicatorRef comm = world();
  BatchNorm2d<double> bn(3);
  randomize_bn(bn, 12);
  SyncBatchNorm2d<double> sync = to_sync_batch_norm(bn, comm);
  bn.set_training(false);
  sync.set_training(false);
  // Different batch sizes per rank and no collective: a mismatch would hang, not pass.
  const Tensor<double> x = random_tensor<double>(Shape{1 + comm.rank(), 3, 2, 2}, 60 + static_cast<std::uint64_t>(comm.rank()));
  const Tensor<double> dy = random_tensor<double>(x.shape(), 61);
  Tensor<double> y0, y1, dx0 = zeros<double>(x.shape()), dx1 = zeros<double>(x.shape());
  bn.forward(x, y0);
  sync.forward(x, y1);
  bn.backward(x, y0, dy, dx0);
  sync.backward(x, y1, dy, dx1);
  CHECK(rel_err(y1, y0) < 1e-14);
  CHECK(rel_err(dx1, dx0) < 1e-14);
  CHECK(rel_err(sync.batch_norm().running_mean(), bn.running_mean()) == 0);
}

TEST_CASE("SyncBatchNorm2d: ranks that disagree on the channel count all get the error") {
  dist::CommunicatorRef comm = world();
  const int r = comm.rank();
  {  // the layers differ: rank 1 has 5 channels
    const index_t C = r == 1 ? 5 : 4;
    SyncBatchNorm2d<float> sync(BatchNorm2dOptions{.channels = C}, comm);
    Tensor<float> y;
    CHECK_THROWS_WITH_AS(sync.forward(random_tensor<float>(Shape{2, C, 3, 3}, 1), y),
                         doctest::Contains("ranks disagree on the channel count (rank 0: layer 4 / input 4, rank 1: layer 5 / input 5"),
                         gcnet::Error);
  }
  {  // the same layers, but the last rank's input has the wrong channels
    SyncBatchNorm2d<float> sync(BatchNorm2dOptions{.channels = 4}, comm);
    const index_t C = r == comm.size() - 1 ? 6 : 4;
    Tensor<float> y;
    CHECK_THROWS_WITH_AS(sync.forward(random_tensor<float>(Shape{2, C, 3, 3}, 1), y),
                         doctest::Contains("SyncBatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True): "
                                           "ranks disagree on the channel count"),
                         gcnet::Error);
    // Still usable afterwards: the failed call left no collective half done.
    Tensor<float> y2;
    sync.forward(random_tensor<float>(Shape{2, 4, 3, 3}, 2), y2);
    CHECK(y2.shape() == Shape{2, 4, 3, 3});
  }
}

namespace {

// Conv -> norm -> ReLU -> pool -> Linear; Norm = BatchNorm2d, SyncBatchNorm2d (the world) or none.
template <class Norm>
using NetWith = Seq<Conv2d<>, Norm, ReLU<>, GlobalAvgPool2d<>, Flatten<>, Linear<>>;
using PlainNet = Seq<Conv2d<>, ReLU<>, GlobalAvgPool2d<>, Flatten<>, Linear<>>;

template <class Norm>
NetWith<Norm> make_norm_net(std::uint64_t seed) {
  manual_seed(seed);
  return NetWith<Norm>{Conv2d<>({.in = 3, .out = 6, .kernel = 3, .padding = 1}), Norm(6), ReLU<>(), GlobalAvgPool2d<>(),
                       Flatten<>(), Linear<>(6, 4)};
}
PlainNet make_plain_net(std::uint64_t seed) {
  manual_seed(seed);
  return PlainNet{Conv2d<>({.in = 3, .out = 6, .kernel = 3, .padding = 1}), ReLU<>(), GlobalAvgPool2d<>(), Flatten<>(),
                  Linear<>(6, 4)};
}

// One SGD step with loss = mean over the batch of 0.5 * ||out - target||^2.
template <class Net>
void sgd_step(Net& net, const Tensor<float>& x, const Tensor<float>& target, dist::DataParallel<float>* dp) {
  Sgd<float> opt(named_parameters(net), {.lr = 0.5, .momentum = 0.9, .weight_decay = 1e-2});
  Tensor<float> y, dx = zeros<float>(x.shape());
  net.forward(x, y);
  Tensor<float> dy(y.shape());
  const float inv_b = 1.0f / static_cast<float>(x.size(0));
  for (index_t i = 0; i < y.numel(); ++i) dy[i] = (y[i] - target[i]) * inv_b;
  net.backward(x, y, dy, dx);
  if (dp) dp->average_gradients(opt.params());
  opt.step();
}

// Normwise relative difference of all parameters and buffers.
template <class NetA, class NetB>
double state_difference(NetA& a, NetB& b) {
  auto pa = named_parameters(a), pb = named_parameters(b);
  auto ba = named_buffers(a), bb = named_buffers(b);
  REQUIRE(pa.size() == pb.size());
  REQUIRE(ba.size() == bb.size());
  double d = 0, n = 0;
  auto add = [&](const Tensor<float>& x, const Tensor<float>& y) {
    REQUIRE(x.shape() == y.shape());
    for (index_t i = 0; i < x.numel(); ++i) {
      d += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
      n += static_cast<double>(y[i]) * y[i];
    }
  };
  for (std::size_t i = 0; i < pa.size(); ++i) add(pa[i].second->value, pb[i].second->value);
  for (std::size_t i = 0; i < ba.size(); ++i) add(*ba[i].second, *bb[i].second);
  return std::sqrt(d / n);
}

// k ranks with batch b vs one process with the union batch k*b.
template <class Net, class RefNet, class Make, class MakeRef>
void check_data_parallel_step(Make make, MakeRef make_ref) {
  dist::CommunicatorRef comm = world();
  const int r = comm.rank(), K = comm.size();
  const index_t b = 2;
  const Tensor<float> x = random_tensor<float>(Shape{K * b, 3, 5, 5}, 70, 1.0, 0.3);
  const Tensor<float> target = random_tensor<float>(Shape{K * b, 4}, 71);

  RefNet ref = make_ref(1234);
  sgd_step(ref, x, target, nullptr);

  Net net = make(1234 + static_cast<std::uint64_t>(r));  // different start per rank: the broadcast fixes it
  Context ctx;
  ctx.communicator = comm;  // SyncBatchNorm2d's process group
  bind_context(net, ctx);
  dist::DataParallel<float> dp(comm);
  dp.broadcast_state(net);
  RefNet start = make_ref(1234);
  CHECK(state_difference(net, start) == 0);
  sgd_step(net, rows(x, r * b, (r + 1) * b), rows(target, r * b, (r + 1) * b), &dp);
  const double diff = state_difference(net, ref);
  CHECK(diff < 1e-6);
  CHECK(state_difference(net, start) > 1e-3);  // the step did move the parameters
  // Every rank holds the same parameters.
  std::vector<double> d{diff, -diff};
  comm.all_reduce(d.data(), 2, dist::ReduceOp::Max);
  CHECK(d[0] == -d[1]);
}

}  // namespace

TEST_CASE("data parallel: one SGD step over the ranks equals the single-process step on the union batch") {
  check_data_parallel_step<PlainNet, PlainNet>(make_plain_net, make_plain_net);
}

TEST_CASE("data parallel with SyncBatchNorm2d equals BatchNorm2d on the union batch") {
  check_data_parallel_step<NetWith<SyncBatchNorm2d<>>, NetWith<BatchNorm2d<>>>(make_norm_net<SyncBatchNorm2d<>>,
                                                                               make_norm_net<BatchNorm2d<>>);
}

namespace {

// 24 random 5x5 RGB samples with class ids 0..2.
data::InMemoryDataset tiny_dataset() {
  std::vector<data::Sample> v;
  for (index_t i = 0; i < 24; ++i) {
    data::Sample smp;
    smp.image = random_tensor<float>(Shape{5, 5, 3}, 500 + static_cast<std::uint64_t>(i), 1.0, 0.2 * (i % 3));
    smp.class_id = i % 3;
    v.push_back(std::move(smp));
  }
  return data::InMemoryDataset(std::move(v));
}

template <class Net>
struct TrainRun {
  Net net;
  data::DataLoader<data::InMemoryDataset> loader;
  Sgd<float> opt;
  CrossEntropyLoss<float> ce;
  Trainer<Net, data::DataLoader<data::InMemoryDataset>, Sgd<float>> trainer;

  TrainRun(Net n, TrainerOptions o)
      : net(std::move(n)),
        loader(tiny_dataset(), {.batch_size = 6, .shuffle = true, .seed = 3}),
        opt(named_parameters(net), {.lr = 0.2, .momentum = 0.9, .weight_decay = 1e-3}),
        trainer(net, loader, opt, ConstantLr{}, [this](const Tensor<float>& y, const data::Batch& b, Tensor<float>& dy) {
          const double l = ce.forward(y, b.labels);
          ce.backward(dy);
          return NamedLosses{{"loss_cls", l}};
        }, std::move(o)) {}
};

}  // namespace

TEST_CASE("Trainer under mpirun: data-parallel run equals the single-process run, only rank 0 writes") {
  dist::CommunicatorRef comm = world();
  const int r = comm.rank(), K = comm.size();
  if (6 % K != 0) {  // the global batch of 6 must split evenly
    MESSAGE("skipped for ", K, " ranks");
    return;
  }
  std::int64_t id = getpid();
  comm.broadcast(&id, 1, 0);
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("gcnet_test_dist_trainer_" + std::to_string(id));
  TrainerOptions o;
  o.print = false;
  o.log_interval = 2;
  o.work_dir = (root / "dp").string();
  TrainRun<NetWith<SyncBatchNorm2d<>>> dp(make_norm_net<SyncBatchNorm2d<>>(77 + static_cast<std::uint64_t>(r)), o);
  CHECK(dp.trainer.world_size() == K);
  CHECK(dp.loader.shards() == K);
  dp.trainer.run(4);

  TrainerOptions ro = o;
  ro.work_dir = (root / ("single_" + std::to_string(r))).string();
  ro.communicator = dist::CommunicatorRef(dist::SingleProcessCommunicator{});
  TrainRun<NetWith<BatchNorm2d<>>> single(make_norm_net<BatchNorm2d<>>(77), ro);
  single.trainer.run(4);

  CHECK(state_difference(dp.net, single.net) < 1e-5);
  REQUIRE(dp.trainer.loss_curve().size() == single.trainer.loss_curve().size());
  for (std::size_t i = 0; i < single.trainer.loss_curve().size(); ++i)
    CHECK(dp.trainer.loss_curve()[i].second == doctest::Approx(single.trainer.loss_curve()[i].second).epsilon(1e-5));

  comm.barrier();  // every rank has finished writing
  int logs = 0;
  for (const auto& e : fs::directory_iterator(root / "dp")) logs += e.path().string().ends_with(".log.json");
  CHECK(logs == 1);
  CHECK(fs::exists(root / "dp" / "latest.safetensors"));
  CHECK(dp.trainer.last_checkpoint().empty() == (r != 0));
  comm.barrier();
  if (r == 0) fs::remove_all(root);
}
