#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/ops/nms.hpp"
#include "support/small_tensors.hpp"

using namespace gcnet;
using namespace gcnet::ops;
using gcnet::test::rows;
using gcnet::test::values;
using gcnet::test::as_vector;

namespace {

// The textbook greedy NMS (torchvision's CPU kernel, with a stable sort), for random checks.
std::vector<std::int64_t> naive_nms(const Tensor<float>& b, const Tensor<float>& s, double thr,
                                    const std::vector<std::int64_t>* groups = nullptr) {
  const index_t n = s.numel();
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto c) { return s[a] > s[c]; });
  std::vector<char> sup(static_cast<std::size_t>(n), 0);
  std::vector<std::int64_t> keep;
  for (std::size_t p = 0; p < order.size(); ++p) {
    if (sup[p]) continue;
    const auto i = order[p];
    keep.push_back(i);
    const float ia = (b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]);
    for (std::size_t q = p + 1; q < order.size(); ++q) {
      const auto j = order[q];
      if (sup[q] || (groups && (*groups)[static_cast<std::size_t>(i)] != (*groups)[static_cast<std::size_t>(j)]))
        continue;
      const float ja = (b[4 * j + 2] - b[4 * j]) * (b[4 * j + 3] - b[4 * j + 1]);
      const float w = std::max(0.0f, std::min(b[4 * i + 2], b[4 * j + 2]) - std::max(b[4 * i], b[4 * j]));
      const float h = std::max(0.0f, std::min(b[4 * i + 3], b[4 * j + 3]) - std::max(b[4 * i + 1], b[4 * j + 1]));
      const float inter = w * h;
      volatile float uni = ia + ja;  // no fused multiply-add: as PyTorch rounds
      const float ovr = inter / (uni - inter);
      if (static_cast<double>(ovr) > thr) sup[q] = 1;
    }
  }
  return keep;
}

// Clustered random boxes (so that NMS suppresses) and distinct scores.
void random_case(Rng& rng, index_t n, index_t clusters, Tensor<float>& b, Tensor<float>& s) {
  b = Tensor<float>(Shape{n, 4});
  s = Tensor<float>(Shape{n});
  std::vector<double> ox, oy, ow, oh;
  for (index_t k = 0; k < clusters; ++k) {
    ox.push_back(rng.uniform(0, 500));
    oy.push_back(rng.uniform(0, 400));
    ow.push_back(rng.uniform(8, 120));
    oh.push_back(rng.uniform(8, 120));
  }
  std::vector<index_t> perm(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) perm[static_cast<std::size_t>(i)] = i;
  for (index_t i = n - 1; i > 0; --i) std::swap(perm[static_cast<std::size_t>(i)], perm[rng.below(static_cast<std::uint64_t>(i + 1))]);
  for (index_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(clusters)));
    const double cx = ox[k] + rng.uniform(-0.15, 0.15) * ow[k], cy = oy[k] + rng.uniform(-0.15, 0.15) * oh[k];
    const double w = ow[k] * rng.uniform(0.7, 1.3), h = oh[k] * rng.uniform(0.7, 1.3);
    b[4 * i] = static_cast<float>(cx - w / 2);
    b[4 * i + 1] = static_cast<float>(cy - h / 2);
    b[4 * i + 2] = static_cast<float>(cx + w / 2);
    b[4 * i + 3] = static_cast<float>(cy + h / 2);
    s[i] = static_cast<float>((static_cast<double>(perm[static_cast<std::size_t>(i)]) + 0.5) / static_cast<double>(n));
  }
}
}  // namespace

TEST_CASE("nms equals torchvision 0.14's on tie-free random inputs (thresholds 0.1, 0.3, 0.5, 0.7)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/detops_boxes.safetensors");
  for (const char* c : {"nms_a", "nms_b", "nms_c", "nms_d", "nms_thr03"}) {
    const std::string n = c;
    CAPTURE(n);
    const double thr = n == "nms_thr03" ? 0.3 : f.meta_double(n + ".iou_threshold");
    const auto keep = nms(f.tensor<float>(n + ".boxes"), f.tensor<float>(n + ".scores"), thr);
    const auto want = f.tensor<std::int64_t>(n + ".keep");
    CHECK(as_vector(keep) == as_vector(want));
    CHECK(keep.numel() < f.tensor<float>(n + ".scores").numel());  // something was suppressed
  }
}

TEST_CASE("batched_nms equals torchvision's (its coordinate trick at n = 500, its per-class loop at n = 1200)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/detops_boxes.safetensors");
  for (const char* c : {"bnms_a", "bnms_b"}) {
    const std::string n = c;
    CAPTURE(n);
    const auto b = f.tensor<float>(n + ".boxes"), s = f.tensor<float>(n + ".scores");
    const auto g = f.tensor<std::int64_t>(n + ".idxs");
    const auto want = as_vector(f.tensor<std::int64_t>(n + ".keep"));
    const double thr = f.meta_double(n + ".iou_threshold");
    CHECK(as_vector(batched_nms(b, s, g, thr)) == want);
    CHECK(as_vector(batched_nms(b, s, g, thr, {.method = BatchedNmsMethod::coordinate_offset})) == want);
  }
}

TEST_CASE("nms: IoU equal to the threshold is kept (strict >), the float IoU is compared with the double threshold") {
  // IoU exactly 0.5: inter 2, union 3 + 3 - 2.
  const auto b = rows(4, {0, 0, 3, 1, 1, 0, 4, 1});
  const auto s = values({0.9, 0.8});
  CHECK(as_vector(nms(b, s, 0.5)) == std::vector<std::int64_t>{0, 1});
  CHECK(as_vector(nms(b, s, 0.4999)) == std::vector<std::int64_t>{0});
  // IoU 3 / 10 rounds to 0.300000012f > 0.3: suppressed (as torchvision, fixture nms_thr03).
  const auto c = rows(4, {0, 0, 5, 1, 2, 0, 10, 1});
  CHECK(as_vector(nms(c, s, 0.3)) == std::vector<std::int64_t>{0});
  CHECK(as_vector(nms(c, s, 0.30000002)) == std::vector<std::int64_t>{0, 1});
}

TEST_CASE("nms: descending score order, ties by ascending index, empty input, max_num, offset 1, empty boxes") {
  const auto b = rows(4, {0, 0, 10, 10, 100, 100, 110, 110, 200, 0, 210, 10, 300, 0, 310, 10, 1, 1, 10, 10});
  const auto s = values({0.5, 0.9, 0.5, 0.7, 0.95});
  CHECK(as_vector(nms(b, s, 0.5)) == std::vector<std::int64_t>{4, 1, 3, 2});  // 0 under 4; 2 after 3 (0.5 < 0.7)
  const auto tie = values({0.5, 0.5, 0.5, 0.5, 0.1});
  CHECK(as_vector(nms(b, tie, 0.5)) == std::vector<std::int64_t>{0, 1, 2, 3});
  CHECK(as_vector(nms(b, s, 0.5, {.max_num = 2})) == std::vector<std::int64_t>{4, 1});
  CHECK(nms(b, s, 0.5, {.max_num = 0}).numel() == 4);  // mmcv: max_num <= 0 keeps all
  CHECK(nms(Tensor<float>(Shape{0, 4}), Tensor<float>(Shape{0}), 0.5).shape() == Shape{0});
  // offset 1 (mmdet 1.x widths): [0, 0, 1, 1] and [1, 0, 2, 1] overlap by one pixel column: IoU 2 / 6.
  const auto px = rows(4, {0, 0, 1, 1, 1, 0, 2, 1});
  CHECK(nms(px, values({0.9, 0.8}), 0.3).numel() == 2);
  CHECK(nms(px, values({0.9, 0.8}), 0.3, {.offset = 1}).numel() == 1);
  // Two identical empty boxes: IoU 0 / 0 = NaN, not suppressed (as torchvision).
  CHECK(nms(rows(4, {5, 5, 5, 5, 5, 5, 5, 5}), values({0.9, 0.8}), 0.5).numel() == 2);
  // Double.
  Tensor<double> bd(Shape{2, 4}), sd(Shape{2});
  for (int i = 0; i < 8; ++i) bd[i] = b[i];
  sd[0] = 0.1;
  sd[1] = 0.2;
  CHECK(as_vector(nms(bd, sd, 0.5)) == std::vector<std::int64_t>{1, 0});
}

TEST_CASE("nms and batched_nms equal the textbook greedy NMS on larger random inputs (suppressed boxes compacted)") {
  Rng rng(2027);
  for (index_t n : {50, 700, 3000}) {
    for (double thr : {0.0, 0.3, 0.5, 0.7, 0.95}) {
      CAPTURE(n);
      CAPTURE(thr);
      Tensor<float> b, s;
      random_case(rng, n, std::max<index_t>(1, n / 25), b, s);
      CHECK(as_vector(nms(b, s, thr)) == naive_nms(b, s, thr));
      Tensor<std::int64_t> g(Shape{n});
      std::vector<std::int64_t> gv;
      for (index_t i = 0; i < n; ++i) {
        g[i] = static_cast<std::int64_t>(rng.below(9)) - 3;  // negative group ids too
        gv.push_back(g[i]);
      }
      const auto want = naive_nms(b, s, thr, &gv);
      CHECK(as_vector(batched_nms(b, s, g, thr)) == want);
      auto shifted_g = clone(g);
      for (index_t i = 0; i < n; ++i) shifted_g[i] += 3;  // the coordinate trick needs groups >= 0
      CHECK(as_vector(batched_nms(b, s, shifted_g, thr, {.method = BatchedNmsMethod::coordinate_offset})) == want);
      auto m = batched_nms(b, s, g, thr, {.max_num = 17});
      CHECK(as_vector(m) == std::vector<std::int64_t>(want.begin(), want.begin() + std::min<std::size_t>(17, want.size())));
      CHECK(as_vector(batched_nms(b, s, g, thr, {.class_agnostic = true})) == naive_nms(b, s, thr));
    }
  }
}

TEST_CASE("nms: the grid path and the dense path keep the same boxes (small boxes: the grid is taken)") {
  Rng rng(99);
  for (double thr : {0.0, 0.2, 0.5, 0.7}) {
    Tensor<float> b, s;
    random_case(rng, 4000, 400, b, s);
    for (index_t i = 0; i < b.numel(); i += 4) {  // centres spread 4x, sides halved: small boxes, large image
      const float cx = 2 * (b[i] + b[i + 2]), cy = 2 * (b[i + 1] + b[i + 3]);
      const float w = (b[i + 2] - b[i]) / 4, h = (b[i + 3] - b[i + 1]) / 4;
      b[i] = cx - w;
      b[i + 2] = cx + w;
      b[i + 1] = cy - h;
      b[i + 3] = cy + h;
    }
    std::vector<std::int64_t> order(4000);
    for (std::int64_t i = 0; i < 4000; ++i) order[static_cast<std::size_t>(i)] = i;
    std::sort(order.begin(), order.end(), [&](auto x, auto y) { return ops::detail::score_before(s.data(), x, y); });
    std::vector<std::int64_t> dense, grid;
    const float t = ops::detail::nms_threshold<float>(thr);
    ops::detail::GatheredBoxes<float> g1(b.data(), order), g2(b.data(), order);
    auto r1 = g1.range(0, 4000), r2 = g2.range(0, 4000);
    for (index_t j = 0; j < 4000; ++j) {
      r1.area[j] = r2.area[j] = (r1.x2[j] - r1.x1[j]) * (r1.y2[j] - r1.y1[j]);
      r1.dead[j] = r2.dead[j] = 0;
    }
    ops::detail::nms_dense(r1, t, 0.0f, 0, dense);
    CHECK(ops::detail::nms_grid(r2, t, 0, grid));
    CAPTURE(thr);
    CHECK(dense.size() < 4000);
    CHECK(grid == dense);
    CHECK(as_vector(nms(b, s, thr)) == naive_nms(b, s, thr));
  }
  // A negative threshold suppresses every later box (IoU 0 > -0.1): the dense path.
  Tensor<float> b, s;
  random_case(rng, 500, 50, b, s);
  CHECK(nms(b, s, -0.1).numel() == 1);
  CHECK(as_vector(nms(b, s, -0.1)) == naive_nms(b, s, -0.1));
}

TEST_CASE("batched_nms: boxes of different groups never suppress each other") {
  const auto b = rows(4, {0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10, 1, 1, 10, 10});
  const auto s = values({0.9, 0.8, 0.7, 0.6});
  Tensor<std::int64_t> g(Shape{4});
  g[0] = 0;
  g[1] = 1;
  g[2] = 0;
  g[3] = 1;
  CHECK(as_vector(batched_nms(b, s, g, 0.5)) == std::vector<std::int64_t>{0, 1});
  g[1] = 2;
  g[3] = 3;
  CHECK(as_vector(batched_nms(b, s, g, 0.5)) == std::vector<std::int64_t>{0, 1, 3});
  CHECK(as_vector(batched_nms(b, s, g, 0.5, {.class_agnostic = true})) == std::vector<std::int64_t>{0});
}

TEST_CASE("multiclass_nms: strict score threshold, background column ignored, per-class or shared boxes, max_num") {
  // 3 RoIs, 2 classes + background.
  const auto boxes = rows(4, {0, 0, 10, 10, 1, 1, 10, 10, 50, 50, 60, 60});
  const auto scores = rows(3, {0.9, 0.05, 0.99,  // roi 0: class 0; class 1 at the threshold is dropped
                               0.8, 0.7, 0.99,   // roi 1: class 0 suppressed by roi 0, class 1 kept
                               0.3, 0.06, 0.5});
  const auto r = multiclass_nms(boxes, scores, {.score_thr = 0.05, .iou_threshold = 0.5, .max_num = 100});
  // Candidates (roi * 2 + class): 0 (0.9), 2 (0.8), 3 (0.7), 4 (0.3), 5 (0.06).
  CHECK(as_vector(r.inds) == std::vector<std::int64_t>{0, 3, 4, 5});
  CHECK(as_vector(r.labels) == std::vector<std::int64_t>{0, 1, 0, 1});
  REQUIRE(r.scores.numel() == 4);
  CHECK(r.scores[0] == 0.9f);
  CHECK(r.scores[3] == 0.06f);
  CHECK(r.boxes.shape() == Shape{4, 4});
  CHECK(r.boxes.at({1, 0}) == 1.0f);  // roi 1's box
  const auto top2 = multiclass_nms(boxes, scores, {.score_thr = 0.05, .iou_threshold = 0.5, .max_num = 2});
  CHECK(as_vector(top2.inds) == std::vector<std::int64_t>{0, 3});
  // Per-class boxes [N, 4C]: class 1 of roi 1 is far from everything, class 0 overlaps roi 0's.
  const auto pc = rows(8, {0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10, 100, 100, 110, 110, 50, 50, 60, 60, 50, 50, 60, 60});
  const auto rp = multiclass_nms(pc, scores, {.score_thr = 0.05, .iou_threshold = 0.5, .max_num = -1});
  CHECK(as_vector(rp.inds) == std::vector<std::int64_t>{0, 3, 4, 5});
  CHECK(rp.boxes.at({1, 0}) == 100.0f);
  // Score factors multiply after the threshold.
  const auto factors = values({0.5, 1.0, 0.1});
  const auto rf = multiclass_nms(boxes, scores, {.score_thr = 0.05, .iou_threshold = 0.5}, &factors);
  // Class 0: roi 1 (0.8) now outranks roi 0 (0.45) and suppresses it; roi 2 scores 0.03.
  CHECK(as_vector(rf.inds) == std::vector<std::int64_t>{2, 3, 4, 5});
  CHECK(rf.scores[0] == 0.8f);
  CHECK(rf.scores[2] == doctest::Approx(0.03));
  // Nothing above the threshold.
  const auto empty = multiclass_nms(boxes, scores, {.score_thr = 0.95});
  CHECK(empty.boxes.shape() == Shape{0, 4});
  CHECK(empty.labels.numel() == 0);
}

TEST_CASE("nms, batched_nms, multiclass_nms: bad input throws with clear messages") {
  const auto b = rows(4, {0, 0, 1, 1, 0, 0, 2, 2});
  const auto s = values({0.5, 0.4});
  CHECK_THROWS_WITH_AS(nms(b, values({0.5}), 0.5), doctest::Contains("nms: scores have shape [1], expected [2]"), Error);
  CHECK_THROWS_WITH_AS(nms(b, values({0.5, std::nan("")}), 0.5), doctest::Contains("nms: score 1 = nan is not finite"),
                       Error);
  CHECK_THROWS_WITH_AS(nms(rows(4, {0, 0, 1, 1, 2, 0, 1, 1}), s, 0.5),
                       doctest::Contains("nms: boxes row 1 = (2, 0, 1, 1) is inverted"), Error);
  CHECK_THROWS_WITH_AS(nms(b, s, std::numeric_limits<double>::infinity()),
                       doctest::Contains("iou_threshold = inf is not finite"), Error);
  CHECK_THROWS_WITH_AS(nms(b, s, 0.5, {.offset = 2}), doctest::Contains("offset = 2, expected 0 or 1"), Error);
  CHECK_THROWS_WITH_AS(batched_nms(b, s, Tensor<std::int64_t>(Shape{3}), 0.5),
                       doctest::Contains("batched_nms: idxs have shape [3], expected [2]"), Error);
  CHECK_THROWS_WITH_AS(multiclass_nms(b, rows(1, {0.5, 0.4})),
                       doctest::Contains("multiclass_nms: scores must have shape [N, C + 1]"), Error);
  CHECK_THROWS_WITH_AS(multiclass_nms(rows(3, {0, 0, 1, 0, 0, 1}), rows(3, {0.5, 0.4, 0.1, 0.5, 0.4, 0.1})),
                       doctest::Contains("boxes have shape [2, 3], expected [2, 4] or [2, 8]"), Error);
  const auto f = values({1.0});
  CHECK_THROWS_WITH_AS(multiclass_nms(b, rows(3, {0.5, 0.4, 0.1, 0.5, 0.4, 0.1}), {}, &f),
                       doctest::Contains("score factors have shape [1], expected [2]"), Error);
}
