#pragma once
// The module tier (docs/layer-contract.md, "Modules"): graph-shaped parts of a model whose
// inputs and outputs are field types (core/fields.hpp: a tensor, a vector of them, or a plain
// struct such as FeatureMaps { c2, c3, c4, c5 }), and which take a Context.
//   using input_type = ...; using output_type = ...;
//   void forward(const Context& ctx, const input_type& x, output_type& y)
//   void backward(const Context& ctx, const input_type& x, const output_type& y,
//                 const output_type& dy, input_type& dx)
//        called after forward(ctx, x, y) with the same x and y. Data gradients ACCUMULATE into
//        the defined tensors of dx (an undefined tensor of dx: that gradient is not wanted); an
//        undefined tensor of dy means no gradient arrives there. Parameter gradients are
//        ASSIGNED, as for layers.
//   std::string describe() const
//   void set_training(bool), bool training() const
// plus the optional hooks of layers (visit_parameters, visit_buffers, for_each_child).
// A Component is a leaf layer or a module; forward(c, ctx, x, y) / backward(c, ctx, ...) run
// either, which is what the trainer, the gradient checker and the parity helper call.
#include <concepts>
#include <string>
#include <type_traits>

#include "gcnet/core/context.hpp"
#include "gcnet/core/fields.hpp"
#include "gcnet/core/layer.hpp"

namespace gcnet {

template <class M>
concept Module = HasNumerics<M> && requires {
  typename M::input_type;
  typename M::output_type;
} && FieldType<typename M::input_type> && FieldType<typename M::output_type> &&
  requires(M& m, const M& cm, const Context& ctx, const typename M::input_type& x, typename M::output_type& y,
           const typename M::output_type& cy, typename M::input_type& dx, bool mode) {
    m.forward(ctx, x, y);
    m.backward(ctx, x, cy, cy, dx);
    { cm.describe() } -> std::convertible_to<std::string>;
    m.set_training(mode);
    { cm.training() } -> std::convertible_to<bool>;
  };

template <class C>
concept Component = Layer<C> || Module<C>;

namespace detail {
template <class C>
struct io_of {
  using input = tensor_of<C>;
  using output = tensor_of<C>;
};
template <Module M>
struct io_of<M> {
  using input = typename M::input_type;
  using output = typename M::output_type;
};
}  // namespace detail
template <Component C>
using input_of = typename detail::io_of<C>::input;
template <Component C>
using output_of = typename detail::io_of<C>::output;

// At the top of a module's forward: brings the module (and everything below it) to ctx's mode.
template <Module M>
void sync_mode(M& m, const Context& ctx) {
  if (m.training() != ctx.training) m.set_training(ctx.training);
}

// Runs a component: a module with the context; a layer after bind_context (its mode is its own,
// set with set_training).
template <Component C>
void forward(C& c, const Context& ctx, const input_of<C>& x, output_of<C>& y) {
  if constexpr (Module<C>) {
    c.forward(ctx, x, y);
  } else {
    bind_context(c, ctx);
    c.forward(x, y);
  }
}

// The backward of a component after forward(c, ctx, x, y). For a layer, an undefined dx (no
// input gradient wanted) gets a scratch tensor, since layers always write one.
template <Component C>
void backward(C& c, const Context& ctx, const input_of<C>& x, const output_of<C>& y, const output_of<C>& dy,
              input_of<C>& dx) {
  if constexpr (Module<C>) {
    c.backward(ctx, x, y, dy, dx);
  } else if (dx.defined()) {
    c.backward(x, y, dy, dx);
  } else {
    input_of<C> scratch = zeros<typename C::value_type, typename C::backend_type>(x.shape());
    c.backward(x, y, dy, scratch);
  }
}

}  // namespace gcnet
