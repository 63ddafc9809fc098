#pragma once
// Segmentation inference, the entry point: predict() runs a logits function over a batch of
// normalised images in whole or slide mode (seg/whole_and_slide.hpp), optionally with
// multi-scale + flip test-time augmentation (seg/test_time_aug.hpp), and returns the label
// map with the class probabilities behind it (for pictures, e.g. the test tool's show-dir).
#include <cstdint>
#include <optional>

#include "gcnet/seg/test_time_aug.hpp"
#include "gcnet/seg/whole_and_slide.hpp"

namespace gcnet::seg {

template <Scalar T = float>
struct Prediction {
  Tensor<std::int64_t> labels;  // [N, H, W] class ids
  Tensor<T> probabilities;      // [N, K, H, W]: softmax of the logits, or the TTA mean
};

// Without TTA the labels are the argmax of the logits (as mmseg); with it, of the mean
// probabilities.
template <Scalar T>
Prediction<T> predict(const std::type_identity_t<LogitsFunction<T>>& model, const Tensor<T>& images,
                      const InferenceOptions& o = {}, const std::optional<TtaOptions>& tta = std::nullopt) {
  Prediction<T> p;
  if (tta) {
    p.probabilities = aug_test<T>(model, images, o, *tta);
    p.labels = argmax_over_classes(p.probabilities);
  } else {
    const Tensor<T> logits = inference<T>(model, images, o);
    p.labels = argmax_over_classes(logits);
    p.probabilities = softmax_over_classes(logits);
  }
  return p;
}

}  // namespace gcnet::seg
