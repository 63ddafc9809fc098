#pragma once
// mmdet's MaxIoUAssigner (detection-reference.md §13.3; mmdet models/task_modules/assigners/
// max_iou_assigner.py) and AssignResult. Each prior (anchor or proposal) gets
//   gt_inds       -1 ignored, 0 negative, i + 1 assigned to GT i
//   max_overlaps  its largest IoU with any GT (-1 where ignore boxes masked it; 0 without GTs)
//   labels        the assigned GT's label, -1 otherwise
// from overlaps O = IoU(gt [G, 4], priors [P, 4]) (G x P):
//   ignore boxes (ignore_iof_thr > 0): priors whose IoF with any ignore box exceeds the threshold
//     get O[:, p] = -1 (IoF over the prior's area, or over the ignore box's with
//     ignore_wrt_candidates = false)
//   negatives: max_ov in [0, neg_iou_thr), or in [lo, hi) for a range
//   positives: max_ov >= pos_iou_thr -> argmax GT (the first on ties)
//   low-quality matches (match_low_quality): for each GT i in ascending order (later GTs overwrite)
//     whose best IoU is >= min_pos_iou, the prior(s) at that IoU are assigned to it: all priors tied
//     at the maximum with gt_max_assign_all, else the first.
// Quirk kept from mmdet: with min_pos_iou = 0 (the default) a GT that overlaps no prior has best
// IoU 0 and, with gt_max_assign_all, takes every prior whose IoU with it is 0.
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <variant>

#include "gcnet/core/parallel.hpp"
#include "gcnet/ops/boxes.hpp"

namespace gcnet::ops {

template <Scalar T = float>
struct AssignResult {
  index_t num_gts = 0;
  Tensor<std::int64_t, Cpu> gt_inds;  // [P]
  Tensor<T, Cpu> max_overlaps;        // [P]
  Tensor<std::int64_t, Cpu> labels;   // [P]

  index_t num_priors() const { return gt_inds.defined() && gt_inds.rank() == 1 ? gt_inds.size(0) : 0; }

  // mmdet AssignResult.add_gt_: the GT boxes become the first G priors, each assigned to itself
  // with overlap 1 (what RandomSampler does with add_gt_as_proposals).
  void add_gt(const Tensor<std::int64_t, Cpu>& gt_labels) {
    GCNET_CHECK(gt_labels.rank() == 1, "AssignResult::add_gt: gt labels must have shape [G], got ",
                gt_labels.shape().str());
    const index_t g = gt_labels.size(0), p = num_priors();
    Tensor<std::int64_t, Cpu> inds(Shape{g + p}), labs(Shape{g + p});
    Tensor<T, Cpu> ov(Shape{g + p});
    for (index_t i = 0; i < g; ++i) {
      inds[i] = i + 1;
      labs[i] = gt_labels[i];
      ov[i] = T(1);
    }
    for (index_t i = 0; i < p; ++i) {
      inds[g + i] = gt_inds[i];
      labs[g + i] = labels[i];
      ov[g + i] = max_overlaps[i];
    }
    gt_inds = inds;
    labels = labs;
    max_overlaps = ov;
  }
};

// Negative IoU threshold: one value (negatives have max IoU in [0, thr)) or a range [lo, hi).
struct NegIoURange {
  double lo, hi;
};

struct MaxIoUAssignerOptions {
  double pos_iou_thr = 0.5;
  std::variant<double, NegIoURange> neg_iou_thr = 0.5;
  double min_pos_iou = 0.0;
  bool gt_max_assign_all = true;
  double ignore_iof_thr = -1;        // > 0: priors covered by an ignore box beyond this IoF are ignored
  bool ignore_wrt_candidates = true;  // IoF over the prior's area (true) or the ignore box's (false)
  bool match_low_quality = true;
};

template <Scalar T = float>
class MaxIoUAssigner {
 public:
  explicit MaxIoUAssigner(MaxIoUAssignerOptions o = {}) : o_(std::move(o)) {
    const std::string who = describe();
    GCNET_CHECK(std::isfinite(o_.pos_iou_thr), who, ": pos_iou_thr = ", o_.pos_iou_thr, " is not finite");
    GCNET_CHECK(std::isfinite(o_.min_pos_iou), who, ": min_pos_iou = ", o_.min_pos_iou, " is not finite");
    GCNET_CHECK(std::isfinite(o_.ignore_iof_thr), who, ": ignore_iof_thr = ", o_.ignore_iof_thr, " is not finite");
    if (const auto* r = std::get_if<NegIoURange>(&o_.neg_iou_thr))
      GCNET_CHECK(std::isfinite(r->lo) && std::isfinite(r->hi) && r->lo <= r->hi, who, ": neg_iou_thr range [",
                  r->lo, ", ", r->hi, ") must be finite with lo <= hi");
    else
      GCNET_CHECK(std::isfinite(std::get<double>(o_.neg_iou_thr)), who, ": neg_iou_thr is not finite");
  }

  std::string describe() const { return "MaxIoUAssigner"; }
  const MaxIoUAssignerOptions& options() const { return o_; }

  // gt_boxes [G, 4], gt_labels [G], priors [P, 4], optional ignore boxes [I, 4] (crowd GTs).
  AssignResult<T> assign(const Tensor<T, Cpu>& gt_boxes, const Tensor<std::int64_t, Cpu>& gt_labels,
                         const Tensor<T, Cpu>& priors, const Tensor<T, Cpu>* ignore_boxes = nullptr) const {
    const std::string who = describe() + "::assign";
    check_boxes(gt_boxes, who, "gt boxes");
    check_boxes(priors, who, "priors");
    check_labels(gt_labels, gt_boxes.size(0), who);
    Tensor<T, Cpu> overlaps = box_overlaps(gt_boxes, priors);
    const index_t p = priors.size(0);
    if (o_.ignore_iof_thr > 0 && ignore_boxes && ignore_boxes->defined() && ignore_boxes->size(0) > 0 && p > 0) {
      check_boxes(*ignore_boxes, who, "ignore boxes");
      const index_t g = gt_boxes.size(0), ni = ignore_boxes->size(0);
      std::vector<T> ign(static_cast<std::size_t>(p), -std::numeric_limits<T>::infinity());
      if (o_.ignore_wrt_candidates) {
        const Tensor<T, Cpu> iof = box_overlaps(priors, *ignore_boxes, OverlapMode::iof);  // [P, I]
        for (index_t j = 0; j < p; ++j)
          for (index_t k = 0; k < ni; ++k) ign[static_cast<std::size_t>(j)] = std::max(ign[static_cast<std::size_t>(j)], iof[j * ni + k]);
      } else {
        const Tensor<T, Cpu> iof = box_overlaps(*ignore_boxes, priors, OverlapMode::iof);  // [I, P]
        for (index_t k = 0; k < ni; ++k)
          for (index_t j = 0; j < p; ++j) ign[static_cast<std::size_t>(j)] = std::max(ign[static_cast<std::size_t>(j)], iof[k * p + j]);
      }
      // torch compares the float IoFs with the Python float threshold as float.
      const T thr = static_cast<T>(o_.ignore_iof_thr);
      for (index_t j = 0; j < p; ++j)
        if (ign[static_cast<std::size_t>(j)] > thr)
          for (index_t i = 0; i < g; ++i) overlaps[i * p + j] = T(-1);
    }
    return assign_overlaps(overlaps, gt_labels);
  }

  // mmdet assign_wrt_overlaps: overlaps [G, P] (IoU, or -1 for ignored priors), gt_labels [G].
  AssignResult<T> assign_wrt_overlaps(const Tensor<T, Cpu>& overlaps_in, const Tensor<std::int64_t, Cpu>& gt_labels) const {
    const std::string who = describe() + "::assign_wrt_overlaps";
    GCNET_CHECK(overlaps_in.rank() == 2, who, ": overlaps must have shape [G, P], got ", overlaps_in.shape().str());
    const index_t g = overlaps_in.size(0), p = overlaps_in.size(1);
    check_labels(gt_labels, g, who);
    const Tensor<T, Cpu> ov = contiguous(overlaps_in);
    for (index_t i = 0; i < ov.numel(); ++i)
      GCNET_CHECK(!std::isnan(ov[i]), who, ": overlap (", i / std::max<index_t>(p, 1), ", ",
                  i % std::max<index_t>(p, 1), ") is NaN");
    return assign_overlaps(ov, gt_labels);
  }

 private:
  // assign_wrt_overlaps on checked, contiguous overlaps.
  AssignResult<T> assign_overlaps(const Tensor<T, Cpu>& ov, const Tensor<std::int64_t, Cpu>& gt_labels) const {
    const index_t g = ov.size(0), p = ov.size(1);
    GCNET_CHECK(g < (index_t{1} << 31), describe(), ": ", g, " gt boxes; at most 2^31 - 1 are supported");
    AssignResult<T> r;
    r.num_gts = g;
    r.gt_inds = Tensor<std::int64_t, Cpu>(Shape{p});
    r.max_overlaps = Tensor<T, Cpu>(Shape{p});
    r.labels = Tensor<std::int64_t, Cpu>(Shape{p});
    std::int64_t* inds = r.gt_inds.data();
    T* maxo = r.max_overlaps.data();
    std::int64_t* labels = r.labels.data();
    if (g == 0 || p == 0) {
      for (index_t j = 0; j < p; ++j) {
        inds[j] = g == 0 ? 0 : -1;  // no GT: every prior is a negative
        maxo[j] = T(0);
        labels[j] = -1;
      }
      return r;
    }
    // Thresholds compare the float overlaps with Python floats: as float, like torch.
    T neg_lo = T(0), neg_hi;
    if (const auto* rg = std::get_if<NegIoURange>(&o_.neg_iou_thr)) {
      neg_lo = static_cast<T>(rg->lo);
      neg_hi = static_cast<T>(rg->hi);
    } else {
      neg_hi = static_cast<T>(std::get<double>(o_.neg_iou_thr));
    }
    const T pos = static_cast<T>(o_.pos_iou_thr), min_pos = static_cast<T>(o_.min_pos_iou);
    const T* po = ov.data();
    // Per GT: its best overlap (and the first prior reaching it), for the low-quality matches.
    std::vector<T> gmax(static_cast<std::size_t>(g));
    std::vector<index_t> gfirst(static_cast<std::size_t>(g));
    const bool low_quality = o_.match_low_quality, all_tied = o_.gt_max_assign_all;
    for_each_index_weighted(Cpu{}, g, p, [&](index_t i) {
      const T* row = po + i * p;
      // Eight running maxima (vectorized; no NaN here, so the order of a max does not matter).
      T acc[8];
      for (int k = 0; k < 8; ++k) acc[k] = row[0];
      index_t j = 0;
      for (; j + 8 <= p; j += 8)
        for (int k = 0; k < 8; ++k) acc[k] = row[j + k] > acc[k] ? row[j + k] : acc[k];
      T m = acc[0];
      for (int k = 1; k < 8; ++k) m = acc[k] > m ? acc[k] : m;
      for (; j < p; ++j) m = row[j] > m ? row[j] : m;
      gmax[static_cast<std::size_t>(i)] = m;
      if (low_quality && !all_tied) {
        index_t first = 0;
        while (row[first] != m) ++first;
        gfirst[static_cast<std::size_t>(i)] = first;
      }
    });
    // Per block of priors (independent, so in parallel): the largest overlap and the first GT
    // reaching it, the thresholds, and the low-quality matches of all tied priors: GTs in
    // ascending order, so the last GT whose best overlap the prior reaches wins, as mmdet's loop.
    for_each_range(Cpu{}, p, [&](index_t b, index_t e) {
      std::vector<std::int32_t> arg(static_cast<std::size_t>(e - b), 0);
      std::int32_t* pa = arg.data();
      T* mo = maxo + b;
      const index_t n = e - b;
      for (index_t j = 0; j < n; ++j) mo[j] = po[b + j];
      for (index_t i = 1; i < g; ++i) {
        const T* row = po + i * p + b;
        const auto ii = static_cast<std::int32_t>(i);
        for (index_t j = 0; j < n; ++j) {  // arithmetic blends: no masked stores (slow on some CPUs)
          const T v = row[j], c = mo[j];
          const std::int32_t up = v > c ? 1 : 0;
          mo[j] = v > c ? v : c;
          pa[j] += up * (ii - pa[j]);
        }
      }
      for (index_t j = 0; j < n; ++j) {
        std::int64_t v = -1;
        if (mo[j] >= neg_lo && mo[j] < neg_hi) v = 0;
        if (mo[j] >= pos) v = pa[j] + 1;
        inds[b + j] = v;
      }
      if (low_quality && all_tied)
        for (index_t i = 0; i < g; ++i) {
          const T m = gmax[static_cast<std::size_t>(i)];
          if (!(m >= min_pos)) continue;
          const T* row = po + i * p + b;
          std::int64_t* out = inds + b;
          for (index_t j = 0; j < n; ++j) out[j] = row[j] == m ? i + 1 : out[j];
        }
    }, std::max<index_t>(1, kParallelGrain / std::max<index_t>(g, 1)));
    if (low_quality && !all_tied)
      for (index_t i = 0; i < g; ++i)
        if (gmax[static_cast<std::size_t>(i)] >= min_pos) inds[gfirst[static_cast<std::size_t>(i)]] = i + 1;
    for (index_t j = 0; j < p; ++j) labels[j] = inds[j] > 0 ? gt_labels[inds[j] - 1] : -1;
    return r;
  }

  static void check_labels(const Tensor<std::int64_t, Cpu>& l, index_t g, const std::string& who) {
    GCNET_CHECK(l.rank() == 1 && l.size(0) == g, who, ": gt labels have shape ", l.shape().str(), ", expected [", g,
                "] (one per gt box)");
    GCNET_CHECK(l.is_contiguous(), who, ": gt labels must be contiguous");
  }

  MaxIoUAssignerOptions o_;
};

}  // namespace gcnet::ops
