// Suite "seg" (issue 15): mmseg's GCNet R50-D8 (ResNetV1c-50 D8 backbone, GCHead decode head on
// c5 with 512 channels and GC ratio 1/4, auxiliary FCNHead on c4 with 256 channels, 19 classes,
// Dropout2d 0.1 before each conv_seg), as benchmarks/peer_seg.py. One case, gcnet_r50_d8:
//   fwd      whole-image inference of 1x3x512x512: eval forward, the decode logits resized
//            (bilinear) to the image, [1, 19, 512, 512] (EncoderDecoder::predict_logits)
//   fwd+bwd  one training iteration at 2x3x256x256 without the optimizer step: forward in
//            training mode, mmseg's losses (each head's logits resized to the label size, cross
//            entropy with ignore 255, mean over all pixels, aux weight 0.4; plus the decode
//            head's acc_seg), backward to every parameter (no input gradient)
// The model is build_segmentor(SegmentorConfig) with SyncBatchNorm2d, as gcnet_train_seg trains
// it: the Context's default communicator is single-process, where SyncBatchNorm2d is
// BatchNorm2d (batch statistics, no collective). Weights: the model's own init, seeded; inputs
// random normal; labels uniform in [0, 19) with about 5% ignored (255).
// The first training iteration and the first inference are checked (finite losses, the logits'
// shape) and reported once on stderr.
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <utility>

#include "bench_registry.hpp"
#include "gcnet/seg/segmentor_config.hpp"

namespace {
using namespace gcnet;

using Segmentor = GCNetSegmentor<BottleneckBlocks>;

SegmentorConfig gcnet_r50_d8_config() {
  SegmentorConfig c;
  c.depth = 50;
  c.base_channels = 64;
  c.stem_channels = 64;
  c.plugin = "none";
  c.head = "gc";
  c.head_ratio = 4;
  c.head_channels = 512;
  c.aux_channels = 256;
  c.num_classes = 19;
  c.dropout = 0.1;
  return c;
}

Tensor<float> random_images(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<float> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(rng.normal());
  return t;
}

Tensor<std::int64_t> random_labels(const Shape& s, index_t classes, std::uint64_t seed) {
  Rng rng(seed);
  Tensor<std::int64_t> t(s);
  for (index_t i = 0; i < t.numel(); ++i)
    t[i] = rng.uniform() < 0.05 ? 255 : static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(classes)));
  return t;
}

bench::Actions prepare_seg(index_t infer_size, index_t train_batch, index_t train_size) {
  struct State {
    explicit State(Segmentor model) : seg(std::move(model)) {}
    Segmentor seg;
    Tensor<float> x_infer, x_train, no_dimages;  // undefined: no input gradient wanted
    Tensor<std::int64_t> labels;
    SegOutputs<float> out, dout;
    bool train_checked = false, infer_checked = false;
  };
  manual_seed(0);
  const SegmentorConfig config = gcnet_r50_d8_config();
  auto s = std::make_shared<State>(build_segmentor<BottleneckBlocks>(config));
  s->x_infer = random_images(Shape{1, 3, infer_size, infer_size}, 1);
  s->x_train = random_images(Shape{train_batch, 3, train_size, train_size}, 2);
  s->labels = random_labels(Shape{train_batch, train_size, train_size}, config.num_classes, 3);
  return {
      {"fwd", [s] {
         const Tensor<float> logits = s->seg.predict_logits(s->x_infer);
         if (!s->infer_checked) {
           const Shape want{1, s->seg.num_classes(), s->x_infer.size(2), s->x_infer.size(3)};
           GCNET_CHECK(logits.shape() == want, "seg bench: inference logits have shape ", logits.shape().str(),
                       ", expected ", want.str());
           std::cerr << "gcnet seg: inference logits " << logits.shape().str() << "\n";
           s->infer_checked = true;
         }
       }},
      {"fwd+bwd", [s] {
         const Context ctx = Context::train();
         gcnet::forward(s->seg, ctx, s->x_train, s->out);
         zero_grad_like(s->out, s->dout);
         const NamedLosses losses = s->seg.losses(s->out, s->labels, s->dout);
         gcnet::backward(s->seg, ctx, s->x_train, s->out, s->dout, s->no_dimages);
         if (!s->train_checked) {
           std::cerr << "gcnet seg: first training iteration";
           for (const auto& [name, v] : losses) {
             GCNET_CHECK(std::isfinite(v), "seg bench: ", name, " = ", v, " is not finite");
             std::cerr << ' ' << name << '=' << v;
           }
           std::cerr << "\n";
           s->train_checked = true;
         }
       }},
  };
}

const bench::Register gcnet_r50_d8{"seg", "gcnet_r50_d8", [] { return prepare_seg(512, 2, 256); }};

}  // namespace
