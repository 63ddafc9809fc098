#pragma once
// Context: what a module's forward and backward depend on besides its inputs and its own state,
// passed explicitly at the module level (docs/layer-contract.md, "Context"):
//   training      train or eval mode. A module brings itself and everything below it to this
//                 mode when it differs from the module's current one (set_training, which
//                 honours frozen stages and norm_eval).
//   communicator  the process group of SyncBatchNorm2d. Nothing below a module reads a
//                 process-wide default: the trainer puts its data-parallel group here.
//   rng           the random stream of this step: Dropout draws its masks from (seed, step)
//                 and its own layer seed, so a resumed run draws the same masks as an
//                 uninterrupted one. Unset: each Dropout uses its own counter.
// The CUDA stream and a workspace arena join it with the CUDA backend's modules.
//
// Leaf layers that need it (SyncBatchNorm2d, Dropout2d) have the hook use_context(const Context&);
// bind_context(layer, ctx) calls it on a layer and everything below it, and every module does so
// for its layer children at the start of forward.
#include <cstdint>
#include <optional>
#include <string_view>

#include "gcnet/dist/communicator.hpp"

namespace gcnet {

struct RngStream {
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
};

struct Context {
  bool training = true;
  dist::CommunicatorRef communicator{};  // single process unless set
  std::optional<RngStream> rng{};

  static Context train() { return Context{}; }
  static Context eval() {
    Context c;
    c.training = false;
    return c;
  }
};

// Hands `ctx` to `l` and to every layer below it that has use_context (combinators are walked
// through for_each_child). Nested modules are left alone: they bind themselves when their own
// forward gets the context.
template <class L>
void bind_context(L& l, const Context& ctx) {
  if constexpr (requires { l.use_context(ctx); }) l.use_context(ctx);
  if constexpr (requires { typename L::input_type; }) {
    return;  // a module
  } else if constexpr (requires { l.for_each_child([](std::string_view, auto&) {}); }) {
    l.for_each_child([&](std::string_view, auto& child) { bind_context(child, ctx); });
  }
}

}  // namespace gcnet
