// NcclCommunicator with one rank on the device: the collectives on device and host buffers,
// and SyncBatchNorm2d<float, Cuda> on its collective path against BatchNorm2d. Compiled
// when NCCL is found (gcnet::nccl); each test skips visibly without a GPU. Multi-GPU runs
// use NcclCommunicator::bootstrap over MPI (docs/distributed.md).
#ifdef GCNET_WITH_NCCL
#include <vector>

#include "cuda_test_support.hpp"
#include "gcnet/dist/nccl_communicator.hpp"
#include "gcnet/dist/tensor_collectives.hpp"
#include "gcnet/layers/sync_batch_norm2d.hpp"

using namespace gcnet;
using test::random_tensor;
using test::relative_error;

TEST_CASE("NcclCommunicator, one rank: collectives on device tensors and host buffers") {
  GCNET_REQUIRE_CUDA_DEVICE();
  dist::CommunicatorRef comm(dist::NcclCommunicator::single(0));
  CHECK(comm.size() == 1);
  CHECK(comm.device_memory());
  const auto host = random_tensor<float>(Shape{5, 3}, 1);
  Tensor<float, Cuda> d = to_backend<Cuda>(host);
  dist::all_reduce(comm, d, dist::ReduceOp::Sum);
  dist::broadcast(comm, d, 0);
  CHECK(relative_error(to_backend<Cpu>(d), host) == 0);
  Tensor<float, Cuda> g;
  dist::all_gather(comm, d, g);
  CHECK(g.shape() == Shape{1, 5, 3});
  CHECK(relative_error(to_backend<Cpu>(g).reshape(Shape{5, 3}), host) == 0);
  std::vector<std::int64_t> counts{4, -4}, gathered(2, 0);  // host memory: staged
  comm.all_gather(counts.data(), 2, gathered.data());
  CHECK(gathered == counts);
  comm.all_reduce(counts.data(), 2, dist::ReduceOp::Max);
  CHECK(counts == std::vector<std::int64_t>{4, -4});
  comm.barrier();
  // A host tensor with a device communicator is a clear error.
  Tensor<float> h = host;
  CHECK_THROWS_WITH_AS(dist::all_reduce(comm, h), doctest::Contains("works on device memory, got a host tensor"),
                       gcnet::Error);
}

TEST_CASE("SyncBatchNorm2d<float, Cuda> over NCCL (one rank, collective path) equals BatchNorm2d") {
  GCNET_REQUIRE_CUDA_DEVICE();
  dist::CommunicatorRef comm(dist::NcclCommunicator::single(0));
  BatchNorm2d<float, Cuda> bn(4);
  SyncBatchNorm2d<float, Cuda> sync(BatchNorm2dOptions{.channels = 4}, comm);
  sync.force_sync(true);
  const auto x = to_backend<Cuda>(random_tensor<float>(Shape{3, 4, 5, 6}, 2));
  const auto dy = to_backend<Cuda>(random_tensor<float>(Shape{3, 4, 5, 6}, 3));
  Tensor<float, Cuda> y0, y1, dx0 = to_backend<Cuda>(zeros<float>(Shape{3, 4, 5, 6})),
                              dx1 = to_backend<Cuda>(zeros<float>(Shape{3, 4, 5, 6}));
  bn.forward(x, y0);
  sync.forward(x, y1);
  bn.backward(x, y0, dy, dx0);
  sync.backward(x, y1, dy, dx1);
  CHECK(relative_error(to_backend<Cpu>(y1), to_backend<Cpu>(y0)) < 1e-5);
  CHECK(relative_error(to_backend<Cpu>(dx1), to_backend<Cpu>(dx0)) < 1e-4);
  CHECK(relative_error(to_backend<Cpu>(sync.batch_norm().running_var()), to_backend<Cpu>(bn.running_var())) < 1e-5);
  CHECK(relative_error(to_backend<Cpu>(sync.batch_norm().weight()->grad), to_backend<Cpu>(bn.weight()->grad)) < 1e-4);
}
#endif  // GCNET_WITH_NCCL
