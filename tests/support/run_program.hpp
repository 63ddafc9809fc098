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

}  // namespace gcnet::test
