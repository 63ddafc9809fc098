#pragma once
// Whole-file reads for the data pipeline; errors name the file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gcnet/core/error.hpp"

namespace gcnet::data {

// The bytes of `path`; "<path>: cannot open file (No such file or directory)" when absent.
// Only regular files are read: a FIFO or a device would block or never end. (O_NONBLOCK
// keeps open() itself from waiting for a FIFO's writer; it changes nothing for files.)
inline std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  GCNET_CHECK(fd >= 0, path, ": cannot open file (", std::strerror(errno), ")");
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_fd{fd};
  struct stat st {};
  GCNET_CHECK(::fstat(fd, &st) == 0, path, ": cannot open file (", std::strerror(errno), ")");
  GCNET_CHECK(!S_ISDIR(st.st_mode), path, ": cannot open file (it is a folder)");
  GCNET_CHECK(S_ISREG(st.st_mode), path, ": cannot open file (not a regular file: a FIFO, socket or device)");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t r = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (r < 0 && errno == EINTR) continue;
    GCNET_CHECK(r >= 0, path, ": read error (", std::strerror(errno), ")");
    if (r == 0) break;  // the file shrank while being read
    got += static_cast<std::size_t>(r);
  }
  bytes.resize(got);
  return bytes;
}

}  // namespace gcnet::data
