#pragma once
// Seq<L...>: layers applied in order. Forward is a fold over the layers, backward the
// reverse fold; intermediate activations and their gradients are kept in the Seq.
// Children are named "0", "1", ... unless named() says otherwise; an empty name puts
// the child's parameters directly under the Seq's prefix.
#include <array>
#include <tuple>
#include <utility>

#include "gcnet/core/state.hpp"
#include "gcnet/compose/children.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <class... Ls>
  requires(sizeof...(Ls) > 0) && (Layer<Ls> && ...) && SameNumerics<Ls...>
class Seq {
  static constexpr std::size_t N = sizeof...(Ls);
  using First = std::tuple_element_t<0, std::tuple<Ls...>>;

 public:
  using value_type = typename First::value_type;
  using backend_type = typename First::backend_type;
  using tensor_type = Tensor<value_type, backend_type>;

  explicit Seq(Ls... layers) : layers_(std::move(layers)...), names_(detail::index_names<N>()) {}

  // Names the children (state-dict keys), e.g. {"conv1", "bn1", "relu"}.
  Seq& named(std::initializer_list<std::string_view> names) & {
    detail::assign_names(names_, names, "Seq::named");
    return *this;
  }
  Seq&& named(std::initializer_list<std::string_view> names) && { return std::move(named(names)); }

  template <std::size_t I>
  auto& get() { return std::get<I>(layers_); }
  template <std::size_t I>
  const auto& get() const { return std::get<I>(layers_); }
  static constexpr std::size_t size() { return N; }
  const std::string& name(std::size_t i) const { return names_[i]; }

  Shape setup(const Shape& in) {
    Shape s = in;
    for_each_indexed([&]<std::size_t I>(auto& layer) {
      try {
        s = layer.setup(s);
      } catch (const Error& e) {
        detail::rethrow_in(where<I>(s), e);
      }
    });
    return s;
  }

  void forward(const tensor_type& x, tensor_type& y) {
    *inferred_ = false;
    for_each_indexed([&]<std::size_t I>(auto& layer) {
      const tensor_type& in = I == 0 ? x : acts_[I - 1];
      tensor_type& out = I == N - 1 ? y : acts_[I];
      try {
        layer.forward(in, out);
      } catch (const Error& e) {
        detail::rethrow_in(where<I>(in.shape()), e);
      }
    });
  }

  // Inference (gcnet::infer): each intermediate lives only until the next layer has read it
  // (two buffers, freed at the end) and children run their own infer(). A backward after it
  // replays forward first.
  void infer(const tensor_type& x, tensor_type& y) {
    for (auto& a : acts_) a = tensor_type();
    std::array<tensor_type, 2> buf;
    for_each_indexed([&]<std::size_t I>(auto& layer) {
      const tensor_type& in = I == 0 ? x : buf[(I - 1) % 2];
      tensor_type& out = I == N - 1 ? y : buf[I % 2];
      try {
        gcnet::infer(layer, in, out);
      } catch (const Error& e) {
        detail::rethrow_in(where<I>(in.shape()), e);
      }
    });
    *inferred_ = true;
  }

  void backward(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    if (*inferred_) forward(x, y_again_);  // infer() kept no intermediates
    backward_from<N - 1>(x, y, dy, dx);
  }

  std::string describe() const {
    std::string s = "Seq(";
    for_each_indexed_const([&]<std::size_t I>(const auto& layer) {
      if (I) s += ", ";
      s += names_[I] + ": " + layer.describe();
    });
    return s + ")";
  }

  template <class F>
  void for_each_child(F&& f) {
    for_each_indexed([&]<std::size_t I>(auto& layer) { f(std::string_view(names_[I]), layer); });
  }
  GCNET_COMBINATOR_HOOKS(value_type, backend_type)

 private:
  // Where element I sits, for error messages: its name and layer, and what fed it.
  template <std::size_t I>
  std::string where(const Shape& in) const {
    std::string s = "Seq element " + std::to_string(I) + " '" + names_[I] + "' (" +
                    std::get<I>(layers_).describe() + ")";
    if constexpr (I > 0)
      s += " does not fit the output of element " + std::to_string(I - 1) + " '" + names_[I - 1] +
           "' (" + std::get<I - 1>(layers_).describe() + ") of shape " + in.str();
    else
      s += " given input of shape " + in.str();
    return s;
  }

  template <std::size_t I>
  void backward_from(const tensor_type& x, const tensor_type& y, const tensor_type& dy,
                     tensor_type& dx) {
    const tensor_type& in = I == 0 ? x : acts_[I - 1];
    const tensor_type& out = I == N - 1 ? y : acts_[I];
    const tensor_type& g_out = I == N - 1 ? dy : grads_[I];
    tensor_type& g_in = I == 0 ? dx : grads_[I - 1];
    if constexpr (I > 0) {
      g_in.resize(in.shape());
      fill(g_in, value_type(0));
    }
    std::get<I>(layers_).backward(in, out, g_out, g_in);
    if constexpr (I > 0) backward_from<I - 1>(x, y, dy, dx);
  }

  template <class F>
  void for_each_indexed(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<I>(std::get<I>(layers_)), ...);
    }(std::index_sequence_for<Ls...>{});
  }
  template <class F>
  void for_each_indexed_const(F&& f) const {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<I>(std::get<I>(layers_)), ...);
    }(std::index_sequence_for<Ls...>{});
  }

  std::tuple<Ls...> layers_;
  std::array<std::string, N> names_;
  // Activations after each layer but the last (which writes the caller's y), and
  // their gradients.
  std::array<ScratchTensor<value_type, backend_type>, N> acts_{};
  std::array<ScratchTensor<value_type, backend_type>, N> grads_{};
  ScratchValue<bool> inferred_;  // the last forward was infer()
  ScratchTensor<value_type, backend_type> y_again_;
};

}  // namespace gcnet
