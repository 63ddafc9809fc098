#pragma once
// Whole-file reads and atomic writes for the data pipeline; errors name the file.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "gcnet/core/error.hpp"

namespace gcnet::data {

// The bytes of `path`; "<path>: cannot open file (No such file or directory)" when absent.
inline std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  GCNET_CHECK(f != nullptr, path, ": cannot open file (", std::strerror(errno), ")");
  std::vector<std::uint8_t> bytes;
  std::uint8_t buf[1 << 16];
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + got);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  GCNET_CHECK(!failed, path, ": read error");
  return bytes;
}

// Moves a finished temporary file over `path`, so readers never see a half-written file.
inline void commit_temp_file(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    detail::fail(path, ": cannot replace file (", std::strerror(err), ")");
  }
}

}  // namespace gcnet::data
