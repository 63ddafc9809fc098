// Runs under `mpirun -np 3` (tests/dist/CMakeLists.txt): the last rank stops itself with
// SIGSTOP, as a rank stopped by a debugger, the OOM killer's freeze or a hung node would be.
// The others enter an all-reduce: rank 0 with a 2 s timeout, rank 1 with 10 s. Both must fail
// within seconds (rank 1 before its own timeout, because rank 0 told it that it gave up) with
// an Error naming rank 2,
// instead of waiting forever. Then rank 0 kills the stopped rank and prints the line ctest
// looks for; the job ends with mpirun reporting the killed rank (its exit code is ignored).
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "gcnet/dist/mpi_communicator.hpp"

using namespace gcnet;

TEST_CASE("MPI collectives time out and name the rank that did not answer") {
  dist::MpiCommunicator comm = dist::MpiCommunicator::world();
  const int rank = comm.rank(), K = comm.size();
  REQUIRE(K == 3);
  std::vector<std::int64_t> pids(3);
  const std::int64_t me = ::getpid();
  comm.all_gather(&me, 1, pids.data());
  if (rank == 2) {
    ::raise(SIGSTOP);  // never continued: rank 0 kills it
    return;
  }
  comm.set_timeout(std::chrono::seconds(rank == 0 ? 2 : 10));
  const auto t0 = std::chrono::steady_clock::now();
  double x = 1;
  std::string error;
  try {
    comm.all_reduce(&x, 1, dist::ReduceOp::Sum);
  } catch (const Error& e) {
    error = e.what();
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(error);
  CHECK(error.find("MPI MPI_Allreduce (collective #2) on rank " + std::to_string(rank) + " of 3") == 0);
  CHECK(error.find("rank 2 did not answer (stopped, hung or dead?)") != std::string::npos);
  CHECK(error.find(rank == 0 ? "timed out after 2 s" : "rank 0 gave up waiting for it") != std::string::npos);
  const double limit = rank == 0 ? 6 : 8;  // timeout + grace (1 s), and less than rank 1's 10 s
  CHECK(waited < limit);
  // The communicator is unusable now: later collectives fail at once.
  CHECK_THROWS_WITH_AS(comm.barrier(), doctest::Contains("unusable since an earlier collective timed out"), Error);
  CHECK(dist::collective_timed_out());

  // Rank 1 reports to rank 0 (plain MPI, outside the broken communicator), then rank 0 ends it.
  // Once rank 2 is killed, mpirun aborts the job with SIGTERM to the others, at any moment: they
  // ignore it and leave at once (every CHECK above has printed already), so the abort can never
  // be reported as a crash of this test.
  int ok = error.find("rank 2 did not answer") != std::string::npos && waited < limit;
  ::signal(SIGTERM, SIG_IGN);
  if (rank == 1) {
    MPI_Send(&ok, 1, MPI_INT, 0, 7, MPI_COMM_WORLD);
    int bye = 0;
    MPI_Recv(&bye, 1, MPI_INT, 0, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  } else {
    int ok1 = 0;
    MPI_Recv(&ok1, 1, MPI_INT, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (ok && ok1) std::printf("collective timeout: ranks 0 and 1 both named the stopped rank 2\n");
    int bye = 1;
    MPI_Send(&bye, 1, MPI_INT, 1, 8, MPI_COMM_WORLD);
    std::fflush(stdout);
    ::kill(static_cast<pid_t>(pids[2]), SIGKILL);
  }
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(0);
}
