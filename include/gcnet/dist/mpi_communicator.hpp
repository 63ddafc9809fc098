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
//
// Timeouts: every collective is started non-blocking and waited for with a deadline
// (mpi_timeout.hpp), so a rank that stopped, hung or died does not leave the others
// blocked forever: after the timeout every waiting rank fails with an Error naming the ranks
// that did not answer. Default 600 s, or GCNET_COLLECTIVE_TIMEOUT (seconds) from the
// environment; set_timeout() per communicator.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gcnet/dist/mpi_timeout.hpp"
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
    // After a collective timed out, MPI_Finalize would wait for the rank that stopped
    // answering, forever: the process exits without it and mpirun ends the job.
    if (owns && !finalized && !collective_timed_out()) MPI_Finalize();
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
    waiter_ = std::make_shared<CollectiveWaiter>(comm_, rank_, size_, default_collective_timeout());
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  std::string name() const { return "mpi(rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ")"; }
  bool device_memory() const { return false; }
  MPI_Comm handle() const { return comm_; }

  // How long a collective may wait for the other ranks before every waiting rank fails.
  // Shared by copies of this communicator.
  void set_timeout(std::chrono::duration<double> t) { waiter_->set_timeout(t); }
  std::chrono::duration<double> timeout() const { return waiter_->timeout(); }

  void barrier() {
    collective("MPI_Barrier", [&](MPI_Request* req) { return MPI_Ibarrier(comm_, req); });
  }

  template <CommElement E>
  void all_reduce(E* buf, index_t n, ReduceOp op) {
    check_count(n);
    for (index_t off = 0; off < n; off += detail::kMpiChunk) {
      const int c = static_cast<int>(std::min(detail::kMpiChunk, n - off));
      collective("MPI_Allreduce", [&](MPI_Request* req) {
        return MPI_Iallreduce(MPI_IN_PLACE, buf + off, c, detail::mpi_type<E>(), detail::mpi_op(op), comm_, req);
      });
    }
  }
  template <CommElement E>
  void all_gather(const E* in, index_t n, E* out) {
    check_count(n);
    if (n <= detail::kMpiChunk) {
      const int c = static_cast<int>(n);
      collective("MPI_Allgather", [&](MPI_Request* req) {
        return MPI_Iallgather(in, c, detail::mpi_type<E>(), out, c, detail::mpi_type<E>(), comm_, req);
      });
      return;
    }
    // Huge: gather in chunks through a scratch buffer, then place each rank's chunk.
    std::vector<E> tmp;
    for (index_t off = 0; off < n; off += detail::kMpiChunk) {
      const index_t len = std::min(detail::kMpiChunk, n - off);
      tmp.resize(static_cast<std::size_t>(len * size_));
      const int c = static_cast<int>(len);
      collective("MPI_Allgather", [&](MPI_Request* req) {
        return MPI_Iallgather(in + off, c, detail::mpi_type<E>(), tmp.data(), c, detail::mpi_type<E>(), comm_, req);
      });
      for (int r = 0; r < size_; ++r) std::copy_n(tmp.data() + r * len, len, out + r * n + off);
    }
  }
  template <CommElement E>
  void broadcast(E* buf, index_t n, int root) {
    check_count(n);
    for (index_t off = 0; off < n; off += detail::kMpiChunk) {
      const int c = static_cast<int>(std::min(detail::kMpiChunk, n - off));
      collective("MPI_Bcast", [&](MPI_Request* req) {
        return MPI_Ibcast(buf + off, c, detail::mpi_type<E>(), root, comm_, req);
      });
    }
  }

 private:
  static void check_count(index_t n) { GCNET_CHECK(n >= 0, "MpiCommunicator: negative element count ", n); }
  // Starts one non-blocking collective and waits for it with the timeout. After a timeout the
  // communicator is unusable (that collective never completes): later calls fail at once.
  template <class Start>
  void collective(const char* what, Start&& start_it) {
    waiter_->check_usable(what);
    MPI_Request req;
    detail::mpi_check(start_it(&req), what);
    waiter_->wait(req, what);
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::shared_ptr<CollectiveWaiter> waiter_;
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
