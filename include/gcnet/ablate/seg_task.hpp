#pragma once
// The segmentation ablation (gcnet_ablate --task seg): the segmentation example's segmentor
// (mmseg's EncoderDecoder: ResNetV1c-D8 BasicBlock backbone, decode head, auxiliary FCNHead;
// seg/segmentor_config.hpp) with each variant's block in the backbone, trained on the generated
// Fashion-MNIST scenes and scored by mIoU on the validation scenes (seg/iou_metric.hpp).
//   - context-family blocks: in every residual block of the chosen stages, after bn2 (before the
//     residual add), as gcnet_train_seg's --plugin;
//   - +1 NL: one NonLocal2d in layer3's (c4's) last residual block, at the same place (the
//     backbone takes blocks only as plugins of its residual blocks, so "before the last block"
//     becomes "at the end of the last block's residual branch"; the other c4 blocks get an
//     Identity plugin);
//   - the decode head defaults to FCNHead, so only the backbone block differs; the shared layers
//     get the baseline's initial values for the seed (as ablate/classification.hpp), the data
//     order and flips come from the seed.
// Costs: params of the whole segmentor; MACs of the backbone (models/counting.hpp, the heads not
// counted) for one validation scene; latency of the whole segmentor.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gcnet/ablate/cost.hpp"
#include "gcnet/ablate/latency.hpp"
#include "gcnet/ablate/table.hpp"
#include "gcnet/ablate/variants.hpp"
#include "gcnet/compose/identity.hpp"
#include "gcnet/data/fashion_scenes_dataset.hpp"
#include "gcnet/data/loader.hpp"
#include "gcnet/models/counting.hpp"
#include "gcnet/optim/lr_schedule.hpp"
#include "gcnet/optim/sgd.hpp"
#include "gcnet/seg/iou_metric.hpp"
#include "gcnet/seg/segmentor_config.hpp"
#include "gcnet/train/progress.hpp"

namespace gcnet::ablate {

struct SegAblationSettings {
  SegmentorConfig model = [] {
    SegmentorConfig c;  // gcnet_train_seg's demo backbone, an FCN head
    c.depth = 18;
    c.base_channels = 16;
    c.stem_channels = 32;
    c.head = "fcn";
    c.head_channels = 64;
    c.aux_channels = 32;
    return c;
  }();
  std::array<bool, 4> stages{false, true, true, true};
  index_t scenes = 400, val_scenes = 100, scene_size = 128;
  int iters = 400, batch = 8;
  double lr = 0.01, momentum = 0.9, weight_decay = 5e-4;
  std::vector<std::uint64_t> seeds{0, 1, 2};
  index_t latency_batch = 2;
  int latency_warmup = 1, latency_repeats = 3;
  bool print = true;
};

using SegNet = GCNetSegmentor<BasicBlocks>;

// The variant's segmentor for `seed`, its shared layers initialized as the baseline's.
inline std::unique_ptr<SegNet> build_seg_variant(const SegAblationSettings& s, const Variant& v, std::uint64_t seed) {
  SegmentorConfig c = s.model;
  c.plugin = "none";
  c.num_classes = data::FashionScenesDataset::num_classes();
  GCNET_CHECK(resnet_depth_is_basic(c.depth), "ablation --task seg: the segmentor's depth must be 18 or 34, got ",
              c.depth);
  manual_seed(seed);
  auto base = std::make_unique<SegNet>(build_segmentor<BasicBlocks>(c));
  if (v.family == BlockFamily::None) return base;
  ResNetOptions o = seg_backbone_options(c);
  std::vector<CustomPlugin<float, Cpu>> custom;
  if (v.family == BlockFamily::Context)
    o.plugins.push_back({.block = v.block, .position = Position::AfterConv2, .stages = s.stages});
  if (v.family == BlockFamily::NonLocal) {
    auto made = std::make_shared<index_t>(0);
    const index_t c4_blocks = o.blocks[2];
    custom.push_back({.position = Position::AfterConv2, .stages = {false, false, true, false},
                      .make = [made, c4_blocks](index_t channels) -> PluginHandle<float, Cpu> {
                        if (++*made % c4_blocks != 0) return make_block_plugin("nonlocal_block", Identity<float, Cpu>());
                        NonLocal2d<float, Cpu> nl({.in_channels = channels});
                        const index_t inter = nl.inter_channels();
                        return make_block_plugin("nonlocal_block", std::move(nl), [channels, inter](const Shape& in) {
                          return double(in.n()) * non_local_macs(channels, inter, in);
                        });
                      }});
  }
  manual_seed(seed ^ 0x626c6f636bull);
  SegBackbone<BasicBlocks> backbone(o, std::move(custom));
  auto net = std::make_unique<SegNet>(std::move(backbone), SegHead(base->decode_head().options()),
                                      SegHead(base->auxiliary_head().options()));
  std::map<std::string, Param<float, Cpu>*> shared;
  for (auto& [n, p] : named_parameters(*base)) shared[n] = p;
  index_t copied = 0;
  for (auto& [n, p] : named_parameters(*net)) {
    auto it = shared.find(n);
    if (it == shared.end()) continue;
    GCNET_CHECK(it->second->value.shape() == p->value.shape(), "build_seg_variant: ", n, " differs in shape");
    copy(it->second->value, p->value);
    ++copied;
  }
  GCNET_CHECK(copied == static_cast<index_t>(shared.size()), "build_seg_variant: the ", v.name,
              " segmentor lacks some of the baseline's parameters");
  return net;
}

inline data::FashionScenesDataset seg_scenes(const SegAblationSettings& s, bool train) {
  data::FashionScenesOptions o;
  o.split = train ? data::SceneSplit::train : data::SceneSplit::val;
  o.count = train ? s.scenes : s.val_scenes;
  o.scene.height = o.scene.width = s.scene_size;
  if (train) o.transform.push_back(data::RandomFlip{});
  o.transform.push_back(data::Normalize{});
  return data::FashionScenesDataset(o);
}

// mIoU (%, as mmseg reports it) on the validation scenes, whole-image inference.
inline double evaluate_miou(SegNet& net, const SegAblationSettings& s) {
  data::DataLoader loader(seg_scenes(s, false), {.batch_size = 4, .shuffle = false, .workers = 0, .drop_last = false});
  seg::IoUMetric metric(data::FashionScenesDataset::num_classes());
  for (std::int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
    const data::Batch batch = loader.next();
    const Tensor<float> logits = net.predict_logits(batch.images);
    const index_t N = logits.size(0), K = logits.size(1), HW = logits.size(2) * logits.size(3);
    Tensor<std::int64_t> pred(Shape{N, logits.size(2), logits.size(3)});
    for (index_t n = 0; n < N; ++n)
      for (index_t j = 0; j < HW; ++j) {
        index_t best = 0;
        for (index_t k = 1; k < K; ++k)
          if (logits[(n * K + k) * HW + j] > logits[(n * K + best) * HW + j]) best = k;
        pred[n * HW + j] = best;
      }
    metric.add(pred, batch.labels);
  }
  net.set_training(true);
  return metric.compute().reported.mean_iou;
}

inline double train_seg_variant(SegNet& net, const SegAblationSettings& s, std::uint64_t seed,
                                const std::function<void(std::int64_t, double)>& on_iter = {}) {
  data::DataLoader loader(seg_scenes(s, true), {.batch_size = s.batch, .shuffle = true, .seed = seed, .workers = 0});
  Sgd<float> opt(named_parameters(net), {.lr = s.lr, .momentum = s.momentum, .weight_decay = s.weight_decay});
  const PolyLr schedule({.max_iters = s.iters, .power = 0.9, .eta_min = 1e-4});
  SegOutputs<float, Cpu> out, dout;
  Tensor<float> none;
  for (std::int64_t it = 0; it < s.iters; ++it) {
    const data::Batch b = loader.next();
    opt.apply_schedule(schedule, it);
    Context ctx;
    ctx.rng = RngStream{seed, static_cast<std::uint64_t>(it)};
    net.forward(ctx, b.images, out);
    zero_grad_like(out, dout);
    const NamedLosses l = net.losses(out, b.labels, dout);
    double loss = 0;
    for (const auto& [name, v] : l)
      if (name.find("loss") != std::string::npos) loss += v;
    GCNET_CHECK(std::isfinite(loss), "ablation --task seg: seed ", seed, ": the loss is ", loss, " at iteration ", it + 1);
    net.backward(ctx, b.images, out, dout, none);
    opt.step();
    if (on_iter) on_iter(it, loss);
  }
  return evaluate_miou(net, s);
}

inline AblationTable run_seg_ablation(const SegAblationSettings& s, const std::vector<Variant>& variants,
                                      const RunInfo& run) {
  GCNET_CHECK(!variants.empty() && !s.seeds.empty(), "ablation: no variants or no seeds");
  AblationTable t;
  t.task = "segmentation";
  t.dataset = "generated Fashion-MNIST scenes " + std::to_string(s.scene_size) + "x" + std::to_string(s.scene_size) +
              ": " + std::to_string(s.scenes) + " training (flip), mIoU on " + std::to_string(s.val_scenes) +
              " validation scenes; " + std::to_string(s.iters) + " iterations of batch " + std::to_string(s.batch);
  t.metric = "mIoU %";
  t.input_shape = "[1, 3, " + std::to_string(s.scene_size) + ", " + std::to_string(s.scene_size) + "]";
  t.cost_note = "params of the whole segmentor; MACs of the backbone only (convolutions and the blocks' matrix "
                "products, models/counting.hpp; the heads are not counted); block columns as for classification";
  t.latency_batch = s.latency_batch;
  t.latency_warmup = s.latency_warmup;
  t.latency_repeats = s.latency_repeats;
  t.seeds = s.seeds;
  t.run = run;
  t.settings = {{"segmentor", nlohmann::json(s.model)}, {"stages", stages_name(s.stages)}, {"scenes", s.scenes},
                {"val_scenes", s.val_scenes}, {"scene_size", s.scene_size}, {"iters", s.iters},
                {"batch", s.batch}, {"lr", s.lr}};
  const std::int64_t runs = static_cast<std::int64_t>(variants.size() * s.seeds.size());
  const auto start = std::chrono::steady_clock::now();
  std::int64_t done = 0;
  std::vector<AblationRow> rows;
  std::vector<std::unique_ptr<SegNet>> latency_nets;
  for (const Variant& v : variants) {
    AblationRow row;
    row.variant = v.name;
    row.label = v.label;
    {
      auto net = build_seg_variant(s, v, 0);
      if (t.model.empty()) t.model = net->describe();
      row.params = parameter_count(*net);
      const Shape in{1, 3, s.scene_size, s.scene_size};
      for (const auto& r : count_blocks(net->backbone(), in)) row.macs += r.macs;
      // The blocks: walk the backbone's plugins.
      auto& bb = net->backbone();
      Shape cur = bb.stem().setup(in);
      for (int k = 0; k < 4; ++k)
        for (std::size_t i = 0; i < bb.stage(k).size(); ++i) {
          auto& blk = bb.stage(k)[i];
          const Shape out = blk.setup(cur);
          for (auto& pp : blk.plugins()) {
            auto& plugin = *pp.plugin;
            gcnet::visit_parameters(plugin, "", [&](const std::string&, Param<float, Cpu>& p) {
              row.block_params += p.value.numel();
            });
            if (auto* gc = plugin_layer<GlobalContextBlock<float, Cpu>>(plugin)) {
              const double m = global_context_macs(gc->options(), out);
              row.block_macs += m;
              row.block_other_flops += gc->flops(out) - 2.0 * m;
            } else if (auto* nl = plugin_layer<NonLocal2d<float, Cpu>>(plugin)) {
              row.block_macs += nl->flops(out) / 2;
              row.block_other_flops += non_local_other_flops(out.c(), nl->inter_channels(), out);
            }
          }
          cur = out;
        }
      latency_nets.push_back(std::move(net));
    }
    rows.push_back(std::move(row));
  }
  // Latency of the whole segmentors, all variants interleaved (ablate/latency.hpp).
  {
    Tensor<float> x(Shape{s.latency_batch, 3, s.scene_size, s.scene_size});
    Rng rng(0x6c6174ull);
    for (index_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(rng.normal());
    std::vector<SegOutputs<float, Cpu>> outs(latency_nets.size()), douts(latency_nets.size());
    Tensor<float> none;
    std::vector<LatencyProbe> probes;
    for (std::size_t k = 0; k < latency_nets.size(); ++k) {
      SegNet* net = latency_nets[k].get();
      SegOutputs<float, Cpu>* out = &outs[k];
      SegOutputs<float, Cpu>* dout = &douts[k];
      probes.push_back({[net, &x, out] { net->forward(Context::eval(), x, *out); },
                        [net, &x, out, dout, &none] {
                          net->forward(Context::train(), x, *out);
                          zero_grad_like(*out, *dout);
                          fill(dout->decode, 1.0f);
                          if (dout->aux.defined()) fill(dout->aux, 1.0f);
                          net->backward(Context::train(), x, *out, *dout, none);
                        }});
    }
    const std::vector<Latency> l = measure_latencies(probes, s.latency_warmup, s.latency_repeats);
    for (std::size_t k = 0; k < rows.size(); ++k) {
      rows[k].fwd_ms = l[k].fwd_ms;
      rows[k].fwd_bwd_ms = l[k].fwd_bwd_ms;
    }
    latency_nets.clear();
  }
  for (std::size_t vi = 0; vi < variants.size(); ++vi) {
    const Variant& v = variants[vi];
    AblationRow& row = rows[vi];
    for (std::uint64_t seed : s.seeds) {
      auto net = build_seg_variant(s, v, seed);
      auto progress = [&](std::int64_t it, double loss) {
        if (!s.print || (it + 1) % 5 != 0) return;
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double frac = (double(done) + double(it + 1) / double(s.iters)) / double(runs);
        std::printf("\r[%lld/%lld] %-10s seed %llu  iter %lld/%d  loss %.4f  eta %s   ", static_cast<long long>(done + 1),
                    static_cast<long long>(runs), v.name.c_str(), static_cast<unsigned long long>(seed),
                    static_cast<long long>(it + 1), s.iters, loss, format_eta(el / frac * (1 - frac)).c_str());
        std::fflush(stdout);
      };
      const double miou = train_seg_variant(*net, s, seed, progress);
      row.scores.push_back(miou);
      ++done;
      if (s.print) {
        std::printf("\r[%lld/%lld] %-10s seed %llu  mIoU %.2f%*s\n", static_cast<long long>(done),
                    static_cast<long long>(runs), v.name.c_str(), static_cast<unsigned long long>(seed), miou, 40, "");
        std::fflush(stdout);
      }
    }
  }
  t.rows = std::move(rows);
  return t;
}

}  // namespace gcnet::ablate
