#pragma once
// The benchmark registry: suites register named cases; the worker (bench_main.cpp) runs
// them on request. A case's prepare() builds its layer and tensors once and returns the
// timed actions, one per mode ("fwd", "fwd+bwd").
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace gcnet::bench {

using Action = std::function<void()>;
using Actions = std::map<std::string, Action>;  // mode -> action

struct Case {
  std::string suite, name;
  std::function<Actions()> prepare;
};

inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

// At namespace scope in a suite file: static gcnet::bench::Register r{"conv", "name", [] { ... }};
struct Register {
  Register(std::string suite, std::string name, std::function<Actions()> prepare) {
    registry().push_back({std::move(suite), std::move(name), std::move(prepare)});
  }
};

}  // namespace gcnet::bench
