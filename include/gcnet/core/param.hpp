#pragma once
// A trainable parameter: its value and the gradient that backward() assigns.
#include <functional>
#include <string>

#include "gcnet/core/init.hpp"
#include "gcnet/core/transfer.hpp"

namespace gcnet {

template <class T, class B>
struct Param {
  Tensor<T, B> value;
  Tensor<T, B> grad;

  Param() = default;
  // Takes an initialized host tensor; the gradient gets the same shape (uninitialized).
  explicit Param(const Tensor<T, Cpu>& host) { set(host); }

  void set(const Tensor<T, Cpu>& host) {
    value = to_backend<B>(host);
    grad = Tensor<T, B>(host.shape());
  }
  const Shape& shape() const { return value.shape(); }
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
