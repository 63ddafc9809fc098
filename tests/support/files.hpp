#pragma once
// File helpers for tests that write and corrupt files: per-test scratch folders, whole-file
// reads and writes, and doctest::Contains for std::string.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace gcnet::test {

inline doctest::Contains has(const std::string& s) { return doctest::Contains(s.c_str()); }

// A fresh, empty folder $TMPDIR/gcnet_test_<suite>_<pid>/<name>.
inline std::filesystem::path scratch_dir(const std::string& suite, const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / ("gcnet_test_" + suite + "_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
inline void spit(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace gcnet::test
