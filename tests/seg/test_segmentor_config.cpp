// The examples' model as values (seg/segmentor_config.hpp): the JSON a checkpoint records, the
// checks on bad values, and the segmentors it builds: D8 and D16 backbones give logits at 1/8 and
// 1/16 of the image, the context block sits where the config says, and both block families build.
#include <doctest/doctest.h>

#include <string>

#include "gcnet/seg/segmentor_config.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;

namespace {

SegmentorConfig tiny(int depth, int output_stride) {
  SegmentorConfig c;
  c.depth = depth;
  c.base_channels = 4;
  c.stem_channels = 8;
  c.output_stride = output_stride;
  c.plugin = "gc";
  c.ratio = 4;
  c.head_channels = 8;
  c.aux_channels = 4;
  c.num_classes = 3;
  return c;
}

bool has_name(const auto& names, const std::string& n) {
  for (const auto& [k, p] : names)
    if (k == n) return true;
  return false;
}

}  // namespace

TEST_CASE("segmentor config: JSON round trip keeps every field") {
  SegmentorConfig c = tiny(18, 16);
  c.plugin_stages = {false, false, true, true};
  c.head = "nl";
  c.head_ratio = 2;
  c.aux = false;
  c.dropout = 0.25;
  c.align_corners = true;
  const nlohmann::json j = c;
  const SegmentorConfig back = j.get<SegmentorConfig>();
  CHECK(nlohmann::json(back) == j);
  CHECK(back.output_stride == 16);
  CHECK(back.head == "nl");
  // A checkpoint from before output_stride existed reads as D8.
  nlohmann::json old = j;
  old.erase("output_stride");
  CHECK(old.get<SegmentorConfig>().output_stride == 8);
}

TEST_CASE("segmentor config: bad values are refused with the field named") {
  auto refused = [](SegmentorConfig c, const char* what) {
    try {
      check_segmentor_config(c);
    } catch (const Error& e) {
      const std::string m = e.what();
      CHECK_MESSAGE(m.find(what) != std::string::npos, m);
      return true;
    }
    return false;
  };
  SegmentorConfig c = tiny(18, 8);
  c.output_stride = 32;
  CHECK(refused(c, "output_stride"));
  c = tiny(18, 8);
  c.head = "aspp";
  CHECK(refused(c, "aspp"));
  c = tiny(18, 8);
  c.num_classes = 0;
  CHECK(refused(c, "num_classes"));
}

TEST_CASE("segmentor config: D8 and D16 logits, both block families, the block where asked") {
  for (int depth : {18, 50})
    for (int os : {8, 16}) {
      CAPTURE(depth);
      CAPTURE(os);
      const SegmentorConfig c = tiny(depth, os);
      with_segmentor(c, [&](auto& seg) {
        const auto params = named_parameters(seg);
        // GC after conv2 of a BasicBlock, after conv3 of a Bottleneck (mmdet names the plugin
        // context_block); stages c3-c5 by default.
        CHECK(has_name(params, "backbone.layer4.0.context_block.conv_mask.weight"));
        CHECK_FALSE(has_name(params, "backbone.layer1.0.context_block.conv_mask.weight"));
        CHECK(has_name(params, "decode_head.gc_block.conv_mask.weight"));
        CHECK(has_name(params, "auxiliary_head.convs.0.conv.weight"));
        const Tensor<float> x = test::random_tensor<float>(Shape{2, 3, 64, 48}, 7);
        Context ctx;
        ctx.training = true;
        SegOutputs<float, Cpu> out;
        seg.forward(ctx, x, out);
        CHECK(out.decode.shape() == Shape{2, 3, 64 / os, 48 / os});
        CHECK(out.aux.shape() == Shape{2, 3, 64 / os, 48 / os});
        const auto logits = seg.predict_logits(x);
        CHECK(logits.shape() == Shape{2, 3, 64, 48});
      });
    }
}
