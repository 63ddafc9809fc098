// Suite "detops", NMS cases (issue 17), as benchmarks/peer_detops_nms.py (torchvision.ops):
//   nms_1000           nms of 1000 boxes, IoU threshold 0.7 (an RPN level's nms_pre)
//   nms_5000           nms of 5000 boxes, IoU threshold 0.7
//   batched_nms_80cls  batched_nms of 5000 boxes in 80 classes, IoU threshold 0.5 (the RoI head's
//                      per-class NMS)
// Mode "fwd" only (NMS has no backward). The boxes are generated on both sides by the same 64-bit
// LCG (state = state * 6364136223846793005 + 1442695040888963407, 24-bit draws state >> 40) with
// only exact double arithmetic, then rounded to float32 once, so both sides see identical data:
// n / 16 objects (centre uniform in a 1216 x 800 image, sides 24..256 px) and n boxes, each a
// jittered copy of one object (centre +-w/8, sides x [0.75, 1.25)); scores distinct (random top
// bits, the box index in the low 13 bits); classes uniform in [0, 80). The kept count of the first
// run is reported once on stderr.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "bench_registry.hpp"
#include "gcnet/ops/nms.hpp"

namespace {
using namespace gcnet;

struct Lcg {
  std::uint64_t s;
  std::uint64_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 40;
  }
};

struct NmsData {
  Tensor<float> boxes, scores;
  Tensor<std::int64_t> classes;
};

// peer_detops_nms.py's make_boxes, line for line; every double operation below is exact.
NmsData make_boxes(index_t n, std::uint64_t seed, index_t classes) {
  constexpr double two24 = 16777216.0, two23 = 8388608.0, two25 = 33554432.0, two26 = 67108864.0;
  Lcg g{seed};
  const index_t k = std::max<index_t>(1, n / 16);
  std::vector<double> ox, oy, ow, oh;
  for (index_t i = 0; i < k; ++i) {
    ox.push_back(static_cast<double>(g.next()) * 1216.0 / two24);
    oy.push_back(static_cast<double>(g.next()) * 800.0 / two24);
    ow.push_back(static_cast<double>(24 + g.next() % 233));
    oh.push_back(static_cast<double>(24 + g.next() % 233));
  }
  NmsData d;
  d.boxes = Tensor<float>(Shape{n, 4});
  d.scores = Tensor<float>(Shape{n});
  d.classes = Tensor<std::int64_t>(Shape{n});
  for (index_t i = 0; i < n; ++i) {
    const auto o = static_cast<std::size_t>(g.next() % static_cast<std::uint64_t>(k));
    const double w = ow[o], h = oh[o];
    const double jx = (static_cast<double>(g.next()) - two23) * w / two26;
    const double jy = (static_cast<double>(g.next()) - two23) * h / two26;
    const double sw = w * 3.0 / 4.0 + w * static_cast<double>(g.next()) / two25;
    const double sh = h * 3.0 / 4.0 + h * static_cast<double>(g.next()) / two25;
    const double cx = ox[o] + jx, cy = oy[o] + jy;
    d.boxes[4 * i] = static_cast<float>(cx - sw / 2);
    d.boxes[4 * i + 1] = static_cast<float>(cy - sh / 2);
    d.boxes[4 * i + 2] = static_cast<float>(cx + sw / 2);
    d.boxes[4 * i + 3] = static_cast<float>(cy + sh / 2);
    d.scores[i] = static_cast<float>(static_cast<double>((g.next() >> 13) * 8192 + static_cast<std::uint64_t>(i)) / two24);
    const std::uint64_t c = g.next();
    d.classes[i] = classes > 0 ? static_cast<std::int64_t>(c % static_cast<std::uint64_t>(classes)) : 0;
  }
  return d;
}

bench::Actions prepare(index_t n, double thr, index_t classes, const std::string& name) {
  auto d = std::make_shared<NmsData>(make_boxes(n, 1, classes));
  auto reported = std::make_shared<bool>(false);
  return {{"fwd", [d, thr, classes, name, reported] {
             const auto keep = classes > 0 ? ops::batched_nms(d->boxes, d->scores, d->classes, thr)
                                           : ops::nms(d->boxes, d->scores, thr);
             if (!*reported) {
               std::cerr << "detops " << name << ": kept " << keep.numel() << " of " << d->scores.numel() << "\n";
               *reported = true;
             }
           }}};
}

const bench::Register r1{"detops", "nms_1000", [] { return prepare(1000, 0.7, 0, "nms_1000"); }};
const bench::Register r2{"detops", "nms_5000", [] { return prepare(5000, 0.7, 0, "nms_5000"); }};
const bench::Register r3{"detops", "batched_nms_80cls", [] { return prepare(5000, 0.5, 80, "batched_nms_80cls"); }};
}  // namespace
