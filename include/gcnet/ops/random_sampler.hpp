#pragma once
// mmdet's RandomSampler / BaseSampler.sample and SamplingResult (detection-reference.md §13.4;
// mmdet models/task_modules/samplers/{base_sampler,random_sampler,sampling_result}.py):
//   add_gt_as_proposals (and G > 0): the GT boxes are prepended to the priors, the assignment
//     gets them first (each assigned to itself, overlap 1, AssignResult::add_gt), gt flags 1
//   positives: priors with gt_inds > 0; more than int(num * pos_fraction) -> a random subset
//   negatives: priors with gt_inds == 0; at most num - |pos| (and, with neg_pos_ub >= 0, at most
//     int(neg_pos_ub * max(|pos|, 1))); a random subset when there are more
//   both index lists sorted ascending and unique (mmdet's .unique()), so GT proposals come first.
// The random subset is torch.randperm(n)[:k] in mmdet (global torch RNG): here k distinct
// positions of [0, n) drawn from a gcnet::Rng (partial Fisher-Yates), or from any SubsetPicker
// a test injects. The exact subsets cannot match PyTorch's; counts and invariants do.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/ops/max_iou_assigner.hpp"

namespace gcnet::ops {

// Returns k distinct positions in [0, n) (any order; the sampler sorts them).
using SubsetPicker = std::function<std::vector<index_t>(index_t n, index_t k)>;

// k distinct positions of [0, n) in random order: the first k of a uniform random permutation.
inline std::vector<index_t> random_subset(index_t n, index_t k, Rng& rng) {
  GCNET_CHECK(n >= 0 && k >= 0 && k <= n, "random_subset: cannot pick ", k, " of ", n);
  std::vector<index_t> a(static_cast<std::size_t>(n));
  std::iota(a.begin(), a.end(), index_t{0});
  for (index_t t = 0; t < k; ++t) {
    const auto r = t + static_cast<index_t>(rng.below(static_cast<std::uint64_t>(n - t)));
    std::swap(a[static_cast<std::size_t>(t)], a[static_cast<std::size_t>(r)]);
  }
  a.resize(static_cast<std::size_t>(k));
  return a;
}

struct RandomSamplerOptions {
  index_t num = 512;          // RPN: 256
  double pos_fraction = 0.25;  // RPN: 0.5
  double neg_pos_ub = -1;      // < 0: no cap on negatives per positive
  bool add_gt_as_proposals = true;  // RPN: false
};

template <Scalar T = float>
struct SamplingResult {
  Tensor<std::int64_t, Cpu> pos_inds, neg_inds;  // [n_pos], [n_neg] into priors, ascending
  Tensor<T, Cpu> priors;                         // [G' + P, 4] the priors the indices refer to (GTs first
                                                 // with add_gt_as_proposals)
  Tensor<std::uint8_t, Cpu> gt_flags;            // [G' + P] 1 for the prepended GT boxes
  AssignResult<T> assign;                        // the assignment over `priors`
  Tensor<T, Cpu> pos_priors, neg_priors;         // [n_pos, 4], [n_neg, 4]
  Tensor<std::uint8_t, Cpu> pos_is_gt;           // [n_pos]
  Tensor<std::int64_t, Cpu> pos_assigned_gt_inds;  // [n_pos] 0-based GT index
  Tensor<std::int64_t, Cpu> pos_gt_labels;       // [n_pos]
  Tensor<T, Cpu> pos_gt_bboxes;                  // [n_pos, 4]
  index_t num_gts = 0;

  // mmdet clamps both counts to >= 1 (they are avg_factor terms).
  index_t num_pos() const { return std::max<index_t>(pos_inds.size(0), 1); }
  index_t num_neg() const { return std::max<index_t>(neg_inds.size(0), 1); }
  index_t avg_factor() const { return num_pos() + num_neg(); }
  // cat(pos_priors, neg_priors) (mmdet SamplingResult.priors / bboxes): the RoIs of the sample.
  Tensor<T, Cpu> sampled_priors() const {
    Tensor<T, Cpu> out(Shape{pos_priors.size(0) + neg_priors.size(0), 4});
    std::copy_n(pos_priors.data(), pos_priors.numel(), out.data());
    std::copy_n(neg_priors.data(), neg_priors.numel(), out.data() + pos_priors.numel());
    return out;
  }
};

template <Scalar T = float>
class RandomSampler {
 public:
  explicit RandomSampler(RandomSamplerOptions o = {}) : o_(o) {
    GCNET_CHECK(o_.num >= 0, describe(), ": num = ", o_.num, ", expected >= 0");
    GCNET_CHECK(o_.pos_fraction >= 0 && o_.pos_fraction <= 1, describe(), ": pos_fraction = ", o_.pos_fraction,
                ", expected a value in [0, 1]");
    GCNET_CHECK(std::isfinite(o_.neg_pos_ub), describe(), ": neg_pos_ub = ", o_.neg_pos_ub, " is not finite");
  }

  std::string describe() const { return "RandomSampler"; }
  const RandomSamplerOptions& options() const { return o_; }

  // Samples with random subsets drawn from `rng`.
  SamplingResult<T> sample(const AssignResult<T>& assign, const Tensor<T, Cpu>& priors, const Tensor<T, Cpu>& gt_boxes,
                           const Tensor<std::int64_t, Cpu>& gt_labels, Rng& rng) const {
    return sample(assign, priors, gt_boxes, gt_labels,
                  SubsetPicker([&rng](index_t n, index_t k) { return random_subset(n, k, rng); }));
  }

  // Samples with random subsets chosen by `pick` (tests inject a deterministic one).
  SamplingResult<T> sample(const AssignResult<T>& assign, const Tensor<T, Cpu>& priors, const Tensor<T, Cpu>& gt_boxes,
                           const Tensor<std::int64_t, Cpu>& gt_labels, const SubsetPicker& pick) const {
    const std::string who = describe() + "::sample";
    check_boxes(priors, who, "priors", BoxCheck::shape);
    check_boxes(gt_boxes, who, "gt boxes", BoxCheck::shape);
    const index_t g = gt_boxes.size(0), p = priors.size(0);
    GCNET_CHECK(gt_labels.rank() == 1 && gt_labels.size(0) == g, who, ": gt labels have shape ",
                gt_labels.shape().str(), ", expected [", g, "]");
    GCNET_CHECK(assign.num_priors() == p && assign.max_overlaps.rank() == 1 && assign.max_overlaps.size(0) == p &&
                    assign.labels.rank() == 1 && assign.labels.size(0) == p,
                who, ": the assignment covers ", assign.num_priors(), " priors, but ", p, " priors were given");
    require_contiguous(assign.gt_inds, who, "assignment gt_inds");
    require_contiguous(assign.labels, who, "assignment labels");
    require_contiguous(assign.max_overlaps, who, "assignment max_overlaps");
    GCNET_CHECK(assign.num_gts == g, who, ": the assignment was made for ", assign.num_gts, " gt boxes, but ", g,
                " were given");
    for (index_t j = 0; j < p; ++j)
      GCNET_CHECK(assign.gt_inds[j] >= -1 && assign.gt_inds[j] <= g, who, ": gt_inds[", j, "] = ", assign.gt_inds[j],
                  ", expected -1 (ignore), 0 (negative) or a gt number in [1, ", g, "]");

    SamplingResult<T> r;
    r.num_gts = g;
    r.assign = assign;
    const bool add_gt = o_.add_gt_as_proposals && g > 0;
    const index_t total = add_gt ? g + p : p;
    r.gt_flags = Tensor<std::uint8_t, Cpu>(Shape{total});
    const Tensor<T, Cpu> pr = contiguous(priors), gb = contiguous(gt_boxes);
    if (add_gt) {
      r.priors = Tensor<T, Cpu>(Shape{total, 4});
      std::copy_n(gb.data(), gb.numel(), r.priors.data());
      std::copy_n(pr.data(), pr.numel(), r.priors.data() + gb.numel());
      std::fill_n(r.gt_flags.data(), g, std::uint8_t{1});
      std::fill_n(r.gt_flags.data() + g, p, std::uint8_t{0});
      // add_gt on fresh tensors (AssignResult::add_gt allocates them): the caller's stays as it was.
      r.assign.add_gt(gt_labels);
    } else {
      r.priors = pr;  // shared, not copied: the sample only reads it
      std::fill_n(r.gt_flags.data(), p, std::uint8_t{0});
    }

    const index_t expected_pos = static_cast<index_t>(static_cast<double>(o_.num) * o_.pos_fraction);
    std::vector<std::int64_t> pos = choose(r.assign, [](std::int64_t v) { return v > 0; }, expected_pos, pick, who);
    index_t expected_neg = o_.num - static_cast<index_t>(pos.size());
    if (o_.neg_pos_ub >= 0) {
      const index_t ub =
          static_cast<index_t>(o_.neg_pos_ub * static_cast<double>(std::max<index_t>(1, static_cast<index_t>(pos.size()))));
      expected_neg = std::min(expected_neg, ub);
    }
    std::vector<std::int64_t> neg = choose(r.assign, [](std::int64_t v) { return v == 0; }, expected_neg, pick, who);

    r.pos_inds = index_tensor(pos);
    r.neg_inds = index_tensor(neg);
    r.pos_priors = select_rows(r.priors, r.pos_inds, who);
    r.neg_priors = select_rows(r.priors, r.neg_inds, who);
    r.pos_is_gt = select_rows(r.gt_flags, r.pos_inds, who);
    r.pos_gt_labels = select_rows(r.assign.labels, r.pos_inds, who);
    r.pos_assigned_gt_inds = Tensor<std::int64_t, Cpu>(Shape{static_cast<index_t>(pos.size())});
    for (std::size_t k = 0; k < pos.size(); ++k) r.pos_assigned_gt_inds[static_cast<index_t>(k)] = r.assign.gt_inds[pos[k]] - 1;
    r.pos_gt_bboxes = g > 0 ? select_rows(gb, r.pos_assigned_gt_inds, who) : Tensor<T, Cpu>(Shape{0, 4});
    return r;
  }

 private:
  // The priors whose gt_inds satisfy `want`, ascending; a random subset of `expected` when there
  // are more (mmdet _sample_pos / _sample_neg + unique()).
  template <class Want>
  static std::vector<std::int64_t> choose(const AssignResult<T>& a, Want want, index_t expected,
                                          const SubsetPicker& pick, const std::string& who) {
    std::vector<std::int64_t> gallery;
    gallery.reserve(static_cast<std::size_t>(a.num_priors()));
    const std::int64_t* inds = a.gt_inds.data();
    for (index_t j = 0; j < a.num_priors(); ++j)
      if (want(inds[j])) gallery.push_back(j);
    const index_t n = static_cast<index_t>(gallery.size());
    if (n <= expected) return gallery;
    const std::vector<index_t> picked = pick(n, expected);
    GCNET_CHECK(static_cast<index_t>(picked.size()) == expected, who, ": the subset picker returned ", picked.size(),
                " positions, expected ", expected, " of ", n);
    std::vector<std::int64_t> out;
    out.reserve(picked.size());
    for (index_t q : picked) {
      GCNET_CHECK(q >= 0 && q < n, who, ": the subset picker returned position ", q, ", outside [0, ", n, ")");
      out.push_back(gallery[static_cast<std::size_t>(q)]);
    }
    std::sort(out.begin(), out.end());
    GCNET_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), who,
                ": the subset picker returned a position twice");
    return out;
  }

  RandomSamplerOptions o_;
};

}  // namespace gcnet::ops
