#pragma once
// What an ablation table records about the run that made it: threads, compiler, build type,
// commit, date and the exact command. The commit is read from the source tree's .git at run time
// (HEAD, its ref file or packed-refs; a worktree's "gitdir:" file is followed), so it needs no
// git program; "unknown" when there is no .git. It names the commit checked out, which may differ
// from the working tree (a table made from uncommitted changes says the commit it started from).
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gcnet/core/parallel.hpp"

namespace gcnet::ablate {

namespace run_detail {
inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p);
  if (!f) return {};
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
inline std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace run_detail

// The commit of the git checkout containing `start` (searched upwards), or "unknown".
inline std::string read_git_commit(std::filesystem::path start) {
  namespace fs = std::filesystem;
  std::error_code ec;
  start = fs::absolute(start, ec);
  for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
    fs::path git = dir / ".git";
    if (fs::is_regular_file(git, ec)) {  // a worktree: "gitdir: <path>"
      const std::string t = run_detail::trim(run_detail::read_text(git));
      if (t.rfind("gitdir: ", 0) != 0) return "unknown";
      git = fs::path(t.substr(8));
      if (git.is_relative()) git = dir / git;
    } else if (!fs::is_directory(git, ec)) {
      if (dir == dir.parent_path()) break;
      continue;
    }
    const std::string head = run_detail::trim(run_detail::read_text(git / "HEAD"));
    if (head.rfind("ref: ", 0) != 0) return head.empty() ? "unknown" : head;  // detached
    const std::string ref = head.substr(5);
    fs::path common = git;
    if (const std::string c = run_detail::trim(run_detail::read_text(git / "commondir")); !c.empty())
      common = fs::path(c).is_relative() ? git / c : fs::path(c);
    for (const fs::path& base : {git, common}) {
      const std::string loose = run_detail::trim(run_detail::read_text(base / ref));
      if (!loose.empty()) return loose;
      std::istringstream packed(run_detail::read_text(base / "packed-refs"));
      for (std::string line; std::getline(packed, line);)
        if (line.size() > 41 && line.compare(41, std::string::npos, ref) == 0) return line.substr(0, 40);
    }
    return "unknown";
  }
  return "unknown";
}

inline std::string compiler_name() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return "unknown compiler";
#endif
}

// The build type given by the build (GCNET_ABLATE_BUILD_TYPE), else what NDEBUG says.
inline std::string build_type_name() {
#if defined(GCNET_ABLATE_BUILD_TYPE)
  return GCNET_ABLATE_BUILD_TYPE;
#elif defined(NDEBUG)
  return "optimised (NDEBUG)";
#else
  return "debug (no NDEBUG)";
#endif
}

inline std::string utc_date() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// argv as a shell command (arguments with spaces or quotes single-quoted).
inline std::string command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    const bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`*?;&|<>()") == std::string::npos;
    if (!plain) {
      std::string q = "'";
      for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
      a = q + "'";
    }
    s += (i ? " " : "") + a;
  }
  return s;
}

struct RunInfo {
  std::string command, date, compiler, build_type, commit;
  int threads = 0;
};

// The run's record: the command as given, now, this build, the commit of `source_dir`.
inline RunInfo current_run(const std::string& command, const std::string& source_dir) {
  return {command, utc_date(), compiler_name(), build_type_name(), read_git_commit(source_dir), num_threads()};
}

}  // namespace gcnet::ablate
