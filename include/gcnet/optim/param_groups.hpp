#pragma once
// Builds Sgd parameter groups from parameter names, like mmengine's
// DefaultOptimWrapperConstructor with paramwise_cfg:
//   a bias of a non-norm layer:  lr = base lr * bias_lr_mult, weight_decay * bias_decay_mult
//   any parameter of a norm layer: weight_decay * norm_decay_mult
//   everything else: the base options.
// mmengine recognizes norm layers by their module type; names alone cannot, so by default a
// layer "prefix." is taken to be a normalization layer when it has both "prefix.weight" and
// "prefix.bias" with the SAME shape (BatchNorm/LayerNorm/GroupNorm affine parameters are
// per-channel pairs; a conv or linear weight never has its bias's shape). Pass is_norm to
// decide otherwise.
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/optim/sgd.hpp"

namespace gcnet {

struct ParamwiseOptions {
  double bias_lr_mult = 1;
  double bias_decay_mult = 1;
  double norm_decay_mult = 1;
  std::function<bool(const std::string& name)> is_norm = {};  // empty: the shape rule above
};

namespace detail {
inline std::pair<std::string, std::string> split_param_name(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return {"", name};
  return {name.substr(0, dot + 1), name.substr(dot + 1)};
}
}  // namespace detail

// Names of the parameters of layers that have a weight and a bias of the same shape.
template <class T, class B>
std::set<std::string> norm_parameter_names(const std::vector<std::pair<std::string, Param<T, B>*>>& params) {
  std::map<std::string, const Param<T, B>*> by_name;
  for (auto& [n, p] : params) by_name[n] = p;
  std::set<std::string> out;
  for (auto& [n, p] : params) {
    auto [prefix, leaf] = detail::split_param_name(n);
    if (leaf != "weight") continue;
    auto bias = by_name.find(prefix + "bias");
    if (bias != by_name.end() && bias->second->value.shape() == p->value.shape()) {
      out.insert(n);
      out.insert(prefix + "bias");
    }
  }
  return out;
}

// Puts every parameter in a group whose options are options_of(name, param); parameters with
// equal options share a group; groups come in the order of their first parameter.
template <class T, class B, class OptionsOf>
std::vector<typename Sgd<T, B>::Group> group_parameters(const std::vector<std::pair<std::string, Param<T, B>*>>& params,
                                                        OptionsOf&& options_of) {
  using Options = typename Sgd<T, B>::Options;
  auto same = [](const Options& a, const Options& b) {
    return a.lr == b.lr && a.momentum == b.momentum && a.dampening == b.dampening &&
           a.weight_decay == b.weight_decay && a.nesterov == b.nesterov;
  };
  std::vector<typename Sgd<T, B>::Group> groups;
  for (auto& np : params) {
    const Options o = options_of(np.first, *np.second);
    std::size_t g = 0;
    while (g < groups.size() && !same(groups[g].options, o)) ++g;
    if (g == groups.size()) groups.push_back({{}, o});
    groups[g].params.push_back(np);
  }
  return groups;
}

// mmdet's paramwise_cfg, e.g. paramwise_groups(named_parameters(net), {.lr = 0.02, .momentum = 0.9,
// .weight_decay = 1e-4}, {.bias_decay_mult = 0, .norm_decay_mult = 0}).
template <class T, class B>
std::vector<typename Sgd<T, B>::Group> paramwise_groups(const std::vector<std::pair<std::string, Param<T, B>*>>& params,
                                                        typename Sgd<T, B>::Options base, const ParamwiseOptions& pw) {
  const std::set<std::string> norms = pw.is_norm ? std::set<std::string>{} : norm_parameter_names(params);
  auto is_norm = [&](const std::string& n) { return pw.is_norm ? pw.is_norm(n) : norms.count(n) != 0; };
  return group_parameters<T, B>(params, [&](const std::string& name, const Param<T, B>&) {
    auto o = base;
    const bool norm = is_norm(name);
    if (detail::split_param_name(name).second == "bias" && !norm) {
      o.lr = base.lr * pw.bias_lr_mult;
      o.weight_decay = base.weight_decay * pw.bias_decay_mult;
    } else if (norm) {
      o.weight_decay = base.weight_decay * pw.norm_decay_mult;
    }
    return o;
  });
}

}  // namespace gcnet
