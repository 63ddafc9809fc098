#pragma once
// COCOeval for bbox and segm with pycocotools' semantics (cocoeval.py @ 8c9bcc3):
//
//   eval::CocoEvalInput in = eval::load_coco_eval_input(...);   // or filled by hand
//   eval::CocoEvalResult r = eval::coco_evaluate(in, eval::IouType::bbox);
//   std::cout << r.summary();         // the 12 lines pycocotools prints
//   r.stats[0];                       // AP @[.5:.95], as COCOeval.stats
//   r.per_category[k].ap;             // mmdet's classwise AP (NaN where the category has no GT)
//
// Steps: select GTs and detections of the evaluated images and categories as _prepare() does
// (file order kept; a GT id used twice resolves to its last annotation, as COCO.loadAnns does);
// evaluate every (category, image) cell in parallel (coco_eval_match.hpp), then accumulate each
// category in parallel (coco_eval_accumulate.hpp) and summarize (coco_eval_summarize.hpp).
// Results are deterministic whatever the thread count: every cell and category writes only its
// own outputs.
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gcnet/core/parallel.hpp"
#include "gcnet/eval/coco_eval_accumulate.hpp"
#include "gcnet/eval/coco_eval_data.hpp"
#include "gcnet/eval/coco_eval_match.hpp"
#include "gcnet/eval/coco_eval_params.hpp"
#include "gcnet/eval/coco_eval_summarize.hpp"

namespace gcnet::eval {

struct CocoEvalResult {
  IouType type = IouType::bbox;
  CocoEvalParams params;  // as evaluated: image / category ids sorted and unique, maxDets sorted
  EvalDims dims;
  std::vector<double> precision;  // [T, R, K, A, M], -1 where absent
  std::vector<double> recall;     // [T, K, A, M], -1 where absent
  std::array<double, 12> stats{};
  std::array<std::string, 12> lines;  // pycocotools' printed summary, one line per stat
  std::vector<CategoryAp> per_category;

  std::string summary() const {
    std::string s;
    for (const auto& l : lines) s += l + "\n";
    return s;
  }
};

namespace detail {

inline std::vector<std::int64_t> sorted_unique(std::vector<std::int64_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

inline index_t index_of(const std::vector<std::int64_t>& sorted, std::int64_t id) {
  const auto it = std::lower_bound(sorted.begin(), sorted.end(), id);
  return (it != sorted.end() && *it == id) ? static_cast<index_t>(it - sorted.begin()) : -1;
}

// One (category, image) cell with GTs or detections: its key k * I + i and index ranges into
// the bucketed GT and detection lists.
struct Cell {
  index_t key = 0, g0 = 0, g1 = 0, d0 = 0, d1 = 0;
};

// (cell key, input index) for every selected item, sorted by key with `emission` order kept
// inside a key.
inline std::vector<std::pair<index_t, index_t>> bucket(std::vector<std::pair<index_t, index_t>> keyed) {
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return keyed;
}

}  // namespace detail

inline CocoEvalResult coco_evaluate(const CocoEvalInput& in, IouType type, CocoEvalParams p = {}) {
  p.check();
  p.image_ids = detail::sorted_unique(p.image_ids.empty() ? in.image_ids : p.image_ids);
  p.category_ids = detail::sorted_unique(p.category_ids.empty() ? in.category_ids : p.category_ids);
  std::sort(p.max_dets.begin(), p.max_dets.end());
  const auto queries = detection_queries(p);  // checks the maxDets summarize needs, before the work
  const index_t I = static_cast<index_t>(p.image_ids.size()), K = static_cast<index_t>(p.category_ids.size());
  const EvalDims dims{static_cast<index_t>(p.iou_thresholds.size()), static_cast<index_t>(p.recall_thresholds.size()),
                      K, static_cast<index_t>(p.area_ranges.size()), static_cast<index_t>(p.max_dets.size())};
  const index_t T = dims.T, A = dims.A;

  // loadRes asserts that every result's image is a GT image.
  {
    const auto gt_images = detail::sorted_unique(in.image_ids);
    for (std::size_t j = 0; j < in.dets.size(); ++j)
      GCNET_CHECK(detail::index_of(gt_images, in.dets[j].image_id) >= 0, "coco_evaluate: detection ", j,
                  " names image id ", in.dets[j].image_id, ", which is not among the GT's images");
  }

  // _prepare: getAnnIds(imgIds, catIds) walks the selected images in id order and each image's
  // annotations in file order; loadAnns then looks each id up, so a repeated GT id yields the
  // LAST annotation with that id (its image and category decide its cell).
  std::vector<index_t> gt_resolved(in.gts.size());
  {
    std::unordered_map<std::int64_t, index_t> last;
    last.reserve(in.gts.size());
    for (std::size_t g = 0; g < in.gts.size(); ++g) last[in.gts[g].id] = static_cast<index_t>(g);
    for (std::size_t g = 0; g < in.gts.size(); ++g) gt_resolved[g] = last[in.gts[g].id];
  }
  const auto select = [&](auto&& items, auto&& resolve) {
    // (image index, input index) of the items whose own image and category are evaluated,
    // in image order then file order: the emission order of getAnnIds.
    std::vector<std::pair<index_t, index_t>> emitted;
    for (std::size_t j = 0; j < items.size(); ++j) {
      const index_t i = detail::index_of(p.image_ids, items[j].image_id);
      if (i < 0 || detail::index_of(p.category_ids, items[j].category_id) < 0) continue;
      emitted.emplace_back(i, static_cast<index_t>(j));
    }
    std::stable_sort(emitted.begin(), emitted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    // Bucket what each emitted id resolves to by its (category, image) cell.
    std::vector<std::pair<index_t, index_t>> keyed;
    keyed.reserve(emitted.size());
    for (const auto& e : emitted) {
      const index_t r = resolve(e.second);
      const index_t i = detail::index_of(p.image_ids, items[r].image_id);
      const index_t k = detail::index_of(p.category_ids, items[r].category_id);
      if (i < 0 || k < 0) continue;  // never asked for by evaluateImg
      keyed.emplace_back(k * I + i, r);
    }
    return detail::bucket(std::move(keyed));
  };
  const auto gts = select(in.gts, [&](index_t g) { return gt_resolved[g]; });
  const auto dts = select(in.dets, [](index_t d) { return d; });
  if (type == IouType::segm) {
    // A missing mask would silently score IoU 0: say which one instead.
    for (const auto& [key, g] : gts)
      GCNET_CHECK(in.gts[g].segmentation.h > 0 && in.gts[g].segmentation.w > 0, "coco_evaluate: segm evaluation, but "
                  "GT annotation id ", in.gts[g].id, " (image ", in.gts[g].image_id, ") has no mask");
    for (const auto& [key, d] : dts)
      GCNET_CHECK(in.dets[d].segmentation.h > 0 && in.dets[d].segmentation.w > 0, "coco_evaluate: segm evaluation, "
                  "but detection ", d, " (image ", in.dets[d].image_id, ") has no mask");
  }

  // The non-empty cells, in key order (category-major, images in id order).
  std::vector<detail::Cell> cells;
  {
    std::size_t a = 0, b = 0;
    while (a < gts.size() || b < dts.size()) {
      const index_t key = std::min(a < gts.size() ? gts[a].first : INT64_MAX, b < dts.size() ? dts[b].first : INT64_MAX);
      detail::Cell c{key, static_cast<index_t>(a), 0, static_cast<index_t>(b), 0};
      while (a < gts.size() && gts[a].first == key) ++a;
      while (b < dts.size() && dts[b].first == key) ++b;
      c.g1 = static_cast<index_t>(a);
      c.d1 = static_cast<index_t>(b);
      cells.push_back(c);
    }
  }
  std::vector<index_t> gt_list(gts.size()), dt_list(dts.size());
  for (std::size_t j = 0; j < gts.size(); ++j) gt_list[j] = gts[j].second;
  for (std::size_t j = 0; j < dts.size(); ++j) dt_list[j] = dts[j].second;

  // Output slots: each cell keeps at most maxDets[-1] detections, contiguous per category.
  const index_t ncell = static_cast<index_t>(cells.size());
  std::vector<index_t> out_off(static_cast<std::size_t>(ncell) + 1, 0);
  for (index_t c = 0; c < ncell; ++c)
    out_off[c + 1] = out_off[c] + std::min(cells[c].d1 - cells[c].d0, p.max_dets.back());
  const index_t N = out_off[ncell];
  std::vector<std::uint8_t> status(static_cast<std::size_t>(A * T) * static_cast<std::size_t>(N));
  std::vector<index_t> kept(static_cast<std::size_t>(N)), rank(static_cast<std::size_t>(N));
  std::vector<double> score(static_cast<std::size_t>(N));
  std::vector<index_t> cell_npig(static_cast<std::size_t>(ncell * A), 0);

  // evaluateImg over every cell (a cell's cost grows with dets x GTs: dynamic schedule).
  {
    const auto run = [&](CellScratch& s, index_t c) {
      const detail::Cell& cell = cells[c];
      const CellOutput out{status.data() + out_off[c], static_cast<std::size_t>(N), kept.data() + out_off[c],
                           cell_npig.data() + c * A};
      const index_t D = evaluate_cell(in, type, p, gt_list.data() + cell.g0, cell.g1 - cell.g0,
                                      dt_list.data() + cell.d0, cell.d1 - cell.d0, out, s);
      for (index_t d = 0; d < D; ++d) {
        rank[out_off[c] + d] = d;
        score[out_off[c] + d] = in.dets[kept[out_off[c] + d]].score;
      }
    };
#if defined(_OPENMP)
#pragma omp parallel if (ncell > 64 && !omp_in_parallel())
    {
      CellScratch s;
#pragma omp for schedule(dynamic, 32)
      for (index_t c = 0; c < ncell; ++c) run(s, c);
    }
#else
    CellScratch s;
    for (index_t c = 0; c < ncell; ++c) run(s, c);
#endif
  }

  // accumulate, one category at a time.
  CocoEvalResult res;
  res.type = type;
  res.dims = dims;
  res.precision.assign(static_cast<std::size_t>(T * dims.R * K * A * dims.M), -1.0);
  res.recall.assign(static_cast<std::size_t>(T * K * A * dims.M), -1.0);
  {
    std::vector<index_t> cat_cell(static_cast<std::size_t>(K) + 1, 0);  // first cell of each category
    for (index_t c = 0, k = 0; k <= K; ++k) {
      while (c < ncell && cells[c].key < k * I) ++c;
      cat_cell[k] = c;
    }
    const auto run = [&](AccumulateScratch& s, index_t k) {
      const index_t c0 = cat_cell[k], c1 = cat_cell[k + 1];
      std::vector<index_t> npig(static_cast<std::size_t>(A), 0);
      for (index_t c = c0; c < c1; ++c)
        for (index_t a = 0; a < A; ++a) npig[a] += cell_npig[c * A + a];
      const index_t j0 = out_off[c0];
      const CategoryDets cd{score.data() + j0, rank.data() + j0, status.data() + j0, static_cast<std::size_t>(N),
                            out_off[c1] - j0, npig.data()};
      accumulate_category(cd, k, p, dims, res.precision.data(), res.recall.data(), s);
    };
#if defined(_OPENMP)
#pragma omp parallel if (K > 1 && !omp_in_parallel())
    {
      AccumulateScratch s;
#pragma omp for schedule(dynamic, 1)
      for (index_t k = 0; k < K; ++k) run(s, k);
    }
#else
    AccumulateScratch s;
    for (index_t k = 0; k < K; ++k) run(s, k);
#endif
  }

  for (std::size_t i = 0; i < queries.size(); ++i)
    res.stats[i] = summarize_one(queries[i], p, dims, res.precision, res.recall, &res.lines[i]);
  res.per_category = per_category_ap(p, dims, res.precision);
  res.params = std::move(p);
  return res;
}

}  // namespace gcnet::eval
