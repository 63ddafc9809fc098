#pragma once
// The GCNet paper's analysis of a trained Non-local block (its Table 1 and Fig. 2): for each
// image, the block's input x (vectors of C at each of the P positions), its attention maps (the
// softmax row of each query, P' values) and its output before fusion z = conv_out(attention . g(x))
// (the term added to x), and the average pairwise cosine distance over positions of each.
// The maps are recomputed from the block's parameters (in double), so the block's fast paths
// stay as they are; a test checks x + z against NonLocal2d::forward.
// Embedded gaussian without sub-sampling or norm only (the paper's "+1 NL", mmcv's defaults).
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "gcnet/ablate/cosine_distance.hpp"
#include "gcnet/blocks/non_local2d.hpp"

namespace gcnet::ablate {

struct NonLocalMaps {
  index_t channels = 0, inter = 0, positions = 0;
  std::vector<double> input;      // [C, P]
  std::vector<double> attention;  // [P, P]: row i = query i's weights over the keys
  std::vector<double> output;     // [C, P]: conv_out(attention . g(x)), before the residual add
};

// The maps of image n of x [N, C, H, W] (the block's input).
inline NonLocalMaps non_local_maps(NonLocal2d<float, Cpu>& nl, const Tensor<float, Cpu>& x, index_t n) {
  const auto& o = nl.options();
  GCNET_CHECK(o.mode == NonLocalMode::EmbeddedGaussian && !o.sub_sample && !o.norm, nl.describe(),
              ": the attention analysis handles embedded gaussian without sub_sample or norm only");
  nl.setup(x.shape());
  GCNET_CHECK(n >= 0 && n < x.size(0), nl.describe(), ": image ", n, " out of range for a batch of ", x.size(0));
  std::map<std::string, const Tensor<float, Cpu>*> p;
  nl.visit_parameters("", [&](const std::string& name, Param<float, Cpu>& q) { p[name] = &q.value; });
  auto param = [&](const char* name) -> const float* {
    GCNET_CHECK(p.count(name), nl.describe(), ": no parameter ", name);
    return p.at(name)->data();
  };
  NonLocalMaps m;
  const index_t C = x.size(1), P = x.size(2) * x.size(3), Ci = nl.inter_channels();
  m.channels = C;
  m.inter = Ci;
  m.positions = P;
  m.input.resize(static_cast<std::size_t>(C * P));
  const float* xp = x.data() + n * C * P;
  for (index_t i = 0; i < C * P; ++i) m.input[static_cast<std::size_t>(i)] = xp[i];
  // 1x1 projection W [rows, C] (+ bias) of x: [rows, P].
  auto project = [&](const float* w, const float* b, index_t rows, index_t cols, const std::vector<double>& in) {
    std::vector<double> out(static_cast<std::size_t>(rows * P));
    for (index_t r = 0; r < rows; ++r)
      for (index_t j = 0; j < P; ++j) {
        double s = b ? double(b[r]) : 0.0;
        for (index_t c = 0; c < cols; ++c) s += double(w[r * cols + c]) * in[static_cast<std::size_t>(c * P + j)];
        out[static_cast<std::size_t>(r * P + j)] = s;
      }
    return out;
  };
  const auto th = project(param("theta.conv.weight"), param("theta.conv.bias"), Ci, C, m.input);
  const auto ph = project(param("phi.conv.weight"), param("phi.conv.bias"), Ci, C, m.input);
  const auto g = project(param("g.conv.weight"), param("g.conv.bias"), Ci, C, m.input);
  const double scale = o.use_scale ? 1.0 / std::sqrt(double(Ci)) : 1.0;
  m.attention.resize(static_cast<std::size_t>(P * P));
  for (index_t i = 0; i < P; ++i) {
    double* row = m.attention.data() + i * P;
    double mx = -INFINITY;
    for (index_t j = 0; j < P; ++j) {
      double s = 0;
      for (index_t c = 0; c < Ci; ++c) s += th[static_cast<std::size_t>(c * P + i)] * ph[static_cast<std::size_t>(c * P + j)];
      row[j] = s * scale;
      mx = std::fmax(mx, row[j]);
    }
    double z = 0;
    for (index_t j = 0; j < P; ++j) z += (row[j] = std::exp(row[j] - mx));
    for (index_t j = 0; j < P; ++j) row[j] /= z;
  }
  std::vector<double> y(static_cast<std::size_t>(Ci * P));  // y[c, i] = sum_j att[i, j] g[c, j]
  for (index_t c = 0; c < Ci; ++c)
    for (index_t i = 0; i < P; ++i) {
      double s = 0;
      for (index_t j = 0; j < P; ++j) s += m.attention[static_cast<std::size_t>(i * P + j)] * g[static_cast<std::size_t>(c * P + j)];
      y[static_cast<std::size_t>(c * P + i)] = s;
    }
  m.output = project(param("conv_out.conv.weight"), param("conv_out.conv.bias"), C, Ci, y);
  return m;
}

struct NonLocalStatistics {
  double input = 0, attention = 0, output = 0;  // mean over images of the per-image averages
  index_t images = 0;
};

// The paper's Table 1 for the block on the inputs x [N, C, H, W] (what it saw in a forward).
inline NonLocalStatistics non_local_statistics(NonLocal2d<float, Cpu>& nl, const Tensor<float, Cpu>& x) {
  NonLocalStatistics s;
  for (index_t n = 0; n < x.size(0); ++n) {
    const NonLocalMaps m = non_local_maps(nl, x, n);
    const index_t P = m.positions;
    s.input += mean_pairwise_cosine_distance(m.input.data(), P, m.channels, 1, P).mean;
    s.attention += mean_pairwise_cosine_distance(m.attention.data(), P, P, P, 1).mean;
    s.output += mean_pairwise_cosine_distance(m.output.data(), P, m.channels, 1, P).mean;
    ++s.images;
  }
  if (s.images) {
    s.input /= double(s.images);
    s.attention /= double(s.images);
    s.output /= double(s.images);
  }
  return s;
}

// Accumulates statistics over several batches (weighted by images).
inline void accumulate(NonLocalStatistics& total, const NonLocalStatistics& batch) {
  const double a = double(total.images), b = double(batch.images);
  if (a + b == 0) return;
  total.input = (total.input * a + batch.input * b) / (a + b);
  total.attention = (total.attention * a + batch.attention * b) / (a + b);
  total.output = (total.output * a + batch.output * b) / (a + b);
  total.images += batch.images;
}

}  // namespace gcnet::ablate
