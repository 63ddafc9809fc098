#pragma once
// Branch<Merge, L...>: every branch reads the same input; their outputs are merged by
// summing (Sum<L...>) or by concatenating along channels (Concat<L...>). Backward gives
// each branch its part of dy and sums the branches' input gradients into dx.
#include <array>
#include <tuple>

#include "gcnet/core/state.hpp"
#include "gcnet/compose/children.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

namespace merge {
struct Sum {};
struct Concat {};  // along dim 1 (channels)
}  // namespace merge

template <class Merge, class... Ls>
  requires(sizeof...(Ls) > 0) && (Layer<Ls> && ...) && SameNumerics<Ls...>
class Branch {
  static constexpr std::size_t N = sizeof...(Ls);
  static constexpr bool kConcat = std::is_same_v<Merge, merge::Concat>;
  using First = std::tuple_element_t<0, std::tuple<Ls...>>;

 public:
  using value_type = typename First::value_type;
  using backend_type = typename First::backend_type;
  using tensor_type = Tensor<value_type, backend_type>;

  explicit Branch(Ls... layers) : layers_(std::move(layers)...), names_(detail::index_names<N>()) {}

  Branch& named(std::initializer_list<std::string_view> names) & {
    detail::assign_names(names_, names, "Branch::named");
    return *this;
  }
  Branch&& named(std::initializer_list<std::string_view> names) && { return std::move(named(names)); }

  template <std::size_t I>
  auto& get() { return std::get<I>(layers_); }

  Shape setup(const Shape& in) {
    std::array<Shape, N> outs;
    each([&]<std::size_t I>(auto& layer) {
      try { outs[I] = layer.setup(in); }
      catch (const Error& e) { detail::rethrow_in(where<I>(in), e); }
    });
    return merged_shape(outs);
  }

  void forward(const tensor_type& x, tensor_type& y) {
    each([&]<std::size_t I>(auto& layer) {
      try { layer.forward(x, outs_[I]); }
      catch (const Error& e) { detail::rethrow_in(where<I>(x.shape()), e); }
    });
    std::array<Shape, N> shapes;
    for (std::size_t i = 0; i < N; ++i) shapes[i] = outs_[i].shape();
    y.resize(merged_shape(shapes));
    if constexpr (kConcat) {
      index_t c0 = 0;
      for (auto& o : outs_) {
        copy_into_channels(o, y, c0);
        c0 += o.size(1);
      }
    } else {
      copy(outs_[0], y);
      for (std::size_t i = 1; i < N; ++i) add_into(y, outs_[i], "Branch<Sum>");
    }
  }

  void backward(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    check_backward_args(describe(), x, y, dy, dx);
    index_t c0 = 0;
    each([&]<std::size_t I>(auto& layer) {
      if constexpr (kConcat) {
        // Each branch sees its channel range of dy, made contiguous.
        copy(dy.narrow(1, c0, outs_[I].size(1)), dy_parts_[I]);
        c0 += outs_[I].size(1);
        layer.backward(x, outs_[I], dy_parts_[I], dx);
      } else {
        layer.backward(x, outs_[I], dy, dx);
      }
    });
  }

  std::string describe() const {
    std::string s = kConcat ? "Concat(" : "Sum(";
    std::size_t i = 0;
    std::apply([&](const auto&... l) { ((s += (i ? ", " : "") + names_[i] + ": " + l.describe(), ++i), ...); },
               layers_);
    return s + ")";
  }

  template <class F>
  void for_each_child(F&& f) {
    each([&]<std::size_t I>(auto& layer) { f(std::string_view(names_[I]), layer); });
  }
  GCNET_COMBINATOR_HOOKS(value_type, backend_type)

 private:
  Shape merged_shape(const std::array<Shape, N>& outs) const {
    Shape m = outs[0];
    for (std::size_t i = 1; i < N; ++i) {
      if constexpr (kConcat) {
        bool fits = outs[i].rank() == m.rank() && m.rank() >= 2;
        for (int d = 0; fits && d < m.rank(); ++d) fits = d == 1 || outs[i][d] == m[d];
        GCNET_CHECK(fits, "Concat: branch ", i, " '", names_[i], "' gives ", outs[i].str(),
                    ", which cannot be concatenated along channels with ", outs[0].str(),
                    " from branch 0 '", names_[0], "'");
        m[1] += outs[i].c();
      } else {
        GCNET_CHECK(outs[i] == m, "Sum: branch ", i, " '", names_[i], "' gives ", outs[i].str(),
                    " but branch 0 '", names_[0], "' gives ", m.str());
      }
    }
    return m;
  }

  template <std::size_t I>
  std::string where(const Shape& in) const {
    return std::string(kConcat ? "Concat" : "Sum") + " branch " + std::to_string(I) + " '" +
           names_[I] + "' (" + std::get<I>(layers_).describe() + ") given input of shape " + in.str();
  }

  // y[:, c0:c0+C, ...] = src.
  static void copy_into_channels(const tensor_type& src, tensor_type& y, index_t c0) {
    const index_t n = src.size(0), c = src.size(1), hw = src.numel() / (n * c), cy = y.size(1);
    const value_type* s = src.data();
    value_type* d = y.data();
    for_each_index(backend_type{}, src.numel(), [=] GCNET_HD(index_t i) {
      const index_t b = i / (c * hw), r = i % (c * hw);
      d[b * cy * hw + c0 * hw + r] = s[i];
    });
  }

  template <class F>
  void each(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<I>(std::get<I>(layers_)), ...);
    }(std::index_sequence_for<Ls...>{});
  }

  std::tuple<Ls...> layers_;
  std::array<std::string, N> names_;
  std::array<ScratchTensor<value_type, backend_type>, N> outs_{}, dy_parts_{};
};

template <class... Ls>
using Sum = Branch<merge::Sum, Ls...>;
template <class... Ls>
using Concat = Branch<merge::Concat, Ls...>;

}  // namespace gcnet
