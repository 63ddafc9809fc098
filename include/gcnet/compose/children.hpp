#pragma once
// Shared plumbing of the combinators: child names, and the optional hooks forwarded
// to every child (parameters, buffers, train/eval) with state-dict prefixes.
#include <array>
#include <initializer_list>
#include <string>

#include "gcnet/core/layer.hpp"

namespace gcnet::detail {

// "0", "1", ... as nn.Sequential names its children.
template <std::size_t N>
std::array<std::string, N> index_names(std::size_t first = 0) {
  std::array<std::string, N> names;
  for (std::size_t i = 0; i < N; ++i) names[i] = std::to_string(first + i);
  return names;
}

template <std::size_t N>
void assign_names(std::array<std::string, N>& names, std::initializer_list<std::string_view> given,
                  const char* who) {
  GCNET_CHECK(given.size() == N, who, ": ", given.size(), " names given for ", N, " children");
  std::size_t i = 0;
  for (auto n : given) names[i++] = std::string(n);
}

// Forwards the optional hooks of a combinator `Self` (which has for_each_child) to
// its children.
template <class T, class B, class Self>
void visit_child_parameters(Self& self, const std::string& prefix, const ParamVisitor<T, B>& f) {
  self.for_each_child([&](std::string_view name, auto& child) {
    gcnet::visit_parameters(child, child_prefix(prefix, name), f);
  });
}
template <class T, class B, class Self>
void visit_child_buffers(Self& self, const std::string& prefix, const BufferVisitor<T, B>& f) {
  self.for_each_child([&](std::string_view name, auto& child) {
    gcnet::visit_buffers(child, child_prefix(prefix, name), f);
  });
}
template <class Self>
void set_children_training(Self& self, bool training) {
  self.for_each_child([&](std::string_view, auto& child) { gcnet::set_training(child, training); });
}

// Prefixes an error from child `name` with where it happened in the composition.
[[noreturn]] inline void rethrow_in(const std::string& where, const Error& e) {
  throw Error(where + ": " + e.what());
}

}  // namespace gcnet::detail

// A module's or combinator's parameters and buffers: those of its children, by their names.
#define GCNET_CHILD_STATE_HOOKS(T, B)                                                       \
  void visit_parameters(const std::string& prefix, const ::gcnet::ParamVisitor<T, B>& f) {  \
    ::gcnet::detail::visit_child_parameters<T, B>(*this, prefix, f);                        \
  }                                                                                         \
  void visit_buffers(const std::string& prefix, const ::gcnet::BufferVisitor<T, B>& f) {    \
    ::gcnet::detail::visit_child_buffers<T, B>(*this, prefix, f);                           \
  }

// Declares the optional hooks of a combinator in terms of for_each_child.
#define GCNET_COMBINATOR_HOOKS(T, B)                                                        \
  GCNET_CHILD_STATE_HOOKS(T, B)                                                             \
  void set_training(bool training) { ::gcnet::detail::set_children_training(*this, training); }
