// gcnet_gemm_rate: GFLOP/s of the float GEMM that blas::gemm runs on this processor (the project's
// AVX-512 or AVX2 kernel, cpu::isa()) against Eigen's (cpu::force_isa(Generic)), on one thread,
// for the shapes of the convolutions and a few squares. Not a test; numbers in docs/performance.md.
//
//   gcnet_gemm_rate [--reps N]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/kernels/blas.hpp"

using namespace gcnet;

namespace {

// Best of `reps` runs of C = A B (row-major, no transposes), in GFLOP/s.
double rate(index_t m, index_t n, index_t k, int reps) {
  std::vector<float> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n)),
      c(static_cast<std::size_t>(m * n));
  Rng rng(1);
  for (auto& v : a) v = static_cast<float>(rng.normal());
  for (auto& v : b) v = static_cast<float>(rng.normal());
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    blas::gemm(Cpu{}, blas::Op::N, blas::Op::N, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * double(m) * double(n) * double(k) / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: gcnet_gemm_rate [--reps N]\n");
      return 2;
    }
  }
  omp_set_num_threads(1);
  const cpu::Isa own = cpu::detected_isa();
  std::printf("one thread; ours: %s kernel, against Eigen 3.4 (GFLOP/s, best of %d)\n\n", cpu::isa_name(own), reps);
  std::printf("| m | n | k | what | ours | Eigen | ratio |\n|---:|---:|---:|---|---:|---:|---:|\n");
  struct Shape3 {
    index_t m, n, k;
    const char* what;
  };
  const Shape3 shapes[] = {
      {512, 512, 512, "square"},
      {1024, 1024, 1024, "square"},
      {64, 3136, 576, "3x3 conv, 64 ch, 56x56"},
      {128, 784, 1152, "3x3 conv, 128 ch, 28x28"},
      {256, 4096, 2304, "3x3 conv, 256 ch, 64x64"},
      {512, 384, 4608, "3x3 conv, 512 ch, one band"},
      {512, 4608, 384, "its weight gradient"},
  };
  for (const auto& s : shapes) {
    cpu::force_isa(own);
    const double ours = rate(s.m, s.n, s.k, reps);
    cpu::force_isa(cpu::Isa::Generic);
    const double eigen = rate(s.m, s.n, s.k, reps);
    std::printf("| %ld | %ld | %ld | %s | %.1f | %.1f | %.2f |\n", static_cast<long>(s.m), static_cast<long>(s.n),
                static_cast<long>(s.k), s.what, ours, eigen, ours / eigen);
  }
  cpu::force_isa(std::nullopt);
  return 0;
}
