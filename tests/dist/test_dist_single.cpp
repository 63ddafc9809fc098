// Communicators, SyncBatchNorm2d and DataParallel in one process (single-process
// communicator). The multi-rank behaviour is tested under mpirun by test_dist_mpi.
#include <doctest/doctest.h>

#include <vector>

#include "dist_testing.hpp"
#include "gcnet/data/datasets.hpp"
#include "gcnet/data/loader.hpp"
#include "gcnet/dist/communicator.hpp"
#include "gcnet/dist/data_parallel.hpp"
#include "gcnet/dist/tensor_collectives.hpp"
#include "gcnet/layers/sync_batch_norm2d.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using test::random_tensor;
using test::randomize_bn;
using test::rel_err;

TEST_CASE("single-process communicator: identity collectives, rank 0 of 1") {
  dist::CommunicatorRef comm(dist::SingleProcessCommunicator{});
  CHECK(comm.rank() == 0);
  CHECK(comm.size() == 1);
  CHECK_FALSE(comm.device_memory());
  std::vector<double> d{1.5, -2.0, 3.25};
  comm.all_reduce(d.data(), 3, dist::ReduceOp::Sum);
  CHECK(d == std::vector<double>{1.5, -2.0, 3.25});
  std::vector<std::int64_t> i{7, -9}, gi(2, 0);
  comm.all_gather(i.data(), 2, gi.data());
  CHECK(gi == i);
  std::vector<float> f{0.5f};
  comm.broadcast(f.data(), 1, 0);
  CHECK(f[0] == 0.5f);
  comm.barrier();
  CHECK_THROWS_WITH_AS(comm.broadcast(f.data(), 1, 1), doctest::Contains("broadcast root 1 out of range for 1 ranks"),
                       gcnet::Error);

  // Tensor forms: all_gather adds a leading rank dimension.
  Tensor<float> t = random_tensor<float>(Shape{2, 3}, 5), g;
  dist::all_gather(comm, t, g);
  CHECK(g.shape() == Shape{1, 2, 3});
  CHECK(rel_err(g.reshape(Shape{2, 3}), t) == 0);
  const Tensor<float> before = clone(t);
  dist::all_reduce(comm, t, dist::ReduceOp::Max);
  dist::broadcast(comm, t, 0);
  CHECK(rel_err(t, before) == 0);
}

TEST_CASE("default communicator: single-process unless set") {
  dist::CommunicatorRef c = dist::default_communicator();
  CHECK(c.size() == 1);
  CHECK(c.name() == "single-process");
  dist::set_default_communicator(dist::SingleProcessCommunicator{});
  CHECK(dist::default_communicator().size() == 1);
}

TEST_CASE("SyncBatchNorm2d with one rank equals BatchNorm2d (fallback and collective path)") {
  for (bool force : {false, true})
    for (std::optional<double> momentum : {std::optional<double>(0.1), std::optional<double>()}) {
      CAPTURE(force);
      BatchNorm2dOptions o{.channels = 3, .momentum = momentum};
      BatchNorm2d<double> bn(o);
      randomize_bn(bn, 3);
      SyncBatchNorm2d<double> sync = to_sync_batch_norm(bn, dist::SingleProcessCommunicator{});
      sync.force_sync(force);
      for (int step = 0; step < 2; ++step) {
        const Tensor<double> x = random_tensor<double>(Shape{4, 3, 3, 2}, 10 + step, 2.0, 1.0);
        const Tensor<double> dy = random_tensor<double>(x.shape(), 20 + step);
        Tensor<double> y0, y1, dx0 = random_tensor<double>(x.shape(), 30), dx1 = clone(dx0);
        bn.forward(x, y0);
        sync.forward(x, y1);
        bn.backward(x, y0, dy, dx0);
        sync.backward(x, y1, dy, dx1);
        CHECK(rel_err(y1, y0) < 1e-12);
        CHECK(rel_err(dx1, dx0) < 1e-12);  // accumulated into the same random dx
        CHECK(rel_err(sync.batch_norm().weight()->grad, bn.weight()->grad) < 1e-12);
        CHECK(rel_err(sync.batch_norm().bias()->grad, bn.bias()->grad) < 1e-12);
        CHECK(rel_err(sync.batch_norm().running_mean(), bn.running_mean()) < 1e-12);
        CHECK(rel_err(sync.batch_norm().running_var(), bn.running_var()) < 1e-12);
        CHECK(sync.batch_norm().num_batches_tracked()[0] == step + 1);
      }
    }
}

TEST_CASE("SyncBatchNorm2d eval mode uses the running statistics") {
  BatchNorm2d<double> bn(4);
  randomize_bn(bn, 4);
  SyncBatchNorm2d<double> sync = to_sync_batch_norm(bn, dist::SingleProcessCommunicator{});
  sync.force_sync(true);  // eval never synchronizes, even when asked to in training
  bn.set_training(false);
  sync.set_training(false);
  const Tensor<double> x = random_tensor<double>(Shape{2, 4, 3, 3}, 40);
  Tensor<double> y0, y1;
  bn.forward(x, y0);
  sync.forward(x, y1);
  CHECK(rel_err(y1, y0) < 1e-14);
  CHECK(sync.batch_norm().num_batches_tracked()[0] == 0);
}

TEST_CASE("SyncBatchNorm2d gradient check (double, single-process communicator)") {
  struct Case {
    BatchNorm2dOptions o;
    bool force;
    bool training;
  };
  const std::vector<Case> cases = {
      {{.channels = 3}, true, true},
      {{.channels = 3}, false, true},
      {{.channels = 2, .momentum = std::nullopt, .affine = false}, true, true},
      {{.channels = 3, .track_running_stats = false}, true, true},
      {{.channels = 3}, true, false},
  };
  int k = 0;
  for (const Case& c : cases) {
    CAPTURE(k++);
    SyncBatchNorm2d<double> sync(c.o, dist::SingleProcessCommunicator{});
    randomize_bn(sync.batch_norm(), 7);
    sync.force_sync(c.force);
    sync.set_training(c.training);
    testing::GradCheckOptions go;
    go.input_scale = 2.0;
    const auto r = testing::check_gradients(sync, Shape{3, c.o.channels, 3, 2}, go);
    CHECK_MESSAGE(r.ok, r.report);
  }
}

TEST_CASE("BatchNorm2d <-> SyncBatchNorm2d <-> FrozenBatchNorm2d keep parameters and buffers") {
  BatchNorm2d<float> bn(BatchNorm2dOptions{.channels = 5, .eps = 1e-3, .momentum = 0.3});
  randomize_bn(bn, 9);
  bn.num_batches_tracked()[0] = 7;
  SyncBatchNorm2d<float> sync = to_sync_batch_norm(bn, dist::SingleProcessCommunicator{});
  CHECK(sync.eps() == 1e-3);
  CHECK(sync.options().momentum == 0.3);
  auto same = [](auto& a, auto& b) {
    auto na = named_parameters(a), nb = named_parameters(b);
    auto ba = named_buffers(a), bb = named_buffers(b);
    REQUIRE(na.size() == nb.size());
    REQUIRE(ba.size() == bb.size());
    for (std::size_t i = 0; i < na.size(); ++i) {
      CHECK(na[i].first == nb[i].first);
      CHECK(rel_err(na[i].second->value, nb[i].second->value) == 0);
    }
    for (std::size_t i = 0; i < ba.size(); ++i) {
      CHECK(ba[i].first == bb[i].first);
      CHECK(rel_err(*ba[i].second, *bb[i].second) == 0);
    }
  };
  same(sync, bn);
  // Deep copies: changing the converted layer leaves the source alone.
  sync.batch_norm().weight()->value[0] += 1.0f;
  CHECK(sync.batch_norm().weight()->value[0] != bn.weight()->value[0]);
  sync.batch_norm().weight()->value[0] -= 1.0f;

  BatchNorm2d<float> back = to_batch_norm(sync);
  same(back, bn);

  FrozenBatchNorm2d<float> frozen = to_frozen_batch_norm(sync);
  CHECK(frozen.eps() == 1e-3);
  CHECK(rel_err(frozen.weight(), bn.weight()->value) == 0);
  CHECK(rel_err(frozen.bias(), bn.bias()->value) == 0);
  CHECK(rel_err(frozen.running_mean(), bn.running_mean()) == 0);
  CHECK(rel_err(frozen.running_var(), bn.running_var()) == 0);

  // Eval outputs agree across all three.
  const Tensor<float> x = random_tensor<float>(Shape{2, 5, 3, 3}, 50);
  Tensor<float> y_bn, y_sync, y_frozen;
  bn.set_training(false);
  sync.set_training(false);
  bn.forward(x, y_bn);
  sync.forward(x, y_sync);
  frozen.forward(x, y_frozen);
  CHECK(rel_err(y_sync, y_bn) < 1e-6);
  CHECK(rel_err(y_frozen, y_bn) < 1e-6);

  BatchNorm2d<float> unfrozen = batch_norm_from_frozen(frozen);
  CHECK(rel_err(unfrozen.weight()->value, bn.weight()->value) == 0);
  CHECK(rel_err(unfrozen.running_var(), bn.running_var()) == 0);
  CHECK(unfrozen.eps() == 1e-3);
}

TEST_CASE("SyncBatchNorm2d bad input and options give clear errors") {
  CHECK_THROWS_WITH_AS(SyncBatchNorm2d<float>(0), doctest::Contains("SyncBatchNorm2d: the number of channels must be positive, got 0"),
                       gcnet::Error);
  SyncBatchNorm2d<float> sync(BatchNorm2dOptions{.channels = 3}, dist::SingleProcessCommunicator{});
  Tensor<float> y;
  CHECK_THROWS_WITH_AS(sync.forward(random_tensor<float>(Shape{2, 4, 3, 3}, 1), y),
                       doctest::Contains("SyncBatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True): "
                                         "expected input with 3 channels, got shape [2, 4, 3, 3]"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(sync.forward(random_tensor<float>(Shape{4, 3, 3}, 1), y),
                       doctest::Contains("expected a 4-d NCHW input, got shape [4, 3, 3]"), gcnet::Error);
  CHECK_THROWS_WITH_AS(sync.forward(random_tensor<float>(Shape{1, 3, 1, 1}, 1), y),
                       doctest::Contains("Expected more than 1 value per channel when training"), gcnet::Error);
  sync.force_sync(true);
  CHECK_THROWS_WITH_AS(sync.forward(random_tensor<float>(Shape{1, 3, 1, 1}, 1), y),
                       doctest::Contains("Expected more than 1 value per channel when training, got 1 values over 1 ranks"),
                       gcnet::Error);
}

TEST_CASE("DataParallel with one rank leaves parameters and gradients alone") {
  BatchNorm2d<float> bn(3);
  randomize_bn(bn, 2);
  bn.weight()->grad = random_tensor<float>(Shape{3}, 3);
  bn.bias()->grad = random_tensor<float>(Shape{3}, 4);
  const Tensor<float> w = clone(bn.weight()->value), g = clone(bn.weight()->grad);
  dist::DataParallel<float> dp(dist::SingleProcessCommunicator{});
  CHECK_FALSE(dp.active());
  dp.broadcast_state(bn);
  dp.average_gradients(named_parameters(bn));
  CHECK(rel_err(bn.weight()->value, w) == 0);
  CHECK(rel_err(bn.weight()->grad, g) == 0);
}

TEST_CASE("DataLoader::shard: the ranks' shards make up the unsharded global batch") {
  auto dataset = [] {
    std::vector<data::Sample> v;
    for (index_t i = 0; i < 20; ++i) {
      data::Sample smp;
      smp.image = random_tensor<float>(Shape{2, 2, 1}, 100 + static_cast<std::uint64_t>(i));
      smp.class_id = i % 4;
      v.push_back(std::move(smp));
    }
    return data::InMemoryDataset(std::move(v));
  };
  const data::LoaderOptions o{.batch_size = 6, .shuffle = true, .seed = 4, .workers = 1};
  data::DataLoader full(dataset(), o);
  for (int K : {2, 3}) {
    CAPTURE(K);
    std::vector<std::unique_ptr<data::DataLoader<data::InMemoryDataset>>> ranks;
    for (int r = 0; r < K; ++r) {
      ranks.push_back(std::make_unique<data::DataLoader<data::InMemoryDataset>>(dataset(), o));
      ranks.back()->shard(r, K);
      ranks.back()->seek(2);  // across the epoch boundary: 3 batches per epoch
    }
    for (std::int64_t g = 2; g < 6; ++g) {
      const data::Batch want = full.batch_at(g);
      std::vector<index_t> got;
      for (auto& l : ranks) {
        const data::Batch b = l->next();
        CHECK(b.images.size(0) == 6 / K);
        got.insert(got.end(), b.indices.begin(), b.indices.end());
      }
      CHECK(got == want.indices);
    }
  }
  CHECK_THROWS_WITH_AS(full.shard(0, 4), doctest::Contains("the global batch_size 6 is not a multiple of the 4 ranks"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(full.shard(2, 2), doctest::Contains("rank 2 out of range for 2 ranks"), gcnet::Error);
}

TEST_CASE("default communicator under mpirun without MPI support is an error, not K silent copies") {
  // A fresh state as a program would have it, launched with 2 processes.
  auto& s = dist::detail::default_state();
  auto saved = std::move(s.comm);
  auto saved_factory = std::move(s.launch_factory);
  s.launch_factory = nullptr;
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  CHECK_THROWS_WITH_AS(dist::default_communicator(), doctest::Contains("started by mpirun with 2 processes, but the program has no MPI support"),
                       gcnet::Error);
  unsetenv("OMPI_COMM_WORLD_SIZE");
  s.comm = std::move(saved);
  s.launch_factory = std::move(saved_factory);
}
