#pragma once
// The paper's attention analysis on trained classification networks (its Table 1 and Fig. 2):
//   - non_local_table: for the +1 NL network, the average pairwise cosine distance over positions
//     of the NL block's inputs, attention maps and outputs before fusion, over the first `images`
//     test images (ablate/nl_analysis.hpp), beside the paper's numbers;
//   - attention_picture: for a few test images, the NL attention maps of several query points
//     (each query marked) beside the GC block's attention map (the block of the GC network in
//     layer3's last residual block: the same place, right after the NL), as heatmaps over the input.
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/ablate/classifier.hpp"
#include "gcnet/ablate/fashion_batches.hpp"
#include "gcnet/data/picture.hpp"
#include "gcnet/ablate/nl_analysis.hpp"

namespace gcnet::ablate {

// The paper's Table 1 (Non-local model; the authors' slides): cosine distance of input,
// attention map, output.
struct PaperCosineRow {
  const char* setting;
  double input, attention, output;
};
inline std::vector<PaperCosineRow> paper_cosine_table() {
  return {{"COCO, Mask R-CNN R50 + 1 NL", 0.401, 0.020, 0.012}, {"ImageNet, R50 + 1 NL", 0.358, 0.004, 0.003}};
}

// NL statistics over the first `images` test images of d (the network in eval mode).
inline NonLocalStatistics non_local_table(AblationClassifier& net, const FashionSubset& d, index_t images,
                                          index_t batch = 250) {
  GCNET_CHECK(net.non_local(), "non_local_table: ", net.describe(), " has no Non-local block");
  images = std::min(images, d.test_count);
  net.set_training(false);
  NonLocalStatistics total;
  Tensor<float> x, logits;
  Tensor<std::int64_t> labels;
  for (index_t start = 0; start < images; start += batch) {
    const index_t n = std::min(batch, images - start);
    test_batch(d, start, n, x, labels);
    net.forward(x, logits);
    accumulate(total, non_local_statistics(*net.non_local(), net.non_local_input()));
  }
  net.set_training(true);
  return total;
}

inline std::string format_non_local_table(const NonLocalStatistics& ours, const std::string& ours_label) {
  std::string s = "| setting | input | attention map | output |\n|---|---:|---:|---:|\n";
  char buf[256];
  for (const auto& r : paper_cosine_table()) {
    std::snprintf(buf, sizeof buf, "| %s (paper) | %.3f | %.3f | %.3f |\n", r.setting, r.input, r.attention, r.output);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "| %s (ours, %lld images) | %.3g | %.3g | %.3g |\n", ours_label.c_str(),
                static_cast<long long>(ours.images), ours.input, ours.attention, ours.output);
  return s + buf;
}

// One row per test image: input | NL attention of each query (marked) | GC attention (when
// `gc` is given). Queries are cells (y, x) of the NL's map.
inline data::Image attention_picture(AblationClassifier& nl_net, AblationClassifier* gc_net, const FashionSubset& d,
                                     index_t images, const std::vector<std::pair<index_t, index_t>>& queries,
                                     index_t scale = 4) {
  GCNET_CHECK(nl_net.non_local(), "attention_picture: ", nl_net.describe(), " has no Non-local block");
  images = std::min(images, d.test_count);
  Tensor<float> x, logits;
  Tensor<std::int64_t> labels;
  test_batch(d, 0, images, x, labels);
  nl_net.set_training(false);
  nl_net.forward(x, logits);
  const Tensor<float> nl_in = nl_net.non_local_input();
  const index_t h = nl_in.size(2), w = nl_in.size(3);
  for (const auto& q : queries)
    GCNET_CHECK(q.first >= 0 && q.first < h && q.second >= 0 && q.second < w, "attention_picture: query (", q.first,
                ", ", q.second, ") is outside the NL's ", h, "x", w, " map");
  Tensor<float> gc_p;
  index_t gh = 0, gw = 0;
  if (gc_net) {
    auto* gc = gc_net->context_block(gc_net->last_block_of_layer3());
    GCNET_CHECK(gc && gc->options().pooling == Pooling::Attention, "attention_picture: ", gc_net->describe(),
                " has no attention-pooling block in layer3's last residual block");
    gc_net->set_training(false);
    gc_net->forward(x, logits);
    gc_p = gc->context().probabilities();  // [N, h * w] of the last forward
    const index_t b = gc_net->last_block_of_layer3();
    gh = gc_net->block(b).setup(Shape{1, gc_net->block(b).config().inplanes, h, w}).h();
    gw = gh ? gc_p.size(1) / gh : 0;
    gc_net->set_training(true);
  }
  nl_net.set_training(true);
  const index_t S = data::fashion_mnist_side;
  std::vector<data::Image> rows;
  for (index_t n = 0; n < images; ++n) {
    const data::Image input = data::upscale_gray(d.test->image(n), S, S, scale);
    std::vector<data::Image> panels{input};
    const NonLocalMaps m = non_local_maps(*nl_net.non_local(), nl_in, n);
    for (const auto& q : queries) {
      const index_t i = q.first * w + q.second;
      data::Image p = data::heatmap_over(input, m.attention.data() + i * m.positions, h, w);
      data::mark_cell(p, q.first, q.second, h, w);
      panels.push_back(std::move(p));
    }
    if (gc_net) {
      std::vector<double> a(static_cast<std::size_t>(gh * gw));
      for (index_t j = 0; j < gh * gw; ++j) a[static_cast<std::size_t>(j)] = gc_p[n * gh * gw + j];
      panels.push_back(data::heatmap_over(input, a.data(), gh, gw));
    }
    rows.push_back(data::side_by_side(panels));
  }
  return data::stack_rows(rows);
}

}  // namespace gcnet::ablate
