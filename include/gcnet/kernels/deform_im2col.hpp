#pragma once
// Deformable im2col and its adjoints (DCNv1/v2, mmcv / torchvision 0.14 rules).
//
// A deformable convolution samples input channel c (of deform group g = c / (C / dg)) for
// window position p = (oh, ow) and kernel tap t = (i, j) at
//   h = oh * stride_h - pad_h + i * dilation_h + offset[g][2t][p]
//   w = ow * stride_w - pad_w + j * dilation_w + offset[g][2t + 1][p]
// by bilinear interpolation (0 when h <= -1, h >= H, w <= -1 or w >= W; corners outside the
// image count as 0), times mask[g][t][p] for DCNv2. The sampling geometry depends on
// (g, t, p) but not on the channel, so it is computed once into a table of DeformSample
// (corner indices and weights) and then reused by every channel of the group: the column
// gather, the scatter of the input gradient and the offset/mask gradients all read it.
//
// Layouts (one image): offset [dg * 2 * K, P], mask [dg * K, P], columns [C * K, P] with row
// c * K + t (as im2col), table [dg * K, P]; K = kh * kw, P = out_h * out_w.
// Every body is a GCNET_HD lambda run by for_each_index; each writes only its own outputs:
//  - deform_col2im_add: one task per input channel plane (no two tasks touch a pixel, so
//    the scatter is race-free and its summation order fixed),
//  - deform_coordinate_grad: one task per (g, t, p) entry, summing over the group's channels.
#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/im2col.hpp"

namespace gcnet {

// The bilinear sample of one (deform group, tap, position). Corners in the order
// (h_low, w_low), (h_low, w_high), (h_high, w_low), (h_high, w_high).
template <class T>
struct DeformSample {
  index_t corner[4];  // pixel index h * W + w; 0 (a safe address) where the corner is outside
  T gate[4];          // 1 where the corner is inside the image, else 0 (zero padding)
  T weight[4];        // bilinear weight * gate * mask: the column entry is sum weight[k] * pixel[k]
  T lh, lw;           // fractional parts of h and w
  T mask;             // 1 for DCNv1
};

// table[(g * K + t) * P + p] for every deform group, tap and window position of one image.
// `mask` may be null (DCNv1).
template <class T, class B>
void deform_sample_table(B, const ConvGeometry& geometry, index_t deform_groups, const T* offset, const T* mask,
                         DeformSample<T>* table) {
  const ConvGeometry g = geometry;
  const index_t K = g.kernel_area(), P = g.positions();
  for_each_index(B{}, deform_groups * K * P, [=] GCNET_HD(index_t e) {
    const index_t p = e % P, gt = e / P, t = gt % K;
    const index_t i = t / g.kernel_w, j = t % g.kernel_w, oh = p / g.out_w, ow = p % g.out_w;
    const T h = T(oh * g.stride_h - g.pad_h + i * g.dilation_h) + offset[(2 * gt) * P + p];
    const T w = T(ow * g.stride_w - g.pad_w + j * g.dilation_w) + offset[(2 * gt + 1) * P + p];
    DeformSample<T> s;
    s.mask = mask ? mask[e] : T(1);
    for (int k = 0; k < 4; ++k) {
      s.corner[k] = 0;
      s.gate[k] = T(0);
      s.weight[k] = T(0);
    }
    s.lh = s.lw = T(0);
    if (h > T(-1) && w > T(-1) && h < T(g.height) && w < T(g.width)) {
      // h + 1 > 0, so truncation is floor (no <cmath> in device code).
      const index_t hl = static_cast<index_t>(h + T(1)) - 1, wl = static_cast<index_t>(w + T(1)) - 1;
      s.lh = h - T(hl);
      s.lw = w - T(wl);
      const bool in_h[2] = {hl >= 0, hl + 1 <= g.height - 1};
      const bool in_w[2] = {wl >= 0, wl + 1 <= g.width - 1};
      const T fh[2] = {T(1) - s.lh, s.lh}, fw[2] = {T(1) - s.lw, s.lw};
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
          if (!(in_h[a] && in_w[b])) continue;
          const int k = 2 * a + b;
          s.corner[k] = (hl + a) * g.width + (wl + b);
          s.gate[k] = T(1);
          s.weight[k] = fh[a] * fw[b] * s.mask;
        }
    }
    table[e] = s;
  });
}

// col[(c * K + t) * P + p] = sampled (and masked) value of channel c: the deformable im2col.
template <class T, class B>
void deform_im2col(B, const ConvGeometry& geometry, index_t deform_groups, const T* image,
                   const DeformSample<T>* table, T* col) {
  const ConvGeometry g = geometry;
  const index_t K = g.kernel_area(), P = g.positions(), HW = g.image_size();
  const index_t per_group = g.channels / deform_groups;
  for_each_index_weighted(B{}, g.channels * K, 4 * P, [=] GCNET_HD(index_t r) {
    const index_t c = r / K, t = r % K;
    const T* img = image + c * HW;
    const DeformSample<T>* s = table + ((c / per_group) * K + t) * P;
    T* dst = col + r * P;
    for (index_t p = 0; p < P; ++p) {
      const DeformSample<T>& q = s[p];
      dst[p] = (q.weight[0] * img[q.corner[0]] + q.weight[1] * img[q.corner[1]]) +
               (q.weight[2] * img[q.corner[2]] + q.weight[3] * img[q.corner[3]]);
    }
  });
}

// dimage += the adjoint of deform_im2col applied to dcol. One task per channel plane.
template <class T, class B>
void deform_col2im_add(B, const ConvGeometry& geometry, index_t deform_groups, const T* dcol,
                       const DeformSample<T>* table, T* dimage) {
  const ConvGeometry g = geometry;
  const index_t K = g.kernel_area(), P = g.positions(), HW = g.image_size();
  const index_t per_group = g.channels / deform_groups;
  for_each_index_weighted(B{}, g.channels, 4 * K * P, [=] GCNET_HD(index_t c) {
    T* dimg = dimage + c * HW;
    for (index_t t = 0; t < K; ++t) {
      const DeformSample<T>* s = table + ((c / per_group) * K + t) * P;
      const T* src = dcol + (c * K + t) * P;
      for (index_t p = 0; p < P; ++p) {
        const DeformSample<T>& q = s[p];
        const T d = src[p];
        dimg[q.corner[0]] += q.weight[0] * d;
        dimg[q.corner[1]] += q.weight[1] * d;
        dimg[q.corner[2]] += q.weight[2] * d;
        dimg[q.corner[3]] += q.weight[3] * d;
      }
    }
  });
}

// doffset += d loss / d offset and (when dmask is not null) dmask += d loss / d mask, from
// the column gradient dcol: per (g, t, p), the sum over the group's channels of dcol times
// the derivative of the bilinear sample (mmcv's get_coordinate_weight: corner-gated, 0 for
// samples outside (-1, H) x (-1, W)).
template <class T, class B>
void deform_coordinate_grad(B, const ConvGeometry& geometry, index_t deform_groups, const T* image, const T* dcol,
                            const DeformSample<T>* table, T* doffset, T* dmask) {
  const ConvGeometry g = geometry;
  const index_t K = g.kernel_area(), P = g.positions(), HW = g.image_size();
  const index_t per_group = g.channels / deform_groups;
  for_each_index_weighted(B{}, deform_groups * K * P, 4 * per_group, [=] GCNET_HD(index_t e) {
    const index_t p = e % P, gt = e / P, t = gt % K, grp = gt / K;
    const DeformSample<T> q = table[e];
    const T lh = q.lh, lw = q.lw;
    T gh = T(0), gw = T(0), gm = T(0);
    for (index_t c = grp * per_group; c < (grp + 1) * per_group; ++c) {
      const T* img = image + c * HW;
      const T d = dcol[(c * K + t) * P + p];
      const T v0 = q.gate[0] * img[q.corner[0]], v1 = q.gate[1] * img[q.corner[1]];
      const T v2 = q.gate[2] * img[q.corner[2]], v3 = q.gate[3] * img[q.corner[3]];
      gh += d * ((T(1) - lw) * (v2 - v0) + lw * (v3 - v1));
      gw += d * ((T(1) - lh) * (v1 - v0) + lh * (v3 - v2));
      gm += d * ((T(1) - lh) * ((T(1) - lw) * v0 + lw * v1) + lh * ((T(1) - lw) * v2 + lw * v3));
    }
    doffset[(2 * gt) * P + p] += q.mask * gh;
    doffset[(2 * gt + 1) * P + p] += q.mask * gw;
    if (dmask) dmask[e] += gm;
  });
}

}  // namespace gcnet
