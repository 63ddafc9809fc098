#pragma once
// Waiting for a non-blocking MPI collective with a deadline (MpiCommunicator's collectives).
// A blocking MPI_Allreduce waits forever for a rank that was stopped, hangs or died without
// MPI noticing. Here a collective that has not completed after the timeout makes this rank
// ask every other rank, by point-to-point messages, whether it is there; ranks waiting in a
// collective answer (and, hearing that a peer gave up, give up too, since the collective can
// no longer complete). After a grace period the rank throws an Error naming the ranks that
// did not answer. The communicator is unusable afterwards, and MPI is not finalized at exit
// (finalizing would wait for the missing rank): the program should exit, and mpirun ends
// the job.
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gcnet/core/error.hpp"

namespace gcnet::dist {

inline constexpr double kDefaultCollectiveTimeoutSeconds = 600;

// GCNET_COLLECTIVE_TIMEOUT (seconds) from the environment, else 600 s: long enough for rank 0
// to write a large checkpoint while the others wait in the next collective.
inline std::chrono::duration<double> default_collective_timeout() {
  if (const char* v = std::getenv("GCNET_COLLECTIVE_TIMEOUT"); v && *v) {
    char* end = nullptr;
    const double s = std::strtod(v, &end);
    GCNET_CHECK(end && *end == '\0' && std::isfinite(s) && s > 0, "GCNET_COLLECTIVE_TIMEOUT='", v,
                "': expected a positive number of seconds");
    return std::chrono::duration<double>(s);
  }
  return std::chrono::duration<double>(kDefaultCollectiveTimeoutSeconds);
}

namespace detail {
inline std::atomic<bool>& collective_timed_out_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}
// Payloads of the small point-to-point sends below; they must outlive the sends, which are
// never waited for (the peer may be gone), so they are kept for the life of the process.
inline long long* keep_payload(long long v) {
  static std::deque<long long> payloads;
  payloads.push_back(v);
  return &payloads.back();
}
}  // namespace detail

// True once a collective in this process timed out (MPI must then not be finalized).
inline bool collective_timed_out() { return detail::collective_timed_out_flag().load(); }

class CollectiveWaiter {
 public:
  // Tags of the "are you there?" messages and their answers on the communicator itself (MPI
  // keeps point-to-point traffic apart from collectives); high, so user tags do not clash.
  static constexpr int kProbeTag = 32701, kReplyTag = 32702;

  CollectiveWaiter(MPI_Comm comm, int rank, int size, std::chrono::duration<double> timeout)
      : comm_(comm), rank_(rank), size_(size) {
    set_timeout(timeout);
  }

  void set_timeout(std::chrono::duration<double> t) {
    GCNET_CHECK(t.count() > 0 && std::isfinite(t.count()), "MpiCommunicator: the collective timeout must be positive, got ",
                t.count(), " s");
    timeout_ = t;
  }
  std::chrono::duration<double> timeout() const { return timeout_; }

  void check_usable(const char* what) const {
    GCNET_CHECK(broken_.empty(), "MPI ", what, " on rank ", rank_, " of ", size_,
                ": the communicator is unusable since an earlier collective timed out (", broken_, ")");
  }

  // Waits for `req` (a started collective); throws after the timeout, or soon after a peer
  // reports that it gave up.
  void wait(MPI_Request& req, const char* what) {
    ++seq_;
    const auto start = Clock::now();
    for (std::uint64_t i = 0;; ++i) {
      int done = 0;
      const int rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      GCNET_CHECK(rc == MPI_SUCCESS, "MPI ", what, " failed on rank ", rank_, " (error ", rc, ")");
      if (done) return;
      const auto waited = Clock::now() - start;
      if (i % 64 == 63) {
        if (const int prober = answer_probes(); prober >= 0) give_up(what, start, prober);
        if (waited > timeout_) give_up(what, start, -1);
      }
      // Spin briefly (most collectives complete within microseconds), then poll less often.
      if (waited > std::chrono::milliseconds(1))
        std::this_thread::sleep_for(waited > std::chrono::seconds(1) ? std::chrono::microseconds(1000)
                                                                      : std::chrono::microseconds(20));
    }
  }

 private:
  using Clock = std::chrono::steady_clock;

  void send(int to, int tag) {
    MPI_Request r;
    if (MPI_Isend(detail::keep_payload(static_cast<long long>(seq_)), 1, MPI_LONG_LONG, to, tag, comm_, &r) ==
        MPI_SUCCESS)
      MPI_Request_free(&r);
  }

  // Receives every waiting message with `tag`; calls f(source) for each.
  template <class F>
  void drain(int tag, F&& f) {
    for (;;) {
      int flag = 0;
      MPI_Status st;
      if (MPI_Iprobe(MPI_ANY_SOURCE, tag, comm_, &flag, &st) != MPI_SUCCESS || !flag) return;
      long long payload = 0;
      MPI_Recv(&payload, 1, MPI_LONG_LONG, st.MPI_SOURCE, tag, comm_, MPI_STATUS_IGNORE);
      f(st.MPI_SOURCE);
    }
  }

  // Answers peers that ask whether this rank is there; returns one of them (-1 if none): a
  // peer that asks has given up on the collective, which therefore cannot complete.
  int answer_probes() {
    int prober = -1;
    drain(kProbeTag, [&](int from) {
      send(from, kReplyTag);
      prober = from;
    });
    return prober;
  }

  [[noreturn]] void give_up(const char* what, Clock::time_point start, int prober) {
    std::vector<char> answered(static_cast<std::size_t>(size_), 0);
    answered[static_cast<std::size_t>(rank_)] = 1;
    if (prober >= 0) answered[static_cast<std::size_t>(prober)] = 1;
    for (int r = 0; r < size_; ++r)
      if (r != rank_) send(r, kProbeTag);
    // Live ranks answer within milliseconds; the grace period covers slow machines.
    const auto grace = std::clamp(timeout_ / 4, std::chrono::duration<double>(1), std::chrono::duration<double>(10));
    const auto deadline = Clock::now() + grace;
    auto all = [&] { return std::count(answered.begin(), answered.end(), 1) == size_; };
    while (!all() && Clock::now() < deadline) {
      drain(kReplyTag, [&](int from) { answered[static_cast<std::size_t>(from)] = 1; });
      drain(kProbeTag, [&](int from) {  // another rank gave up too: it is there
        answered[static_cast<std::size_t>(from)] = 1;
        send(from, kReplyTag);
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::vector<int> silent;
    for (int r = 0; r < size_; ++r)
      if (!answered[static_cast<std::size_t>(r)]) silent.push_back(r);
    std::ostringstream os;
    os << "MPI " << what << " (collective #" << seq_ << ") on rank " << rank_ << " of " << size_;
    if (prober >= 0)
      os << " abandoned after " << seconds(Clock::now() - start) << " s: rank " << prober
         << " gave up waiting for it (its timeout)";
    else
      os << " timed out after " << seconds(timeout_) << " s";
    if (silent.empty()) {
      os << "; every rank answered, so they wait in different collectives (ranks made mismatched calls?)";
    } else {
      os << "; " << (silent.size() == 1 ? "rank " : "ranks ");
      for (std::size_t i = 0; i < silent.size(); ++i) os << (i ? ", " : "") << silent[i];
      os << " did not answer (stopped, hung or dead?)";
    }
    os << ". The timeout is GCNET_COLLECTIVE_TIMEOUT (seconds) or MpiCommunicator::set_timeout()";
    broken_ = os.str();
    detail::collective_timed_out_flag() = true;
    gcnet::detail::fail(broken_);
  }

  template <class D>
  static double seconds(D d) {
    return std::round(std::chrono::duration<double>(d).count() * 10) / 10;
  }

  MPI_Comm comm_;
  int rank_, size_;
  std::chrono::duration<double> timeout_{kDefaultCollectiveTimeoutSeconds};
  std::uint64_t seq_ = 0;
  std::string broken_;  // why the communicator is unusable; empty while it works
};

}  // namespace gcnet::dist
