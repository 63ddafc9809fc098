// Inference forwards keep less and change no number: Seq::infer (gcnet::infer), and the eval
// forwards of FPN, the RPN head and FCNMaskHead give the training forward's outputs; a backward
// after them replays what they did not keep (gradient checks in eval mode). Conv2d's
// param_backward gives backward's parameter gradients without the input gradient.
#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/compose/seq.hpp"
#include "gcnet/det/mask_head.hpp"
#include "gcnet/det/rpn_head.hpp"
#include "gcnet/layers/batch_norm2d.hpp"
#include "gcnet/layers/conv2d.hpp"
#include "gcnet/layers/max_pool2d.hpp"
#include "gcnet/layers/relu.hpp"
#include "gcnet/models/fpn.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using gcnet::test::max_abs_diff;
using gcnet::test::random_tensor;

namespace {

testing::GradCheckOptions eval_check() {
  testing::GradCheckOptions g;
  g.context = Context::eval();
  g.tolerance = 1e-4;
  g.eps = 1e-7;  // ReLU and max-pool kinks
  return g;
}

}  // namespace

TEST_CASE("Seq::infer: forward's output from two buffers; a backward after it replays forward") {
  manual_seed(41);
  auto seq = Seq(Conv2d<double>({.in = 3, .out = 6, .kernel = 3, .padding = 1}), BatchNorm2d<double>(6), ReLU<double>(),
                 Conv2d<double>({.in = 6, .out = 4, .kernel = 3, .stride = 2, .padding = 1}), ReLU<double>(),
                 MaxPool2d<double>({.kernel = 2, .stride = Size2(2)}));
  set_training(seq, false);
  const auto x = random_tensor<double>(Shape{2, 3, 12, 12}, 42), dy = random_tensor<double>(Shape{2, 4, 3, 3}, 43);
  Tensor<double> y1, y2, dx1 = zeros<double>(x.shape()), dx2 = zeros<double>(x.shape());
  seq.forward(x, y1);
  seq.backward(x, y1, dy, dx1);
  const auto g1 = clone(seq.get<0>().weight().grad);
  gcnet::infer(seq, x, y2);
  CHECK(max_abs_diff(y1, y2) == 0.0);
  seq.backward(x, y2, dy, dx2);
  CHECK(max_abs_diff(dx1, dx2) == 0.0);
  CHECK(max_abs_diff(g1, seq.get<0>().weight().grad) == 0.0);
}

TEST_CASE("FPN eval forward: the training forward's levels; gradient check in eval mode (double)") {
  manual_seed(44);
  FPN<double> fpn({.in_channels = {4, 6, 8}, .out_channels = 5, .num_outs = 5});
  FeatureMaps<double, Cpu> maps;
  maps.c3 = random_tensor<double>(Shape{2, 4, 9, 7}, 45);
  maps.c4 = random_tensor<double>(Shape{2, 6, 5, 4}, 46);
  maps.c5 = random_tensor<double>(Shape{2, 8, 3, 2}, 47);
  std::vector<Tensor<double>> train, eval;
  fpn.forward(Context::train(), maps, train);
  fpn.forward(Context::eval(), maps, eval);
  REQUIRE(train.size() == eval.size());
  for (std::size_t k = 0; k < train.size(); ++k) CHECK(max_abs_diff(train[k], eval[k]) < 1e-14);
  const auto r = testing::check_gradients(fpn, maps, eval_check());
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("RPN head eval forward: the training forward's outputs; gradient check in eval mode (double)") {
  RPNHeadOptions o = mmdet_rpn_head_options(3, 4);
  o.init_std = 0.4;
  RPNHead<double> head(o);
  std::vector<Tensor<double>> feats;
  const index_t sizes[5][2] = {{6, 5}, {3, 3}, {2, 2}, {1, 1}, {1, 1}};
  for (std::size_t k = 0; k < 5; ++k) feats.push_back(random_tensor<double>(Shape{2, 3, sizes[k][0], sizes[k][1]}, 50 + k));
  RPNOutputs<double> train, eval;
  gcnet::forward(head, Context::train(), feats, train);
  gcnet::forward(head, Context::eval(), feats, eval);
  for_each_tensor_pair(train, eval, [&](const std::string& name, const auto& a, const auto& b, bool) {
    INFO(name);
    CHECK(max_abs_diff(a, b) == 0.0);
  });
  const auto r = testing::check_gradients(head, feats, eval_check());
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("FCNMaskHead eval forward: the training forward's logits; gradient check in eval mode (double)") {
  manual_seed(55);
  FCNMaskHead<double> head({.in_channels = 3, .conv_out_channels = 4, .num_convs = 2, .roi_feat_size = 4,
                            .num_classes = 3});
  // Biases away from their zero init: a deconv pixel fed only by ReLU zeros would sit on the
  // next ReLU's kink, where central differences mean nothing.
  Rng rng(60);
  visit_parameters(head, "", [&](const std::string&, Param<double, Cpu>& p) {
    for (index_t i = 0; i < p.value.numel(); ++i) p.value[i] += 0.3 * rng.normal();
  });
  const auto x = random_tensor<double>(Shape{3, 3, 4, 4}, 56);
  Tensor<double> train, eval;
  head.forward(Context::train(), x, train);
  head.forward(Context::eval(), x, eval);
  CHECK(max_abs_diff(train, eval) == 0.0);
  const auto r = testing::check_gradients(head, x, eval_check());
  INFO(r.report);
  CHECK(r.ok);
}

TEST_CASE("Conv2d::param_backward: backward's parameter gradients, on the band and the channel-split paths") {
  manual_seed(57);
  for (const index_t side : {24, 6}) {  // 576 window positions (bands) and 36 (split by channel)
    CAPTURE(side);
    Conv2d<double> conv({.in = 5, .out = 7, .kernel = 3, .padding = 1});
    const auto x = random_tensor<double>(Shape{2, 5, side, side}, 58);
    Tensor<double> y, dx = zeros<double>(x.shape());
    conv.forward(x, y);
    const auto dy = random_tensor<double>(y.shape(), 59);
    conv.backward(x, y, dy, dx);
    const auto gw = clone(conv.weight().grad), gb = clone(conv.bias()->grad);
    fill(conv.weight().grad, std::nan(""));
    fill(conv.bias()->grad, std::nan(""));
    conv.param_backward(x, y, dy);
    CHECK(max_abs_diff(gw, conv.weight().grad) < 1e-12);
    CHECK(max_abs_diff(gb, conv.bias()->grad) < 1e-12);
  }
}
