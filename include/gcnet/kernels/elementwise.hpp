#pragma once
// Element-wise kernels written once as GCNET_HD bodies and run through for_each_index,
// so they serve both backends: fill, copy (strided source allowed), y += x, y += a*x.
#include "gcnet/core/parallel.hpp"
#include "gcnet/core/tensor.hpp"

namespace gcnet {

template <class T, class B>
void fill(Tensor<T, B>& t, T value) {
  require_contiguous(t, "fill", "tensor");
  T* p = t.data();
  for_each_index(B{}, t.numel(), [=] GCNET_HD(index_t i) { p[i] = value; });
}

namespace detail {
// Strides and extents of a view, passed by value into kernels.
struct ViewGeometry {
  index_t extent[Shape::max_rank];
  index_t stride[Shape::max_rank];
  int rank;
  template <class T, class B>
  explicit ViewGeometry(const Tensor<T, B>& t) : extent{}, stride{}, rank(t.rank()) {
    for (int d = 0; d < rank; ++d) {
      extent[d] = t.size(d);
      stride[d] = t.stride(d);
    }
  }
  // Offset in the view's storage of the i-th element in row-major order.
  GCNET_HD index_t offset(index_t i) const {
    index_t off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      off += (i % extent[d]) * stride[d];
      i /= extent[d];
    }
    return off;
  }
};
}  // namespace detail

// dst (contiguous, resized to src's shape) = src (any strides).
template <class T, class B>
void copy(const Tensor<T, B>& src, Tensor<T, B>& dst) {
  dst.resize(src.shape());
  T* d = dst.data();
  const T* s = src.data();
  if (src.is_contiguous()) {
    for_each_index(B{}, src.numel(), [=] GCNET_HD(index_t i) { d[i] = s[i]; });
  } else {
    const detail::ViewGeometry g(src);
    for_each_index(B{}, src.numel(), [=] GCNET_HD(index_t i) { d[i] = s[g.offset(i)]; });
  }
}

// A contiguous copy of any view.
template <class T, class B>
Tensor<T, B> clone(const Tensor<T, B>& src) {
  Tensor<T, B> out(src.shape());
  copy(src, out);
  return out;
}

// dst += alpha * src (same shapes, contiguous).
template <class T, class B>
void add_scaled(Tensor<T, B>& dst, const Tensor<T, B>& src, T alpha, const char* who = "add_scaled") {
  require_shape(src, dst.shape(), who, "addend");
  require_contiguous(dst, who, "destination");
  require_contiguous(src, who, "addend");
  T* d = dst.data();
  const T* s = src.data();
  for_each_index(B{}, dst.numel(), [=] GCNET_HD(index_t i) { d[i] += alpha * s[i]; });
}

template <class T, class B>
void add_into(Tensor<T, B>& dst, const Tensor<T, B>& src, const char* who = "add_into") {
  add_scaled(dst, src, T(1), who);
}

// out = a + b (out resized).
template <class T, class B>
void add(const Tensor<T, B>& a, const Tensor<T, B>& b, Tensor<T, B>& out, const char* who = "add") {
  require_shape(b, a.shape(), who, "second operand");
  require_contiguous(a, who, "first operand");
  require_contiguous(b, who, "second operand");
  out.resize(a.shape());
  T* o = out.data();
  const T *pa = a.data(), *pb = b.data();
  for_each_index(B{}, a.numel(), [=] GCNET_HD(index_t i) { o[i] = pa[i] + pb[i]; });
}

// A zero-filled tensor of the given shape.
template <class T, class B = Cpu>
Tensor<T, B> zeros(const Shape& s) {
  Tensor<T, B> t(s);
  fill(t, T(0));
  return t;
}

template <class T, class B = Cpu>
Tensor<T, B> full(const Shape& s, T value) {
  Tensor<T, B> t(s);
  fill(t, value);
  return t;
}

}  // namespace gcnet
