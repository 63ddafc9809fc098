#pragma once
// to_backend<To>(t): the same values on another backend. Cpu -> Cpu is the tensor itself
// (shallow); transfers involving Cuda are defined in gcnet/cuda/copy.hpp.
#include "gcnet/core/tensor.hpp"

namespace gcnet {

namespace detail {
template <class From, class To>
struct Transfer;  // specialized where both backends are available

template <>
struct Transfer<Cpu, Cpu> {
  template <class T>
  static Tensor<T, Cpu> run(const Tensor<T, Cpu>& t) { return t; }
};
}  // namespace detail

template <Backend To, class T, class From>
Tensor<T, To> to_backend(const Tensor<T, From>& t) {
  return detail::Transfer<From, To>::run(t);
}

}  // namespace gcnet
