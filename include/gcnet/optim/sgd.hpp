#pragma once
// SGD exactly as torch.optim.SGD (momentum, dampening, Nesterov, weight decay):
//   g = grad + weight_decay * p
//   buf = g on the first step, else momentum * buf + (1 - dampening) * g
//   g = g + momentum * buf (Nesterov) or buf;   p -= lr * g
#include <string>
#include <utility>
#include <vector>

#include "gcnet/core/param.hpp"
#include "gcnet/core/parallel.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet {

template <Scalar T = float, Backend B = Cpu>
class Sgd {
 public:
  struct Options {
    double lr = 0.01;
    double momentum = 0;
    double dampening = 0;
    double weight_decay = 0;
    bool nesterov = false;
  };

  Sgd(std::vector<std::pair<std::string, Param<T, B>*>> params, Options o) : params_(std::move(params)), opt_(o) {
    GCNET_CHECK(o.lr >= 0, "Sgd: invalid learning rate ", o.lr);
    GCNET_CHECK(o.momentum >= 0, "Sgd: invalid momentum ", o.momentum);
    GCNET_CHECK(o.weight_decay >= 0, "Sgd: invalid weight_decay ", o.weight_decay);
    GCNET_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
                "Sgd: Nesterov momentum requires a momentum and zero dampening");
    momentum_buffers_.resize(params_.size());
  }

  double lr() const { return opt_.lr; }
  void set_lr(double lr) { opt_.lr = lr; }
  const auto& params() const { return params_; }

  void step() {
    const T lr = static_cast<T>(opt_.lr), mom = static_cast<T>(opt_.momentum),
            damp = static_cast<T>(1 - opt_.dampening), wd = static_cast<T>(opt_.weight_decay);
    const bool nesterov = opt_.nesterov;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      Param<T, B>& prm = *params_[i].second;
      T* p = prm.value.data();
      const T* g = prm.grad.data();
      const index_t n = prm.value.numel();
      if (opt_.momentum == 0) {
        for_each_index(B{}, n, [=] GCNET_HD(index_t j) { p[j] -= lr * (g[j] + wd * p[j]); });
        continue;
      }
      Tensor<T, B>& buf_t = momentum_buffers_[i];
      const bool first = !buf_t.defined();
      if (first) buf_t.resize(prm.value.shape());
      T* buf = buf_t.data();
      for_each_index(B{}, n, [=] GCNET_HD(index_t j) {
        const T d = g[j] + wd * p[j];
        buf[j] = first ? d : mom * buf[j] + damp * d;
        p[j] -= lr * (nesterov ? d + mom * buf[j] : buf[j]);
      });
    }
  }

  // Named optimizer state for checkpoints: "<param name>.momentum_buffer" for each parameter
  // that has one (after its first step).
  std::vector<std::pair<std::string, Tensor<T, B>*>> state() {
    std::vector<std::pair<std::string, Tensor<T, B>*>> s;
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (momentum_buffers_[i].defined()) s.emplace_back(params_[i].first + ".momentum_buffer", &momentum_buffers_[i]);
    return s;
  }

  // Restores one entry of state() by name; throws naming the entry if it is unknown or
  // mis-shaped.
  void load_state(const std::string& name, const Tensor<T, Cpu>& value) {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (name != params_[i].first + ".momentum_buffer") continue;
      GCNET_CHECK(value.shape() == params_[i].second->value.shape(), "Sgd: state '", name, "' has shape ",
                  value.shape().str(), ", parameter has ", params_[i].second->value.shape().str());
      momentum_buffers_[i] = clone(to_backend<B>(value));
      return;
    }
    detail::fail("Sgd: no parameter for state '", name, "'");
  }

 private:
  std::vector<std::pair<std::string, Param<T, B>*>> params_;
  Options opt_;
  std::vector<Tensor<T, B>> momentum_buffers_;
};

}  // namespace gcnet
