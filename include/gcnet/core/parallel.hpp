#pragma once
// for_each_index(backend, n, f): calls f(i) for i in [0, n). A kernel body is written
// once as a GCNET_HD callable; on the CPU it runs on OpenMP threads (serially when n is
// small), on CUDA it is launched as a grid (gcnet/cuda/launch.cuh).
// for_each_range(Cpu, n, f) hands each thread one contiguous [begin, end) block, for
// kernels that keep per-thread scratch.
#include <algorithm>

#include "gcnet/core/backend.hpp"
#include "gcnet/core/config.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace gcnet {

// Below this many iterations a parallel region costs more than it saves.
inline constexpr index_t kParallelGrain = 16384;

inline int num_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// The threads of the CPU kernels from now on (a program's --threads).
inline void set_num_threads(int n) {
#if defined(_OPENMP)
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

template <class F>
void for_each_index(Cpu, index_t n, F&& f, index_t grain = kParallelGrain) {
#if defined(_OPENMP)
  if (n >= grain && num_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (index_t i = 0; i < n; ++i) f(i);
    return;
  }
#endif
  (void)grain;
  for (index_t i = 0; i < n; ++i) f(i);
}

template <class F>
void for_each_range(Cpu, index_t n, F&& f, index_t grain = kParallelGrain) {
#if defined(_OPENMP)
  if (n >= grain && num_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel
    {
      const index_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const index_t chunk = (n + nt - 1) / nt;
      const index_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
      if (b < e) f(b, e);
    }
    return;
  }
#endif
  (void)grain;
  if (n > 0) f(index_t{0}, n);
}

// Team regions, for kernels of several dependent steps that are each too small to pay for a
// fork/join of their own: run_team(Cpu{}, threads, f) calls f(TeamMember) once on every thread
// of ONE parallel region, and the steps are separated by member.barrier(). OpenMP may give fewer
// threads than asked, so f takes its rank and the actual size from the TeamMember (scratch sized
// for `threads` is enough). A team of one (threads <= 1, without OpenMP, or inside another
// parallel region) runs f serially on the calling thread. f must not throw.
struct TeamMember {
  int rank = 0, size = 1;
  // Waits for the whole team. A team of one waits for nothing (and must not reach the barrier of
  // an enclosing parallel region).
  void barrier() const {
#if defined(_OPENMP)
    if (size > 1) {
#pragma omp barrier
    }
#endif
  }
};

// The team size run_team would use here: 1 inside a parallel region or without OpenMP.
inline int team_size(Cpu) {
#if defined(_OPENMP)
  return omp_in_parallel() ? 1 : num_threads();
#else
  return 1;
#endif
}

template <class F>
void run_team(Cpu, int threads, F&& f) {
#if defined(_OPENMP)
  if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
    f(TeamMember{omp_get_thread_num(), omp_get_num_threads()});
    return;
  }
#endif
  (void)threads;
  f(TeamMember{});
}

// for_each_index for loops whose every index does about `work` elementary steps (one
// channel's or one row's reduction, one image plane of a pooling layer): on the CPU it goes
// parallel once n * work passes the grain, however small n is; other backends launch one
// thread per index as usual. Layers whose backward scatters inside a plane run one plane per
// index, so no two threads write the same element.
template <Backend B, class F>
void for_each_index_weighted(B, index_t n, index_t work, F&& f) {
  if constexpr (std::same_as<B, Cpu>)
    for_each_index(Cpu{}, n, f, std::max<index_t>(1, kParallelGrain / std::max<index_t>(1, work)));
  else
    for_each_index(B{}, n, f);
}

}  // namespace gcnet

#if defined(__CUDACC__)
#include "gcnet/cuda/launch.cuh"
#endif
