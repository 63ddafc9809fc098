#pragma once
// mmdet's AnchorGenerator (detection-reference.md §13.5; mmdet models/task_modules/
// prior_generators/anchor_generator.py) and anchor_inside_flags (§13.6).
//   base anchors   per level, A = |ratios| * |scales|: h_ratio = sqrt(ratio), w_ratio = 1 / h_ratio
//                  (ratio = h / w), w = base_size * w_ratio * scale, h = base_size * h_ratio * scale,
//                  ratio-major (a = r * |scales| + s; scale_major = false: a = s * |ratios| + r),
//                  anchor = (cx - w/2, cy - h/2, cx + w/2, cy + h/2), centre = center_offset *
//                  base_size (or the level's given centre); float32 arithmetic as mmdet's.
//   grid anchors   anchor[(y * W + x) * A + a] = base[a] + (x * stride_w, y * stride_h) twice: the
//                  order of the heads' outputs (cls (A, H, W).permute(1, 2, 0) flattened).
//   valid flags    positions x < ceil(pad_w / stride_w), y < ceil(pad_h / stride_h) of the image's
//                  own padded size; the rest exist only because of batch padding.
// torchvision's AnchorGenerator rounds the base anchors to integers (round half to even):
// `round_base_anchors = true` (sizes (32,), (64,), ... with strides 4, 8, ... are base_sizes =
// strides, scales = {8}; the products are exact, so only the rounding differs).
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/ops/boxes.hpp"

namespace gcnet::ops {

// A level's stride in pixels; mmdet's _pair: one number or (w, h).
struct AnchorStride {
  double w = 0, h = 0;
  AnchorStride(double s) : w(s), h(s) {}  // NOLINT: implicit, as mmdet's _pair
  AnchorStride(double sw, double sh) : w(sw), h(sh) {}
};

struct AnchorGeneratorOptions {
  std::vector<AnchorStride> strides{};  // one per level (FPN: 4, 8, 16, 32, 64)
  std::vector<double> ratios{};       // h / w (0.5, 1, 2)
  std::vector<double> scales{};       // (8); or empty and octave_base_scale, scales_per_octave
  double octave_base_scale = 0;       // RetinaNet: scales = octave_base_scale * 2^(i / scales_per_octave)
  int scales_per_octave = 0;
  std::vector<double> base_sizes{};   // empty: min(stride_w, stride_h) per level
  bool scale_major = true;
  double center_offset = 0;           // in [0, 1], a fraction of the base size
  std::vector<std::array<double, 2>> centers{};  // per level (x, y); empty: from center_offset
  bool round_base_anchors = false;    // torchvision's AnchorGenerator
};

// A feature map's size (height, width) at one level.
struct FeatSize {
  index_t height = 0, width = 0;
};

GCNET_FP_EXACT_BEGIN

template <Scalar T = float>
class AnchorGenerator {
 public:
  explicit AnchorGenerator(AnchorGeneratorOptions o) : o_(std::move(o)) {
    const std::string who = describe();
    GCNET_CHECK(!o_.strides.empty(), who, ": strides must name at least one level");
    for (std::size_t l = 0; l < o_.strides.size(); ++l)
      GCNET_CHECK(o_.strides[l].w > 0 && o_.strides[l].h > 0 && std::isfinite(o_.strides[l].w) &&
                      std::isfinite(o_.strides[l].h),
                  who, ": stride of level ", l, " is (", o_.strides[l].w, ", ", o_.strides[l].h,
                  "), expected positive values");
    GCNET_CHECK(!o_.ratios.empty(), who, ": ratios must not be empty");
    for (double r : o_.ratios) GCNET_CHECK(r > 0 && std::isfinite(r), who, ": ratio ", r, " must be finite and > 0");
    const bool octave = o_.octave_base_scale != 0 || o_.scales_per_octave != 0;
    GCNET_CHECK(o_.scales.empty() != !octave, who,
                ": give either scales or octave_base_scale and scales_per_octave, not both or neither");
    if (octave) {
      GCNET_CHECK(o_.octave_base_scale > 0 && o_.scales_per_octave > 0, who, ": octave_base_scale = ",
                  o_.octave_base_scale, " and scales_per_octave = ", o_.scales_per_octave, " must both be > 0");
      // numpy: 2 ** (i / n) * octave_base_scale in double, then torch.Tensor (float32).
      for (int i = 0; i < o_.scales_per_octave; ++i)
        scales_.push_back(std::pow(2.0, static_cast<double>(i) / o_.scales_per_octave) * o_.octave_base_scale);
    } else {
      scales_ = o_.scales;
    }
    for (double s : scales_) GCNET_CHECK(s > 0 && std::isfinite(s), who, ": scale ", s, " must be finite and > 0");
    const std::size_t levels = o_.strides.size();
    if (o_.base_sizes.empty())
      for (const auto& s : o_.strides) o_.base_sizes.push_back(std::min(s.w, s.h));
    GCNET_CHECK(o_.base_sizes.size() == levels, who, ": ", o_.base_sizes.size(), " base sizes for ", levels,
                " levels");
    for (double b : o_.base_sizes) GCNET_CHECK(b > 0 && std::isfinite(b), who, ": base size ", b, " must be > 0");
    GCNET_CHECK(o_.center_offset >= 0 && o_.center_offset <= 1, who, ": center_offset = ", o_.center_offset,
                ", expected a value in [0, 1]");
    GCNET_CHECK(o_.centers.empty() || o_.center_offset == 0, who, ": give centers or center_offset, not both");
    GCNET_CHECK(o_.centers.empty() || o_.centers.size() == levels, who, ": ", o_.centers.size(), " centers for ",
                levels, " levels");
    for (std::size_t l = 0; l < levels; ++l) base_.push_back(make_base(l));
  }

  std::string describe() const { return "AnchorGenerator"; }
  index_t num_levels() const { return static_cast<index_t>(o_.strides.size()); }
  index_t num_base_anchors(index_t level) const { return base_anchors(level).size(0); }
  const AnchorStride& stride(index_t level) const { return o_.strides[checked(level)]; }
  const std::vector<double>& scales() const { return scales_; }

  // [A, 4] anchors of a level centred at its centre (mmdet base_anchors[level]).
  const Tensor<T, Cpu>& base_anchors(index_t level) const { return base_[checked(level)]; }

  // mmdet single_level_grid_priors: [H * W * A, 4] in (y, x, a) order.
  Tensor<T, Cpu> grid_anchors(index_t level, FeatSize size) const {
    const std::size_t l = checked(level);
    GCNET_CHECK(size.height >= 0 && size.width >= 0, describe(), ": feature map size of level ", level, " is ",
                size.height, "x", size.width);
    const Tensor<T, Cpu>& base = base_[l];
    const index_t a = base.size(0), h = size.height, w = size.width;
    Tensor<T, Cpu> out(Shape{h * w * a, 4});
    const T sw = static_cast<T>(o_.strides[l].w), sh = static_cast<T>(o_.strides[l].h);
    T* po = out.data();
    const T* pb = base.data();
    for_each_index_weighted(Cpu{}, h, w * a * 4, [&](index_t y) {
      const T shy = static_cast<T>(y) * sh;
      for (index_t x = 0; x < w; ++x) {
        const T shx = static_cast<T>(x) * sw;
        T* row = po + ((y * w + x) * a) * 4;
        for (index_t k = 0; k < a; ++k) {
          row[4 * k] = pb[4 * k] + shx;
          row[4 * k + 1] = pb[4 * k + 1] + shy;
          row[4 * k + 2] = pb[4 * k + 2] + shx;
          row[4 * k + 3] = pb[4 * k + 3] + shy;
        }
      }
    });
    return out;
  }

  // mmdet grid_priors: one [H_l * W_l * A, 4] tensor per level.
  std::vector<Tensor<T, Cpu>> grid_anchors(const std::vector<FeatSize>& sizes) const {
    check_levels(sizes.size(), "grid_anchors");
    std::vector<Tensor<T, Cpu>> out;
    for (std::size_t l = 0; l < sizes.size(); ++l) out.push_back(grid_anchors(static_cast<index_t>(l), sizes[l]));
    return out;
  }

  // mmdet valid_flags: 1 where the anchor's position lies inside this image's own padded size
  // `pad_shape`, one [H_l * W_l * A] tensor per level.
  std::vector<Tensor<std::uint8_t, Cpu>> valid_flags(const std::vector<FeatSize>& sizes, ImageSize pad_shape) const {
    check_levels(sizes.size(), "valid_flags");
    detail::check_image_size(pad_shape, "AnchorGenerator::valid_flags");
    std::vector<Tensor<std::uint8_t, Cpu>> out;
    for (std::size_t l = 0; l < sizes.size(); ++l) {
      const index_t h = sizes[l].height, w = sizes[l].width, a = base_[l].size(0);
      const auto vh = std::min(h, static_cast<index_t>(std::ceil(static_cast<double>(pad_shape.height) / o_.strides[l].h)));
      const auto vw = std::min(w, static_cast<index_t>(std::ceil(static_cast<double>(pad_shape.width) / o_.strides[l].w)));
      Tensor<std::uint8_t, Cpu> f(Shape{h * w * a});
      for (index_t y = 0; y < h; ++y)
        for (index_t x = 0; x < w; ++x)
          for (index_t k = 0; k < a; ++k) f[(y * w + x) * a + k] = (y < vh && x < vw) ? 1 : 0;
      out.push_back(f);
    }
    return out;
  }

 private:
  std::size_t checked(index_t level) const {
    GCNET_CHECK(level >= 0 && level < num_levels(), describe(), ": level ", level, " out of range [0, ",
                num_levels(), ")");
    return static_cast<std::size_t>(level);
  }
  void check_levels(std::size_t n, const char* what) const {
    GCNET_CHECK(static_cast<index_t>(n) == num_levels(), describe(), "::", what, ": ", n,
                " feature map sizes for ", num_levels(), " levels");
  }

  Tensor<T, Cpu> make_base(std::size_t l) const {
    const T base = static_cast<T>(o_.base_sizes[l]);
    T cx, cy;
    if (o_.centers.empty()) {
      cx = static_cast<T>(o_.center_offset * o_.base_sizes[l]);
      cy = cx;
    } else {
      cx = static_cast<T>(o_.centers[l][0]);
      cy = static_cast<T>(o_.centers[l][1]);
    }
    const std::size_t nr = o_.ratios.size(), ns = scales_.size();
    Tensor<T, Cpu> out(Shape{static_cast<index_t>(nr * ns), 4});
    for (std::size_t r = 0; r < nr; ++r) {
      const T hr = std::sqrt(static_cast<T>(o_.ratios[r]));
      const T wr = T(1) / hr;
      for (std::size_t s = 0; s < ns; ++s) {
        const T sc = static_cast<T>(scales_[s]);
        T ws, hs;
        if (o_.scale_major) {  // (base * w_ratio) * scale
          const T bw = base * wr, bh = base * hr;
          ws = bw * sc;
          hs = bh * sc;
        } else {  // (base * scale) * w_ratio
          const T bs = base * sc;
          ws = bs * wr;
          hs = bs * hr;
        }
        const index_t a = static_cast<index_t>(o_.scale_major ? r * ns + s : s * nr + r);
        const T hw = T(0.5) * ws, hh = T(0.5) * hs;
        T v[4] = {cx - hw, cy - hh, cx + hw, cy + hh};
        if (o_.round_base_anchors)
          for (T& e : v) e = std::nearbyint(e);  // torch.round: half to even
        for (int k = 0; k < 4; ++k) out[4 * a + k] = v[k];
      }
    }
    return out;
  }

  AnchorGeneratorOptions o_;
  std::vector<double> scales_;
  std::vector<Tensor<T, Cpu>> base_;
};

// mmdet anchor_inside_flags: valid anchors that lie inside the image within allowed_border
// pixels: x1 >= -b, y1 >= -b, x2 < W + b, y2 < H + b (strict on the right and bottom; W, H the
// resized image's img_shape). A negative allowed_border keeps every valid anchor.
template <Scalar T>
Tensor<std::uint8_t, Cpu> anchor_inside_flags(const Tensor<T, Cpu>& anchors, const Tensor<std::uint8_t, Cpu>& valid,
                                              ImageSize img_shape, double allowed_border = 0) {
  check_boxes(anchors, "anchor_inside_flags", "anchors", BoxCheck::shape);
  GCNET_CHECK(valid.rank() == 1 && valid.size(0) == anchors.size(0), "anchor_inside_flags: valid flags have shape ",
              valid.shape().str(), ", expected [", anchors.size(0), "] (one per anchor)");
  detail::check_image_size(img_shape, "anchor_inside_flags");
  const Tensor<T, Cpu> a = contiguous(anchors);
  const Tensor<std::uint8_t, Cpu> v = contiguous(valid);
  Tensor<std::uint8_t, Cpu> out(Shape{a.size(0)});
  // torch compares a float tensor with the Python scalars -b and W + b in float.
  const T lo = static_cast<T>(-allowed_border);
  const T wx = static_cast<T>(static_cast<double>(img_shape.width) + allowed_border);
  const T hy = static_cast<T>(static_cast<double>(img_shape.height) + allowed_border);
  for (index_t i = 0; i < a.size(0); ++i) {
    const T* p = a.data() + 4 * i;
    const bool inside = allowed_border < 0 || (p[0] >= lo && p[1] >= lo && p[2] < wx && p[3] < hy);
    out[i] = (v[i] != 0 && inside) ? 1 : 0;
  }
  return out;
}

GCNET_FP_EXACT_END

}  // namespace gcnet::ops
