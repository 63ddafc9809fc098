#pragma once
// Repeat<N, Block>: N blocks of the same type in sequence (ResNet stages). The work is
// a loop over a vector in RepeatN<Block>, so Repeat<3, B> and Repeat<23, B> share one
// instantiation of every member function; N only fixes the count at construction.
// Children are named by index, from `first_index` (mmdet numbers a stage's blocks from 0;
// a stage written as Seq<FirstBlock, Repeat<n-1, Block>> names the repeated ones from 1).
#include <functional>
#include <vector>

#include "gcnet/core/state.hpp"
#include "gcnet/compose/children.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Layer Block>
class RepeatN {
 public:
  using value_type = typename Block::value_type;
  using backend_type = typename Block::backend_type;
  using tensor_type = Tensor<value_type, backend_type>;

  // make(i) builds block i (each block gets its own parameters).
  RepeatN(std::size_t count, const std::function<Block(std::size_t)>& make, std::size_t first_index = 0)
      : first_index_(first_index) {
    GCNET_CHECK(count > 0, "Repeat: needs at least one block");
    blocks_.reserve(count);
    for (std::size_t i = 0; i < count; ++i) blocks_.push_back(make(i));
    acts_.resize(count);
    grads_.resize(2);
  }

  std::size_t size() const { return blocks_.size(); }
  Block& operator[](std::size_t i) { return blocks_[i]; }

  Shape setup(const Shape& in) {
    Shape s = in;
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      try { s = blocks_[i].setup(s); }
      catch (const Error& e) { detail::rethrow_in(where(i, s), e); }
    }
    return s;
  }

  void forward(const tensor_type& x, tensor_type& y) {
    const std::size_t n = blocks_.size();
    for (std::size_t i = 0; i < n; ++i) {
      const tensor_type& in = i == 0 ? x : acts_[i - 1];
      tensor_type& out = i == n - 1 ? y : acts_[i];
      try { blocks_[i].forward(in, out); }
      catch (const Error& e) { detail::rethrow_in(where(i, in.shape()), e); }
    }
  }

  void backward(const tensor_type& x, const tensor_type& y, const tensor_type& dy, tensor_type& dx) {
    check_backward_args("Repeat", x, y, dy, dx);
    const std::size_t n = blocks_.size();
    for (std::size_t k = n; k-- > 0;) {
      const tensor_type& in = k == 0 ? x : acts_[k - 1];
      const tensor_type& out = k == n - 1 ? y : acts_[k];
      // Gradients between blocks ping-pong between two buffers (one per block would keep
      // them all resident).
      const tensor_type& g_out = k == n - 1 ? dy : grads_[k % 2];
      tensor_type& g_in = k == 0 ? dx : grads_[(k - 1) % 2];
      if (k > 0) {
        g_in.resize(in.shape());
        fill(g_in, value_type(0));
      }
      blocks_[k].backward(in, out, g_out, g_in);
    }
  }

  std::string describe() const {
    return "Repeat(" + std::to_string(blocks_.size()) + " x " + blocks_[0].describe() + ")";
  }

  template <class F>
  void for_each_child(F&& f) {
    for (std::size_t i = 0; i < blocks_.size(); ++i) f(std::string_view(std::to_string(first_index_ + i)), blocks_[i]);
  }
  GCNET_COMBINATOR_HOOKS(value_type, backend_type)

 private:
  std::string where(std::size_t i, const Shape& in) const {
    return "Repeat block " + std::to_string(first_index_ + i) + " (" + blocks_[i].describe() +
           ") given input of shape " + in.str();
  }
  std::size_t first_index_;
  std::vector<Block> blocks_;
  std::vector<ScratchTensor<value_type, backend_type>> acts_, grads_;
};

template <std::size_t N, Layer Block>
class Repeat : public RepeatN<Block> {
 public:
  explicit Repeat(const std::function<Block(std::size_t)>& make, std::size_t first_index = 0)
      : RepeatN<Block>(N, make, first_index) {}
};

}  // namespace gcnet
