#pragma once
// Runs a program as a user would, for the command-line tests (tests/examples/): `program args`
// under `timeout`, stdout and stderr together. Needs doctest (REQUIRE) in the including test.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace gcnet::test {

struct Run {
  int status = -1;  // exit status; 124 when `timeout` stopped it
  std::string output;
};

inline Run run_program(const std::string& program, const std::string& args, int seconds = 120) {
  const std::string cmd = "timeout " + std::to_string(seconds) + " '" + program + "' " + args + " 2>&1";
  Run r;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf;
  while (std::fgets(buf.data(), buf.size(), p)) r.output += buf.data();
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// What a --time-budget run of gcnet_train_seg / gcnet_train_det printed: "... N iterations
// planned ..." and "trained M iterations in the time budget"; -1 where a line is missing.
struct BudgetCounts {
  long planned = -1, trained = -1;
};
inline BudgetCounts budget_counts(const std::string& output) {
  BudgetCounts c;
  const auto planned_at = output.find(" iterations planned");
  if (planned_at != std::string::npos && planned_at > 0)
    c.planned = std::stol(output.substr(output.rfind(' ', planned_at - 1) + 1));
  const auto trained_at = output.find("trained ");
  if (trained_at != std::string::npos) c.trained = std::stol(output.substr(trained_at + 8));
  return c;
}

}  // namespace gcnet::test
