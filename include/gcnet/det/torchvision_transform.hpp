#pragma once
// torchvision 0.14's GeneralizedRCNNTransform in eval mode: images [3, h, w] with values in
// [0, 1] -> one normalised, padded batch and each image's DetImageShape:
//   normalize: (x - mean[c]) / std[c]  (mean and std as tensors of the image's type)
//   resize:    scale = min(min_size / min(h, w), max_size / max(h, w)) computed as torchvision does, in
//              float32 whatever the image type (torchvision_resize_scale); then
//              F.interpolate(scale_factor=scale, mode='bilinear', recompute_scale_factor=True,
//              align_corners=False): output floor(h * scale) x floor(w * scale), sampled with
//              in / out (layers/resize_bilinear.hpp)
//   batch:     zero padding at the bottom and right to a multiple of size_divisor (32) of the
//              largest height and width.
// DetImageShape: img = the resized size, ori = the given size, scale = img / ori per axis. The
// postprocess (boxes * float(ori) / float(img) per axis, masks pasted at ori) is the RoI head's
// predict (det/roi_head_predict.hpp), which reads these fields.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gcnet/det/det_types.hpp"
#include "gcnet/det/mask_rcnn_config.hpp"
#include "gcnet/layers/resize_bilinear.hpp"

namespace gcnet {

template <Scalar T = float>
struct DetInputBatch {
  Tensor<T> images;                  // [N, 3, H, W] normalised, padded
  std::vector<DetImageShape> shapes;  // per image
};

// torchvision's resize factor of an h x w image, in its float32 arithmetic: `self_min_size /
// min_size` with a Python float over a float32 tensor is Tensor.__rtruediv__, i.e.
// reciprocal(min_size) * self_min_size, rounded to float32 at each step (320 / 110 gives
// 2.9090908 this way, not 2.9090910, so a 110 pixel side becomes 319, not 320).
inline double torchvision_resize_scale(index_t h, index_t w, index_t min_size, index_t max_size) {
  const float inv_mn = 1.0f / static_cast<float>(std::min(h, w));
  const float inv_mx = 1.0f / static_cast<float>(std::max(h, w));
  const float a = inv_mn * static_cast<float>(min_size);
  const float b = inv_mx * static_cast<float>(max_size);
  return static_cast<double>(std::min<float>(a, b));
}

// One image: normalised and resized, [3, h', w'].
template <Scalar T>
Tensor<T> torchvision_transform_image(const Tensor<T>& image, const DetTransformOptions& o, DetImageShape& shape) {
  const char* who = "torchvision_transform";
  GCNET_CHECK(image.rank() == 3 && image.size(0) == 3 && image.size(1) > 0 && image.size(2) > 0, who,
              ": expected an image [3, h, w] with values in [0, 1], got shape ", image.shape().str());
  GCNET_CHECK(o.min_size > 0 && o.max_size > 0 && o.size_divisor > 0, who,
              ": min_size, max_size and size_divisor must be positive, got ", o.min_size, ", ", o.max_size, ", ",
              o.size_divisor);
  for (double s : o.std_dev) GCNET_CHECK(s > 0, who, ": std must be positive, got ", s);
  const index_t h = image.size(1), w = image.size(2);
  Tensor<T> x(Shape{1, 3, h, w});
  const Tensor<T> in = ops::contiguous(image);
  for (index_t c = 0; c < 3; ++c) {
    const T m = static_cast<T>(o.mean[static_cast<std::size_t>(c)]);
    const T s = static_cast<T>(o.std_dev[static_cast<std::size_t>(c)]);
    const T* src = in.data() + c * h * w;
    T* dst = x.data() + c * h * w;
    for (index_t i = 0; i < h * w; ++i) dst[i] = (src[i] - m) / s;
  }
  const double scale = torchvision_resize_scale(h, w, o.min_size, o.max_size);
  ResizeBilinear<T> resize(ResizeBilinearOptions{.scale = Scale2(scale), .align_corners = false,
                                                 .recompute_scale_factor = true});
  Tensor<T> y;
  resize.forward(x, y);
  shape.ori_h = h;
  shape.ori_w = w;
  shape.img_h = y.size(2);
  shape.img_w = y.size(3);
  shape.scale_h = static_cast<double>(shape.img_h) / static_cast<double>(h);
  shape.scale_w = static_cast<double>(shape.img_w) / static_cast<double>(w);
  shape.flip = false;
  return y;
}

// Images of any sizes -> a batch padded with zeros to a multiple of size_divisor.
template <Scalar T>
DetInputBatch<T> torchvision_transform(const std::vector<Tensor<T>>& images, const DetTransformOptions& o) {
  GCNET_CHECK(!images.empty(), "torchvision_transform: no images");
  DetInputBatch<T> b;
  b.shapes.resize(images.size());
  std::vector<Tensor<T>> resized;
  index_t H = 0, W = 0;
  for (std::size_t i = 0; i < images.size(); ++i) {
    try {
      resized.push_back(torchvision_transform_image(images[i], o, b.shapes[i]));
    } catch (const Error& e) {
      detail::rethrow_in("torchvision_transform: image " + std::to_string(i), e);
    }
    H = std::max(H, resized.back().size(2));
    W = std::max(W, resized.back().size(3));
  }
  const index_t d = o.size_divisor;
  H = (H + d - 1) / d * d;
  W = (W + d - 1) / d * d;
  const auto N = static_cast<index_t>(images.size());
  b.images = zeros<T>(Shape{N, 3, H, W});
  for (index_t i = 0; i < N; ++i) {
    const Tensor<T>& r = resized[static_cast<std::size_t>(i)];
    const index_t h = r.size(2), w = r.size(3);
    for (index_t c = 0; c < 3; ++c)
      for (index_t y = 0; y < h; ++y)
        std::copy_n(r.data() + (c * h + y) * w, w, b.images.data() + ((i * 3 + c) * H + y) * W);
  }
  return b;
}

}  // namespace gcnet
