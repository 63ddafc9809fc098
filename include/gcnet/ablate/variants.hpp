#pragma once
// The blocks an ablation compares (the GCNet paper's block-design and pooling/fusion rows), as
// values: one network type runs them all, only the plugin differs.
//   name        label                       block
//   none        baseline                    no block
//   se16        SE r16                      mmdet SELayer(C, 16): avg pooling, bottleneck, sigmoid scale
//   gc16        GC r16 (att, add)           mmcv ContextBlock(C, 1/16): attention pooling, LN bottleneck, add
//   gc4         GC r4 (att, add)            the same with ratio 1/4
//   gc16_mul    GC r16 (att, mul)           fusion by sigmoid scaling instead of addition
//   gc16_avg    GC r16 (avg, add)           average pooling instead of attention
//   gc16_noln   GC r16 (att, add, no LN)    the bottleneck without LayerNorm
//   snl         SNL                         the simplified NL: attention pooling, one C x C 1x1 conv, add
//   nl          +1 NL                       one NonLocal2d (embedded gaussian, reduction 2) before the last
//                                           residual block of the third stage, as the paper's "+1 NL"
// The context-family blocks (all but none and nl) sit in every residual block of the chosen
// stages, at the end of the residual branch (after the last norm, before the addition).
#include <array>
#include <sstream>
#include <string>
#include <vector>

#include "gcnet/blocks/global_context.hpp"
#include "gcnet/core/error.hpp"
#include "gcnet/models/resnet_options.hpp"

namespace gcnet::ablate {

enum class BlockFamily { None, Context, NonLocal };

struct Variant {
  std::string name;   // the --variants key
  std::string label;  // the table's row label
  BlockFamily family = BlockFamily::None;
  GlobalContextOptions block{};  // family Context (channels filled in per residual block)
};

// Every variant, in the table's order (the baseline first).
inline std::vector<Variant> all_variants() {
  using F = BlockFamily;
  return {
      {"none", "baseline", F::None, {}},
      {"se16", "SE r16", F::Context, se_options(0, 16)},
      {"gc16", "GC r16 (att, add)", F::Context, gc_options(0, {1, 16}, Pooling::Attention, Fusion::Add)},
      {"gc4", "GC r4 (att, add)", F::Context, gc_options(0, {1, 4}, Pooling::Attention, Fusion::Add)},
      {"gc16_mul", "GC r16 (att, mul)", F::Context, gc_options(0, {1, 16}, Pooling::Attention, Fusion::Mul)},
      {"gc16_avg", "GC r16 (avg, add)", F::Context, gc_options(0, {1, 16}, Pooling::Average, Fusion::Add)},
      {"gc16_noln", "GC r16 (att, add, no LN)", F::Context,
       gc_options(0, {1, 16}, Pooling::Attention, Fusion::Add, /*layer_norm=*/false)},
      {"snl", "SNL", F::Context, snl_options(0)},
      {"nl", "+1 NL", F::NonLocal, {}},
  };
}

inline std::string variant_names() {
  std::string s;
  for (const Variant& v : all_variants()) s += (s.empty() ? "" : ", ") + v.name;
  return s;
}

inline const Variant& find_variant(const std::string& name) {
  static const std::vector<Variant> all = all_variants();
  for (const Variant& v : all)
    if (v.name == name) return v;
  detail::fail("ablation: unknown variant '", name, "', expected one of ", variant_names(), " (or all)");
}

// "all", or names separated by commas, kept in the table's order (duplicates refused).
inline std::vector<Variant> select_variants(const std::string& list) {
  GCNET_CHECK(!list.empty(), "ablation: --variants is empty; expected 'all' or some of ", variant_names());
  if (list == "all") return all_variants();
  std::vector<std::string> names;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    GCNET_CHECK(!item.empty(), "ablation: --variants '", list, "' has an empty entry");
    for (const auto& n : names) GCNET_CHECK(n != item, "ablation: --variants names '", item, "' twice");
    (void)find_variant(item);
    names.push_back(item);
  }
  std::vector<Variant> out;
  for (const Variant& v : all_variants())
    for (const auto& n : names)
      if (n == v.name) out.push_back(v);
  return out;
}

inline std::string stages_name(const std::array<bool, 4>& st) {
  std::string s;
  for (int k = 0; k < 4; ++k)
    if (st[static_cast<std::size_t>(k)]) s += (s.empty() ? "c" : ",c") + std::to_string(k + 2);
  return s.empty() ? "none" : s;
}

}  // namespace gcnet::ablate
