#pragma once
// Image stacks: the channels of several NCHW images laid side by side as one matrix
// [rows, images * positions] (and back), so one GEMM covers a whole batch of small images.
// Bodies written once for both backends.
#include "gcnet/core/parallel.hpp"

namespace gcnet {

// buf[c][i * p + e] = mat[i * image_stride + c * p + e] for rows c < rows and images
// i < imgs: channels of a stack of images side by side (serial inside a thread task).
template <class T, class B>
void gather_image_stack(B, const T* mat, index_t rows, index_t p, index_t image_stride, index_t imgs, T* buf) {
  const index_t ld = imgs * p;
  for_each_index_weighted(B{}, rows * imgs, p, [=] GCNET_HD(index_t t) {
    const index_t c = t / imgs, i = t % imgs;
    const T* s = mat + i * image_stride + c * p;
    T* d = buf + c * ld + i * p;
    for (index_t e = 0; e < p; ++e) d[e] = s[e];
  });
}
// mat[i * image_stride + c * p + e] (= or +=) buf[c][i * p + e]: gather_image_stack's inverse.
template <class T, class B>
void scatter_image_stack(B, const T* buf, index_t rows, index_t p, index_t image_stride, index_t imgs, T* mat,
                         bool accumulate) {
  const index_t ld = imgs * p;
  for_each_index_weighted(B{}, rows * imgs, p, [=] GCNET_HD(index_t t) {
    const index_t c = t / imgs, i = t % imgs;
    const T* s = buf + c * ld + i * p;
    T* d = mat + i * image_stride + c * p;
    if (accumulate) {
      for (index_t e = 0; e < p; ++e) d[e] += s[e];
    } else {
      for (index_t e = 0; e < p; ++e) d[e] = s[e];
    }
  });
}

}  // namespace gcnet
