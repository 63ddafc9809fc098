#pragma once
// Parameter and multiply-accumulate counts of a backbone, per model and per block, for an
// input size.
//   count_parameters(net)                 trainable scalars (any module with visit_parameters)
//   count_blocks(resnet, {1, 3, 224, 224}) rows {name, params, macs}: "stem", "layer1.0", ...
//   total_macs(rows)
// MACs are the multiply-accumulates of convolutions, matrix products and plugin transforms,
// what the ResNet and GCNet papers call FLOPs (ResNet-50 at 224x224 = 4.1 G); norms, ReLUs,
// pooling, softmax and additions are not counted. (A block's own flops(), blocks/, counts
// every arithmetic operation, a multiply-add as 2.)
#include <string>
#include <vector>

#include "gcnet/core/layer.hpp"

namespace gcnet {

template <class Net>
index_t count_parameters(Net& net) {
  index_t n = 0;
  net.visit_parameters("", [&](const std::string&, auto& p) { n += p.value.numel(); });
  return n;
}

struct BlockCount {
  std::string name;
  index_t params = 0;
  double macs = 0;
  Shape output;
};

namespace detail {
template <class Stem>
double stem_macs(Stem& stem, const Shape& in) {
  double f = 0;
  Shape s = in;
  auto visit = [&](auto& self, auto& layer) -> void {
    using L = std::remove_cvref_t<decltype(layer)>;
    if constexpr (requires { layer.options().groups; layer.options().kernel; }) {
      const Shape o = layer.setup(s);
      const auto& opt = layer.options();
      f += double(o.numel()) * double(opt.in / opt.groups) * double(opt.kernel.h * opt.kernel.w);
      s = o;
    } else if constexpr (requires { layer.for_each_child([](std::string_view, auto&) {}); }) {
      layer.for_each_child([&](std::string_view, auto& c) { self(self, c); });
    } else {
      s = layer.setup(s);
    }
    (void)sizeof(L);
  };
  visit(visit, stem);
  return f;
}
}  // namespace detail

template <class ResNetT>
std::vector<BlockCount> count_blocks(ResNetT& net, const Shape& in) {
  net.setup(in);  // validates
  std::vector<BlockCount> rows;
  BlockCount stem{"stem", 0, 0, {}};
  gcnet::visit_parameters(net.stem(), "", [&](const std::string&, auto& p) { stem.params += p.value.numel(); });
  stem.macs = detail::stem_macs(net.stem(), in);
  stem.output = net.stem().setup(in);
  rows.push_back(stem);
  Shape s = stem.output;
  for (int k = 0; k < 4; ++k) {
    auto& st = net.stage(k);
    for (std::size_t i = 0; i < st.size(); ++i) {
      BlockCount r{"layer" + std::to_string(k + 1) + "." + std::to_string(i), 0, 0, {}};
      gcnet::visit_parameters(st[i], "", [&](const std::string&, auto& p) { r.params += p.value.numel(); });
      r.macs = st[i].macs(s) * double(s.n());
      r.output = s = st[i].setup(s);
      rows.push_back(r);
    }
  }
  return rows;
}

inline double total_macs(const std::vector<BlockCount>& rows) {
  double f = 0;
  for (const auto& r : rows) f += r.macs;
  return f;
}

}  // namespace gcnet
