#pragma once
// Box operations on box tensors [N, 4], rows (x1, y1, x2, y2) in pixels of the (resized) image,
// mmdet >= 2's convention (detection-reference.md §13.1): corners are continuous, width = x2 - x1
// and height = y2 - y1 with no +1. CPU, float or double, not differentiable:
//   box_overlaps / aligned_box_overlaps  mmdet's bbox_overlaps (IoU or IoF, eps 1e-6; eps 0 is
//                                        torchvision's box_iou, NaN for two empty boxes)
//   box_iou                              torchvision.ops.box_iou
//   xyxy_to_xywh, xywh_to_xyxy           COCO's [x, y, w, h]
//   xyxy_to_cxcywh, cxcywh_to_xyxy       centre and size
//   clip_boxes, clipped_boxes            x into [0, W], y into [0, H]
//   box_areas, check_boxes, select_rows (rows by index, e.g. what NMS kept), index_tensor
// Float results equal PyTorch's bit for bit: each product and sum is rounded as PyTorch rounds it
// (ops/fp_exact.hpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/core/parallel.hpp"
#include "gcnet/core/tensor.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/ops/fp_exact.hpp"

namespace gcnet::ops {

// The size of the image boxes live in (mmdet's img_shape (h, w) or pad_shape), in pixels.
struct ImageSize {
  index_t height = 0, width = 0;
};

// What check_boxes requires beyond the shape [N, 4].
enum class BoxCheck {
  shape,    // only the shape
  finite,   // and finite coordinates
  ordered,  // and finite, x1 <= x2, y1 <= y2 (empty boxes allowed)
};

// Throws naming `who` and `what` unless `b` is [N, 4] (and, per `check`, finite and ordered).
template <Scalar T>
void check_boxes(const Tensor<T, Cpu>& b, const std::string& who, const char* what,
                 BoxCheck check = BoxCheck::ordered) {
  GCNET_CHECK(b.rank() == 2 && b.size(1) == 4, who, ": ", what, " must have shape [N, 4] (x1, y1, x2, y2), got ",
              b.shape().str());
  if (check == BoxCheck::shape) return;
  const Tensor<T, Cpu> c = b.is_contiguous() ? b : clone(b);
  const T* p = c.data();
  for (index_t i = 0; i < c.size(0); ++i) {
    const T x1 = p[4 * i], y1 = p[4 * i + 1], x2 = p[4 * i + 2], y2 = p[4 * i + 3];
    GCNET_CHECK(std::isfinite(x1) && std::isfinite(y1) && std::isfinite(x2) && std::isfinite(y2), who, ": ", what,
                " row ", i, " = (", x1, ", ", y1, ", ", x2, ", ", y2, ") is not finite");
    if (check == BoxCheck::ordered)
      GCNET_CHECK(x1 <= x2 && y1 <= y2, who, ": ", what, " row ", i, " = (", x1, ", ", y1, ", ", x2, ", ", y2,
                  ") is inverted; expected x1 <= x2 and y1 <= y2");
  }
}

template <class T>
Tensor<T, Cpu> contiguous(const Tensor<T, Cpu>& t) {
  return t.is_contiguous() ? t : clone(t);
}

// An index list as a [K] int64 tensor.
inline Tensor<std::int64_t, Cpu> index_tensor(const std::vector<std::int64_t>& v) {
  Tensor<std::int64_t, Cpu> t(Shape{static_cast<index_t>(v.size())});
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

// Rows `idx` of t ([N, ...] -> [K, ...]), in the order of idx (e.g. the boxes NMS kept).
template <class T>
Tensor<T, Cpu> select_rows(const Tensor<T, Cpu>& t, const Tensor<std::int64_t, Cpu>& idx,
                           const std::string& who = "select_rows") {
  GCNET_CHECK(t.rank() >= 1, who, ": cannot select rows of a tensor of rank 0");
  GCNET_CHECK(idx.rank() == 1, who, ": row indices must have shape [K], got ", idx.shape().str());
  const Tensor<T, Cpu> src = contiguous(t);
  Shape s = t.shape();
  const index_t n = s[0], row = n ? src.numel() / n : 0;
  s[0] = idx.size(0);
  Tensor<T, Cpu> out(s);
  for (index_t k = 0; k < idx.size(0); ++k) {
    const std::int64_t r = idx[k];
    GCNET_CHECK(r >= 0 && r < n, who, ": row index ", r, " at position ", k, " is outside [0, ", n, ")");
    std::copy_n(src.data() + r * row, row, out.data() + k * row);
  }
  return out;
}

enum class OverlapMode {
  iou,  // intersection / union
  iof,  // intersection / area of the first box ("intersection over foreground")
};

GCNET_FP_EXACT_BEGIN

namespace detail {
// Boxes as four coordinate arrays plus areas, for loops that vectorize over the second operand.
template <class T>
struct BoxColumns {
  std::vector<T> x1, y1, x2, y2, area;
  explicit BoxColumns(const Tensor<T, Cpu>& b) {
    const Tensor<T, Cpu> c = contiguous(b);
    const index_t n = c.size(0);
    for (auto* v : {&x1, &y1, &x2, &y2, &area}) v->resize(static_cast<std::size_t>(n));
    const T* p = c.data();
    for (index_t i = 0; i < n; ++i) {
      const auto k = static_cast<std::size_t>(i);
      x1[k] = p[4 * i];
      y1[k] = p[4 * i + 1];
      x2[k] = p[4 * i + 2];
      y2[k] = p[4 * i + 3];
      const T w = x2[k] - x1[k], h = y2[k] - y1[k];
      area[k] = w * h;
    }
  }
  index_t size() const { return static_cast<index_t>(x1.size()); }
};
}  // namespace detail

// mmdet bbox_overlaps(a, b, mode, is_aligned=False, eps): [N, 4] x [M, 4] -> [N, M].
//   overlap = max(min(x2) - max(x1), 0) * max(min(y2) - max(y1), 0)
//   iou = overlap / max(area_a + area_b - overlap, eps),  iof = overlap / max(area_a, eps)
// Boxes must be finite and ordered (an inverted box has a negative area).
template <Scalar T>
Tensor<T, Cpu> box_overlaps(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b, OverlapMode mode = OverlapMode::iou,
                            double eps = 1e-6) {
  check_boxes(a, "box_overlaps", "first boxes");
  check_boxes(b, "box_overlaps", "second boxes");
  GCNET_CHECK(eps >= 0 && std::isfinite(eps), "box_overlaps: eps must be finite and >= 0, got ", eps);
  const detail::BoxColumns<T> A(a), B(b);
  const index_t n = A.size(), m = B.size();
  Tensor<T, Cpu> out(Shape{n, m});
  T* o = out.data();
  const T e = static_cast<T>(eps);
  const bool iou = mode == OverlapMode::iou;
  const T *bx1 = B.x1.data(), *by1 = B.y1.data(), *bx2 = B.x2.data(), *by2 = B.y2.data(), *ba = B.area.data();
  for_each_index_weighted(Cpu{}, n, m, [&](index_t i) {
    const auto k = static_cast<std::size_t>(i);
    const T ax1 = A.x1[k], ay1 = A.y1[k], ax2 = A.x2[k], ay2 = A.y2[k], aa = A.area[k];
    T* row = o + i * m;
    if (iou) {
      for (index_t j = 0; j < m; ++j) {
        const T w = std::max(std::min(ax2, bx2[j]) - std::max(ax1, bx1[j]), T(0));
        const T h = std::max(std::min(ay2, by2[j]) - std::max(ay1, by1[j]), T(0));
        const T inter = w * h;
        const T sum = aa + ba[j];
        const T uni = sum - inter;
        row[j] = inter / std::max(uni, e);
      }
    } else {
      const T den = std::max(aa, e);
      for (index_t j = 0; j < m; ++j) {
        const T w = std::max(std::min(ax2, bx2[j]) - std::max(ax1, bx1[j]), T(0));
        const T h = std::max(std::min(ay2, by2[j]) - std::max(ay1, by1[j]), T(0));
        const T inter = w * h;
        row[j] = inter / den;
      }
    }
  });
  return out;
}

// mmdet bbox_overlaps(a, b, mode, is_aligned=True, eps): row i of a against row i of b -> [N].
template <Scalar T>
Tensor<T, Cpu> aligned_box_overlaps(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b,
                                    OverlapMode mode = OverlapMode::iou, double eps = 1e-6) {
  check_boxes(a, "aligned_box_overlaps", "first boxes");
  check_boxes(b, "aligned_box_overlaps", "second boxes");
  GCNET_CHECK(a.size(0) == b.size(0), "aligned_box_overlaps: the two box sets must have the same number of rows, got ",
              a.size(0), " and ", b.size(0));
  GCNET_CHECK(eps >= 0 && std::isfinite(eps), "aligned_box_overlaps: eps must be finite and >= 0, got ", eps);
  const detail::BoxColumns<T> A(a), B(b);
  const index_t n = A.size();
  Tensor<T, Cpu> out(Shape{n});
  const T e = static_cast<T>(eps);
  for (index_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    const T w = std::max(std::min(A.x2[k], B.x2[k]) - std::max(A.x1[k], B.x1[k]), T(0));
    const T h = std::max(std::min(A.y2[k], B.y2[k]) - std::max(A.y1[k], B.y1[k]), T(0));
    const T inter = w * h;
    T den = A.area[k];
    if (mode == OverlapMode::iou) {
      const T sum = A.area[k] + B.area[k];
      den = sum - inter;
    }
    out[i] = inter / std::max(den, e);
  }
  return out;
}

// torchvision.ops.box_iou: IoU without eps (two empty boxes give NaN, as there).
template <Scalar T>
Tensor<T, Cpu> box_iou(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b) {
  return box_overlaps(a, b, OverlapMode::iou, 0.0);
}

// (x2 - x1) * (y2 - y1) per row -> [N].
template <Scalar T>
Tensor<T, Cpu> box_areas(const Tensor<T, Cpu>& boxes) {
  check_boxes(boxes, "box_areas", "boxes", BoxCheck::shape);
  const Tensor<T, Cpu> b = contiguous(boxes);
  Tensor<T, Cpu> out(Shape{b.size(0)});
  for (index_t i = 0; i < b.size(0); ++i) {
    const T w = b[4 * i + 2] - b[4 * i], h = b[4 * i + 3] - b[4 * i + 1];
    out[i] = w * h;
  }
  return out;
}

namespace detail {
// out row = f(in row) for [N, 4] -> [N, 4] conversions.
template <class T, class F>
Tensor<T, Cpu> map_rows4(const Tensor<T, Cpu>& boxes, const char* who, F f) {
  check_boxes(boxes, who, "boxes", BoxCheck::shape);
  const Tensor<T, Cpu> b = contiguous(boxes);
  Tensor<T, Cpu> out(b.shape());
  for (index_t i = 0; i < b.size(0); ++i) f(b.data() + 4 * i, out.data() + 4 * i);
  return out;
}
}  // namespace detail

// (x1, y1, x2, y2) -> (x1, y1, x2 - x1, y2 - y1): COCO's bbox (mmdet CocoMetric.xyxy2xywh).
template <Scalar T>
Tensor<T, Cpu> xyxy_to_xywh(const Tensor<T, Cpu>& boxes) {
  return detail::map_rows4(boxes, "xyxy_to_xywh", [](const T* s, T* d) {
    d[0] = s[0];
    d[1] = s[1];
    d[2] = s[2] - s[0];
    d[3] = s[3] - s[1];
  });
}

// (x, y, w, h) -> (x, y, x + w, y + h) (mmdet's COCO loading, §13.9).
template <Scalar T>
Tensor<T, Cpu> xywh_to_xyxy(const Tensor<T, Cpu>& boxes) {
  return detail::map_rows4(boxes, "xywh_to_xyxy", [](const T* s, T* d) {
    d[0] = s[0];
    d[1] = s[1];
    d[2] = s[0] + s[2];
    d[3] = s[1] + s[3];
  });
}

// (x1, y1, x2, y2) -> ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1) (mmdet bbox_xyxy_to_cxcywh).
template <Scalar T>
Tensor<T, Cpu> xyxy_to_cxcywh(const Tensor<T, Cpu>& boxes) {
  return detail::map_rows4(boxes, "xyxy_to_cxcywh", [](const T* s, T* d) {
    const T sx = s[0] + s[2], sy = s[1] + s[3];
    d[0] = sx / T(2);
    d[1] = sy / T(2);
    d[2] = s[2] - s[0];
    d[3] = s[3] - s[1];
  });
}

// (cx, cy, w, h) -> (cx - w/2, cy - h/2, cx + w/2, cy + h/2) (mmdet bbox_cxcywh_to_xyxy).
template <Scalar T>
Tensor<T, Cpu> cxcywh_to_xyxy(const Tensor<T, Cpu>& boxes) {
  return detail::map_rows4(boxes, "cxcywh_to_xyxy", [](const T* s, T* d) {
    const T hw = T(0.5) * s[2], hh = T(0.5) * s[3];
    d[0] = s[0] - hw;
    d[1] = s[1] - hh;
    d[2] = s[0] + hw;
    d[3] = s[1] + hh;
  });
}

namespace detail {
inline void check_image_size(ImageSize s, const char* who) {
  GCNET_CHECK(s.height > 0 && s.width > 0, who, ": image size must be positive, got ", s.height, "x", s.width,
              " (height x width)");
}
}  // namespace detail

// In place: x1, x2 into [0, W] and y1, y2 into [0, H] (mmdet clip / clamp_, torchvision
// clip_boxes_to_image). `boxes` must be contiguous. NaN stays NaN.
template <Scalar T>
void clip_boxes(Tensor<T, Cpu>& boxes, ImageSize image) {
  check_boxes(boxes, "clip_boxes", "boxes", BoxCheck::shape);
  require_contiguous(boxes, "clip_boxes", "boxes");
  detail::check_image_size(image, "clip_boxes");
  const T w = static_cast<T>(image.width), h = static_cast<T>(image.height);
  T* p = boxes.data();
  auto clamp = [](T v, T hi) { return v < T(0) ? T(0) : (v > hi ? hi : v); };
  for (index_t i = 0; i < boxes.size(0); ++i) {
    p[4 * i] = clamp(p[4 * i], w);
    p[4 * i + 1] = clamp(p[4 * i + 1], h);
    p[4 * i + 2] = clamp(p[4 * i + 2], w);
    p[4 * i + 3] = clamp(p[4 * i + 3], h);
  }
}

template <Scalar T>
Tensor<T, Cpu> clipped_boxes(const Tensor<T, Cpu>& boxes, ImageSize image) {
  check_boxes(boxes, "clipped_boxes", "boxes", BoxCheck::shape);
  Tensor<T, Cpu> out = clone(boxes);
  clip_boxes(out, image);
  return out;
}

GCNET_FP_EXACT_END

}  // namespace gcnet::ops
