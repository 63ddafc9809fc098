// mmseg's segmentor against PyTorch (tools/fixtures/segmentor.py -> tests/fixtures/segmentor.safetensors):
// EncoderDecoder with a GCHead / NLHead / FCNHead decode head and the auxiliary FCNHead on a narrow
// dilated ResNetV1c (D8), in training mode: logits, mmseg's losses, the input gradient and every
// parameter gradient of the summed losses, float32 against float64, 1e-4 normwise. Weights come from
// the hash init on both sides (tests/support/hash_init.hpp). Also: a gradient check in double,
// deep copies, state-dict names, and clear errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "gcnet/models/resnet.hpp"
#include "gcnet/seg/encoder_decoder.hpp"
#include "gcnet/seg/gc_head.hpp"
#include "gcnet/seg/nl_head.hpp"
#include "gcnet/testing/copy_check.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "gcnet/testing/parity.hpp"
#include "support/fixture_compare.hpp"
#include "support/hash_init.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;

namespace {

template <class T>
using V1cBackbone = ResNetBackbone<T, Cpu, BatchNorm2d<T, Cpu>, void, true>;

// The fixture's backbone: ResNetV1c D8, stem 16, base 4, one block a stage.
ResNetOptions narrow_d8() {
  ResNetOptions o;
  o.stem_channels = 16;
  o.base_channels = 4;
  o.blocks = {1, 1, 1, 1};
  o.strides = {1, 2, 1, 1};
  o.dilations = {1, 1, 2, 4};
  o.contract_dilation = true;
  return o;
}

DecodeHeadOptions decode_options(index_t channels = 16, double dropout = 0.0) {
  return {.in_channels = 128, .channels = channels, .num_classes = 5, .in_index = 3, .dropout_ratio = dropout};
}
FCNHeadOptions aux_options(double dropout = 0.0) {
  FCNHeadOptions o;
  o.head = {.in_channels = 64, .channels = 8, .num_classes = 5, .in_index = 2, .dropout_ratio = dropout,
            .loss_weight = 0.4};
  o.num_convs = 1;
  o.concat_input = false;
  return o;
}

template <class T>
using Segmentor = EncoderDecoder<V1cBackbone<T>, FCNHead<T, Cpu>, FCNHead<T, Cpu>>;
template <class T>
using SegmentorNoAux = EncoderDecoder<V1cBackbone<T>, FCNHead<T, Cpu>>;

template <class Seg>
void run_case(Seg& seg, const std::string& c) {
  const io::SafetensorsReader f(std::string(GCNET_FIXTURE_DIR) + "/segmentor.safetensors");
  test::hash_init(seg);
  test::check_same_names(test::param_shapes(seg, ""), test::fixture_names(f, c + ".params"), c + " parameters");

  testing::ParityResult r;
  const auto x = f.tensor<float>(c + ".input");
  const auto labels = f.tensor<std::int64_t>(c + ".labels");
  Context ctx;  // training
  SegOutputs<float, Cpu> out, dout;
  out.decode = full<float>(f.tensor<double>(c + ".decode").shape(), std::numeric_limits<float>::quiet_NaN());
  seg.forward(ctx, x, out);
  r.add(c + ".decode", testing::relative_error(out.decode, f.tensor<double>(c + ".decode")), 1e-4);
  if (Seg::has_aux) r.add(c + ".aux", testing::relative_error(out.aux, f.tensor<double>(c + ".aux")), 1e-4);
  else CHECK_FALSE(out.aux.defined());

  zero_grad_like(out, dout);
  const NamedLosses losses = seg.losses(out, labels, dout);
  auto loss = [&](const std::string& name) {
    for (const auto& [n, v] : losses)
      if (n == name) return v;
    FAIL("no loss named ", name);
    return 0.0;
  };
  auto scalar = [&](const std::string& key) {
    Tensor<float, Cpu> t(Shape{1});
    t[0] = static_cast<float>(loss(key == "loss_decode" ? "decode.loss_ce" : "aux.loss_ce"));
    r.add(c + "." + key, testing::relative_error(t, f.tensor<double>(c + "." + key)), 1e-5);
  };
  scalar("loss_decode");
  if (Seg::has_aux) scalar("loss_aux");
  const double acc = loss("decode.acc_seg");
  CHECK(acc >= 0.0);
  CHECK(acc <= 100.0);

  visit_parameters(seg, "", [&](const std::string&, Param<float, Cpu>& p) {
    fill(p.grad, std::numeric_limits<float>::quiet_NaN());
  });
  Tensor<float, Cpu> dx = zeros<float>(x.shape());
  seg.backward(ctx, x, out, dout, dx);
  r.add(c + ".grad.input", testing::relative_error(dx, f.tensor<double>(c + ".grad.input")), 1e-4);
  test::compare_parameter_gradients(seg, "", f, r, c + ".", 1e-4, /*nl_with_batch_norm=*/c == "nl");
  INFO(c, ": max relative error ", r.max_error, "\n", r.report);
  CHECK(r.ok);
  MESSAGE(c, ": max relative error ", r.max_error);
}

}  // namespace

TEST_CASE("segmentor parity: GCHead decode head and auxiliary FCNHead on a dilated ResNetV1c") {
  Segmentor<float> seg{V1cBackbone<float>(narrow_d8()), GCHead<float, Cpu>(decode_options()),
                       FCNHead<float, Cpu>(aux_options())};
  run_case(seg, "gc");
}

TEST_CASE("segmentor parity: NLHead decode head and auxiliary FCNHead on a dilated ResNetV1c") {
  Segmentor<float> seg{V1cBackbone<float>(narrow_d8()), NLHead<float, Cpu>(decode_options()),
                       FCNHead<float, Cpu>(aux_options())};
  run_case(seg, "nl");
}

TEST_CASE("segmentor parity: FCNHead with concat_input and align_corners, no auxiliary head") {
  FCNHeadOptions o;
  o.head = decode_options();
  o.head.align_corners = true;
  SegmentorNoAux<float> seg{V1cBackbone<float>(narrow_d8()), FCNHead<float, Cpu>(o)};
  run_case(seg, "fcn");
}

TEST_CASE("segmentor: mmseg state-dict names") {
  Segmentor<float> seg{V1cBackbone<float>(narrow_d8()), GCHead<float, Cpu>(decode_options()),
                       FCNHead<float, Cpu>(aux_options())};
  const auto names = test::param_shapes(seg, "");
  for (const char* n : {"backbone.stem.0.weight", "backbone.layer4.0.conv2.weight",
                        "decode_head.convs.0.conv.weight", "decode_head.convs.0.bn.weight",
                        "decode_head.gc_block.conv_mask.weight", "decode_head.gc_block.channel_add_conv.0.weight",
                        "decode_head.convs.1.conv.weight", "decode_head.conv_cat.conv.weight",
                        "decode_head.conv_seg.weight", "decode_head.conv_seg.bias",
                        "auxiliary_head.convs.0.conv.weight", "auxiliary_head.conv_seg.weight"})
    CHECK_MESSAGE(names.count(n) == 1, n);
  CHECK(names.count("auxiliary_head.conv_cat.conv.weight") == 0);
}

TEST_CASE("segmentor: gradient check in double through backbone, GC head, aux head and dropout-free classifiers") {
  manual_seed(3);
  Segmentor<double> seg{V1cBackbone<double>(narrow_d8()), GCHead<double, Cpu>(decode_options(8)),
                        FCNHead<double, Cpu>(aux_options())};
  test::hash_init(seg);
  testing::GradCheckOptions g;
  g.input_probes = 8;
  g.param_probes = 0;  // every parameter tensor along a random direction instead
  g.directions = 1;
  g.tolerance = 1e-4;
  g.eps = 1e-7;
  auto r = testing::check_gradients(seg, test::random_tensor<double>(Shape{2, 3, 32, 32}, 4), g);
  INFO(r.report);
  CHECK(r.ok);
  CHECK(r.directions > 60);
  MESSAGE("segmentor: ", r.checked, " entries and ", r.directions, " directions, max error ", r.max_error);
}

TEST_CASE("segmentor: NL head gradient check in double") {
  manual_seed(4);
  SegmentorNoAux<double> seg{V1cBackbone<double>(narrow_d8()), NLHead<double, Cpu>(decode_options(8))};
  test::hash_init(seg);
  testing::GradCheckOptions g;
  g.input_probes = 4;
  g.param_probes = 0;
  g.directions = 1;
  g.tolerance = 1e-4;
  g.eps = 1e-7;
  auto r = testing::check_gradients(seg, test::random_tensor<double>(Shape{2, 3, 32, 32}, 5), g);
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("segmentor: copies are deep") {
  manual_seed(5);
  Segmentor<double> seg{V1cBackbone<double>(narrow_d8()), GCHead<double, Cpu>(decode_options()),
                        FCNHead<double, Cpu>(aux_options())};
  auto r = testing::check_copy_is_deep(seg, test::random_tensor<double>(Shape{2, 3, 32, 32}, 6),
                                       test::random_tensor<double>(Shape{2, 3, 32, 32}, 7));
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("segmentor: the auxiliary head runs in training only; dropout only in training") {
  manual_seed(6);
  Segmentor<float> seg{V1cBackbone<float>(narrow_d8()), GCHead<float, Cpu>(decode_options(16, 0.5)),
                       FCNHead<float, Cpu>(aux_options(0.5))};
  const auto x = test::random_tensor<float>(Shape{1, 3, 32, 32}, 8);
  SegOutputs<float, Cpu> a, b;
  seg.forward(Context::eval(), x, a);
  CHECK_FALSE(a.aux.defined());
  seg.forward(Context::eval(), x, b);
  bool same = a.decode.shape() == b.decode.shape();
  for (index_t i = 0; same && i < a.decode.numel(); ++i) same = a.decode[i] == b.decode[i];
  CHECK(same);  // eval: no dropout
  const auto logits = seg.predict_logits(x);
  CHECK(logits.shape() == Shape({1, 5, 32, 32}));
  Context train;
  seg.forward(train, x, a);
  CHECK(a.aux.defined());
  CHECK(a.aux.shape() == Shape({1, 5, 4, 4}));
}

TEST_CASE("segmentor: clear errors") {
  auto o = narrow_d8();
  o.out_indices = {3};
  Segmentor<float> seg{V1cBackbone<float>(o), GCHead<float, Cpu>(decode_options()),
                       FCNHead<float, Cpu>(aux_options())};
  SegOutputs<float, Cpu> out;
  CHECK_THROWS_WITH_AS(seg.forward(Context{}, test::random_tensor<float>(Shape{1, 3, 32, 32}, 9), out),
                       doctest::Contains("auxiliary_head reads backbone stage 2"), Error);
  CHECK_THROWS_WITH_AS(GCHead<float>(DecodeHeadOptions{.in_channels = 8, .channels = 4, .num_classes = 0}),
                       doctest::Contains("num_classes must be positive"), Error);
  CHECK_THROWS_WITH_AS(FCNHead<float>(FCNHeadOptions{.head = decode_options(), .num_convs = 0}),
                       doctest::Contains("in_channels (128) must equal channels (16)"), Error);
  FCNHead<float> head(FCNHeadOptions{.head = decode_options()});
  Tensor<float, Cpu> y;
  CHECK_THROWS_WITH_AS(head.forward(Context{}, test::random_tensor<float>(Shape{1, 64, 8, 8}, 10), y),
                       doctest::Contains("expected input with 128 channels"), Error);
  SegLoss<float> loss(decode_options());
  CHECK_THROWS_WITH_AS(loss.forward(test::random_tensor<float>(Shape{2, 5, 4, 4}, 11), zeros<std::int64_t>(Shape{1, 8, 8})),
                       doctest::Contains("labels must be [N, H, W] with N = 2"), Error);
}

TEST_CASE("SegLoss: acc_seg is the share of counted pixels whose first maximum is the label, over several pixel tiles") {
  // 2 images of 23x17 pixels (391: one full tile of 256 and a partial one), 5 classes, ties,
  // ignored pixels; an ignore index of 3 (a class id) must not count its pixels as right.
  for (const std::int64_t ignore : {std::int64_t{255}, std::int64_t{3}}) {
    CAPTURE(ignore);
    const index_t n = 2, k = 5, h = 23, w = 17, hw = h * w;
    Tensor<float, Cpu> logits = test::random_tensor<float>(Shape{n, k, h, w}, 7);
    // Quarters: exact ties between classes, and other values far enough apart that the softmax
    // keeps their order.
    for (index_t i = 0; i < logits.numel(); ++i) logits[i] = std::round(logits[i] * 4) / 4;
    Tensor<std::int64_t, Cpu> labels(Shape{n, h, w});
    for (index_t i = 0; i < labels.numel(); ++i) labels[i] = i % 11 == 0 ? ignore : (i * 7919) % k;
    SegLoss<float, Cpu> loss({.ignore_index = ignore});
    loss.forward(logits, labels);
    std::int64_t right = 0, counted = 0;
    for (index_t b = 0; b < n; ++b)
      for (index_t j = 0; j < hw; ++j) {
        const std::int64_t label = labels[b * hw + j];
        if (label == ignore) continue;
        ++counted;
        index_t best = 0;  // the first maximum of the logits (softmax keeps the order)
        for (index_t c = 1; c < k; ++c)
          if (logits[(b * k + c) * hw + j] > logits[(b * k + best) * hw + j]) best = c;
        right += best == label;
      }
    REQUIRE(counted > 0);
    CHECK(loss.accuracy() == doctest::Approx(100.0 * double(right) / double(counted)).epsilon(1e-12));
  }
}
