#pragma once
// Checks of what a component owns (docs/layer-contract.md, "Copies"):
//   shared_storage(c)              pairs of parameters/buffers/gradients of c that share storage
//                                  (none may: sharing is explicit and lives outside a component)
//   check_copy_is_deep(c, x1, x2)  a copy has its own parameters, gradients, buffers and
//                                  activations: training the copy on x2 leaves the original's
//                                  state, its saved activations (its backward for x1) and its
//                                  parameters unchanged.
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gcnet/core/module.hpp"

namespace gcnet::testing {

// "a and b" for every two named tensors of c (parameter values, their gradients, buffers)
// whose storage is the same.
template <HasNumerics C>
std::vector<std::string> shared_storage(C& c) {
  using Tn = Tensor<typename C::value_type, typename C::backend_type>;
  std::vector<std::pair<std::string, const Tn*>> all;
  visit_parameters(c, "", [&](const std::string& n, auto& p) {
    all.emplace_back(n, &p.value);
    all.emplace_back(n + " (gradient)", &p.grad);
  });
  visit_buffers(c, "", [&](const std::string& n, auto& b) { all.emplace_back(n, &b); });
  std::vector<std::string> out;
  for (std::size_t i = 0; i < all.size(); ++i)
    for (std::size_t j = i + 1; j < all.size(); ++j)
      if (all[i].second->shares_storage_with(*all[j].second)) out.push_back(all[i].first + " and " + all[j].first);
  return out;
}

struct CopyCheckResult {
  bool ok = true;
  std::string report;
  void fail(const std::string& s) {
    ok = false;
    report += s + "\n";
  }
};

namespace detail {
template <class T>
bool same_values(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b) {
  if (!(a.shape() == b.shape())) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (!(a[i] == b[i]) && !(a[i] != a[i] && b[i] != b[i])) return false;
  return true;
}
template <class X>
std::vector<std::pair<std::string, Tensor<double, Cpu>>> snapshot_fields(const X& x) {
  std::vector<std::pair<std::string, Tensor<double, Cpu>>> out;
  for_each_tensor(x, [&](const std::string& n, const auto& t, bool) {
    if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(t)>::value_type, double>)
      if (t.defined()) out.emplace_back(n, clone(t));
  });
  return out;
}
}  // namespace detail

// CPU, double. x1 and x2: two inputs of the same shapes. The original runs forward(x1); then
// its copy runs forward(x2) and backward and has every parameter changed (an optimizer step);
// then the original's backward (from its own forward of x1) and its state must be exactly
// what they would have been without the copy.
template <Component C>
  requires std::same_as<typename C::value_type, double> && std::same_as<typename C::backend_type, Cpu>
CopyCheckResult check_copy_is_deep(C& original, const input_of<C>& x1, const input_of<C>& x2,
                                   Context ctx = Context{}) {
  using Td = Tensor<double, Cpu>;
  CopyCheckResult res;
  if constexpr (Module<C>) ctx.training = original.training();
  auto params_of = [](C& c) {
    std::vector<std::pair<std::string, Param<double, Cpu>*>> v;
    visit_parameters(c, "", [&](const std::string& n, Param<double, Cpu>& p) { v.emplace_back(n, &p); });
    return v;
  };
  auto buffers_of = [](C& c) {
    std::vector<std::pair<std::string, Td*>> v;
    visit_buffers(c, "", [&](const std::string& n, Td& b) { v.emplace_back(n, &b); });
    return v;
  };
  auto run_backward = [&](C& c, const input_of<C>& x, const output_of<C>& y, const output_of<C>& dy) {
    input_of<C> dx;
    zero_grad_like(x, dx);
    gcnet::backward(c, ctx, x, y, dy, dx);
    return dx;
  };
  auto unit_gradient = [](const output_of<C>& y) {
    output_of<C> dy = clone_fields(y);
    for_each_tensor(dy, [](const std::string&, auto& t, bool diff) {
      using Tt = std::remove_cvref_t<decltype(t)>;
      if constexpr (std::is_same_v<Tt, Td>) {
        if (diff && t.defined()) {
          for (index_t i = 0; i < t.numel(); ++i) t[i] = 0.5 + 0.001 * static_cast<double>(i % 97);
          return;
        }
      }
      t = Tt();
    });
    return dy;
  };

  // The original's forward of x1 and the backward it gives (the reference).
  output_of<C> y1;
  gcnet::forward(original, ctx, x1, y1);
  const auto y1_ref = detail::snapshot_fields(y1);
  const output_of<C> dy1 = unit_gradient(y1);
  const auto dx1_ref = detail::snapshot_fields(run_backward(original, x1, y1, dy1));
  std::vector<Td> grads_ref, params_ref, buffers_ref;
  for (auto& [n, p] : params_of(original)) {
    grads_ref.push_back(clone(p->grad));
    params_ref.push_back(clone(p->value));
  }
  for (auto& [n, b] : buffers_of(original)) buffers_ref.push_back(clone(*b));

  {
    C copy = original;
    auto po = params_of(original), pc = params_of(copy);
    auto bo = buffers_of(original), bc = buffers_of(copy);
    if (po.size() != pc.size() || bo.size() != bc.size()) res.fail("the copy has other parameters or buffers");
    for (std::size_t k = 0; k < std::min(po.size(), pc.size()); ++k) {
      if (pc[k].second->value.shares_storage_with(po[k].second->value))
        res.fail("parameter '" + po[k].first + "': the copy shares its value");
      if (pc[k].second->grad.shares_storage_with(po[k].second->grad))
        res.fail("parameter '" + po[k].first + "': the copy shares its gradient");
      if (!detail::same_values(pc[k].second->value, po[k].second->value))
        res.fail("parameter '" + po[k].first + "': the copy has other values");
    }
    for (std::size_t k = 0; k < std::min(bo.size(), bc.size()); ++k) {
      if (bc[k].second->shares_storage_with(*bo[k].second)) res.fail("buffer '" + bo[k].first + "': the copy shares it");
      if (!detail::same_values(*bc[k].second, *bo[k].second)) res.fail("buffer '" + bo[k].first + "': other values");
    }
    // Train the copy alone: forward and backward on x2, then a step on every parameter.
    output_of<C> y2;
    gcnet::forward(copy, ctx, x2, y2);
    run_backward(copy, x2, y2, unit_gradient(y2));
    for (auto& [n, p] : params_of(copy))
      for (index_t i = 0; i < p->value.numel(); ++i) p->value[i] -= 0.1 * p->grad[i] + 0.01;
    output_of<C> y3;
    gcnet::forward(copy, ctx, x2, y3);
  }

  // The original: same state, and its saved activations still those of x1.
  {
    std::size_t k = 0;
    for (auto& [n, p] : params_of(original)) {
      if (!detail::same_values(p->value, params_ref[k])) res.fail("parameter '" + n + "' of the original changed");
      ++k;
    }
    k = 0;
    for (auto& [n, b] : buffers_of(original)) {
      if (!detail::same_values(*b, buffers_ref[k])) res.fail("buffer '" + n + "' of the original changed");
      ++k;
    }
  }
  const auto dx1 = detail::snapshot_fields(run_backward(original, x1, y1, dy1));
  for (std::size_t k = 0; k < dx1.size() && k < dx1_ref.size(); ++k)
    if (!detail::same_values(dx1[k].second, dx1_ref[k].second))
      res.fail("input gradient '" + dx1[k].first + "' of the original changed after the copy ran (shared activations?)");
  {
    std::size_t k = 0;
    for (auto& [n, p] : params_of(original)) {
      if (!detail::same_values(p->grad, grads_ref[k]))
        res.fail("gradient of '" + n + "' of the original changed after the copy ran (shared activations?)");
      ++k;
    }
  }
  const auto y1_now = detail::snapshot_fields(y1);
  for (std::size_t k = 0; k < y1_now.size() && k < y1_ref.size(); ++k)
    if (!detail::same_values(y1_now[k].second, y1_ref[k].second))
      res.fail("output '" + y1_now[k].first + "' of the original was overwritten by the copy's forward");
  return res;
}

}  // namespace gcnet::testing
