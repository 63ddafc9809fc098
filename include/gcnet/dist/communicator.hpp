#pragma once
// Collective communication between the ranks of a data-parallel job.
//
// `Communicator` is the concept every implementation satisfies (SingleProcessCommunicator
// here, MpiCommunicator in mpi_communicator.hpp, NcclCommunicator in nccl_communicator.hpp):
//   rank(), size(), name()
//   all_reduce(E* buf, n, ReduceOp)           in place; Sum, Max or Min
//   all_gather(const E* in, n, E* out)        out holds size()*n values, rank r's at r*n
//   broadcast(E* buf, n, root)
//   barrier()
//   device_memory()                           true: the raw buffers are CUDA device pointers (NCCL)
// for E in float, double, int64. Every rank must make the same calls in the same order with
// the same counts (as MPI/NCCL require); layers that could disagree check that first.
//
// `CommunicatorRef` erases the type (a shared handle; copies refer to the same
// communicator) so that layers and the trainer hold one without being templates on it.
// default_communicator() is process-wide: single-process unless set_default_communicator()
// was called or an MPI launch was detected (see mpi_communicator.hpp).
#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "gcnet/core/error.hpp"
#include "gcnet/core/shape.hpp"

namespace gcnet::dist {

enum class ReduceOp { Sum, Max, Min };

inline const char* to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
  }
  return "?";
}

// Element types the collectives carry.
template <class E>
concept CommElement = std::same_as<E, float> || std::same_as<E, double> || std::same_as<E, std::int64_t>;

namespace detail {
template <class C, class E>
concept CollectivesOf = requires(C& c, E* buf, const E* in, index_t n, ReduceOp op, int root) {
  c.all_reduce(buf, n, op);
  c.all_gather(in, n, buf);
  c.broadcast(buf, n, root);
};
}  // namespace detail

template <class C>
concept Communicator = requires(C& c, const C& cc) {
  { cc.rank() } -> std::convertible_to<int>;
  { cc.size() } -> std::convertible_to<int>;
  { cc.name() } -> std::convertible_to<std::string>;
  { cc.device_memory() } -> std::convertible_to<bool>;
  c.barrier();
} && detail::CollectivesOf<C, float> && detail::CollectivesOf<C, double> && detail::CollectivesOf<C, std::int64_t>;

// One process: every collective is the identity (all_gather copies in to out).
class SingleProcessCommunicator {
 public:
  int rank() const { return 0; }
  int size() const { return 1; }
  std::string name() const { return "single-process"; }
  bool device_memory() const { return false; }
  void barrier() {}
  template <CommElement E>
  void all_reduce(E*, index_t n, ReduceOp) { check_count(n); }
  template <CommElement E>
  void all_gather(const E* in, index_t n, E* out) {
    check_count(n);
    if (n > 0 && in != out) std::memmove(out, in, static_cast<std::size_t>(n) * sizeof(E));
  }
  template <CommElement E>
  void broadcast(E*, index_t n, int root) {
    check_count(n);
    GCNET_CHECK(root == 0, "single-process communicator: broadcast root must be 0, got ", root);
  }

 private:
  static void check_count(index_t n) { GCNET_CHECK(n >= 0, "communicator: negative element count ", n); }
};

// Type-erased handle to any Communicator. Virtual calls are fine here: one per collective,
// never inside a kernel.
class CommunicatorRef {
 public:
  // The single-process communicator.
  CommunicatorRef() : CommunicatorRef(SingleProcessCommunicator{}) {}

  template <Communicator C>
    requires(!std::same_as<std::remove_cvref_t<C>, CommunicatorRef>)
  CommunicatorRef(C comm) : impl_(std::make_shared<Model<C>>(std::move(comm))) {}  // NOLINT: implicit by design

  // Shares an existing communicator object (e.g. one that owns an MPI communicator handle).
  template <Communicator C>
  static CommunicatorRef shared(std::shared_ptr<C> comm) {
    CommunicatorRef r;
    r.impl_ = std::make_shared<SharedModel<C>>(std::move(comm));
    return r;
  }

  int rank() const { return impl_->rank(); }
  int size() const { return impl_->size(); }
  std::string name() const { return impl_->name(); }
  bool device_memory() const { return impl_->device_memory(); }
  void barrier() { impl_->barrier(); }
  template <CommElement E>
  void all_reduce(E* buf, index_t n, ReduceOp op) { impl_->all_reduce(buf, n, op); }
  template <CommElement E>
  void all_gather(const E* in, index_t n, E* out) { impl_->all_gather(in, n, out); }
  template <CommElement E>
  void broadcast(E* buf, index_t n, int root) {
    GCNET_CHECK(root >= 0 && root < size(), "communicator ", name(), ": broadcast root ", root,
                " out of range for ", size(), " ranks");
    impl_->broadcast(buf, n, root);
  }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual std::string name() const = 0;
    virtual bool device_memory() const = 0;
    virtual void barrier() = 0;
    virtual void all_reduce(float*, index_t, ReduceOp) = 0;
    virtual void all_reduce(double*, index_t, ReduceOp) = 0;
    virtual void all_reduce(std::int64_t*, index_t, ReduceOp) = 0;
    virtual void all_gather(const float*, index_t, float*) = 0;
    virtual void all_gather(const double*, index_t, double*) = 0;
    virtual void all_gather(const std::int64_t*, index_t, std::int64_t*) = 0;
    virtual void broadcast(float*, index_t, int) = 0;
    virtual void broadcast(double*, index_t, int) = 0;
    virtual void broadcast(std::int64_t*, index_t, int) = 0;
  };
  // Forwards every call to get(); Model owns the communicator, SharedModel shares it.
  template <class Derived>
  struct Forward : Concept {
    auto& c() const { return static_cast<const Derived*>(this)->get(); }
    int rank() const override { return c().rank(); }
    int size() const override { return c().size(); }
    std::string name() const override { return c().name(); }
    bool device_memory() const override { return c().device_memory(); }
    void barrier() override { c().barrier(); }
    void all_reduce(float* b, index_t n, ReduceOp op) override { c().all_reduce(b, n, op); }
    void all_reduce(double* b, index_t n, ReduceOp op) override { c().all_reduce(b, n, op); }
    void all_reduce(std::int64_t* b, index_t n, ReduceOp op) override { c().all_reduce(b, n, op); }
    void all_gather(const float* i, index_t n, float* o) override { c().all_gather(i, n, o); }
    void all_gather(const double* i, index_t n, double* o) override { c().all_gather(i, n, o); }
    void all_gather(const std::int64_t* i, index_t n, std::int64_t* o) override { c().all_gather(i, n, o); }
    void broadcast(float* b, index_t n, int r) override { c().broadcast(b, n, r); }
    void broadcast(double* b, index_t n, int r) override { c().broadcast(b, n, r); }
    void broadcast(std::int64_t* b, index_t n, int r) override { c().broadcast(b, n, r); }
  };
  template <class C>
  struct Model final : Forward<Model<C>> {
    explicit Model(C comm) : comm(std::move(comm)) {}
    C& get() const { return comm; }
    mutable C comm;
  };
  template <class C>
  struct SharedModel final : Forward<SharedModel<C>> {
    explicit SharedModel(std::shared_ptr<C> p) : ptr(std::move(p)) {}
    C& get() const { return *ptr; }
    std::shared_ptr<C> ptr;
  };

  std::shared_ptr<Concept> impl_;
};
static_assert(Communicator<SingleProcessCommunicator>);
static_assert(Communicator<CommunicatorRef>);

// The number of processes this job was launched with by mpirun (OpenMPI, MPICH, Slurm's PMI),
// from the environment; 1 when not launched that way.
inline int launched_world_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    if (const char* v = std::getenv(var); v && *v) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  return 1;
}

namespace detail {
struct DefaultCommunicatorState {
  std::mutex mu;
  std::unique_ptr<CommunicatorRef> comm;
  // Installed by mpi_communicator.hpp when it is part of the program: builds the world
  // communicator on first use under mpirun.
  std::function<CommunicatorRef()> launch_factory;
};
inline DefaultCommunicatorState& default_state() {
  static DefaultCommunicatorState s;
  return s;
}
}  // namespace detail

// Replaces the process-wide communicator (e.g. with an NCCL one, or for tests).
inline void set_default_communicator(CommunicatorRef comm) {
  auto& s = detail::default_state();
  std::lock_guard lock(s.mu);
  s.comm = std::make_unique<CommunicatorRef>(std::move(comm));
}

// The process-wide communicator. First use: under mpirun with a program that includes
// mpi_communicator.hpp (and links gcnet::mpi), the MPI world; under mpirun without MPI
// support compiled in, an error (silently training K independent copies would be wrong);
// otherwise single-process.
inline CommunicatorRef default_communicator() {
  auto& s = detail::default_state();
  std::lock_guard lock(s.mu);
  if (!s.comm) {
    const int launched = launched_world_size();
    if (s.launch_factory) {
      s.comm = std::make_unique<CommunicatorRef>(s.launch_factory());
    } else {
      GCNET_CHECK(launched == 1, "default_communicator: this process was started by mpirun with ", launched,
                  " processes, but the program has no MPI support: include gcnet/dist/mpi_communicator.hpp "
                  "and link gcnet::mpi");
      s.comm = std::make_unique<CommunicatorRef>();
    }
  }
  return *s.comm;
}

}  // namespace gcnet::dist
