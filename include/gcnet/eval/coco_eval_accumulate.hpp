#pragma once
// pycocotools' accumulate() for one category: precision[T, R, K, A, M] and recall[T, K, A, M]
// (numpy's C order), -1 where the category has no non-ignored GT in that area range.
// For each (area, maxDet, threshold): the images' first maxDet detections (images in id order,
// each in its score order) are stable-sorted by descending score; tp / fp are cumulative counts
// over them (ignored detections repeat the previous values); rc = tp / npig,
// pr = tp / (tp + fp + 2^-52); recall = rc[-1] (0 with no detections); pr gets its monotone
// envelope from the right; precision at recall threshold r = pr[first index with rc >= r]
// (searchsorted 'left'), and once that index runs past the end the remaining entries stay 0.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "gcnet/eval/coco_eval_match.hpp"
#include "gcnet/eval/coco_eval_params.hpp"

namespace gcnet::eval {

// Sizes of the accumulated arrays.
struct EvalDims {
  index_t T = 0, R = 0, K = 0, A = 0, M = 0;
  std::size_t precision_index(index_t t, index_t r, index_t k, index_t a, index_t m) const {
    return static_cast<std::size_t>((((t * R + r) * K + k) * A + a) * M + m);
  }
  std::size_t recall_index(index_t t, index_t k, index_t a, index_t m) const {
    return static_cast<std::size_t>(((t * K + k) * A + a) * M + m);
  }
};

// One category's detections as evaluate_cell left them: entries [0, n) in image order, each
// image's in its score order; rank = position within its image; status[(a * T + t) * stride + j].
struct CategoryDets {
  const double* score = nullptr;
  const index_t* rank = nullptr;
  const std::uint8_t* status = nullptr;
  std::size_t stride = 0;
  index_t n = 0;
  const index_t* npig = nullptr;  // [A]: non-ignored GTs of the category per area range
};

struct AccumulateScratch {
  std::vector<index_t> order, rank;
  std::vector<std::uint8_t> st;
  std::vector<double> rc, pr;
};

inline void accumulate_category(const CategoryDets& c, index_t k, const CocoEvalParams& p, const EvalDims& dims,
                                double* precision, double* recall, AccumulateScratch& s) {
  const index_t T = dims.T, R = dims.R, A = dims.A, M = dims.M;
  // The global order: descending score, ties by position (images in id order, then rank),
  // which is what numpy's stable argsort of the concatenation gives.
  s.order.resize(static_cast<std::size_t>(c.n));
  for (index_t j = 0; j < c.n; ++j) s.order[j] = j;
  std::sort(s.order.begin(), s.order.end(), [&](index_t x, index_t y) {
    if (score_before(c.score[x], c.score[y])) return true;
    if (score_before(c.score[y], c.score[x])) return false;
    return x < y;
  });
  s.rank.resize(static_cast<std::size_t>(c.n));
  for (index_t j = 0; j < c.n; ++j) s.rank[j] = c.rank[s.order[j]];
  s.st.resize(static_cast<std::size_t>(c.n));
  s.rc.resize(static_cast<std::size_t>(c.n));
  s.pr.resize(static_cast<std::size_t>(c.n));
  constexpr double eps = std::numeric_limits<double>::epsilon();  // np.spacing(1)
  for (index_t a = 0; a < A; ++a) {
    const index_t npig = c.npig[a];
    if (npig == 0) continue;  // stays -1: no GT to recall in this area range
    const double dnpig = static_cast<double>(npig);
    for (index_t t = 0; t < T; ++t) {
      // This threshold's statuses in the global order, once for all maxDets.
      const std::uint8_t* src = c.status + (a * static_cast<std::size_t>(T) + t) * c.stride;
      for (index_t j = 0; j < c.n; ++j) s.st[j] = src[s.order[j]];
      for (index_t m = 0; m < M; ++m) {
        const index_t max_det = p.max_dets[m];
        // pycocotools builds rc and pr at every detection; only a few of those values can be
        // read, so only they are computed (the numbers are the same, bit for bit):
        //  - an ignored detection repeats its predecessor's (rc, pr), or (0, 0) at the start;
        //  - rc rises only at true positives, so the first index with rc >= r > 0 is one;
        //  - a false positive's precision is at most that of the true positive before it (its
        //    denominator is larger), or 0 before any, so the envelope at a true positive is the
        //    largest precision of the true positives from there on;
        //  - for r <= 0 the index is 0, whose envelope is the largest precision of all.
        double tp = 0, fp = 0;
        index_t nd = 0, ne = 0;  // detections counted, true positives among them
        for (index_t j = 0; j < c.n; ++j) {
          if (s.rank[j] >= max_det || s.st[j] == kIgnored) continue;
          ++nd;
          if (s.st[j] == kTruePositive) {
            tp += 1;
            s.rc[ne] = tp / dnpig;
            s.pr[ne] = tp / (fp + tp + eps);
            ++ne;
          } else {
            fp += 1;
          }
        }
        recall[dims.recall_index(t, k, a, m)] = nd ? tp / dnpig : 0.0;  // rc[-1]
        for (index_t i = ne - 1; i > 0; --i)
          if (s.pr[i] > s.pr[i - 1]) s.pr[i - 1] = s.pr[i];
        const double* rc_begin = s.rc.data();
        const double* rc_end = rc_begin + ne;
        for (index_t r = 0; r < R; ++r) {
          const double thr = p.recall_thresholds[r];
          const index_t ind = thr <= 0 ? 0 : std::lower_bound(rc_begin, rc_end, thr) - rc_begin;
          if (nd == 0 || (thr > 0 && ind >= ne)) {
            // IndexError in pycocotools: this entry and all later ones stay 0.
            for (index_t r2 = r; r2 < R; ++r2) precision[dims.precision_index(t, r2, k, a, m)] = 0.0;
            break;
          }
          precision[dims.precision_index(t, r, k, a, m)] = ne ? s.pr[ind] : 0.0;
        }
      }
    }
  }
}

}  // namespace gcnet::eval
