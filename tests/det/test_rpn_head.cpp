// RPNHead (include/gcnet/det/rpn_head.hpp): parity with mmdet v3's RPNHead restated in plain
// PyTorch and with torchvision's RegionProposalNetwork (fixture: tools/fixtures/det_rpn_head.py ->
// tests/fixtures/det_rpn_head.safetensors), a gradient check of the head shared over five levels,
// and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <deque>
#include <limits>
#include <string>
#include <vector>

#include "gcnet/det/rpn_head.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/testing/copy_check.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/errors.hpp"

using namespace gcnet;
using gcnet::test::error_of;
using testing::relative_error;

namespace {
const std::string kFixture = std::string(GCNET_FIXTURE_DIR) + "/det_rpn_head.safetensors";
constexpr int kLevels = 5;

RPNHeadOptions fixture_options(const io::SafetensorsReader& f, RPNStyle style) {
  const auto c = static_cast<index_t>(f.meta_int("cfg.channels"));
  RPNHeadOptions o = style == RPNStyle::mmdet ? mmdet_rpn_head_options(c, c) : torchvision_rpn_head_options(c);
  o.train.sampler.num = static_cast<index_t>(f.meta_int("cfg.sampler_num"));
  o.train.sampler.pos_fraction = f.meta_double("cfg.sampler_pos_fraction");
  return o;
}

template <class T>
RPNHead<T> fixture_head(const io::SafetensorsReader& f, const RPNHeadOptions& o) {
  RPNHead<T> head(o);
  visit_parameters(head, "", [&](const std::string& name, Param<T, Cpu>& p) {
    p.load(f.tensor<T>("param." + name), f.path());
  });
  return head;
}

template <class T>
std::vector<Tensor<T>> fixture_levels(const io::SafetensorsReader& f, const std::string& key) {
  std::vector<Tensor<T>> out;
  for (int l = 0; l < kLevels; ++l) out.push_back(f.tensor<T>(key + "." + std::to_string(l)));
  return out;
}

std::vector<DetImageShape> fixture_shapes(const io::SafetensorsReader& f) {
  std::vector<DetImageShape> s;
  for (int i = 0; i < 2; ++i) {
    const std::string v = f.meta("img." + std::to_string(i));
    DetImageShape d;
    d.img_h = d.ori_h = std::stoll(v.substr(0, v.find(',')));
    d.img_w = d.ori_w = std::stoll(v.substr(v.find(',') + 1));
    s.push_back(d);
  }
  return s;
}

template <class T>
std::vector<DetGroundTruth<T>> fixture_gt(const io::SafetensorsReader& f) {
  std::vector<DetGroundTruth<T>> gt(2);
  for (int i = 0; i < 2; ++i) {
    gt[static_cast<std::size_t>(i)].boxes = f.tensor<T>("gt." + std::to_string(i) + ".boxes");
    gt[static_cast<std::size_t>(i)].labels = zeros<std::int64_t>(Shape{gt[static_cast<std::size_t>(i)].boxes.size(0)});
  }
  return gt;
}

// The fixture's sampler subsets, in call order; each call must ask for the recorded gallery size.
struct FixturePicker {
  std::deque<std::pair<index_t, std::vector<index_t>>> calls;
  explicit FixturePicker(const io::SafetensorsReader& f) {
    for (long long k = 0; k < f.meta_int("cfg.picks"); ++k) {
      const auto perm = f.tensor<double>("pick." + std::to_string(k));
      std::vector<index_t> v;
      for (index_t i = 0; i < perm.numel(); ++i) v.push_back(static_cast<index_t>(perm[i]));
      calls.emplace_back(static_cast<index_t>(f.meta_int("pick." + std::to_string(k) + ".n")), v);
    }
  }
  ops::SubsetPicker picker() {
    return [this](index_t n, index_t k) {
      GCNET_CHECK(!calls.empty(), "FixturePicker: an unexpected call (", n, ", ", k, ")");
      auto [en, v] = calls.front();
      calls.pop_front();
      GCNET_CHECK(en == n && static_cast<index_t>(v.size()) == k, "FixturePicker: asked for ", k, " of ", n,
                  ", the fixture picked ", v.size(), " of ", en);
      return v;
    };
  }
};

template <class T>
void fill_nan(std::vector<Tensor<T>>& ts, const std::vector<Tensor<T>>& like) {
  ts.resize(like.size());
  for (std::size_t l = 0; l < like.size(); ++l) {
    ts[l] = Tensor<T>(like[l].shape());
    fill(ts[l], std::numeric_limits<T>::quiet_NaN());
  }
}

template <class T>
void check_proposals(const std::vector<RPNProposals<T>>& got, const io::SafetensorsReader& f, const std::string& c,
                     double tol) {
  REQUIRE(got.size() == 2);
  for (int i = 0; i < 2; ++i) {
    CAPTURE(c);
    CAPTURE(i);
    const std::string k = "prop." + c + "." + std::to_string(i);
    const auto boxes = f.tensor<double>(k + ".boxes");
    const auto scores = f.tensor<double>(k + ".scores");
    const auto& p = got[static_cast<std::size_t>(i)];
    REQUIRE(p.boxes.shape() == boxes.shape());
    REQUIRE(p.scores.shape() == scores.shape());
    CHECK(boxes.size(0) > 0);
    CHECK(relative_error(p.boxes, boxes) <= tol);
    CHECK(relative_error(p.scores, scores) <= tol);
  }
}
}  // namespace

TEST_CASE("RPNHead: mmdet presets and the shared state dict") {
  const RPNHeadOptions o = mmdet_rpn_head_options();
  CHECK(o.train.sampler.num == 256);
  CHECK(o.train.sampler.pos_fraction == 0.5);
  CHECK_FALSE(o.train.sampler.add_gt_as_proposals);
  CHECK(o.train.assigner.pos_iou_thr == 0.7);
  CHECK(o.train.assigner.min_pos_iou == 0.3);
  CHECK(o.train_proposals.nms_pre == 2000);
  CHECK(o.train_proposals.max_per_img == 1000);
  CHECK(o.test.nms_pre == 1000);
  RPNHead<float> head(mmdet_rpn_head_options(16, 16));
  std::vector<std::string> names;
  for (const auto& [n, p] : named_parameters(head)) names.push_back(n);
  CHECK(names == std::vector<std::string>{"rpn_conv.weight", "rpn_conv.bias", "rpn_cls.weight", "rpn_cls.bias",
                                          "rpn_reg.weight", "rpn_reg.bias"});
  CHECK(head.num_anchors() == 3);
  CHECK(head.num_levels() == 5);
}

TEST_CASE("RPNHead: forward, losses and all gradients equal mmdet's RPNHead (float32 vs float64)") {
  io::SafetensorsReader f(kFixture);
  RPNHead<float> head = fixture_head<float>(f, fixture_options(f, RPNStyle::mmdet));
  const auto feats = fixture_levels<float>(f, "x");
  const auto shapes = fixture_shapes(f);
  const auto gt = fixture_gt<float>(f);
  const Context ctx = Context::train();

  RPNOutputs<float> out;
  fill_nan(out.cls_scores, fixture_levels<float>(f, "y.cls"));
  fill_nan(out.bbox_preds, fixture_levels<float>(f, "y.reg"));
  head.forward(ctx, feats, out);
  for (int l = 0; l < kLevels; ++l) {
    CAPTURE(l);
    CHECK(relative_error(out.cls_scores[static_cast<std::size_t>(l)], f.tensor<double>("y.cls." + std::to_string(l))) <= 1e-5);
    CHECK(relative_error(out.bbox_preds[static_cast<std::size_t>(l)], f.tensor<double>("y.reg." + std::to_string(l))) <= 1e-5);
  }

  // Targets: the sampler's choices injected; counts as mmdet's.
  FixturePicker pick(f);
  const RPNTargets<float> t = head.targets(out, gt, shapes, pick.picker());
  CHECK(pick.calls.empty());
  CHECK(t.avg_factor == static_cast<double>(f.meta_int("cfg.avg_factor")));
  for (int i = 0; i < 2; ++i) {
    CHECK(t.sampling[static_cast<std::size_t>(i)].pos_inds.size(0) == f.meta_int("num_pos." + std::to_string(i)));
    CHECK(t.sampling[static_cast<std::size_t>(i)].neg_inds.size(0) == f.meta_int("num_neg." + std::to_string(i)));
  }

  RPNOutputs<float> dout;
  fill_nan(dout.cls_scores, out.cls_scores);
  fill_nan(dout.bbox_preds, out.bbox_preds);
  FixturePicker pick2(f);
  const NamedLosses losses = head.loss(out, gt, shapes, pick2.picker(), dout);
  REQUIRE(losses.size() == 2);
  CHECK(losses[0].first == "loss_rpn_cls");
  CHECK(losses[1].first == "loss_rpn_bbox");
  const double lc = f.tensor<double>("loss_cls")[0], lb = f.tensor<double>("loss_bbox")[0];
  CHECK(std::abs(losses[0].second - lc) <= 1e-5 * std::abs(lc));
  CHECK(std::abs(losses[1].second - lb) <= 1e-5 * std::abs(lb));

  std::vector<Tensor<float>> dfeats;
  for (const auto& x : feats) dfeats.push_back(zeros<float>(x.shape()));
  visit_parameters(head, "", [](const std::string&, Param<float, Cpu>& p) {
    fill(p.grad, std::numeric_limits<float>::quiet_NaN());
  });
  head.backward(ctx, feats, out, dout, dfeats);  // a NaN left in dout would reach these
  double worst = 0;
  for (int l = 0; l < kLevels; ++l) {
    const double e = relative_error(dfeats[static_cast<std::size_t>(l)], f.tensor<double>("dx." + std::to_string(l)));
    CAPTURE(l);
    CHECK(e <= 1e-4);
    worst = std::max(worst, e);
  }
  for (const auto& [name, p] : named_parameters(head)) {
    const double e = relative_error(p->grad, f.tensor<double>("grad." + name));
    CAPTURE(name);
    CHECK(e <= 1e-4);
    worst = std::max(worst, e);
  }
  MESSAGE("worst gradient error " << worst);
}

// The proposals of the fixture's head in T (the reference is float64: 1e-10 in double; float32 gives
// the same count and order here, the scores having no near-ties).
template <class T>
void check_fixture_proposals(const io::SafetensorsReader& f, const RPNHeadOptions& o, const std::string& test,
                             const std::string& train, double tol) {
  RPNHead<T> head = fixture_head<T>(f, o);
  RPNOutputs<T> out;
  head.forward(Context::eval(), fixture_levels<T>(f, "x"), out);
  check_proposals(head.proposals(out, fixture_shapes(f), false), f, test, tol);
  if (!train.empty()) check_proposals(head.proposals(out, fixture_shapes(f), true), f, train, tol);
}

TEST_CASE("RPNHead: proposals equal mmdet's (training and test settings) and torchvision's RPN") {
  io::SafetensorsReader f(kFixture);
  for (const RPNStyle style : {RPNStyle::mmdet, RPNStyle::torchvision}) {
    RPNHeadOptions o = fixture_options(f, style);
    const bool mm = style == RPNStyle::mmdet;
    const std::string train = mm ? "mmdet_train" : "", test = mm ? "mmdet_test" : "tv_test";
    o.test.nms_pre = f.meta_int("prop." + test + ".nms_pre");
    o.test.max_per_img = f.meta_int("prop." + test + ".max_per_img");
    if (mm) {
      o.train_proposals.nms_pre = f.meta_int("prop." + train + ".nms_pre");
      o.train_proposals.max_per_img = f.meta_int("prop." + train + ".max_per_img");
    }
    check_fixture_proposals<double>(f, o, test, train, 1e-10);
    check_fixture_proposals<float>(f, o, test, train, 1e-4);
  }
}

TEST_CASE("RPNHead: gradient check of the head shared over five levels, copies are deep (double)") {
  RPNHeadOptions o = mmdet_rpn_head_options(3, 4);
  o.init_std = 0.4;  // away from mmdet's 0.01 so every term of the gradient matters
  RPNHead<double> head(o);
  std::vector<Tensor<double>> feats, feats2;
  const index_t sizes[kLevels][2] = {{6, 5}, {3, 3}, {2, 2}, {1, 1}, {1, 1}};
  Rng rng(5);
  for (const auto& s : sizes) {
    Tensor<double> x(Shape{2, 3, s[0], s[1]}), x2(x.shape());
    for (index_t i = 0; i < x.numel(); ++i) x[i] = rng.normal(), x2[i] = rng.normal();
    feats.push_back(x);
    feats2.push_back(x2);
  }
  const auto r = testing::check_gradients(head, feats);
  CHECK_MESSAGE(r.ok, r.report);
  CHECK(r.checked > 0);
  MESSAGE("max error " << r.max_error << " over " << r.checked << " entries, " << r.directions << " directions");
  CHECK(testing::shared_storage(head).empty());
  const auto c = testing::check_copy_is_deep(head, feats, feats2);
  CHECK_MESSAGE(c.ok, c.report);
}

TEST_CASE("RPNHead: loss without GT boxes, with the Rng, every gradient element written") {
  RPNHeadOptions o = mmdet_rpn_head_options(4, 4);
  RPNHead<float> head(o);
  std::vector<Tensor<float>> feats;
  for (int l = 0; l < kLevels; ++l) {
    const index_t h = std::max<index_t>(1, 16 >> l), w = std::max<index_t>(1, 24 >> l);
    feats.push_back(zeros<float>(Shape{2, 4, h, w}));
  }
  RPNOutputs<float> out, dout;
  head.forward(Context::train(), feats, out);
  std::vector<DetImageShape> shapes(2);
  shapes[0].img_h = 64, shapes[0].img_w = 96, shapes[1].img_h = 40, shapes[1].img_w = 70;
  std::vector<DetGroundTruth<float>> gt(2);
  gt[0].boxes = Tensor<float>(Shape{0, 4});
  gt[1].boxes = Tensor<float>(Shape{1, 4});
  gt[1].boxes[0] = 4, gt[1].boxes[1] = 6, gt[1].boxes[2] = 40, gt[1].boxes[3] = 30;
  Rng rng(3);
  const NamedLosses l = head.loss(out, gt, shapes, rng, dout);
  CHECK(l[0].second > 0);
  CHECK(l[1].second >= 0);
  const RPNTargets<float> t = head.targets(out, gt, shapes, [&rng](index_t n, index_t k) { return ops::random_subset(n, k, rng); });
  CHECK(t.sampling[0].pos_inds.size(0) == 0);  // no GT: all negatives
  CHECK(t.sampling[0].neg_inds.size(0) == 256);
  CHECK(t.sampling[1].pos_inds.size(0) > 0);
  for (const auto& d : dout.cls_scores)
    for (index_t i = 0; i < d.numel(); ++i) REQUIRE(std::isfinite(d[i]));
  // Proposals of an image lie inside it.
  for (const auto& p : head.proposals(out, shapes, true)) {
    for (index_t i = 0; i < p.size(); ++i) CHECK(p.boxes[4 * i + 2] <= 96);
  }
  const auto props = head.proposals(out, shapes, false);
  const RoIs<float> rois = to_rois(props);
  CHECK(rois.size() == props[0].size() + props[1].size());
}

TEST_CASE("RPNHead: bad input gives clear errors") {
  RPNHead<float> head(mmdet_rpn_head_options(8, 8));
  std::vector<Tensor<float>> feats;
  for (int l = 0; l < kLevels; ++l) feats.push_back(zeros<float>(Shape{2, 8, std::max(1, 16 >> l), std::max(1, 24 >> l)}));
  RPNOutputs<float> out, dout;
  const Context ctx = Context::train();

  auto four = feats;
  four.pop_back();
  CHECK(error_of([&] { head.forward(ctx, four, out); }).find("expected 5 feature levels, got 4") != std::string::npos);
  auto chans = feats;
  chans[2] = zeros<float>(Shape{2, 6, 4, 6});
  CHECK(error_of([&] { head.forward(ctx, chans, out); }).find("level 2 must have shape [N, 8, H, W], got [2, 6, 4, 6]") !=
        std::string::npos);
  auto batch = feats;
  batch[1] = zeros<float>(Shape{1, 8, 8, 12});
  CHECK(error_of([&] { head.forward(ctx, batch, out); }).find("level 1 has batch size 1, level 0 has 2") !=
        std::string::npos);

  head.forward(ctx, feats, out);
  std::vector<DetImageShape> shapes(2);
  for (auto& s : shapes) s.img_h = 64, s.img_w = 96;
  std::vector<DetGroundTruth<float>> gt(2);
  gt[0].boxes = zeros<float>(Shape{3, 5});
  gt[1].boxes = zeros<float>(Shape{0, 4});
  Rng rng(1);
  CHECK(error_of([&] { head.loss(out, gt, shapes, rng, dout); }).find("image 0: gt boxes must have shape [n, 4]") !=
        std::string::npos);
  gt[0].boxes = zeros<float>(Shape{0, 4});
  const std::vector<DetImageShape> one(1, shapes[0]);
  CHECK(error_of([&] { head.loss(out, gt, one, rng, dout); }).find("1 image shapes for a batch of 2 images") !=
        std::string::npos);
  const std::vector<DetGroundTruth<float>> three(3);
  CHECK(error_of([&] { head.loss(out, three, shapes, rng, dout); }).find("3 ground truths for a batch of 2 images") !=
        std::string::npos);
  const std::vector<DetImageShape> three_shapes(3, shapes[0]);
  CHECK(error_of([&] { head.proposals(out, three_shapes, false); }).find("3 image shapes for a batch of 2 images") !=
        std::string::npos);
  RPNOutputs<float> broken = out;
  broken.bbox_preds[3] = zeros<float>(Shape{2, 11, 2, 3});
  CHECK(error_of([&] { head.proposals(broken, shapes, false); }).find("bbox_preds[3] must be a contiguous [2, 12, 2, 3]") !=
        std::string::npos);
  std::vector<DetImageShape> empty_img = shapes;
  empty_img[1].img_h = 0;
  CHECK(error_of([&] { head.loss(out, gt, empty_img, rng, dout); }).find("image 1: image size 0x96 must be positive") !=
        std::string::npos);
}
