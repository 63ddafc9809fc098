#pragma once
// torch.cat([a, b], dim=1) for NCHW tensors and its backward (the gradient split back),
// as FCNHead's concat_input uses it.
#include <string>

#include "gcnet/core/parallel.hpp"
#include "gcnet/core/tensor.hpp"

namespace gcnet {

template <class T, class B>
void concat_channels(const Tensor<T, B>& a, const Tensor<T, B>& b, Tensor<T, B>& y, const std::string& who) {
  const Shape &sa = a.shape(), &sb = b.shape();
  GCNET_CHECK(sa.rank() == 4 && sb.rank() == 4 && sa.n() == sb.n() && sa.h() == sb.h() && sa.w() == sb.w(), who,
              ": cannot concatenate ", sa.str(), " and ", sb.str(), " along channels");
  require_contiguous(a, who, "first input");
  require_contiguous(b, who, "second input");
  const index_t ca = sa.c(), cb = sb.c(), hw = sa.h() * sa.w(), c = ca + cb;
  y.resize(Shape{sa.n(), c, sa.h(), sa.w()});
  const T *ap = a.data(), *bp = b.data();
  T* yp = y.data();
  for_each_index(B{}, y.numel(), [=] GCNET_HD(index_t i) {
    const index_t n = i / (c * hw), ch = (i / hw) % c, p = i % hw;
    yp[i] = ch < ca ? ap[(n * ca + ch) * hw + p] : bp[(n * cb + ch - ca) * hw + p];
  });
}

// da += dy[:, :ca], db += dy[:, ca:] (an undefined da or db: that part is not wanted).
template <class T, class B>
void concat_channels_backward(const Tensor<T, B>& dy, Tensor<T, B>& da, Tensor<T, B>& db, index_t ca) {
  const Shape& s = dy.shape();
  const index_t c = s.c(), cb = c - ca, hw = s.h() * s.w();
  const T* g = dy.data();
  if (da.defined()) {
    T* d = da.data();
    for_each_index(B{}, s.n() * ca * hw, [=] GCNET_HD(index_t i) {
      const index_t n = i / (ca * hw), r = i % (ca * hw);
      d[i] += g[n * c * hw + r];
    });
  }
  if (db.defined()) {
    T* d = db.data();
    for_each_index(B{}, s.n() * cb * hw, [=] GCNET_HD(index_t i) {
      const index_t n = i / (cb * hw), r = i % (cb * hw);
      d[i] += g[n * c * hw + ca * hw + r];
    });
  }
}

}  // namespace gcnet
