#pragma once
// Chain<First, Second>: a module that feeds First's output into Second (a backbone and its neck,
// a neck and a head). Either part may be a layer or a module; the output type of First must be
// the input type of Second. Each part's state-dict names go under its child name
// (default "backbone" and "neck", as mmdet's detectors; an empty name adds no level):
//   Chain<ResNet<Depth50>, FPN<>> net(ResNet<Depth50>(o), FPN<>(fpn_options));
//   net.visit_parameters(...)  ->  backbone.conv1.weight, ..., neck.lateral_convs.0.conv.weight
#include <array>
#include <string>
#include <utility>

#include "gcnet/core/module.hpp"
#include "gcnet/core/state.hpp"

namespace gcnet {

template <Component First, Component Second>
  requires std::same_as<output_of<First>, input_of<Second>> && SameNumerics<First, Second>
class Chain {
 public:
  using value_type = typename First::value_type;
  using backend_type = typename First::backend_type;
  using input_type = input_of<First>;
  using output_type = output_of<Second>;
  using middle_type = output_of<First>;

  Chain(First first, Second second, std::array<std::string, 2> names = {"backbone", "neck"})
      : first_(std::move(first)), second_(std::move(second)), names_(std::move(names)) {}

  First& first() { return first_; }
  Second& second() { return second_; }
  // The output of First from the last forward (valid until the next one).
  const middle_type& middle() const { return *mid_; }

  void forward(const Context& ctx, const input_type& x, output_type& y) {
    sync_mode(*this, ctx);
    gcnet::forward(first_, ctx, x, *mid_);
    gcnet::forward(second_, ctx, *mid_, y);
  }

  void backward(const Context& ctx, const input_type& x, const output_type& y, const output_type& dy,
                input_type& dx) {
    zero_grad_like(*mid_, *dmid_);
    gcnet::backward(second_, ctx, *mid_, y, dy, *dmid_);
    gcnet::backward(first_, ctx, x, *mid_, *dmid_, dx);
  }

  std::string describe() const { return "Chain(" + first_.describe() + " -> " + second_.describe() + ")"; }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view(names_[0]), first_);
    f(std::string_view(names_[1]), second_);
  }
  void visit_parameters(const std::string& prefix, const ParamVisitor<value_type, backend_type>& f) {
    for_each_child([&](std::string_view n, auto& c) { gcnet::visit_parameters(c, child_prefix(prefix, n), f); });
  }
  void visit_buffers(const std::string& prefix, const BufferVisitor<value_type, backend_type>& f) {
    for_each_child([&](std::string_view n, auto& c) { gcnet::visit_buffers(c, child_prefix(prefix, n), f); });
  }
  void set_training(bool training) {
    training_ = training;
    gcnet::set_training(first_, training);
    gcnet::set_training(second_, training);
  }
  bool training() const { return training_; }

 private:
  First first_;
  Second second_;
  std::array<std::string, 2> names_;
  bool training_ = true;
  // The activation between the two parts and its gradient (a copy of the chain starts without).
  ScratchValue<middle_type> mid_, dmid_;
};

}  // namespace gcnet
