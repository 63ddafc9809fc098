#pragma once
// MpiCommunicator: the Communicator concept over MPI (OpenMPI from Debian's packages).
// Needs <mpi.h>: link the gcnet::mpi CMake target (present when find_package(MPI) succeeds).
//
// Including this header also makes default_communicator() MPI-aware: in a process started
// by mpirun (OMPI_COMM_WORLD_SIZE etc. set) its first call initializes MPI and returns the
// world communicator, so a program runs data-parallel just by being launched with
// `mpirun -np K`. MPI is finalized at exit when this code initialized it.
//
// Host memory only (device_memory() is false); CUDA tensors are staged by
// tensor_collectives.hpp. Counts above INT_MAX are sent in chunks.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gcnet/dist/communicator.hpp"

namespace gcnet::dist {

namespace detail {
template <class E>
MPI_Datatype mpi_type() {
  if constexpr (std::same_as<E, float>) return MPI_FLOAT;
  else if constexpr (std::same_as<E, double>) return MPI_DOUBLE;
  else return MPI_INT64_T;
}
inline MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return MPI_SUM;
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
  }
  return MPI_SUM;
}
inline void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  gcnet::detail::fail("MPI ", what, " failed: ", std::string(msg, static_cast<std::size_t>(len)));
}
constexpr index_t kMpiChunk = INT_MAX / 2;

// Initializes MPI once per process (thread level FUNNELED: collectives come from the
// training thread only) and finalizes it at exit if this code initialized it.
struct MpiEnvironment {
  bool owns = false;
  MpiEnvironment() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns = true;
    }
  }
  ~MpiEnvironment() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns && !finalized) MPI_Finalize();
  }
  static void ensure() { static MpiEnvironment env; }
};
}  // namespace detail

class MpiCommunicator {
 public:
  // The world communicator (MPI initialized on first use).
  static MpiCommunicator world() {
    detail::MpiEnvironment::ensure();
    return MpiCommunicator(MPI_COMM_WORLD);
  }
  // Wraps an existing communicator (not freed here).
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    detail::mpi_check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    detail::mpi_check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    // Errors come back as codes (then gcnet::Error) instead of aborting the job.
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  std::string name() const { return "mpi(rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ")"; }
  bool device_memory() const { return false; }
  MPI_Comm handle() const { return comm_; }

  void barrier() { detail::mpi_check(MPI_Barrier(comm_), "MPI_Barrier"); }

  template <CommElement E>
  void all_reduce(E* buf, index_t n, ReduceOp op) {
    check_count(n);
    for (index_t off = 0; off < n; off += detail::kMpiChunk) {
      const int c = static_cast<int>(std::min(detail::kMpiChunk, n - off));
      detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, buf + off, c, detail::mpi_type<E>(), detail::mpi_op(op), comm_),
                        "MPI_Allreduce");
    }
  }
  template <CommElement E>
  void all_gather(const E* in, index_t n, E* out) {
    check_count(n);
    if (n <= detail::kMpiChunk) {
      const int c = static_cast<int>(n);
      detail::mpi_check(MPI_Allgather(in, c, detail::mpi_type<E>(), out, c, detail::mpi_type<E>(), comm_),
                        "MPI_Allgather");
      return;
    }
    // Huge: gather in chunks through a scratch buffer, then place each rank's chunk.
    std::vector<E> tmp;
    for (index_t off = 0; off < n; off += detail::kMpiChunk) {
      const index_t len = std::min(detail::kMpiChunk, n - off);
      tmp.resize(static_cast<std::size_t>(len * size_));
      const int c = static_cast<int>(len);
      detail::mpi_check(MPI_Allgather(in + off, c, detail::mpi_type<E>(), tmp.data(), c, detail::mpi_type<E>(), comm_),
                        "MPI_Allgather");
      for (int r = 0; r < size_; ++r) std::copy_n(tmp.data() + r * len, len, out + r * n + off);
    }
  }
  template <CommElement E>
  void broadcast(E* buf, index_t n, int root) {
    check_count(n);
    for (index_t off = 0; off < n; off += detail::kMpiChunk) {
      const int c = static_cast<int>(std::min(detail::kMpiChunk, n - off));
      detail::mpi_check(MPI_Bcast(buf + off, c, detail::mpi_type<E>(), root, comm_), "MPI_Bcast");
    }
  }

 private:
  static void check_count(index_t n) { GCNET_CHECK(n >= 0, "MpiCommunicator: negative element count ", n); }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};
static_assert(Communicator<MpiCommunicator>);

namespace detail {
// Registers the MPI world as what default_communicator() uses under mpirun. An inline
// variable: initialized once per program, before main, in every program including this header.
inline const bool mpi_launch_factory_registered = [] {
  auto& s = default_state();
  std::lock_guard lock(s.mu);
  s.launch_factory = []() -> CommunicatorRef {
    if (launched_world_size() == 1) return CommunicatorRef();
    return CommunicatorRef(MpiCommunicator::world());
  };
  return true;
}();
}  // namespace detail

}  // namespace gcnet::dist
