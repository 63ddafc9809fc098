#pragma once
// One inference pass over a batch of images, in mmseg's two test modes
// (mmseg/models/segmentors/encoder_decoder.py, whole_inference / slide_inference):
//  - whole: run the model on the full images; resize its logits to the image size.
//  - slide: run it on crop-sized windows laid on a grid with the given stride (the last
//    window of a row or column is pulled back to end at the image border); resize each
//    window's logits to the window size, add them into place and divide by the number of
//    windows that covered each pixel.
// The model is a LogitsFunction: images [N, C, H, W] (already normalised) -> logits
// [N, K, h, w] at any resolution (H/8 for a D8 segmentor).
#include <algorithm>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "gcnet/seg/score_maps.hpp"

namespace gcnet::seg {

template <Scalar T = float>
using LogitsFunction = std::function<Tensor<T>(const Tensor<T>& images)>;

enum class InferenceMode { whole, slide };

inline const char* mode_name(InferenceMode m) { return m == InferenceMode::whole ? "whole" : "slide"; }

struct InferenceOptions {
  InferenceMode mode = InferenceMode::whole;
  Size2 crop = 512;            // slide: window (h, w), mmseg's test_cfg.crop_size (given there as (h, w))
  Size2 stride = 341;          // slide: window step (h, w), mmseg's test_cfg.stride
  bool align_corners = false;  // the decode head's align_corners, for every logits resize
};

// Throws on options no mode can use. A stride larger than the crop is refused: it leaves
// pixels that no window covers (mmseg asserts on those at run time).
inline void validate(const InferenceOptions& o) {
  GCNET_CHECK(o.crop.h > 0 && o.crop.w > 0, "seg inference: crop must be positive, got ", o.crop.str(true));
  GCNET_CHECK(o.stride.h > 0 && o.stride.w > 0, "seg inference: stride must be positive, got ", o.stride.str(true));
  GCNET_CHECK(o.stride.h <= o.crop.h && o.stride.w <= o.crop.w, "seg inference: stride ", o.stride.str(true),
              " is larger than crop ", o.crop.str(true), ": some pixels would be in no window");
}

// Calls the model and checks what it returns: [N, K, h, w] with the input's N, and (when
// `classes` > 0, i.e. after a first call) the same K as before.
template <Scalar T>
Tensor<T> call_model(const LogitsFunction<T>& model, const Tensor<T>& images, index_t classes = 0) {
  GCNET_CHECK(static_cast<bool>(model), "seg inference: the logits function is empty");
  Tensor<T> logits = model(images);
  GCNET_CHECK(logits.rank() == 4, "seg inference: the logits function must return [N, K, h, w], got shape ",
              logits.shape().str(), " for images of shape ", images.shape().str());
  GCNET_CHECK(logits.size(0) == images.size(0), "seg inference: the logits function returned a batch of ",
              logits.size(0), " (shape ", logits.shape().str(), ") for ", images.size(0), " images of shape ",
              images.shape().str());
  GCNET_CHECK(!logits.shape().has_zero(), "seg inference: the logits function returned an empty tensor of shape ",
              logits.shape().str());
  GCNET_CHECK(classes == 0 || logits.size(1) == classes, "seg inference: the logits function returned ", logits.size(1),
              " classes (shape ", logits.shape().str(), ") after ", classes, " before");
  return logits;
}

// Whole-image logits at the image size.
template <Scalar T>
Tensor<T> whole_inference(const std::type_identity_t<LogitsFunction<T>>& model, const Tensor<T>& images,
                          bool align_corners = false) {
  require_score_map(images, "seg::whole_inference", "images");
  return resize_to(call_model(model, images), Size2{images.size(2), images.size(3)}, align_corners);
}

// One slide window: rows [y1, y2), columns [x1, x2).
struct Window {
  index_t y1, y2, x1, x2;
  friend bool operator==(const Window&, const Window&) = default;
};

// mmseg's window grid, row by row: max(H - crop + stride - 1, 0) // stride + 1 windows per
// column (likewise per row); each starts at idx * stride, ends at min(start + crop, H), and
// then starts at max(end - crop, 0), so windows never leave the image and are smaller than
// the crop only when the image is.
inline std::vector<Window> slide_windows(index_t H, index_t W, Size2 crop, Size2 stride) {
  validate(InferenceOptions{.mode = InferenceMode::slide, .crop = crop, .stride = stride});
  GCNET_CHECK(H > 0 && W > 0, "seg::slide_windows: empty image ", H, "x", W);
  const index_t h_grids = std::max<index_t>(H - crop.h + stride.h - 1, 0) / stride.h + 1;
  const index_t w_grids = std::max<index_t>(W - crop.w + stride.w - 1, 0) / stride.w + 1;
  std::vector<Window> out;
  out.reserve(static_cast<std::size_t>(h_grids * w_grids));
  for (index_t i = 0; i < h_grids; ++i) {
    for (index_t j = 0; j < w_grids; ++j) {
      const index_t y2 = std::min(i * stride.h + crop.h, H), x2 = std::min(j * stride.w + crop.w, W);
      out.push_back({std::max<index_t>(y2 - crop.h, 0), y2, std::max<index_t>(x2 - crop.w, 0), x2});
    }
  }
  return out;
}

// Sliding-window logits at the image size.
template <Scalar T>
Tensor<T> slide_inference(const std::type_identity_t<LogitsFunction<T>>& model, const Tensor<T>& images, Size2 crop,
                          Size2 stride, bool align_corners = false) {
  require_score_map(images, "seg::slide_inference", "images");
  const index_t N = images.size(0), H = images.size(2), W = images.size(3);
  Tensor<T> sum;  // [N, K, H, W], allocated once K is known
  std::vector<index_t> count(static_cast<std::size_t>(H * W), 0);  // windows over each pixel
  index_t K = 0;
  for (const Window& win : slide_windows(H, W, crop, stride)) {
    const index_t h = win.y2 - win.y1, w = win.x2 - win.x1;
    // The model gets a contiguous crop, as it would get a full image.
    const Tensor<T> patch = clone(images.narrow(2, win.y1, h).narrow(3, win.x1, w));
    const Tensor<T> logits = resize_to(call_model(model, patch, K), Size2{h, w}, align_corners);
    if (K == 0) {
      K = logits.size(1);
      sum = zeros<T>(Shape{N, K, H, W});
    }
    for (index_t p = 0; p < N * K; ++p) {
      T* dst = sum.data() + p * H * W;
      const T* src = logits.data() + p * h * w;
      for (index_t y = 0; y < h; ++y)
        for (index_t x = 0; x < w; ++x) dst[(win.y1 + y) * W + win.x1 + x] += src[y * w + x];
    }
    for (index_t y = win.y1; y < win.y2; ++y)
      for (index_t x = win.x1; x < win.x2; ++x) ++count[static_cast<std::size_t>(y * W + x)];
  }
  Tensor<T> out = nan_tensor<T>(sum.shape());
  for (index_t p = 0; p < N * K; ++p) {
    for (index_t i = 0; i < H * W; ++i) {
      const index_t c = count[static_cast<std::size_t>(i)];
      GCNET_CHECK(c > 0, "seg::slide_inference: pixel (", i / W, ", ", i % W, ") is in no window");
      out[p * H * W + i] = sum[p * H * W + i] / static_cast<T>(c);
    }
  }
  return out;
}

// Logits at the image size in the mode the options name.
template <Scalar T>
Tensor<T> inference(const std::type_identity_t<LogitsFunction<T>>& model, const Tensor<T>& images,
                    const InferenceOptions& o) {
  validate(o);
  if (o.mode == InferenceMode::slide) return slide_inference<T>(model, images, o.crop, o.stride, o.align_corners);
  return whole_inference<T>(model, images, o.align_corners);
}

}  // namespace gcnet::seg
