#pragma once
// A trainable parameter: its value and the gradient that backward() assigns.
// Copies are deep (docs/layer-contract.md, "Copies"): a copied parameter has its own value and
// gradient. Adopting a tensor (set) copies it, so a layer never aliases storage its caller
// still holds. Sharing is explicit: share_value_with() makes two parameters use one value
// storage (each keeps its own gradient), and load() writes values in place, so sharing survives
// checkpoint loads and optimizer steps.
#include <functional>
#include <string>

#include "gcnet/core/init.hpp"
#include "gcnet/core/transfer.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <class T, class B>
struct Param {
  Tensor<T, B> value;
  Tensor<T, B> grad;

  Param() = default;
  // Takes a copy of an initialized host tensor; the gradient gets the same shape (uninitialized).
  explicit Param(const Tensor<T, Cpu>& host) { set(host); }
  Param(const Param& o) : value(own(o.value)), grad(own(o.grad)) {}
  Param(Param&&) noexcept = default;
  Param& operator=(const Param& o) {
    if (this != &o) {
      value = own(o.value);
      grad = own(o.grad);
    }
    return *this;
  }
  Param& operator=(Param&&) noexcept = default;

  // The value becomes a copy of `host` (new storage, never host's); the gradient is reshaped.
  void set(const Tensor<T, Cpu>& host) {
    if constexpr (std::same_as<B, Cpu>) value = clone(host);
    else value = to_backend<B>(host);
    grad = Tensor<T, B>(host.shape());
  }
  // Writes `host` into the existing value storage (shapes must agree; `who` names the caller in
  // the error): explicit sharing (share_value_with) is kept.
  void load(const Tensor<T, Cpu>& host, const std::string& who) {
    require_shape(host, value.shape(), who, "loaded value");
    if constexpr (std::same_as<B, Cpu>) copy(host, value);
    else copy(to_backend<B>(host), value);
  }
  // Explicit weight sharing: this parameter's value IS `o`'s from now on (one storage); the
  // gradient stays this parameter's own.
  void share_value_with(const Param& o) {
    value = o.value;
    if (!grad.defined() || grad.shape() != value.shape()) grad = Tensor<T, B>(value.shape());
  }
  const Shape& shape() const { return value.shape(); }

 private:
  static Tensor<T, B> own(const Tensor<T, B>& t) { return t.defined() ? clone(t) : Tensor<T, B>(); }
};

// Visitors over named parameters and buffers (mmdet state-dict names).
template <class T, class B>
using ParamVisitor = std::function<void(const std::string& name, Param<T, B>& param)>;
template <class T, class B>
using BufferVisitor = std::function<void(const std::string& name, Tensor<T, B>& buffer)>;

// Joins a state-dict prefix ("layer1.0.") and a child name; an empty name adds nothing.
inline std::string child_prefix(const std::string& prefix, std::string_view name) {
  if (name.empty()) return prefix;
  std::string s = prefix;
  s += name;
  s += '.';
  return s;
}

}  // namespace gcnet
