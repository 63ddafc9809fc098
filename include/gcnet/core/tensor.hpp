#pragma once
// Tensor<T, B>: a shape, strides and an offset into shared storage of backend B.
// Copies are shallow (they share storage, like torch.Tensor); clone() copies data.
// Views (reshape, slice, narrow) never copy. Kernels require contiguous tensors
// unless they say otherwise; is_contiguous() tells.
#include <array>
#include <cstring>
#include <memory>
#include <string>

#include "gcnet/core/backend.hpp"
#include "gcnet/core/error.hpp"
#include "gcnet/core/shape.hpp"
#include "gcnet/core/storage.hpp"

namespace gcnet {

template <Element T = float, Backend B = Cpu>
class Tensor {
 public:
  using value_type = T;
  using backend_type = B;
  using Strides = std::array<index_t, Shape::max_rank>;

  Tensor() = default;
  // Allocates uninitialized storage for `shape`.
  explicit Tensor(const Shape& shape) { allocate(shape); }

  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  index_t size(int d) const { return shape_[d]; }
  index_t numel() const { return shape_.numel(); }
  index_t stride(int d) const { return strides_[static_cast<std::size_t>(d < 0 ? d + rank() : d)]; }
  const Strides& strides() const { return strides_; }
  bool defined() const { return storage_ != nullptr || (rank() > 0 && numel() == 0); }

  T* data() { return storage_ ? storage_->data() + offset_ : nullptr; }
  const T* data() const { return storage_ ? storage_->data() + offset_ : nullptr; }

  bool is_contiguous() const { return strides_ == contiguous_strides_padded(shape_); }
  bool shares_storage_with(const Tensor& o) const { return storage_ && storage_ == o.storage_; }

  // Resizes in place. Keeps the storage (and contents) when the shape is unchanged;
  // reuses it when this tensor owns a contiguous buffer that is large enough.
  void resize(const Shape& shape) {
    if (shape == shape_ && storage_ && is_contiguous()) return;
    if (storage_ && storage_.use_count() == 1 && offset_ == 0 &&
        static_cast<std::size_t>(shape.numel()) <= storage_->capacity()) {
      shape_ = shape;
      strides_ = contiguous_strides_padded(shape);
      return;
    }
    allocate(shape);
  }

  // A view with another shape of the same number of elements (contiguous only).
  Tensor reshape(const Shape& shape) const {
    GCNET_CHECK(shape.numel() == numel(), "Tensor::reshape: cannot view ", shape_.str(), " as ",
                shape.str(), " (", numel(), " vs ", shape.numel(), " elements)");
    GCNET_CHECK(is_contiguous(), "Tensor::reshape: tensor of shape ", shape_.str(),
                " is not contiguous; clone() it first");
    Tensor v = *this;
    v.shape_ = shape;
    v.strides_ = contiguous_strides_padded(shape);
    return v;
  }

  // Rows [begin, end) of dim 0 (e.g. a sub-batch), as a view.
  Tensor slice(index_t begin, index_t end) const { return narrow(0, begin, end - begin); }

  // `length` entries of dim `dim` starting at `start`, as a (possibly strided) view.
  Tensor narrow(int dim, index_t start, index_t length) const {
    GCNET_CHECK(dim >= 0 && dim < rank(), "Tensor::narrow: dim ", dim, " out of range for ",
                shape_.str());
    GCNET_CHECK(start >= 0 && length >= 0 && start + length <= shape_[dim], "Tensor::narrow: range [",
                start, ", ", start + length, ") out of bounds for dim ", dim, " of ", shape_.str());
    Tensor v = *this;
    v.shape_[dim] = length;
    v.offset_ += start * strides_[static_cast<std::size_t>(dim)];
    return v;
  }

  // Host element access (CPU tensors only); works on strided views too.
  T& at(std::initializer_list<index_t> idx) requires std::same_as<B, Cpu> {
    return data()[linear(idx)];
  }
  const T& at(std::initializer_list<index_t> idx) const requires std::same_as<B, Cpu> {
    return data()[linear(idx)];
  }
  // Flat access for contiguous CPU tensors.
  T& operator[](index_t i) requires std::same_as<B, Cpu> { return data()[i]; }
  const T& operator[](index_t i) const requires std::same_as<B, Cpu> { return data()[i]; }

 private:
  // Strides padded to max_rank with zeros beyond the rank, so == compares them whole.
  static Strides contiguous_strides_padded(const Shape& s) { return contiguous_strides(s); }

  void allocate(const Shape& shape) {
    shape_ = shape;
    strides_ = contiguous_strides_padded(shape);
    offset_ = 0;
    storage_ = std::make_shared<Storage<T, B>>(static_cast<std::size_t>(shape.numel()));
  }

  index_t linear(std::initializer_list<index_t> idx) const {
    GCNET_CHECK(static_cast<int>(idx.size()) == rank(), "Tensor::at: ", idx.size(),
                " indices for a tensor of shape ", shape_.str());
    index_t off = 0;
    int d = 0;
    for (index_t i : idx) {
      GCNET_CHECK(i >= 0 && i < shape_[d], "Tensor::at: index ", i, " out of range for dim ", d,
                  " of ", shape_.str());
      off += i * strides_[static_cast<std::size_t>(d++)];
    }
    return off;
  }

  std::shared_ptr<Storage<T, B>> storage_;
  Shape shape_;
  Strides strides_{};
  index_t offset_ = 0;
};

// Throws naming `who` unless `t` has exactly `expected` shape.
template <class T, class B>
void require_shape(const Tensor<T, B>& t, const Shape& expected, const std::string& who,
                   const char* what) {
  GCNET_CHECK(t.shape() == expected, who, ": ", what, " has shape ", t.shape().str(),
              ", expected ", expected.str());
}

template <class T, class B>
void require_contiguous(const Tensor<T, B>& t, const std::string& who, const char* what) {
  GCNET_CHECK(t.is_contiguous(), who, ": ", what, " of shape ", t.shape().str(),
              " must be contiguous");
}

}  // namespace gcnet
