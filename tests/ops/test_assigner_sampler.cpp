#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "gcnet/ops/random_sampler.hpp"
#include "support/small_tensors.hpp"

using namespace gcnet;
using namespace gcnet::ops;
using gcnet::test::rows;
using gcnet::test::values;
using gcnet::test::as_vector;

namespace {

// Overlaps of 2 GTs with 7 priors, built for the rules of §13.3 (pos 0.5, neg 0.3, min_pos 0.3):
//   p0  0.8 / 0.1    positive, gt 0
//   p1  0.2 / 0.45   in [0.3, 0.5): ignored, unless gt 1's low-quality match takes it (its best, tied with p4)
//   p2  0.4 / 0.1    ignored
//   p3  0.1 / 0.25   negative
//   p4  0.35 / 0.45  ignored; gt 1's best too (tie with p1)
//   p5  0.55 / 0.2   positive, gt 0
//   p6  0.0 / 0.0    negative (max 0, tie: gt 0)
Tensor<float> hand_overlaps() {
  return rows(7, {0.8, 0.2, 0.4, 0.1, 0.35, 0.55, 0.0,  //
                  0.1, 0.45, 0.1, 0.25, 0.45, 0.2, 0.0});
}

MaxIoUAssignerOptions rpn_like() {
  MaxIoUAssignerOptions o;
  o.pos_iou_thr = 0.5;
  o.neg_iou_thr = 0.3;
  o.min_pos_iou = 0.3;
  return o;
}
}  // namespace

TEST_CASE("MaxIoUAssigner: thresholds, first-GT ties, low-quality matches of all tied priors") {
  const auto gl = values<std::int64_t>({3, 7});
  const auto r = MaxIoUAssigner<float>(rpn_like()).assign_wrt_overlaps(hand_overlaps(), gl);
  CHECK(r.num_gts == 2);
  CHECK(as_vector(r.gt_inds) == std::vector<std::int64_t>{1, 2, -1, 0, 2, 1, 0});
  CHECK(as_vector(r.labels) == std::vector<std::int64_t>{3, 7, -1, -1, 7, 3, -1});
  const float want_max[7] = {0.8f, 0.45f, 0.4f, 0.25f, 0.45f, 0.55f, 0.0f};
  for (int j = 0; j < 7; ++j) CHECK(r.max_overlaps[j] == want_max[j]);
}

TEST_CASE("MaxIoUAssigner: gt_max_assign_all = false takes only the first tied prior, or no low-quality matching") {
  auto o = rpn_like();
  o.gt_max_assign_all = false;
  const auto gl = values<std::int64_t>({3, 7});
  const auto first = MaxIoUAssigner<float>(o).assign_wrt_overlaps(hand_overlaps(), gl);
  CHECK(as_vector(first.gt_inds) == std::vector<std::int64_t>{1, 2, -1, 0, -1, 1, 0});
  o.match_low_quality = false;
  const auto none = MaxIoUAssigner<float>(o).assign_wrt_overlaps(hand_overlaps(), gl);
  CHECK(as_vector(none.gt_inds) == std::vector<std::int64_t>{1, -1, -1, 0, -1, 1, 0});
  // min_pos_iou above gt 1's best IoU: no low-quality match for it.
  auto hi = rpn_like();
  hi.min_pos_iou = 0.5;
  const auto r = MaxIoUAssigner<float>(hi).assign_wrt_overlaps(hand_overlaps(), gl);
  CHECK(as_vector(r.gt_inds) == std::vector<std::int64_t>{1, -1, -1, 0, -1, 1, 0});
}

TEST_CASE("MaxIoUAssigner: ties between GTs go to the first, low-quality matches override, later GTs last") {
  const auto tie = rows(1, {0.6, 0.6});
  auto o = rpn_like();
  o.match_low_quality = false;
  CHECK(as_vector(MaxIoUAssigner<float>(o).assign_wrt_overlaps(tie, values<std::int64_t>({0, 1})).gt_inds) == std::vector<std::int64_t>{1});
  // With low-quality matching both GTs claim the prior (their best); gt 1 comes last and keeps it.
  CHECK(as_vector(MaxIoUAssigner<float>(rpn_like()).assign_wrt_overlaps(tie, values<std::int64_t>({0, 1})).gt_inds) ==
        std::vector<std::int64_t>{2});
  // p0's best GT is gt 0 (0.9), but p0 is gt 1's best prior (0.6): low-quality matching gives it to gt 1.
  const auto ov = rows(3, {0.9, 0.7, 0.1,  //
                           0.6, 0.2, 0.1});
  const auto r = MaxIoUAssigner<float>({.pos_iou_thr = 0.5, .neg_iou_thr = 0.5, .min_pos_iou = 0.5})
                     .assign_wrt_overlaps(ov, values<std::int64_t>({0, 1}));
  CHECK(as_vector(r.gt_inds) == std::vector<std::int64_t>{2, 1, 0});
  CHECK(r.max_overlaps[0] == 0.9f);  // max_overlaps stays the prior's own best
}

TEST_CASE("MaxIoUAssigner: a negative IoU range lo..hi, mmdet's min_pos_iou = 0 quirk") {
  MaxIoUAssignerOptions o;
  o.pos_iou_thr = 0.5;
  o.neg_iou_thr = NegIoURange{0.1, 0.3};
  o.match_low_quality = false;
  const auto ov = rows(4, {0.05, 0.1, 0.29, 0.3});
  const auto r = MaxIoUAssigner<float>(o).assign_wrt_overlaps(ov, values<std::int64_t>({0}));
  CHECK(as_vector(r.gt_inds) == std::vector<std::int64_t>{-1, 0, 0, -1});
  // Defaults (min_pos_iou 0, gt_max_assign_all, low quality on): a GT overlapping nothing has best
  // IoU 0 and takes every prior it has IoU 0 with, even gt 0's positive p0.
  const auto zero = rows(3, {0.7, 0.0, 0.0,  //
                             0.0, 0.0, 0.0});
  const auto q = MaxIoUAssigner<float>().assign_wrt_overlaps(zero, values<std::int64_t>({4, 5}));
  CHECK(as_vector(q.gt_inds) == std::vector<std::int64_t>{2, 2, 2});
  CHECK(as_vector(q.labels) == std::vector<std::int64_t>{5, 5, 5});
  auto strict = MaxIoUAssignerOptions{};
  strict.min_pos_iou = 0.1;
  CHECK(as_vector(MaxIoUAssigner<float>(strict).assign_wrt_overlaps(zero, values<std::int64_t>({4, 5})).gt_inds) ==
        std::vector<std::int64_t>{1, 0, 0});
}

TEST_CASE("MaxIoUAssigner: no GT (all negative), no priors (empty), from boxes") {
  const MaxIoUAssigner<float> a(rpn_like());
  const auto priors = rows(4, {0, 0, 10, 10, 5, 5, 15, 15, 100, 100, 110, 110});
  const auto no_gt = a.assign(Tensor<float>(Shape{0, 4}), values<std::int64_t>({}), priors);
  CHECK(no_gt.num_gts == 0);
  CHECK(as_vector(no_gt.gt_inds) == std::vector<std::int64_t>{0, 0, 0});
  CHECK(as_vector(no_gt.labels) == std::vector<std::int64_t>{-1, -1, -1});
  for (int j = 0; j < 3; ++j) CHECK(no_gt.max_overlaps[j] == 0.0f);
  const auto no_priors = a.assign(rows(4, {0, 0, 10, 10}), values<std::int64_t>({1}), Tensor<float>(Shape{0, 4}));
  CHECK(no_priors.gt_inds.shape() == Shape{0});
  CHECK(no_priors.max_overlaps.shape() == Shape{0});
  const auto both = a.assign(Tensor<float>(Shape{0, 4}), values<std::int64_t>({}), Tensor<float>(Shape{0, 4}));
  CHECK(both.num_priors() == 0);
  // From boxes: the GT equals prior 0 (IoU 1), overlaps prior 1 by 25 / 175, misses prior 2.
  const auto r = a.assign(rows(4, {0, 0, 10, 10}), values<std::int64_t>({6}), priors);
  CHECK(as_vector(r.gt_inds) == std::vector<std::int64_t>{1, 0, 0});
  CHECK(r.max_overlaps[1] == doctest::Approx(25.0 / 175));
  CHECK(as_vector(r.labels) == std::vector<std::int64_t>{6, -1, -1});
}

TEST_CASE("MaxIoUAssigner: ignore boxes (crowd) with ignore_iof_thr, over the prior's or the ignore box's area") {
  auto o = rpn_like();
  o.ignore_iof_thr = 0.5;
  const auto gt = rows(4, {0, 0, 10, 10});
  const auto priors = rows(4, {0, 0, 10, 10,      // the GT itself
                               50, 50, 60, 60,    // inside the crowd box: IoF 1
                               45, 50, 55, 60,    // half inside: IoF 0.5, not > 0.5
                               30, 30, 100, 100}); // covers the crowd box: IoF over its area 0.2, over the crowd's 1
  const auto crowd = rows(4, {50, 50, 60, 60});
  const MaxIoUAssigner<float> a(o);
  const auto r = a.assign(gt, values<std::int64_t>({2}), priors, &crowd);
  CHECK(as_vector(r.gt_inds) == std::vector<std::int64_t>{1, -1, 0, 0});
  CHECK(r.max_overlaps[1] == -1.0f);
  o.ignore_wrt_candidates = false;
  const auto w = MaxIoUAssigner<float>(o).assign(gt, values<std::int64_t>({2}), priors, &crowd);
  CHECK(as_vector(w.gt_inds) == std::vector<std::int64_t>{1, -1, 0, -1});
  // ignore_iof_thr <= 0 (mmdet's default -1) leaves the crowd unused.
  const auto off = MaxIoUAssigner<float>(rpn_like()).assign(gt, values<std::int64_t>({2}), priors, &crowd);
  CHECK(as_vector(off.gt_inds) == std::vector<std::int64_t>{1, 0, 0, 0});
}

namespace {
// mmdet's assign_wrt_overlaps transcribed loop by loop, for random checks.
std::vector<std::int64_t> naive_assign(const Tensor<float>& ov, const MaxIoUAssignerOptions& o) {
  const index_t g = ov.size(0), p = ov.size(1);
  std::vector<std::int64_t> inds(static_cast<std::size_t>(p), -1);
  std::vector<float> mx(static_cast<std::size_t>(p));
  std::vector<std::int64_t> am(static_cast<std::size_t>(p), 0);
  for (index_t j = 0; j < p; ++j) {
    mx[j] = ov[j];
    for (index_t i = 1; i < g; ++i)
      if (ov[i * p + j] > mx[j]) {
        mx[j] = ov[i * p + j];
        am[j] = i;
      }
  }
  const float neg = static_cast<float>(std::get<double>(o.neg_iou_thr)), pos = static_cast<float>(o.pos_iou_thr);
  for (index_t j = 0; j < p; ++j) {
    if (mx[j] >= 0 && mx[j] < neg) inds[j] = 0;
    if (mx[j] >= pos) inds[j] = am[j] + 1;
  }
  if (o.match_low_quality)
    for (index_t i = 0; i < g; ++i) {
      index_t best = 0;
      for (index_t j = 1; j < p; ++j)
        if (ov[i * p + j] > ov[i * p + best]) best = j;
      if (!(ov[i * p + best] >= static_cast<float>(o.min_pos_iou))) continue;
      if (o.gt_max_assign_all) {
        for (index_t j = 0; j < p; ++j)
          if (ov[i * p + j] == ov[i * p + best]) inds[j] = i + 1;
      } else {
        inds[best] = i + 1;
      }
    }
  return inds;
}
}  // namespace

TEST_CASE("MaxIoUAssigner: equals mmdet's loops on large random overlaps with many ties (blocked, threaded)") {
  Rng rng(31);
  const index_t g = 9, p = 20011;
  Tensor<float> ov(Shape{g, p});
  for (index_t i = 0; i < ov.numel(); ++i) ov[i] = static_cast<float>(rng.below(12)) / 20.0f;  // 0 .. 0.55
  for (index_t j = 0; j < p; j += 97) ov[3 * p + j] = -1.0f;  // some ignored entries
  for (bool low : {true, false})
    for (bool all : {true, false})
      for (double min_pos : {0.0, 0.3, 0.6}) {
        MaxIoUAssignerOptions o;
        o.pos_iou_thr = 0.5;
        o.neg_iou_thr = 0.25;
        o.min_pos_iou = min_pos;
        o.match_low_quality = low;
        o.gt_max_assign_all = all;
        CAPTURE(low);
        CAPTURE(all);
        CAPTURE(min_pos);
        Tensor<std::int64_t> labels(Shape{g});
        for (index_t i = 0; i < g; ++i) labels[i] = 10 + i;
        const auto r = MaxIoUAssigner<float>(o).assign_wrt_overlaps(ov, labels);
        CHECK(as_vector(r.gt_inds) == naive_assign(ov, o));
      }
}

TEST_CASE("MaxIoUAssigner: bad input throws with clear messages") {
  const MaxIoUAssigner<float> a;
  CHECK_THROWS_WITH_AS(a.assign_wrt_overlaps(hand_overlaps(), values<std::int64_t>({1})),
                       doctest::Contains("gt labels have shape [1], expected [2]"), Error);
  auto nan = hand_overlaps();
  nan[9] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(a.assign_wrt_overlaps(nan, values<std::int64_t>({1, 2})), doctest::Contains("overlap (1, 2) is NaN"), Error);
  CHECK_THROWS_WITH_AS(a.assign(rows(4, {0, 0, 1, 1}), values<std::int64_t>({0}), rows(4, {3, 0, 1, 1})),
                       doctest::Contains("MaxIoUAssigner::assign: priors row 0 = (3, 0, 1, 1) is inverted"), Error);
  MaxIoUAssignerOptions o;
  o.neg_iou_thr = NegIoURange{0.4, 0.2};
  CHECK_THROWS_WITH_AS(MaxIoUAssigner<float>{o}, doctest::Contains("neg_iou_thr range [0.4, 0.2)"), Error);
}

namespace {
// gt_inds over 8 priors for 2 GTs: positives 0, 6 (gt 1) and 4 (gt 2), negatives 1, 2, 5, 7, ignored 3.
AssignResult<float> hand_assignment() {
  AssignResult<float> r;
  r.num_gts = 2;
  r.gt_inds = values<std::int64_t>({1, 0, 0, -1, 2, 0, 1, 0});
  r.labels = values<std::int64_t>({5, -1, -1, -1, 9, -1, 5, -1});
  r.max_overlaps = Tensor<float>(Shape{8});
  for (index_t j = 0; j < 8; ++j) r.max_overlaps[j] = 0.1f * static_cast<float>(j);
  return r;
}
Tensor<float> hand_priors() {
  Tensor<float> p(Shape{8, 4});
  for (index_t j = 0; j < 8; ++j) {
    p[4 * j] = static_cast<float>(10 * j);
    p[4 * j + 1] = 0;
    p[4 * j + 2] = static_cast<float>(10 * j + 5);
    p[4 * j + 3] = 5;
  }
  return p;
}
}  // namespace

TEST_CASE("RandomSampler: GT boxes prepended as proposals, injected subsets, sorted unique indices") {
  const auto gt = rows(4, {1, 1, 4, 4, 20, 0, 30, 9});
  const auto labels = values<std::int64_t>({5, 9});
  const auto assign = hand_assignment();
  // num 6, pos_fraction 0.5: 3 positives expected; with the GTs the positives are 0, 1, 2, 6, 8.
  const RandomSampler<float> s({.num = 6, .pos_fraction = 0.5, .neg_pos_ub = -1, .add_gt_as_proposals = true});
  std::vector<std::pair<index_t, index_t>> asked;
  auto pick = [&](index_t n, index_t k) {
    asked.emplace_back(n, k);
    return asked.size() == 1 ? std::vector<index_t>{4, 0, 2} : std::vector<index_t>{3, 1, 0};
  };
  const auto r = s.sample(assign, hand_priors(), gt, labels, pick);
  REQUIRE(asked.size() == 2);
  CHECK(asked[0] == std::pair<index_t, index_t>{5, 3});  // 5 positives, 3 wanted
  CHECK(asked[1] == std::pair<index_t, index_t>{4, 3});  // negatives 3, 4, 7, 9; 6 - 3 wanted
  CHECK(as_vector(r.pos_inds) == std::vector<std::int64_t>{0, 2, 8});
  CHECK(as_vector(r.neg_inds) == std::vector<std::int64_t>{3, 4, 9});
  CHECK(r.priors.shape() == Shape{10, 4});
  CHECK(r.priors[4] == 20.0f);  // gt 1 is prior 1
  CHECK(as_vector(r.assign.gt_inds) == std::vector<std::int64_t>{1, 2, 1, 0, 0, -1, 2, 0, 1, 0});
  CHECK(r.assign.max_overlaps[0] == 1.0f);
  CHECK(r.assign.max_overlaps[2] == 0.0f);
  CHECK(as_vector(r.assign.labels) == std::vector<std::int64_t>{5, 9, 5, -1, -1, -1, 9, -1, 5, -1});
  CHECK(as_vector(assign.gt_inds) == std::vector<std::int64_t>{1, 0, 0, -1, 2, 0, 1, 0});  // caller's untouched
  REQUIRE(r.pos_is_gt.numel() == 3);
  CHECK(r.pos_is_gt[0] == 1);
  CHECK(r.pos_is_gt[1] == 0);
  CHECK(as_vector(r.pos_assigned_gt_inds) == std::vector<std::int64_t>{0, 0, 0});
  CHECK(as_vector(r.pos_gt_labels) == std::vector<std::int64_t>{5, 5, 5});
  CHECK(r.pos_gt_bboxes.shape() == Shape{3, 4});
  CHECK(r.pos_gt_bboxes[2] == 4.0f);
  CHECK(r.pos_priors.at({1, 0}) == 0.0f);   // prior 2 = original prior 0
  CHECK(r.pos_priors.at({2, 0}) == 60.0f);  // prior 8 = original prior 6
  CHECK(r.neg_priors.at({2, 0}) == 70.0f);  // prior 9 = original prior 7
  CHECK(r.num_pos() == 3);
  CHECK(r.avg_factor() == 6);
  const auto all = r.sampled_priors();
  CHECK(all.shape() == Shape{6, 4});
  CHECK(all.at({3, 0}) == 10.0f);
}

TEST_CASE("RandomSampler: fewer candidates than wanted takes all, neg_pos_ub caps negatives, no GT") {
  const auto assign = hand_assignment();
  const auto gt = rows(4, {1, 1, 4, 4, 20, 0, 30, 9});
  auto never = [](index_t, index_t) -> std::vector<index_t> { FAIL("no subset needed"); return {}; };
  const RandomSampler<float> rpn({.num = 256, .pos_fraction = 0.5, .neg_pos_ub = -1, .add_gt_as_proposals = false});
  const auto r = rpn.sample(assign, hand_priors(), gt, values<std::int64_t>({5, 9}), never);
  CHECK(as_vector(r.pos_inds) == std::vector<std::int64_t>{0, 4, 6});
  CHECK(as_vector(r.neg_inds) == std::vector<std::int64_t>{1, 2, 5, 7});
  CHECK(as_vector(r.pos_assigned_gt_inds) == std::vector<std::int64_t>{0, 1, 0});
  CHECK(r.priors.shape() == Shape{8, 4});
  // neg_pos_ub 1: at most int(1 * 3) = 3 negatives.
  const RandomSampler<float> capped({.num = 256, .pos_fraction = 0.5, .neg_pos_ub = 1, .add_gt_as_proposals = false});
  Rng rng(4);
  const auto c = capped.sample(assign, hand_priors(), gt, values<std::int64_t>({5, 9}), rng);
  CHECK(c.neg_inds.numel() == 3);
  // No GT: nothing prepended, no positives, every prior negative.
  AssignResult<float> none = MaxIoUAssigner<float>().assign(Tensor<float>(Shape{0, 4}), values<std::int64_t>({}), hand_priors());
  const auto n = RandomSampler<float>().sample(none, hand_priors(), Tensor<float>(Shape{0, 4}), values<std::int64_t>({}), rng);
  CHECK(n.pos_inds.numel() == 0);
  CHECK(n.neg_inds.numel() == 8);
  CHECK(n.pos_gt_bboxes.shape() == Shape{0, 4});
  CHECK(n.num_pos() == 1);  // clamped for avg_factor
}

TEST_CASE("RandomSampler with the library's RNG: counts, sorted unique subsets, reproducible per seed") {
  // 300 positives and 2000 negatives (no GT proposals): 128 and 384 drawn.
  AssignResult<float> a;
  a.num_gts = 1;
  a.gt_inds = Tensor<std::int64_t>(Shape{2300});
  a.labels = Tensor<std::int64_t>(Shape{2300});
  a.max_overlaps = Tensor<float>(Shape{2300});
  for (index_t j = 0; j < 2300; ++j) {
    a.gt_inds[j] = j % 23 < 3 ? 1 : 0;
    a.labels[j] = a.gt_inds[j] > 0 ? 0 : -1;
    a.max_overlaps[j] = 0;
  }
  Tensor<float> priors(Shape{2300, 4});
  for (index_t i = 0; i < priors.numel(); ++i) priors[i] = static_cast<float>(i % 4 < 2 ? 0 : 1);
  const RandomSampler<float> s({.num = 512, .pos_fraction = 0.25, .neg_pos_ub = -1, .add_gt_as_proposals = false});
  const auto gt = rows(4, {0, 0, 1, 1});
  Rng r1(7), r2(7), r3(8);
  const auto x = s.sample(a, priors, gt, values<std::int64_t>({0}), r1);
  const auto y = s.sample(a, priors, gt, values<std::int64_t>({0}), r2);
  const auto z = s.sample(a, priors, gt, values<std::int64_t>({0}), r3);
  CHECK(x.pos_inds.numel() == 128);
  CHECK(x.neg_inds.numel() == 512 - 128);
  for (const auto* t : {&x.pos_inds, &x.neg_inds}) {
    const auto v = as_vector(*t);
    CHECK(std::is_sorted(v.begin(), v.end()));
    CHECK(std::adjacent_find(v.begin(), v.end()) == v.end());
  }
  for (index_t k = 0; k < x.pos_inds.numel(); ++k) CHECK(a.gt_inds[x.pos_inds[k]] == 1);
  for (index_t k = 0; k < x.neg_inds.numel(); ++k) CHECK(a.gt_inds[x.neg_inds[k]] == 0);
  CHECK(as_vector(x.pos_inds) == as_vector(y.pos_inds));
  CHECK(as_vector(x.neg_inds) == as_vector(y.neg_inds));
  CHECK(as_vector(x.pos_inds) != as_vector(z.pos_inds));
}

TEST_CASE("random_subset: k distinct positions, every position reachable") {
  Rng rng(11);
  std::vector<int> seen(20, 0);
  for (int t = 0; t < 200; ++t) {
    const auto v = random_subset(20, 5, rng);
    REQUIRE(v.size() == 5);
    std::set<index_t> u(v.begin(), v.end());
    CHECK(u.size() == 5);
    for (index_t e : v) {
      REQUIRE(e >= 0);
      REQUIRE(e < 20);
      ++seen[static_cast<std::size_t>(e)];
    }
  }
  // 1000 draws over 20 positions: each about 50 times.
  for (int c : seen) {
    CHECK(c > 20);
    CHECK(c < 90);
  }
  CHECK(random_subset(5, 0, rng).empty());
  CHECK(random_subset(3, 3, rng).size() == 3);
  CHECK_THROWS_WITH_AS(random_subset(3, 4, rng), doctest::Contains("random_subset: cannot pick 4 of 3"), Error);
}

TEST_CASE("RandomSampler: bad input throws with clear messages") {
  CHECK_THROWS_WITH_AS(RandomSampler<float>({.num = 8, .pos_fraction = 1.5}), doctest::Contains("pos_fraction = 1.5"),
                       Error);
  const RandomSampler<float> s({.num = 4, .pos_fraction = 0.25, .neg_pos_ub = -1, .add_gt_as_proposals = false});
  const auto gt = rows(4, {1, 1, 4, 4, 20, 0, 30, 9});
  const auto assign = hand_assignment();
  Rng rng(1);
  CHECK_THROWS_WITH_AS(s.sample(assign, rows(4, {0, 0, 1, 1}), gt, values<std::int64_t>({5, 9}), rng),
                       doctest::Contains("the assignment covers 8 priors, but 1 priors were given"), Error);
  CHECK_THROWS_WITH_AS(s.sample(assign, hand_priors(), rows(4, {0, 0, 1, 1}), values<std::int64_t>({5}), rng),
                       doctest::Contains("the assignment was made for 2 gt boxes, but 1 were given"), Error);
  auto bad = hand_assignment();
  bad.gt_inds[2] = 3;
  CHECK_THROWS_WITH_AS(s.sample(bad, hand_priors(), gt, values<std::int64_t>({5, 9}), rng),
                       doctest::Contains("gt_inds[2] = 3, expected -1 (ignore), 0 (negative) or a gt number in [1, 2]"),
                       Error);
  // Pickers that break their contract: 1 positive wanted of 3, 3 negatives of 4.
  auto twice = [](index_t, index_t k) { return std::vector<index_t>(static_cast<std::size_t>(k), 0); };
  auto outside = [](index_t n, index_t k) { return std::vector<index_t>(static_cast<std::size_t>(k), n); };
  auto short_ = [](index_t, index_t) { return std::vector<index_t>{}; };
  const RandomSampler<float> t({.num = 4, .pos_fraction = 0.5, .neg_pos_ub = -1, .add_gt_as_proposals = false});
  CHECK_THROWS_WITH_AS(t.sample(assign, hand_priors(), gt, values<std::int64_t>({5, 9}), twice),
                       doctest::Contains("returned a position twice"), Error);
  CHECK_THROWS_WITH_AS(s.sample(assign, hand_priors(), gt, values<std::int64_t>({5, 9}), outside),
                       doctest::Contains("returned position 3, outside [0, 3)"), Error);
  CHECK_THROWS_WITH_AS(s.sample(assign, hand_priors(), gt, values<std::int64_t>({5, 9}), short_),
                       doctest::Contains("returned 0 positions, expected 1 of 3"), Error);
}
