#pragma once
// AppliedToEach<Head>: ONE head (one set of parameters and buffers) applied to each of several
// inputs, as mmdet applies its RPN head to the five FPN levels (multi_apply). Input and output
// are vectors: output k is the head applied to input k; inputs may differ in size.
//
// Weight sharing across calls (docs/layer-contract.md, "Sharing"): a layer keeps what its
// backward needs in members, so calling one head object K times would keep only the last
// call's activations, and its parameter gradients are assigned, so the last call's backward
// would win. Here each call runs on its own copy of the head (a deep copy, so its activations
// and gradient buffers are its own) whose parameter values and buffers are then explicitly
// shared with the head's (Param::share_value_with); backward runs every call and assigns to the
// head's parameters the SUM of the calls' gradients. The optimizer and checkpoints see only the
// head's parameters (its state-dict names, under this module's prefix).
#include <string>
#include <utility>
#include <vector>

#include "gcnet/compose/children.hpp"
#include "gcnet/core/module.hpp"
#include "gcnet/core/state.hpp"

namespace gcnet {

template <Component Head>
class AppliedToEach {
 public:
  using value_type = typename Head::value_type;
  using backend_type = typename Head::backend_type;
  using input_type = std::vector<input_of<Head>>;
  using output_type = std::vector<output_of<Head>>;

  explicit AppliedToEach(Head head) : head_(std::move(head)) {}

  Head& head() { return head_; }
  // The copy of the head that ran call k of the last forward.
  Head& call(std::size_t k) { return (*calls_)[k]; }

  void forward(const Context& ctx, const input_type& xs, output_type& ys) {
    sync_mode(*this, ctx);
    GCNET_CHECK(!xs.empty(), describe(), ": no inputs");
    prepare_calls(xs.size());
    ys.resize(xs.size());
    for (std::size_t k = 0; k < xs.size(); ++k) {
      try {
        gcnet::forward((*calls_)[k], ctx, xs[k], ys[k]);
      } catch (const Error& e) {
        detail::rethrow_in(describe() + " call " + std::to_string(k), e);
      }
    }
    *ran_ = xs.size();
  }

  void backward(const Context& ctx, const input_type& xs, const output_type& ys, const output_type& dys,
                input_type& dxs) {
    const std::size_t ran = *ran_;
    GCNET_CHECK(ran > 0 && xs.size() == ran && ys.size() == ran && dys.size() == ran, describe(), ": backward got ",
                xs.size(), " inputs, ", ys.size(), " outputs and ", dys.size(), " output gradients after a forward of ",
                ran, " calls");
    if (dxs.size() < ran) dxs.resize(ran);
    std::vector<bool> contributed(ran, false);
    for (std::size_t k = ran; k-- > 0;) {
      bool any = false;
      for_each_tensor(dys[k], [&](const std::string&, const auto& t, bool) { any = any || t.defined(); });
      if (!any) continue;  // no gradient reaches this call: it adds nothing
      gcnet::backward((*calls_)[k], ctx, xs[k], ys[k], dys[k], dxs[k]);
      contributed[k] = true;
    }
    // head.grad = sum over the calls of call.grad (assigned, as every layer's).
    const auto head_params = named_parameters(head_);
    for (std::size_t j = 0; j < head_params.size(); ++j) {
      auto& g = head_params[j].second->grad;
      fill(g, value_type(0));
      for (std::size_t k = 0; k < ran; ++k)
        if (contributed[k]) add_into(g, (*call_params_)[k][j]->grad, "AppliedToEach");
    }
  }

  std::string describe() const { return "AppliedToEach(" + head_.describe() + ")"; }

  template <class F>
  void for_each_child(F&& f) {
    f(std::string_view(), head_);
  }
  void visit_parameters(const std::string& prefix, const ParamVisitor<value_type, backend_type>& f) {
    gcnet::visit_parameters(head_, prefix, f);
  }
  void visit_buffers(const std::string& prefix, const BufferVisitor<value_type, backend_type>& f) {
    gcnet::visit_buffers(head_, prefix, f);
  }
  void set_training(bool training) {
    training_ = training;
    gcnet::set_training(head_, training);
    for (Head& c : *calls_) gcnet::set_training(c, training);
  }
  bool training() const { return training_; }

 private:
  using ParamT = Param<value_type, backend_type>;
  using TensorT = Tensor<value_type, backend_type>;

  // At least n copies of the head, each sharing the head's parameter values and buffers. The
  // sharing is renewed on every forward, so it survives whatever replaced a head tensor.
  void prepare_calls(std::size_t n) {
    while (calls_->size() < n) {
      calls_->push_back(head_);
      gcnet::set_training(calls_->back(), training_);
    }
    std::vector<ParamT*> hp;
    std::vector<TensorT*> hb;
    gcnet::visit_parameters(head_, "", [&](const std::string&, ParamT& p) { hp.push_back(&p); });
    gcnet::visit_buffers(head_, "", [&](const std::string&, TensorT& b) { hb.push_back(&b); });
    call_params_->resize(calls_->size());
    for (std::size_t k = 0; k < calls_->size(); ++k) {
      auto& cp = (*call_params_)[k];
      cp.clear();
      std::size_t b = 0;
      gcnet::visit_parameters((*calls_)[k], "", [&](const std::string&, ParamT& p) {
        p.share_value_with(*hp[cp.size()]);
        cp.push_back(&p);
      });
      gcnet::visit_buffers((*calls_)[k], "", [&](const std::string&, TensorT& t) { t = *hb[b++]; });  // shallow: shared
    }
  }

  Head head_;
  bool training_ = true;
    // Per call: the copy of the head and its parameters in visiting order (a copy of this module
  // starts without them and makes its own).
  ScratchValue<std::size_t> ran_;  // calls of the last forward
  ScratchValue<std::vector<Head>> calls_;
  ScratchValue<std::vector<std::vector<ParamT*>>> call_params_;
};

}  // namespace gcnet
