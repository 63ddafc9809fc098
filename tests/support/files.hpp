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

// A safetensors file with a hand-written header over `data_bytes` bytes of data (the header is
// padded to 8 bytes, as the writer does).
inline void write_raw_safetensors(const std::filesystem::path& p, const std::string& header, std::size_t data_bytes) {
  std::string h = header;
  h.resize((h.size() + 7) / 8 * 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
  spit(p, out + h + std::string(data_bytes, '\x01'));
}

}  // namespace gcnet::test
