#pragma once
// The RPN's anchors for a batch (detection-reference §13.5): one [H_l * W_l * A, 4] tensor per
// level, in the order of the head's outputs ((y, x, a) within a level), the same for every image.
//   mmdet        AnchorGenerator with the options' strides; valid flags from each image's own
//                padded size (its img size rounded up to pad_size_divisor, mmdet v3's pad_shape).
//   torchvision  strides from the padded batch size over each level's size (image_size //
//                grid_size, integer division; P6 of an 800-row batch has stride 800 // 13 = 61),
//                base anchors rounded; every anchor valid (torchvision has no valid flags).
#include <cstdint>
#include <vector>

#include "gcnet/det/det_types.hpp"
#include "gcnet/det/rpn_options.hpp"

namespace gcnet {

// The generator for feature maps of `sizes` in a padded batch of `batch` pixels.
template <Scalar T>
ops::AnchorGenerator<T> rpn_anchor_generator(const RPNHeadOptions& o, const std::vector<ops::FeatSize>& sizes,
                                             ops::ImageSize batch) {
  ops::AnchorGeneratorOptions a = o.anchors;
  GCNET_CHECK(sizes.size() == a.strides.size(), "RPNHead: ", sizes.size(), " feature levels, but the anchor generator has ",
              a.strides.size(), " strides");
  if (o.style == RPNStyle::torchvision) {
    GCNET_CHECK(batch.height > 0 && batch.width > 0, "RPNHead: the padded batch size is ", batch.height, "x",
                batch.width, ", expected positive sizes");
    for (std::size_t l = 0; l < sizes.size(); ++l) {
      GCNET_CHECK(sizes[l].height > 0 && sizes[l].width > 0 && sizes[l].height <= batch.height &&
                      sizes[l].width <= batch.width,
                  "RPNHead: level ", l, " of size ", sizes[l].height, "x", sizes[l].width,
                  " does not fit a padded batch of ", batch.height, "x", batch.width);
      a.strides[l] = ops::AnchorStride(static_cast<double>(batch.width / sizes[l].width),
                                       static_cast<double>(batch.height / sizes[l].height));
    }
  }
  return ops::AnchorGenerator<T>(std::move(a));
}

// mmdet's pad_shape of one image: its size rounded up to the divisor.
inline ops::ImageSize rpn_pad_shape(const DetImageShape& s, index_t divisor) {
  const index_t d = divisor > 0 ? divisor : 1;
  return {(s.img_h + d - 1) / d * d, (s.img_w + d - 1) / d * d};
}

// Anchors of every level, concatenated ([M, 4], M = sum of H_l * W_l * A), and the size of each level.
template <Scalar T>
struct RPNAnchors {
  Tensor<T, Cpu> flat;
  std::vector<index_t> level_sizes;
  std::vector<ops::FeatSize> feat_sizes;
};

template <Scalar T>
RPNAnchors<T> rpn_anchors(const ops::AnchorGenerator<T>& gen, const std::vector<ops::FeatSize>& sizes) {
  RPNAnchors<T> r;
  r.feat_sizes = sizes;
  const std::vector<Tensor<T, Cpu>> levels = gen.grid_anchors(sizes);
  index_t m = 0;
  for (const auto& l : levels) {
    r.level_sizes.push_back(l.size(0));
    m += l.size(0);
  }
  r.flat = Tensor<T, Cpu>(Shape{m, 4});
  index_t at = 0;
  for (const auto& l : levels) {
    std::copy_n(l.data(), l.numel(), r.flat.data() + at);
    at += l.numel();
  }
  return r;
}

// Valid flags [M] of one image (all levels): mmdet's from its pad_shape, all 1 in the torchvision style.
template <Scalar T>
Tensor<std::uint8_t, Cpu> rpn_valid_flags(const RPNHeadOptions& o, const ops::AnchorGenerator<T>& gen,
                                          const RPNAnchors<T>& anchors, const DetImageShape& shape) {
  Tensor<std::uint8_t, Cpu> out(Shape{anchors.flat.size(0)});
  if (o.style == RPNStyle::torchvision) {
    std::fill_n(out.data(), out.numel(), std::uint8_t{1});
    return out;
  }
  const auto levels = gen.valid_flags(anchors.feat_sizes, rpn_pad_shape(shape, o.train.pad_size_divisor));
  index_t at = 0;
  for (const auto& l : levels) {
    std::copy_n(l.data(), l.numel(), out.data() + at);
    at += l.numel();
  }
  return out;
}

}  // namespace gcnet
