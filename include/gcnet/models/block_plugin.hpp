#pragma once
// BlockPlugin<T, B>: a layer inserted into a residual block at run time (mmdet's
// `plugins=[dict(cfg=..., position=...)]`), behind a small virtual interface, so that one
// compiled block type takes any plugin: a GC block of any ratio, pooling or fusion, an SE layer,
// a simplified NL, a Non-local block, or a layer of your own. A virtual call per plugin and
// block is nothing next to the block's convolutions; what it buys is one instantiation of the
// block and the backbone for every ablation variant.
//   auto p = make_block_plugin("context_block", GlobalContextBlock<T, B>(gc_options(256)));
// Copies are deep (clone()), as for every layer.
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "gcnet/core/context.hpp"
#include "gcnet/core/layer.hpp"

namespace gcnet {

template <Scalar T, Backend B>
class BlockPlugin {
 public:
  using value_type = T;
  using backend_type = B;

  virtual ~BlockPlugin() = default;
  virtual std::unique_ptr<BlockPlugin> clone() const = 0;

  virtual Shape setup(const Shape& in) = 0;
  virtual void forward(const Tensor<T, B>& x, Tensor<T, B>& y) = 0;
  virtual void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) = 0;
  virtual std::string describe() const = 0;
  virtual void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) = 0;
  virtual void visit_buffers(const std::string& prefix, const BufferVisitor<T, B>& f) = 0;
  virtual void set_training(bool training) = 0;
  virtual void use_context(const Context& ctx) = 0;
  // mmdet's norm_eval reaches the norms inside plugins too (Non-local's BN).
  virtual void set_norms_eval() = 0;
  // Multiply-accumulates for an input of shape `in` (models/counting.hpp's convention).
  virtual double macs(const Shape& in) const = 0;
  // Whether backward reads x and dy but never the VALUES of y: the block may then let the
  // plugin write straight into its own output (models/block_memory.hpp).
  virtual bool backward_ignores_output() const = 0;
  // The plugin's state-dict name in the block ("context_block", "nonlocal_block", ...).
  const std::string& name() const { return name_; }

 protected:
  explicit BlockPlugin(std::string name) : name_(std::move(name)) {}
  BlockPlugin(const BlockPlugin&) = default;

 private:
  std::string name_;
};

namespace detail {
template <class L>
concept HasMacs = requires(const L& l, const Shape& s) {
  { l.macs(s) } -> std::convertible_to<double>;
};

// norm_eval: every layer below `l` with running statistics goes to eval mode.
template <class L>
void norms_to_eval(L& l) {
  if constexpr (requires { l.running_mean(); l.set_training(false); }) {
    l.set_training(false);
  } else if constexpr (requires { l.for_each_child([](std::string_view, auto&) {}); }) {
    l.for_each_child([](std::string_view, auto& c) { norms_to_eval(c); });
  } else if constexpr (requires { l.for_each_norm([](auto&) {}); }) {
    l.for_each_norm([](auto& n) { gcnet::set_training(n, false); });
  }
}

template <Layer L>
class PluginOf final : public BlockPlugin<typename L::value_type, typename L::backend_type> {
  using T = typename L::value_type;
  using B = typename L::backend_type;
  using Base = BlockPlugin<T, B>;

 public:
  PluginOf(std::string name, L layer, std::function<double(const Shape&)> macs)
      : Base(std::move(name)), layer_(std::move(layer)), macs_(std::move(macs)) {}
  std::unique_ptr<Base> clone() const override { return std::make_unique<PluginOf>(*this); }

  Shape setup(const Shape& in) override { return layer_.setup(in); }
  void forward(const Tensor<T, B>& x, Tensor<T, B>& y) override { layer_.forward(x, y); }
  void backward(const Tensor<T, B>& x, const Tensor<T, B>& y, const Tensor<T, B>& dy, Tensor<T, B>& dx) override {
    layer_.backward(x, y, dy, dx);
  }
  std::string describe() const override { return layer_.describe(); }
  void visit_parameters(const std::string& prefix, const ParamVisitor<T, B>& f) override {
    gcnet::visit_parameters(layer_, prefix, f);
  }
  void visit_buffers(const std::string& prefix, const BufferVisitor<T, B>& f) override {
    gcnet::visit_buffers(layer_, prefix, f);
  }
  void set_training(bool training) override { gcnet::set_training(layer_, training); }
  void use_context(const Context& ctx) override { bind_context(layer_, ctx); }
  void set_norms_eval() override { norms_to_eval(layer_); }
  double macs(const Shape& in) const override {
    if (macs_) return macs_(in);
    if constexpr (HasMacs<L>) return layer_.macs(in);
    else return 0.0;
  }
  bool backward_ignores_output() const override {
    if constexpr (requires { { L::backward_ignores_output } -> std::convertible_to<bool>; })
      return L::backward_ignores_output;
    else return false;
  }
  L& layer() { return layer_; }

 private:
  L layer_;
  std::function<double(const Shape&)> macs_;
};
}  // namespace detail

// Wraps a layer as a plugin named `name` in the block's state dict; `macs` counts its
// multiply-accumulates for an input shape (default: the layer's macs(shape), else 0).
template <Layer L>
std::unique_ptr<BlockPlugin<typename L::value_type, typename L::backend_type>> make_block_plugin(
    std::string name, L layer, std::function<double(const Shape&)> macs = {}) {
  return std::make_unique<detail::PluginOf<L>>(std::move(name), std::move(layer), std::move(macs));
}

// The layer inside a plugin made by make_block_plugin, or nullptr if it holds another type.
template <Layer L>
L* plugin_layer(BlockPlugin<typename L::value_type, typename L::backend_type>& p) {
  auto* typed = dynamic_cast<detail::PluginOf<L>*>(&p);
  return typed ? &typed->layer() : nullptr;
}

// A plugin held by value (deep copies through clone()).
template <Scalar T, Backend B>
class PluginHandle {
 public:
  PluginHandle() = default;
  PluginHandle(std::unique_ptr<BlockPlugin<T, B>> p) : p_(std::move(p)) {}  // NOLINT: a handle
  PluginHandle(const PluginHandle& o) : p_(o.p_ ? o.p_->clone() : nullptr) {}
  PluginHandle(PluginHandle&&) noexcept = default;
  PluginHandle& operator=(const PluginHandle& o) {
    if (this != &o) p_ = o.p_ ? o.p_->clone() : nullptr;
    return *this;
  }
  PluginHandle& operator=(PluginHandle&&) noexcept = default;
  BlockPlugin<T, B>& operator*() const { return *p_; }
  BlockPlugin<T, B>* operator->() const { return p_.get(); }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  std::unique_ptr<BlockPlugin<T, B>> p_;
};

}  // namespace gcnet
