#pragma once
// What a layer or module holds besides its parameters, typed by how a COPY of it behaves
// (docs/layer-contract.md, "Copies": a copy of a layer or module is deep):
//   StateTensor<T, B>    persistent state, the buffers (running_mean, ...): a copy gets its own
//                        clone; adopting a tensor (construction or assignment from a Tensor)
//                        copies its values, so the layer never aliases storage a caller holds.
//   ScratchTensor<T, B>  activations kept for backward and scratch: a copy starts without them
//                        (an empty tensor), so two copies never write the same memory. Assigning
//                        a Tensor to it is the usual shallow handle assignment.
//   ScratchValue<X>      the same for any other value (a struct of activations, a vector of
//                        per-call layer copies): a copy starts from X{}.
//   OwnedScratch<X>      a scratch struct held by pointer so several blocks may share it
//                        explicitly (share_with()); a copy gets a fresh X of its own.
// Both tensor types ARE Tensors (visitors and kernels take them as Tensor&); only copying differs.
#include <memory>
#include <utility>

#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Element T, Backend B>
class StateTensor : public Tensor<T, B> {
  using Base = Tensor<T, B>;

 public:
  StateTensor() = default;
  explicit StateTensor(const Shape& shape) : Base(shape) {}
  StateTensor(const Base& t) : Base(own(t)) {}  // NOLINT: adopting copies
  StateTensor(const StateTensor& o) : Base(own(o)) {}
  StateTensor(StateTensor&&) noexcept = default;
  StateTensor& operator=(const StateTensor& o) { return assign(o); }
  StateTensor& operator=(StateTensor&&) noexcept = default;
  StateTensor& operator=(const Base& t) { return assign(t); }

 private:
  static Base own(const Base& t) { return t.defined() ? clone(t) : Base(); }
  StateTensor& assign(const Base& t) {
    if (static_cast<const Base*>(this) != &t) Base::operator=(own(t));
    return *this;
  }
};

template <Element T, Backend B>
class ScratchTensor : public Tensor<T, B> {
  using Base = Tensor<T, B>;

 public:
  ScratchTensor() = default;
  explicit ScratchTensor(const Shape& shape) : Base(shape) {}
  ScratchTensor(const ScratchTensor&) : Base() {}
  ScratchTensor(ScratchTensor&&) noexcept = default;
  ScratchTensor& operator=(const ScratchTensor&) {
    Base::operator=(Base());
    return *this;
  }
  ScratchTensor& operator=(ScratchTensor&&) noexcept = default;
  ScratchTensor& operator=(const Base& t) {
    Base::operator=(t);
    return *this;
  }
  ScratchTensor& operator=(Base&& t) {
    Base::operator=(std::move(t));
    return *this;
  }
};

template <class X>
class ScratchValue {
 public:
  ScratchValue() = default;
  ScratchValue(const ScratchValue&) : x_() {}
  ScratchValue(ScratchValue&&) noexcept = default;
  ScratchValue& operator=(const ScratchValue&) {
    x_ = X();
    return *this;
  }
  ScratchValue& operator=(ScratchValue&&) noexcept = default;

  X& operator*() { return x_; }
  const X& operator*() const { return x_; }
  X* operator->() { return &x_; }
  const X* operator->() const { return &x_; }

 private:
  X x_{};
};

template <class X>
class OwnedScratch {
 public:
  OwnedScratch() : p_(std::make_shared<X>()) {}
  OwnedScratch(const OwnedScratch&) : p_(std::make_shared<X>()) {}
  OwnedScratch(OwnedScratch&&) noexcept = default;
  OwnedScratch& operator=(const OwnedScratch&) {
    p_ = std::make_shared<X>();
    return *this;
  }
  OwnedScratch& operator=(OwnedScratch&&) noexcept = default;

  X& operator*() const { return *p_; }
  X* operator->() const { return p_.get(); }
  // Explicit sharing: this and `o` use the same X from now on.
  void share_with(const OwnedScratch& o) { p_ = o.p_; }

 private:
  std::shared_ptr<X> p_;
};

}  // namespace gcnet
