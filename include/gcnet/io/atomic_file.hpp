#pragma once
// write_file_atomically(path, produce): the file at `path` is either left as it was or
// replaced as a whole, never half-written. The bytes go to a temporary file in the same
// folder (so rename() stays on one filesystem), which is fsync'ed, renamed over `path`,
// and then the folder is fsync'ed so the rename itself survives a crash. Any failure,
// including an exception thrown by `produce`, removes the temporary file and rethrows.
//
// Two things a process cannot clean up after itself are handled here too:
//  - a file-size limit (ulimit -f): the kernel would kill the process with SIGXFSZ in the
//    middle of the write, leaving the temporary file; the signal is ignored instead (if the
//    program has not set its own handler), so the write fails with EFBIG and is cleaned up;
//  - a process killed while writing leaves its temporary file: each write removes those of
//    dead processes in its folder (stale_temporary_files.hpp).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>

#include "gcnet/core/error.hpp"
#include "gcnet/io/stale_temporary_files.hpp"

namespace gcnet::io {

// Where `produce` writes; every write is checked (short writes and EINTR are retried).
class FileSink {
 public:
  FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  void write(const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      GCNET_CHECK(w > 0, path_, ": cannot write: ", std::strerror(errno),
                  errno == EFBIG ? " (the file-size limit, ulimit -f, was reached)" : "");
      p += w;
      n -= static_cast<std::size_t>(w);
      written_ += static_cast<std::size_t>(w);
    }
  }
  std::size_t bytes_written() const { return written_; }

 private:
  int fd_;
  std::string path_;
  std::size_t written_ = 0;
};

namespace detail {
// A name no other writer (thread or process, on any host sharing the folder) uses at the same
// time: <target>.tmp-<host>-<pid>-<n> (stale_temporary_files.hpp parses it).
inline std::string temporary_name(const std::filesystem::path& target) {
  static std::atomic<unsigned> counter{0};
  return target.string() + ".tmp-" + this_host() + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

inline void fsync_folder(const std::filesystem::path& folder, const std::string& path) {
  const int dfd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  GCNET_CHECK(dfd >= 0, path, ": written, but cannot open its folder to sync it: ", std::strerror(errno));
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  // Some filesystems do not support fsync on folders (EINVAL); the rename is done anyway.
  GCNET_CHECK(rc == 0 || err == EINVAL, path, ": written, but syncing its folder failed: ", std::strerror(err));
}
}  // namespace detail

// SIGXFSZ's default action kills the process (and leaves the temporary file): ignore it, so
// that exceeding the file-size limit is an EFBIG error that the writers report and clean up
// after. A handler the program installed is kept. Called by every atomic write, and by the
// trainer before it writes its log.
inline void ignore_file_size_signal() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (::sigaction(SIGXFSZ, nullptr, &current) == 0 && !(current.sa_flags & SA_SIGINFO) &&
        current.sa_handler == SIG_DFL)
      std::signal(SIGXFSZ, SIG_IGN);
  });
}

inline void write_file_atomically(const std::string& path, const std::function<void(FileSink&)>& produce) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  GCNET_CHECK(fs::is_directory(folder, ec), path, ": cannot write: folder '", folder.string(),
              "' does not exist");
  GCNET_CHECK(!fs::is_directory(target, ec), path, ": cannot write: it is a folder");
  ignore_file_size_signal();
  remove_stale_temporary_files(folder);
  const std::string tmp = detail::temporary_name(target);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  GCNET_CHECK(fd >= 0, path, ": cannot create the temporary file '", tmp, "': ", std::strerror(errno));
  bool open = true;
  try {
    FileSink sink(fd, path);
    produce(sink);
    GCNET_CHECK(::fsync(fd) == 0, path, ": cannot sync the temporary file: ", std::strerror(errno));
    open = false;
    GCNET_CHECK(::close(fd) == 0, path, ": cannot close the temporary file: ", std::strerror(errno));
    GCNET_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, path, ": cannot rename the temporary file over it: ",
                std::strerror(errno));
  } catch (...) {
    if (open) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  detail::fsync_folder(folder, path);
}

}  // namespace gcnet::io
