#pragma once
// IoUMetric: mmseg's semantic-segmentation metric (mmseg/evaluation/metrics/iou_metric.py).
// Per image, pixels whose ground truth is the ignore index are dropped; the rest add to
// dataset-wide counts. From the sums over the whole dataset (never per-image averages):
//   IoU_c = intersect_c / union_c, Acc_c = intersect_c / label_c (NaN where 0 / 0),
//   mIoU = nanmean(IoU), mAcc = nanmean(Acc), aAcc = sum(intersect) / sum(label),
// where intersect_c counts pixels of class c predicted c, label_c pixels of class c, pred_c
// pixels predicted c and union_c = pred_c + label_c - intersect_c. A class absent from both
// ground truth and prediction has a NaN IoU and is left out of mIoU; a class only predicted
// has IoU 0 and counts. mmseg reports every number x100, rounded to 2 decimals (np.round:
// ties to even); the means are rounded after averaging the unrounded values.
//
// All counts come from one confusion matrix (rows: ground truth, columns: prediction), kept
// in int64: mmseg's float32 histograms stop being exact past 2^24 pixels per class, so on a
// large dataset its last digit can differ from these exact counts. Text and JSON forms:
// seg/iou_report.hpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/core/tensor.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::seg {

// One set of scores: per class (index = class id) and the three summaries.
struct IoUScores {
  std::vector<double> iou, acc;  // NaN where undefined
  double all_acc = 0;            // mmseg's aAcc
  double mean_iou = 0;           // mIoU
  double mean_acc = 0;           // mAcc
};

struct IoUResults {
  std::vector<std::string> classes;
  IoUScores raw;       // fractions in [0, 1], unrounded
  IoUScores reported;  // as mmseg prints them: x100, rounded to 2 decimals
};

// np.round(fraction * 100, 2): scale, round half to even, unscale. NaN stays NaN.
inline double mmseg_percent(double fraction) {
  const double percent = fraction * 100.0;
  return std::nearbyint(percent * 100.0) / 100.0;
}

// np.nanmean: the mean of the non-NaN values, NaN when there are none.
inline double nanmean(const std::vector<double>& v) {
  double sum = 0;
  index_t n = 0;
  for (double x : v)
    if (!std::isnan(x)) sum += x, ++n;
  return n ? sum / static_cast<double>(n) : std::nan("");
}

class IoUMetric {
 public:
  // `class_names`, when given, must name every class; otherwise classes are called "0", "1", ...
  explicit IoUMetric(index_t num_classes, std::int64_t ignore_index = 255, std::vector<std::string> class_names = {})
      : num_classes_(num_classes), ignore_index_(ignore_index), names_(std::move(class_names)) {
    GCNET_CHECK(num_classes_ > 0, "IoUMetric: num_classes must be positive, got ", num_classes_);
    GCNET_CHECK(ignore_index_ < 0 || ignore_index_ >= num_classes_, "IoUMetric: ignore_index ", ignore_index_,
                " is one of the ", num_classes_, " classes");
    GCNET_CHECK(names_.empty() || static_cast<index_t>(names_.size()) == num_classes_, "IoUMetric: ", names_.size(),
                " class names for ", num_classes_, " classes");
    if (names_.empty())
      for (index_t c = 0; c < num_classes_; ++c) names_.push_back(std::to_string(c));
    confusion_.assign(static_cast<std::size_t>(num_classes_ * num_classes_), 0);
  }

  index_t num_classes() const { return num_classes_; }
  std::int64_t ignore_index() const { return ignore_index_; }
  const std::vector<std::string>& class_names() const { return names_; }
  index_t images() const { return images_; }

  // Adds one image ([H, W]) or a batch ([N, H, W]) of predicted and ground-truth class maps.
  // Every value is checked before anything is counted, so a failed add changes nothing.
  void add(const Tensor<std::int64_t>& pred, const Tensor<std::int64_t>& gt) {
    GCNET_CHECK(pred.rank() == 2 || pred.rank() == 3, "IoUMetric::add: prediction must be [H, W] or [N, H, W], got ",
                pred.shape().str());
    GCNET_CHECK(pred.shape() == gt.shape(), "IoUMetric::add: prediction of shape ", pred.shape().str(),
                " and ground truth of shape ", gt.shape().str(), " differ");
    const Tensor<std::int64_t> p = pred.is_contiguous() ? pred : clone(pred);
    const Tensor<std::int64_t> g = gt.is_contiguous() ? gt : clone(gt);
    const index_t W = p.size(-1), HW = p.size(-2) * W;
    for (index_t i = 0; i < p.numel(); ++i) {
      GCNET_CHECK(p[i] >= 0 && p[i] < num_classes_, "IoUMetric::add: prediction has value ", p[i], " at ",
                  where(i, HW, W, p.rank()), "; expected a class in [0, ", num_classes_, ")");
      GCNET_CHECK((g[i] >= 0 && g[i] < num_classes_) || g[i] == ignore_index_,
                  "IoUMetric::add: ground truth has value ", g[i], " at ", where(i, HW, W, g.rank()),
                  "; expected a class in [0, ", num_classes_, ") or the ignore index ", ignore_index_);
    }
    for (index_t i = 0; i < p.numel(); ++i)
      if (g[i] != ignore_index_) ++confusion_[static_cast<std::size_t>(g[i] * num_classes_ + p[i])];
    images_ += p.rank() == 3 ? p.size(0) : 1;
  }

  // Adds another metric's counts (data-parallel evaluation: each rank counts its images).
  void merge(const IoUMetric& other) {
    GCNET_CHECK(other.num_classes_ == num_classes_ && other.ignore_index_ == ignore_index_,
                "IoUMetric::merge: metrics differ (", num_classes_, " classes, ignore ", ignore_index_, " vs ",
                other.num_classes_, " classes, ignore ", other.ignore_index_, ")");
    GCNET_CHECK(other.names_ == names_, "IoUMetric::merge: metrics name their classes differently");
    for (std::size_t i = 0; i < confusion_.size(); ++i) confusion_[i] += other.confusion_[i];
    images_ += other.images_;
  }

  void reset() {
    std::fill(confusion_.begin(), confusion_.end(), 0);
    images_ = 0;
  }

  // Pixels of ground-truth class `gt` predicted as `pred` (ignored pixels not counted).
  std::int64_t confusion(index_t gt, index_t pred) const {
    GCNET_CHECK(gt >= 0 && gt < num_classes_ && pred >= 0 && pred < num_classes_, "IoUMetric::confusion: (", gt, ", ",
                pred, ") out of range for ", num_classes_, " classes");
    return confusion_[static_cast<std::size_t>(gt * num_classes_ + pred)];
  }
  // The whole matrix as [K, K] (rows: ground truth, columns: prediction), a copy.
  Tensor<std::int64_t> confusion_matrix() const {
    Tensor<std::int64_t> m(Shape{num_classes_, num_classes_});
    for (std::size_t i = 0; i < confusion_.size(); ++i) m[static_cast<index_t>(i)] = confusion_[i];
    return m;
  }

  // mmseg's four histograms, per class.
  std::vector<std::int64_t> area_intersect() const {
    return per_class([&](index_t c) { return confusion(c, c); });
  }
  std::vector<std::int64_t> area_pred_label() const {
    return per_class([&](index_t c) { return column_sum(c); });
  }
  std::vector<std::int64_t> area_label() const {
    return per_class([&](index_t c) { return row_sum(c); });
  }
  std::vector<std::int64_t> area_union() const {
    return per_class([&](index_t c) { return row_sum(c) + column_sum(c) - confusion(c, c); });
  }

  IoUResults compute() const {
    const auto inter = area_intersect(), uni = area_union(), label = area_label();
    IoUResults r;
    r.classes = names_;
    std::int64_t inter_sum = 0, label_sum = 0;
    for (index_t c = 0; c < num_classes_; ++c) {
      const auto i = static_cast<std::size_t>(c);
      r.raw.iou.push_back(ratio(inter[i], uni[i]));
      r.raw.acc.push_back(ratio(inter[i], label[i]));
      inter_sum += inter[i];
      label_sum += label[i];
    }
    r.raw.all_acc = ratio(inter_sum, label_sum);
    r.raw.mean_iou = nanmean(r.raw.iou);
    r.raw.mean_acc = nanmean(r.raw.acc);
    for (index_t c = 0; c < num_classes_; ++c) {
      r.reported.iou.push_back(mmseg_percent(r.raw.iou[static_cast<std::size_t>(c)]));
      r.reported.acc.push_back(mmseg_percent(r.raw.acc[static_cast<std::size_t>(c)]));
    }
    r.reported.all_acc = mmseg_percent(r.raw.all_acc);
    r.reported.mean_iou = mmseg_percent(r.raw.mean_iou);
    r.reported.mean_acc = mmseg_percent(r.raw.mean_acc);
    return r;
  }

 private:
  static double ratio(std::int64_t num, std::int64_t den) {
    return den == 0 ? std::nan("") : static_cast<double>(num) / static_cast<double>(den);
  }
  // "(row 3, column 5)" or "(image 0, row 3, column 5)".
  static std::string where(index_t i, index_t HW, index_t W, int rank) {
    std::ostringstream os;
    os << "(";
    if (rank == 3) os << "image " << i / HW << ", ";
    os << "row " << (i % HW) / W << ", column " << i % W << ")";
    return os.str();
  }
  template <class F>
  std::vector<std::int64_t> per_class(F&& f) const {
    std::vector<std::int64_t> out;
    for (index_t c = 0; c < num_classes_; ++c) out.push_back(f(c));
    return out;
  }
  std::int64_t row_sum(index_t gt) const {
    std::int64_t s = 0;
    for (index_t p = 0; p < num_classes_; ++p) s += confusion(gt, p);
    return s;
  }
  std::int64_t column_sum(index_t pred) const {
    std::int64_t s = 0;
    for (index_t g = 0; g < num_classes_; ++g) s += confusion(g, pred);
    return s;
  }

  index_t num_classes_;
  std::int64_t ignore_index_;
  std::vector<std::string> names_;
  std::vector<std::int64_t> confusion_;  // row-major [gt][pred]
  index_t images_ = 0;
};

}  // namespace gcnet::seg
