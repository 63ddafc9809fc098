// Suite "detops": detection operations against torchvision 0.14 (peer: peer_detops.py).
//   roi_align_7x7_1000  RoIAlign (mmdet's setting: aligned, sampling_ratio 0, avg) of 1000 RoIs to
//                       7x7 on a 1x256x200x304 map (an 800x1216 image at stride 4, P2 of an FPN):
//                       fwd = roi_align; fwd+bwd = roi_align, then the input gradient of a fixed
//                       output gradient (from zero, as PyTorch allocates it).
// RoIs: sides log-uniform in [16, 128] px (what FPN gives P2: s < 112), centres uniform over the
// image. Features and the output gradient come from an integer hash, RoIs from a 64-bit LCG, both
// written identically in peer_detops.py, so both sides see the same data without reading files.
#include <cmath>
#include <cstdint>
#include <memory>

#include "bench_registry.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/ops/roi_align.hpp"

namespace {
using namespace gcnet;

constexpr index_t kChannels = 256, kHeight = 200, kWidth = 304, kRois = 1000;
constexpr double kImageW = 1216, kImageH = 800, kMinSide = 16, kMaxSide = 128;

// Keep in sync with peer_detops.py: lcg_uniform and hash_values.
struct Lcg {
  std::uint64_t s;
  double next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) * 0x1p-53;
  }
};

Tensor<float> hash_values(const Shape& shape, std::uint64_t offset) {
  Tensor<float> t(shape);
  for (index_t i = 0; i < t.numel(); ++i) {
    std::uint64_t h = ((static_cast<std::uint64_t>(i) + offset) * 2654435761ull) & 0xffffffffull;
    h ^= h >> 15;
    h = (h * 0x45d9f3bull) & 0xffffffffull;
    h ^= h >> 13;
    t[i] = static_cast<float>(static_cast<double>(h) * 0x1p-31 - 1.0);
  }
  return t;
}

RoIs<float> bench_rois() {
  Lcg g{2024};
  RoIs<float> r;
  r.boxes = Tensor<float>(Shape{kRois, 4});
  r.image = Tensor<std::int64_t>(Shape{kRois});
  const double ratio = kMaxSide / kMinSide;
  for (index_t k = 0; k < kRois; ++k) {
    const double w = kMinSide * std::pow(ratio, g.next()), h = kMinSide * std::pow(ratio, g.next());
    const double cx = g.next() * kImageW, cy = g.next() * kImageH;
    r.boxes[k * 4 + 0] = static_cast<float>(cx - w / 2);
    r.boxes[k * 4 + 1] = static_cast<float>(cy - h / 2);
    r.boxes[k * 4 + 2] = static_cast<float>(cx + w / 2);
    r.boxes[k * 4 + 3] = static_cast<float>(cy + h / 2);
    r.image[k] = 0;
  }
  return r;
}

bench::Actions prepare_roi_align() {
  struct State {
    Tensor<float> x, y, dy, dx;
    RoIs<float> rois;
    ops::RoIAlignOptions o{.out_h = 7, .out_w = 7, .spatial_scale = 0.25, .sampling_ratio = 0, .aligned = true};
  };
  auto s = std::make_shared<State>();
  s->x = hash_values(Shape{1, kChannels, kHeight, kWidth}, 0);
  s->rois = bench_rois();
  s->y.resize(Shape{kRois, kChannels, 7, 7});
  s->dy = hash_values(s->y.shape(), 1u << 30);
  s->dx.resize(s->x.shape());
  return {
      {"fwd", [s] { ops::roi_align_forward(s->x, s->rois, s->o, s->y); }},
      {"fwd+bwd", [s] {
         ops::roi_align_forward(s->x, s->rois, s->o, s->y);
         fill(s->dx, 0.0f);
         ops::roi_align_backward(s->rois, s->o, s->dy, s->dx);
       }},
  };
}

const bench::Register roi_align_case{"detops", "roi_align_7x7_1000", prepare_roi_align};
}  // namespace
