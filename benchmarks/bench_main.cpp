// gcnet_bench: runs registered benchmark cases.
//   gcnet_bench --worker SUITE     line protocol on stdin/stdout for benchmarks/driver.py:
//       list                       -> "cases NAME NAME ..."
//       run CASE MODE ITERS        -> "ok MS MS ..." (one time per iteration, milliseconds)
//       peak                       -> "ok KB": the process's peak resident memory (VmHWM)
//       quit
//     A case is prepared (and each mode run once, untimed) on its first request.
//   gcnet_bench SUITE [ITERS]      standalone: median of ITERS runs of every case and mode
//                                  (for profiling; comparisons go through scripts/bench).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <fstream>
#include <sstream>

#include "bench_registry.hpp"

namespace {
using namespace gcnet::bench;

std::vector<const Case*> suite_cases(const std::string& suite) {
  std::vector<const Case*> out;
  for (const auto& c : registry())
    if (c.suite == suite) out.push_back(&c);
  return out;
}

struct Prepared {
  Actions actions;
  std::map<std::string, bool> warm;
};

// VmHWM of /proc/self/status: the most resident memory the process has had, in KB.
long peak_resident_kb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      long kb = 0;
      status >> kb;
      return kb;
    }
    status.ignore(1 << 20, '\n');
  }
  throw std::runtime_error("no VmHWM in /proc/self/status");
}

double time_ms(const Action& a) {
  const auto t0 = std::chrono::steady_clock::now();
  a();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int worker(const std::string& suite) {
  const auto cases = suite_cases(suite);
  std::map<std::string, Prepared> prepared;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    try {
      if (cmd == "quit") break;
      if (cmd == "list") {
        std::cout << "cases";
        for (const Case* c : cases) std::cout << ' ' << c->name;
        std::cout << std::endl;
      } else if (cmd == "peak") {
        std::cout << "ok " << peak_resident_kb() << std::endl;
      } else if (cmd == "run") {
        std::string name, mode;
        int iters = 1;
        in >> name >> mode >> iters;
        auto it = std::find_if(cases.begin(), cases.end(), [&](const Case* c) { return c->name == name; });
        if (it == cases.end()) throw std::runtime_error("no case '" + name + "' in suite '" + suite + "'");
        auto p = prepared.find(name);
        if (p == prepared.end()) p = prepared.emplace(name, Prepared{(*it)->prepare(), {}}).first;
        auto a = p->second.actions.find(mode);
        if (a == p->second.actions.end()) throw std::runtime_error("case '" + name + "' has no mode '" + mode + "'");
        if (!p->second.warm[mode]) {
          a->second();
          p->second.warm[mode] = true;
        }
        std::ostringstream os;
        os << "ok";
        for (int i = 0; i < iters; ++i) os << ' ' << time_ms(a->second);
        std::cout << os.str() << std::endl;
      } else {
        throw std::runtime_error("unknown command '" + cmd + "'");
      }
    } catch (const std::exception& e) {
      std::cout << "error " << e.what() << std::endl;
    }
  }
  return 0;
}

int standalone(const std::string& suite, int iters) {
  const auto cases = suite_cases(suite);
  if (cases.empty()) {
    std::cerr << "gcnet_bench: no cases in suite '" << suite << "'\n";
    return 1;
  }
  for (const Case* c : cases) {
    Actions actions = c->prepare();
    for (const auto& [mode, action] : actions) {
      action();
      std::vector<double> t;
      for (int i = 0; i < iters; ++i) t.push_back(time_ms(action));
      std::sort(t.begin(), t.end());
      std::printf("%-24s %-8s %9.3f ms\n", c->name.c_str(), mode.c_str(), t[t.size() / 2]);
    }
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "--worker") return worker(args[1]);
  if (args.size() == 1 || args.size() == 2) return standalone(args[0], args.size() == 2 ? std::stoi(args[1]) : 11);
  std::cerr << "usage: gcnet_bench --worker SUITE | gcnet_bench SUITE [ITERS]\n";
  return 2;
}
