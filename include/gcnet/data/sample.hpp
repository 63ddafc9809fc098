#pragma once
// Sample: one training example as the transforms see it. The image is float HWC (values
// 0..255 until Normalize; channels in the file's order, RGB for color), the label an int64
// HW map (255 = ignore) for segmentation, or undefined with class_id >= 0 for classification.
// HWC keeps every transform a per-pixel loop over interleaved channels, as mmcv does on
// numpy arrays; the loader's collate transposes to the network's NCHW.
#include <algorithm>
#include <cstdint>

#include "gcnet/core/tensor.hpp"
#include "gcnet/data/image.hpp"

namespace gcnet::data {

inline constexpr std::int64_t ignore_label = 255;

struct Sample {
  Tensor<float> image;         // [H, W, C]
  Tensor<std::int64_t> label;  // [H, W], or undefined
  std::int64_t class_id = -1;  // classification target when label is undefined

  index_t height() const { return image.size(0); }
  index_t width() const { return image.size(1); }
  index_t channels() const { return image.size(2); }
  bool has_label_map() const { return label.defined() && label.rank() == 2; }
};

inline Tensor<float> image_to_tensor(const Image& img) {
  Tensor<float> t(Shape{img.height, img.width, img.channels});
  for (std::size_t i = 0; i < img.pixels.size(); ++i) t[static_cast<index_t>(i)] = img.pixels[i];
  return t;
}

inline Tensor<std::int64_t> label_to_tensor(const Image& lbl) {
  GCNET_CHECK(lbl.channels == 1, "label_to_tensor: a label map has 1 channel, got ", lbl.channels);
  Tensor<std::int64_t> t(Shape{lbl.height, lbl.width});
  for (std::size_t i = 0; i < lbl.pixels.size(); ++i) t[static_cast<index_t>(i)] = lbl.pixels[i];
  return t;
}

// A deep copy (Tensor copies share storage; in-place transforms must not touch the source).
template <class T>
Tensor<T> copy_tensor(const Tensor<T>& t) {
  if (!t.defined()) return {};
  GCNET_CHECK(t.is_contiguous(), "copy_tensor: tensor of shape ", t.shape().str(), " is not contiguous");
  Tensor<T> c(t.shape());
  std::copy_n(t.data(), t.numel(), c.data());
  return c;
}
inline Sample copy_sample(const Sample& s) { return {copy_tensor(s.image), copy_tensor(s.label), s.class_id}; }

// Image and label must cover the same pixels; transforms check this before moving either.
inline void require_consistent(const Sample& s, const char* who) {
  GCNET_CHECK(s.image.rank() == 3 && s.image.numel() > 0, who, ": expected a non-empty HWC image, got shape ",
              s.image.shape().str());
  if (s.label.defined())
    GCNET_CHECK(s.label.rank() == 2 && s.label.size(0) == s.height() && s.label.size(1) == s.width(), who,
                ": label of shape ", s.label.shape().str(), " does not match image of shape ",
                s.image.shape().str());
}

}  // namespace gcnet::data
