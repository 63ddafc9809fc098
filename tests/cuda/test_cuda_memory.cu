// Device memory: host <-> device transfers, the caching allocator, streams.
// Each test skips visibly (ctest "Skipped") without a GPU.
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "cuda_test_support.hpp"
#include "gcnet/core/param.hpp"

using namespace gcnet;
using test::random_tensor;

namespace {
template <class T>
bool is_device_pointer(const T* p) {
  cudaPointerAttributes attr{};
  GCNET_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
  return attr.type == cudaMemoryTypeDevice;
}

template <class T>
void check_equal(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b) {
  REQUIRE(a.shape() == b.shape());
  REQUIRE(a.is_contiguous());
  REQUIRE(b.is_contiguous());
  index_t mismatches = 0;
  for (index_t i = 0; i < a.numel(); ++i) mismatches += a[i] != b[i];
  CHECK(mismatches == 0);
}
}  // namespace

TEST_CASE("host -> device -> host round trip keeps shape and values") {
  GCNET_REQUIRE_CUDA_DEVICE();
  const auto h = random_tensor<float>({3, 5, 7}, 11);
  const Tensor<float, Cuda> d = to_backend<Cuda>(h);
  CHECK(d.shape() == h.shape());
  CHECK(d.is_contiguous());
  CHECK(is_device_pointer(d.data()));
  check_equal(to_backend<Cpu>(d), h);

  const auto hd = random_tensor<double>({4, 9}, 12);
  check_equal(to_backend<Cpu>(to_backend<Cuda>(hd)), hd);

  Tensor<std::int64_t, Cpu> labels({17});
  for (index_t i = 0; i < 17; ++i) labels[i] = i * 1000003 - 5;
  check_equal(to_backend<Cpu>(to_backend<Cuda>(labels)), labels);

  const Tensor<float, Cpu> empty({0, 3});
  const auto e = to_backend<Cpu>(to_backend<Cuda>(empty));
  CHECK(e.shape() == empty.shape());
}

TEST_CASE("strided sources are made contiguous in both directions") {
  GCNET_REQUIRE_CUDA_DEVICE();
  const auto h = random_tensor<float>({4, 6, 5}, 13);
  const auto h_view = h.narrow(1, 1, 4);
  REQUIRE_FALSE(h_view.is_contiguous());
  const auto expected = clone(h_view);

  const auto d_from_view = to_backend<Cuda>(h_view);  // host view -> dense device tensor
  CHECK(d_from_view.is_contiguous());
  check_equal(to_backend<Cpu>(d_from_view), expected);

  const auto d = to_backend<Cuda>(h);
  const auto d_view = d.narrow(1, 1, 4);  // device view
  REQUIRE_FALSE(d_view.is_contiguous());
  check_equal(to_backend<Cpu>(d_view), expected);                        // gathered by a kernel
  check_equal(cuda::detail::download_strided_via_host(d_view), expected);  // host-compiler path
}

TEST_CASE("Cuda -> Cuda is shallow and Param::set uploads") {
  GCNET_REQUIRE_CUDA_DEVICE();
  const auto h = random_tensor<float>({8}, 14);
  const auto d = to_backend<Cuda>(h);
  const auto same = to_backend<Cuda>(d);
  CHECK(same.shares_storage_with(d));

  Param<float, Cuda> p(h);
  CHECK(p.value.shape() == h.shape());
  CHECK(p.grad.shape() == h.shape());
  CHECK(is_device_pointer(p.grad.data()));
  check_equal(to_backend<Cpu>(p.value), h);
}

TEST_CASE("caching allocator reuses a freed block and reports stats") {
  GCNET_REQUIRE_CUDA_DEVICE();
  cuda::empty_cache();
  const auto s0 = cuda::memory_stats();
  CHECK(s0.cached_bytes == 0);

  const std::size_t bytes = 1000 * sizeof(float), block = cuda::round_size(bytes);
  const void* first = nullptr;
  {
    Tensor<float, Cuda> t({1000});
    first = t.data();
    const auto s1 = cuda::memory_stats();
    CHECK(s1.allocated_bytes == s0.allocated_bytes + block);
    CHECK(s1.device_allocations == s0.device_allocations + 1);
    CHECK(s1.peak_allocated_bytes >= s1.allocated_bytes);
  }
  const auto s2 = cuda::memory_stats();
  CHECK(s2.allocated_bytes == s0.allocated_bytes);
  CHECK(s2.cached_bytes == block);
  {
    Tensor<float, Cuda> again({990});  // same size class
    CHECK(again.data() == first);
    const auto s3 = cuda::memory_stats();
    CHECK(s3.cache_hits == s2.cache_hits + 1);
    CHECK(s3.device_allocations == s2.device_allocations);
    CHECK(s3.cached_bytes == 0);

    Tensor<float, Cuda> bigger({100000});  // another class: a new block
    CHECK(cuda::memory_stats().device_allocations == s2.device_allocations + 1);
  }
  CHECK(cuda::memory_stats().cached_bytes > 0);
  cuda::empty_cache();
  const auto s4 = cuda::memory_stats();
  CHECK(s4.cached_bytes == 0);
  CHECK(s4.allocated_bytes == s0.allocated_bytes);
}

TEST_CASE("caching allocator keeps blocks to their stream") {
  GCNET_REQUIRE_CUDA_DEVICE();
  cuda::empty_cache();
  { Tensor<float, Cuda> t({5000}); }  // freed on the default stream
  const auto s0 = cuda::memory_stats();
  cuda::Stream stream;
  {
    cuda::StreamGuard guard(stream);
    Tensor<float, Cuda> t({5000});
    CHECK(cuda::memory_stats().cache_hits == s0.cache_hits);  // not the default stream's block
  }
  Tensor<float, Cuda> t({5000});
  CHECK(cuda::memory_stats().cache_hits == s0.cache_hits + 1);
}

TEST_CASE("caching allocator is thread-safe") {
  GCNET_REQUIRE_CUDA_DEVICE();
  const auto s0 = cuda::memory_stats();
  std::mutex mutex;
  std::set<const void*> live;
  int duplicates = 0, failures = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      try {
        std::vector<Tensor<float, Cuda>> held;
        for (int it = 0; it < 200; ++it) {
          held.emplace_back(Shape{static_cast<index_t>(100 + (it * 37 + t * 11) % 5000)});
          {
            std::lock_guard<std::mutex> lock(mutex);
            duplicates += !live.insert(held.back().data()).second;
          }
          if (held.size() > 4) {
            std::lock_guard<std::mutex> lock(mutex);
            live.erase(held.front().data());
            held.erase(held.begin());  // freed while other threads allocate
          }
        }
        std::lock_guard<std::mutex> lock(mutex);
        for (auto& h : held) live.erase(h.data());
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        ++failures;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(duplicates == 0);  // no block handed to two live tensors
  const auto s1 = cuda::memory_stats();
  CHECK(s1.allocated_bytes == s0.allocated_bytes);
  CHECK(s1.cache_hits > s0.cache_hits);
}

TEST_CASE("out of device memory is a gcnet::Error with the size, and recoverable") {
  GCNET_REQUIRE_CUDA_DEVICE();
  auto huge = [] { Tensor<float, Cuda> t({index_t{1} << 46}); };  // 256 TiB
  CHECK_THROWS_WITH_AS(huge(), doctest::Contains("CUDA out of memory: tried to allocate"), gcnet::Error);
  const auto h = random_tensor<float>({64}, 15);
  check_equal(to_backend<Cpu>(to_backend<Cuda>(h)), h);  // still usable afterwards
}

TEST_CASE("work queued under a StreamGuard runs on that stream") {
  GCNET_REQUIRE_CUDA_DEVICE();
  cuda::Stream stream;
  CHECK(stream.get() != nullptr);
  const auto h = random_tensor<float>({1 << 16}, 16);
  Tensor<float, Cpu> back;
  {
    cuda::StreamGuard guard(stream);
    CHECK(cuda::current_stream() == stream.get());
    auto d = to_backend<Cuda>(h);
    Tensor<float, Cuda> twice;
    add(d, d, twice);
    cuda::synchronize();
    back = to_backend<Cpu>(twice);
  }
  CHECK(cuda::current_stream() == nullptr);
  for (index_t i = 0; i < h.numel(); i += 101) CHECK(back[i] == h[i] + h[i]);

  cuda::Stream moved = std::move(stream);
  CHECK(moved.get() != nullptr);
  CHECK(stream.get() == nullptr);
  CHECK_NOTHROW(moved.synchronize());
}
