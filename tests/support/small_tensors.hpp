#pragma once
// Small hand-written tensors for the detection tests: rows<T>(4, {x1, y1, x2, y2, ...}) gives
// [n, 4] boxes, values<T>({...}) a 1-D tensor, as_vector() reads an index tensor back.
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "gcnet/core/tensor.hpp"

namespace gcnet::test {

template <class T = float>
Tensor<T> rows(index_t cols, std::initializer_list<double> v) {
  Tensor<T> t(Shape{static_cast<index_t>(v.size()) / cols, cols});
  index_t i = 0;
  for (double e : v) t[i++] = static_cast<T>(e);
  return t;
}

template <class T = float>
Tensor<T> values(std::initializer_list<double> v) {
  Tensor<T> t(Shape{static_cast<index_t>(v.size())});
  index_t i = 0;
  for (double e : v) t[i++] = static_cast<T>(e);
  return t;
}

inline std::vector<std::int64_t> as_vector(const Tensor<std::int64_t>& t) { return {t.data(), t.data() + t.numel()}; }

}  // namespace gcnet::test
