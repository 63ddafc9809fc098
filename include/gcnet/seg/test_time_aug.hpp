#pragma once
// Multi-scale + flip test-time augmentation, as mmseg's `--tta` (1.x: the TestTimeAug
// pipeline and SegTTAModel.merge_preds; 0.x: aug_test). For each ratio, and within it
// without then with a horizontal flip:
//   1. resize the images by the ratio, keeping their aspect ratio (mmcv's Resize with
//      scale_factor and keep_ratio: see scaled_size), bilinearly with half-pixel centres;
//   2. flip them if this pass flips;
//   3. run whole or slide inference at that size (logits at the resized size);
//   4. undo the flip, resize the logits back to the original size (head's align_corners);
//   5. softmax over classes.
// The result is the mean of the passes' probabilities; its argmax is the prediction.
// Images are resized after normalisation here and before it in mmseg: bilinear weights sum
// to one, so the two orders agree.
#include <cmath>
#include <vector>

#include "gcnet/data/resize.hpp"
#include "gcnet/seg/whole_and_slide.hpp"

namespace gcnet::seg {

struct TtaOptions {
  std::vector<double> ratios = {0.5, 0.75, 1.0, 1.25, 1.5, 1.75};  // mmseg's img_ratios
  bool flip = true;                                                // add a horizontally flipped pass per ratio
};

inline void validate(const TtaOptions& o) {
  GCNET_CHECK(!o.ratios.empty(), "seg test-time augmentation: the list of ratios is empty");
  for (double r : o.ratios)
    GCNET_CHECK(std::isfinite(r) && r > 0, "seg test-time augmentation: ratio ", r, " is not a positive number");
}

// The size mmcv's Resize(scale_factor=r, keep_ratio=True) gives an H x W image: the target
// scale is (int(W*r + 0.5), int(H*r + 0.5)), then mmcv.imrescale fits the image into it
// (rescale_size, which rounds again). Returns {h, w}.
inline Size2 scaled_size(index_t H, index_t W, double ratio) {
  const auto round_side = [ratio](index_t s) { return static_cast<index_t>(static_cast<double>(s) * ratio + 0.5); };
  const index_t th = round_side(H), tw = round_side(W);
  GCNET_CHECK(th > 0 && tw > 0, "seg test-time augmentation: ratio ", ratio, " scales a ", H, "x", W, " image to ", th,
              "x", tw);
  const auto [h, w] = data::rescale_size(H, W, th, tw);
  return Size2{h, w};
}

// Mean softmax probabilities [N, K, H, W] over the augmented passes.
template <Scalar T>
Tensor<T> aug_test(const std::type_identity_t<LogitsFunction<T>>& model, const Tensor<T>& images,
                   const InferenceOptions& o, const TtaOptions& tta = {}) {
  validate(o);
  validate(tta);
  require_score_map(images, "seg::aug_test", "images");
  const Size2 original{images.size(2), images.size(3)};
  Tensor<T> sum;
  index_t passes = 0;
  for (double ratio : tta.ratios) {
    // The image resize is mmcv's (cv2 bilinear: half-pixel centres, whatever the head's align_corners).
    const Tensor<T> scaled = resize_to(images, scaled_size(original.h, original.w, ratio), false);
    for (bool flip : {false, true}) {
      if (flip && !tta.flip) continue;
      Tensor<T> logits = inference<T>(model, flip ? flip_horizontal(scaled) : scaled, o);
      if (flip) logits = flip_horizontal(logits);
      const Tensor<T> probs = softmax_over_classes(resize_to(logits, original, o.align_corners));
      GCNET_CHECK(!sum.defined() || probs.size(1) == sum.size(1), "seg::aug_test: the logits function returned ",
                  probs.size(1), " classes at ratio ", ratio, " and ", sum.size(1), " before");
      if (!sum.defined()) sum = zeros<T>(probs.shape());
      add_into(sum, probs, "seg::aug_test");
      ++passes;
    }
  }
  // mmseg divides the sum by the number of passes (not a multiply by its inverse).
  Tensor<T> mean = nan_tensor<T>(sum.shape());
  for (index_t i = 0; i < sum.numel(); ++i) mean[i] = sum[i] / static_cast<T>(passes);
  return mean;
}

}  // namespace gcnet::seg
