// The RoI head of Mask R-CNN (det/standard_roi_head.hpp): targets, forward, losses and gradients
// against a plain-PyTorch restatement of mmdet v3's StandardRoIHead; inference against it and
// against torchvision 0.14's RoIHeads; a double-precision gradient check through RoIAlign; errors.
// Fixture: tests/fixtures/det_roi_head.safetensors from tools/fixtures/det_roi_head.py.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gcnet/det/standard_roi_head.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/errors.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using gcnet::test::error_of;
using testing::relative_error;

namespace {
const std::string kFixture = std::string(GCNET_FIXTURE_DIR) + "/det_roi_head.safetensors";

// The fixture's sizes: 8 channels, FCs of 16, 3 classes, mask convs of 8; mmdet's finest_scale 6
// so that the small RoIs spread over the four levels.
StandardRoIHeadOptions small_options(RoIHeadStyle style, index_t c = 8, index_t fc = 16, index_t nc = 3,
                                     index_t conv = 8) {
  StandardRoIHeadOptions o = style == RoIHeadStyle::Mmdet ? mmdet_roi_head_options(nc, c) : torchvision_roi_head_options(nc, c);
  o.bbox_head.fc_out_channels = fc;
  o.mask_head->conv_out_channels = conv;
  if (style == RoIHeadStyle::Mmdet) o.bbox_roi_extractor.finest_scale = o.mask_roi_extractor.finest_scale = 6;
  return o;
}

template <class T>
struct Batch {
  std::vector<Tensor<T>> feats, proposals;
  std::vector<DetGroundTruth<T>> gt;
  std::vector<DetImageShape> shapes;
};

template <class T>
Batch<T> load_batch(const io::SafetensorsReader& f) {
  Batch<T> b;
  for (int l = 0; l < 5; ++l) b.feats.push_back(f.tensor<T>("feat" + std::to_string(l)));
  for (int i = 0; i < 2; ++i) {
    const std::string s = std::to_string(i);
    b.proposals.push_back(f.tensor<T>("proposals" + s));
    DetGroundTruth<T> g;
    g.boxes = f.tensor<T>("gt" + s + ".boxes");
    g.labels = f.tensor<std::int64_t>("gt" + s + ".labels");
    g.masks = f.tensor<std::uint8_t>("gt" + s + ".masks");
    b.gt.push_back(g);
  }
  b.shapes = {DetImageShape{.img_h = 64, .img_w = 80, .ori_h = 32, .ori_w = 40, .scale_w = 2.0, .scale_h = 2.0},
              DetImageShape{.img_h = 56, .img_w = 72, .ori_h = 35, .ori_w = 45, .scale_w = 1.6, .scale_h = 1.6}};
  return b;
}

// mmdet's [K, 5] rois of the fixture -> RoIs.
template <class T>
RoIs<T> fixture_rois(const io::SafetensorsReader& f, const std::string& key) {
  return ops::from_mmdet_rois(f.tensor<T>(key));
}

// A picker that must not be called: every candidate fits in the sample.
const ops::SubsetPicker no_subsets = [](index_t n, index_t k) -> std::vector<index_t> {
  FAIL("the sampler had to pick " << k << " of " << n);
  return {};
};

template <class A, class B>
bool same_values(const Tensor<A>& a, const Tensor<B>& b) {
  if (!(a.shape() == b.shape())) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (static_cast<double>(a[i]) != static_cast<double>(b[i])) return false;
  return true;
}

double mask_iou(const Tensor<std::uint8_t>& a, const Tensor<std::uint8_t>& b, index_t k) {
  const index_t n = a.numel() / a.size(0);
  double inter = 0, uni = 0;
  for (index_t i = 0; i < n; ++i) {
    const bool x = a[k * n + i] != 0, y = b[k * n + i] != 0;
    inter += x && y, uni += x || y;
  }
  return uni == 0 ? 1.0 : inter / uni;
}

// Detections of image i against the fixture's <prefix><i>.*: identical labels, boxes and scores
// to 1e-4 relative, every mask IoU >= 0.99.
void check_detections(const Detections<float>& d, const io::SafetensorsReader& f, const std::string& prefix, int i) {
  const std::string p = prefix + std::to_string(i) + ".";
  const auto labels = f.tensor<std::int64_t>(p + "labels");
  INFO(p);
  REQUIRE(d.size() == labels.size(0));
  CHECK(same_values(d.labels, labels));
  CHECK(relative_error(d.boxes, f.tensor<double>(p + "boxes")) <= 1e-4);
  CHECK(relative_error(d.scores, f.tensor<double>(p + "scores")) <= 1e-4);
  const auto masks = f.tensor<std::uint8_t>(p + "masks");
  REQUIRE(d.masks.shape() == masks.shape());
  double worst = 1;
  for (index_t k = 0; k < d.size(); ++k) worst = std::min(worst, mask_iou(d.masks, masks, k));
  CHECK(worst >= 0.99);
}

}  // namespace

TEST_CASE("StandardRoIHead: targets (assign, sample with GT boxes added, bbox and mask targets) equal mmdet's") {
  const io::SafetensorsReader f(kFixture);
  const auto b = load_batch<float>(f);
  StandardRoIHead<float> head(small_options(RoIHeadStyle::Mmdet));
  const RoIHeadTargets<float> t = head.sample(b.proposals, b.gt, b.shapes, no_subsets);
  const auto rois = fixture_rois<float>(f, "mm.rois");
  CHECK(same_values(t.rois.image, rois.image));
  CHECK(same_values(t.rois.boxes, rois.boxes));
  const auto mrois = fixture_rois<float>(f, "mm.mask_rois");
  CHECK(same_values(t.mask_rois.image, mrois.image));
  CHECK(same_values(t.mask_rois.boxes, mrois.boxes));
  CHECK(same_values(t.labels, f.tensor<std::int64_t>("mm.labels")));
  CHECK(same_values(t.pos_labels, f.tensor<std::int64_t>("mm.pos_labels")));
  CHECK(same_values(t.label_weights, f.tensor<float>("mm.label_weights")));
  CHECK(same_values(t.bbox_weights, f.tensor<float>("mm.bbox_weights")));
  CHECK(relative_error(t.bbox_targets, f.tensor<double>("mm.bbox_targets")) <= 1e-5);
  CHECK(same_values(t.mask_targets, f.tensor<std::uint8_t>("mm.mask_targets")));
  CHECK(t.num_pos == std::vector<index_t>{10, 8});  // GT boxes included
  CHECK(t.num_neg == std::vector<index_t>{7, 5});
  CHECK(t.num_pos[0] + t.num_pos[1] == t.mask_rois.size());
  CHECK(t.num_pos[0] + t.num_pos[1] + t.num_neg[0] + t.num_neg[1] == t.rois.size());
}

TEST_CASE("StandardRoIHead: the sampler's caps, subsets from the picker, torchvision's class layout") {
  const io::SafetensorsReader f(kFixture);
  const auto b = load_batch<float>(f);
  auto o = small_options(RoIHeadStyle::Mmdet);
  o.train.sampler.num = 8;  // at most 2 positives, 8 samples per image
  StandardRoIHead<float> head(o);
  int calls = 0;
  const ops::SubsetPicker last_k = [&](index_t n, index_t k) {
    ++calls;
    std::vector<index_t> v;
    for (index_t i = n - k; i < n; ++i) v.push_back(i);
    return v;
  };
  const auto t = head.sample(b.proposals, b.gt, b.shapes, last_k);
  const auto a = StandardRoIHead<float>(small_options(RoIHeadStyle::Mmdet)).sample(b.proposals, b.gt, b.shapes, no_subsets);
  int expected_calls = 0;
  index_t first_pos = 0;  // image i's positives start here among all of the full sample's
  for (std::size_t i = 0; i < 2; ++i) {
    const index_t np = std::min<index_t>(a.num_pos[i], 2), nn = std::min<index_t>(a.num_neg[i], 8 - np);
    expected_calls += (a.num_pos[i] > np) + (a.num_neg[i] > nn);
    CHECK(t.num_pos[i] == np);
    CHECK(t.num_neg[i] == nn);
    // The picker chose the last positives of the gallery (ascending, so the image's last ones).
    const index_t tp = i == 0 ? 0 : t.num_pos[0];
    for (index_t k = 0; k < np; ++k)
      for (int q = 0; q < 4; ++q)
        CHECK(t.mask_rois.boxes[(tp + k) * 4 + q] == a.mask_rois.boxes[(first_pos + a.num_pos[i] - np + k) * 4 + q]);
    first_pos += a.num_pos[i];
  }
  CHECK(calls == expected_calls);
  CHECK(expected_calls >= 3);
  CHECK(t.rois.size() == t.num_pos[0] + t.num_pos[1] + t.num_neg[0] + t.num_neg[1]);
  CHECK(t.mask_targets.shape() == Shape{4, 28, 28});
  // torchvision's layout: the same sample (low-quality matches on), class index label + 1, background 0.
  auto tv = small_options(RoIHeadStyle::Torchvision);
  tv.train.assigner.match_low_quality = true;
  tv.train.mask_target = ops::MaskTargetOptions{};
  StandardRoIHead<float> tvhead(tv);
  const auto c = tvhead.sample(b.proposals, b.gt, b.shapes, no_subsets);
  REQUIRE(a.labels.size(0) == c.labels.size(0));
  for (index_t r = 0; r < a.labels.size(0); ++r) CHECK(c.labels[r] == (a.labels[r] == 3 ? 0 : a.labels[r] + 1));
  CHECK(relative_error(c.bbox_targets, [&] {
          Tensor<double> e(a.bbox_targets.shape());
          for (index_t i = 0; i < e.numel(); ++i) e[i] = a.bbox_targets[i];
          return e;
        }()) <= 1e-5);  // torchvision's encode: the same deltas up to rounding
}

TEST_CASE("StandardRoIHead: forward, losses and all gradients (features through RoIAlign, parameters) equal mmdet's") {
  const io::SafetensorsReader f(kFixture);
  const auto b = load_batch<float>(f);
  StandardRoIHead<float> head(small_options(RoIHeadStyle::Mmdet));
  testing::load_case_state(head, f, "mm");
  RoIHeadTargets<float> t;
  t.rois = fixture_rois<float>(f, "mm.rois");
  t.mask_rois = fixture_rois<float>(f, "mm.mask_rois");
  t.labels = f.tensor<std::int64_t>("mm.labels");
  t.label_weights = f.tensor<float>("mm.label_weights");
  t.bbox_targets = f.tensor<float>("mm.bbox_targets");
  t.bbox_weights = f.tensor<float>("mm.bbox_weights");
  t.pos_labels = f.tensor<std::int64_t>("mm.pos_labels");
  t.mask_targets = f.tensor<float>("mm.mask_targets");
  Context ctx;
  const auto in = StandardRoIHead<float>::input(b.feats, t);
  RoIHeadOutputs<float> out, dout;
  head.forward(ctx, in, out);
  CHECK(relative_error(out.cls_score, f.tensor<double>("mm.cls_score")) <= 1e-4);
  CHECK(relative_error(out.bbox_pred, f.tensor<double>("mm.bbox_pred")) <= 1e-4);
  CHECK(relative_error(out.mask_pred, f.tensor<double>("mm.mask_pred")) <= 1e-4);
  const auto losses = head.loss(out, t, dout);
  REQUIRE(losses.size() == 4);
  const char* names[] = {"loss_cls", "acc", "loss_bbox", "loss_mask"};
  for (int k = 0; k < 4; ++k) {
    CHECK(losses[static_cast<std::size_t>(k)].first == names[k]);
    const double e = f.tensor<double>(std::string("mm.") + names[k])[0];
    INFO(names[k] << " " << losses[static_cast<std::size_t>(k)].second << " vs " << e);
    CHECK(std::abs(losses[static_cast<std::size_t>(k)].second - e) <= 1e-5 * std::max(1.0, std::abs(e)));
  }
  RoIHeadInput<float> din;
  zero_grad_like(in, din);
  visit_parameters(head, "", [](const std::string&, Param<float, Cpu>& p) { fill(p.grad, std::numeric_limits<float>::quiet_NaN()); });
  head.backward(ctx, in, out, dout, din);
  for (int l = 0; l < 5; ++l) {
    INFO("feature level " << l);
    CHECK(relative_error(din.feats[static_cast<std::size_t>(l)], f.tensor<double>("mm.grad.feat" + std::to_string(l))) <= 1e-4);
  }
  int params = 0;
  visit_parameters(head, "", [&](const std::string& name, Param<float, Cpu>& p) {
    INFO(name);
    ++params;
    CHECK(relative_error(p.grad, f.tensor<double>("mm.grad." + name)) <= 1e-4);
  });
  CHECK(params == 20);
}

TEST_CASE("StandardRoIHead: mmdet-style inference equals mmdet's (multiclass NMS, rescale, grid-sample pasting)") {
  const io::SafetensorsReader f(kFixture);
  const auto b = load_batch<float>(f);
  StandardRoIHead<float> head(small_options(RoIHeadStyle::Mmdet));
  testing::load_case_state(head, f, "mm");
  const auto dets = head.predict(b.feats, b.proposals, b.shapes);
  REQUIRE(dets.size() == 2);
  for (int i = 0; i < 2; ++i) check_detections(dets[static_cast<std::size_t>(i)], f, "mmpred", i);
  CHECK(head.training() == false);
  // An image without proposals gets no detections; the other is unchanged.
  auto props = b.proposals;
  props[1] = Tensor<float>(Shape{0, 4});
  const auto d2 = head.predict(b.feats, props, b.shapes);
  CHECK(d2[1].size() == 0);
  CHECK(d2[1].masks.shape() == Shape{0, 35, 45});
  check_detections(d2[0], f, "mmpred", 0);
}

TEST_CASE("StandardRoIHead: torchvision-style inference equals torchvision 0.14's RoIHeads + transform.postprocess") {
  const io::SafetensorsReader f(kFixture);
  const auto b = load_batch<float>(f);
  StandardRoIHead<float> head(small_options(RoIHeadStyle::Torchvision));
  testing::load_case_state(head, f, "tv");
  auto to = head.options().test;
  to.soft_masks = true;
  const auto dets = head.predict(b.feats, b.proposals, b.shapes, to);
  for (int i = 0; i < 2; ++i) check_detections(dets[static_cast<std::size_t>(i)], f, "tvpred", i);
  CHECK(dets[0].soft_masks.shape() == Shape{dets[0].size(), 28, 28});
}

TEST_CASE("StandardRoIHead: double-precision gradient check through RoIAlign (mmdet and torchvision extraction)") {
  for (auto style : {RoIHeadStyle::Mmdet, RoIHeadStyle::Torchvision}) {
    const std::string which = style == RoIHeadStyle::Mmdet ? "mmdet" : "torchvision";
    INFO(which);
    manual_seed(7);
    auto o = small_options(style, 2, 6, 2, 3);
    StandardRoIHead<double> head(o);
    // Nonzero biases: with mmdet's zero biases a conv over an all-zero window sits exactly on a ReLU kink.
    Rng brng(4);
    visit_parameters(head, "", [&](const std::string& name, Param<double, Cpu>& p) {
      if (name.size() > 4 && name.compare(name.size() - 4, 4, "bias") == 0)
        for (index_t i = 0; i < p.value.numel(); ++i) p.value[i] = brng.normal(0.0, 0.2);
    });
    RoIHeadInput<double> in;
    for (int l = 0; l < 4; ++l) {
      const index_t h = 64 >> (l + 2), w = 80 >> (l + 2);
      in.feats.push_back(test::random_tensor<double>(Shape{2, 2, h, w}, 100 + static_cast<std::uint64_t>(l)));
    }
    // RoIs of every size class (finest_scale 6 for mmdet: P2..P5), both images.
    std::vector<Tensor<double>> boxes(2, Tensor<double>(Shape{3, 4}));
    const double r[2][3][4] = {{{3.3, 4.1, 11.7, 12.9}, {10.2, 7.5, 36.4, 40.8}, {5.1, 2.2, 70.6, 60.3}},
                               {{20.4, 11.6, 46.1, 30.3}, {30.7, 18.2, 48.9, 29.4}, {1.5, 3.5, 9.8, 8.2}}};
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 12; ++k) boxes[static_cast<std::size_t>(i)][k] = r[i][k / 4][k % 4];
    in.rois = ops::rois_from_lists(boxes);
    in.mask_rois = ops::rois_from_lists(std::vector<Tensor<double>>{boxes[0], Tensor<double>(Shape{0, 4})});
    testing::GradCheckOptions go;
    go.input_probes = 30;
    go.param_probes = 6;
    go.eps = 1e-7;  // 5 ReLUs deep over ~10^4 activations: a smaller step crosses fewer kinks
    const auto res = testing::check_gradients(head, in, go);
    INFO(res.report);
    CHECK(res.ok);
    CHECK(res.checked > 100);
  }
}

TEST_CASE("StandardRoIHead: bad input gives errors naming the head and what it expected") {
  const io::SafetensorsReader f(kFixture);
  auto b = load_batch<float>(f);
  StandardRoIHead<float> head(small_options(RoIHeadStyle::Mmdet));
  Context ctx;
  RoIHeadOutputs<float> out;
  const auto t = head.sample(b.proposals, b.gt, b.shapes, no_subsets);
  // Feature maps with the wrong number of channels.
  auto in = StandardRoIHead<float>::input(b.feats, t);
  in.feats[2] = Tensor<float>(Shape{2, 5, 4, 5});
  auto e = error_of([&] { head.forward(ctx, in, out); });
  CHECK(e.find("StandardRoIHead") != std::string::npos);
  CHECK(e.find("feature level 2 has shape [2, 5, 4, 5], expected [N, 8, H, W]") != std::string::npos);
  // RoIs of the wrong shape, or pointing outside the batch.
  in = StandardRoIHead<float>::input(b.feats, t);
  in.rois.boxes = Tensor<float>(Shape{in.rois.size(), 5});
  e = error_of([&] { head.forward(ctx, in, out); });
  CHECK(e.find("box RoIs: RoI boxes must have shape [K, 4], got [30, 5]") != std::string::npos);
  in = StandardRoIHead<float>::input(b.feats, t);
  in.mask_rois.image = clone(in.mask_rois.image);  // not the targets' own
  in.mask_rois.image[0] = 2;
  e = error_of([&] { head.forward(ctx, in, out); });
  CHECK(e.find("mask RoIs: RoI 0 belongs to image 2, but the batch has 2 images") != std::string::npos);
  // GT masks of the wrong size, or missing.
  auto gt = b.gt;
  gt[1].masks = Tensor<std::uint8_t>(Shape{2, 64, 80});
  e = error_of([&] { head.sample(b.proposals, gt, b.shapes, no_subsets); });
  CHECK(e.find("StandardRoIHead::sample: image 1: gt masks must have shape [2, 56, 72]") != std::string::npos);
  gt[1].masks = Tensor<std::uint8_t>();
  e = error_of([&] { head.sample(b.proposals, gt, b.shapes, no_subsets); });
  CHECK(e.find("got none") != std::string::npos);
  // A label outside the classes; proposals of the wrong shape; targets that do not fit the outputs.
  gt = b.gt;
  gt[0].labels[1] = 3;
  e = error_of([&] { head.sample(b.proposals, gt, b.shapes, no_subsets); });
  CHECK(e.find("gt label 3 of box 1 is outside [0, 3)") != std::string::npos);
  auto props = b.proposals;
  props[0] = Tensor<float>(Shape{4, 5});
  e = error_of([&] { head.sample(props, b.gt, b.shapes, no_subsets); });
  CHECK(e.find("proposals must have shape [N, 4]") != std::string::npos);
  head.forward(ctx, StandardRoIHead<float>::input(b.feats, t), out);
  auto t2 = t;
  t2.labels = Tensor<std::int64_t>(Shape{3});
  RoIHeadOutputs<float> dout;
  e = error_of([&] { head.loss(out, t2, dout); });
  CHECK(e.find("cls_score has shape [30, 4], expected [3, nc + 1]") != std::string::npos);
  // Inconsistent options.
  auto o = small_options(RoIHeadStyle::Mmdet);
  o.mask_head->background_channel = true;
  e = error_of([&] { StandardRoIHead<float> h(o); });
  CHECK(e.find("must match the box head's style") != std::string::npos);
  // The predict batch must agree with the features.
  e = error_of([&] { head.predict(b.feats, {b.proposals[0]}, b.shapes); });
  CHECK(e.find("a batch of 2 images but 1 proposal lists") != std::string::npos);
}
