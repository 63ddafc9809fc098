#pragma once
// COCOeval's parameters (pycocotools Params.setDetParams) and the exact floating-point helpers
// the evaluator shares. The thresholds are computed as numpy.linspace computes them, bit for bit:
// summarize() picks AP50/AP75 by exact float comparison with 0.5 and 0.75, and a match needs
// IoU >= threshold, so a threshold one ulp off changes results on boxes built to sit on it.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/core/config.hpp"
#include "gcnet/core/error.hpp"
#include "gcnet/core/rounded.hpp"  // rounded(): each product rounded on its own

namespace gcnet::eval {

enum class IouType { bbox, segm };

inline const char* iou_type_name(IouType t) { return t == IouType::bbox ? "bbox" : "segm"; }

// numpy.linspace(start, stop, num) (numpy >= 1.18): step = (stop - start) / (num - 1),
// y[i] = i * step + start, and the last value is exactly stop.
inline std::vector<double> numpy_linspace(double start, double stop, index_t num) {
  GCNET_CHECK(num >= 0, "numpy_linspace: negative count ", num);
  std::vector<double> y(static_cast<std::size_t>(num));
  if (num == 0) return y;
  if (num == 1) {
    y[0] = start;
    return y;
  }
  const double step = (stop - start) / static_cast<double>(num - 1);
  for (index_t i = 0; i < num; ++i) y[static_cast<std::size_t>(i)] = rounded(static_cast<double>(i) * step) + start;
  y.back() = stop;
  return y;
}

struct AreaRange {
  double lo = 0, hi = 0;  // inclusive at both ends, as pycocotools compares (area < lo or area > hi)
  std::string label;
};

struct CocoEvalParams {
  // Evaluated images / categories; empty means all of the GT's (pycocotools' default).
  // evaluate() sorts and de-duplicates them, as np.unique does.
  std::vector<std::int64_t> image_ids, category_ids;
  std::vector<double> iou_thresholds = numpy_linspace(0.5, 0.95, 10);
  std::vector<double> recall_thresholds = numpy_linspace(0.0, 1.0, 101);
  std::vector<index_t> max_dets = {1, 10, 100};  // sorted by evaluate(), as pycocotools does
  // 1e5 ** 2 in pycocotools: 1e10 exactly.
  std::vector<AreaRange> area_ranges = {{0.0, 1e10, "all"},
                                        {0.0, 32.0 * 32.0, "small"},
                                        {32.0 * 32.0, 96.0 * 96.0, "medium"},
                                        {96.0 * 96.0, 1e10, "large"}};

  void check() const {
    GCNET_CHECK(!iou_thresholds.empty(), "CocoEvalParams: no IoU thresholds");
    GCNET_CHECK(!recall_thresholds.empty(), "CocoEvalParams: no recall thresholds");
    GCNET_CHECK(!max_dets.empty(), "CocoEvalParams: no maxDets");
    for (const index_t m : max_dets) GCNET_CHECK(m >= 0, "CocoEvalParams: maxDets ", m, " is negative");
    GCNET_CHECK(!area_ranges.empty(), "CocoEvalParams: no area ranges");
  }
};

}  // namespace gcnet::eval
