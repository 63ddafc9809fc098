#pragma once
// Temporary files that killed writers left behind. write_file_atomically names its temporary
// file <target>.tmp-<host>-<pid>-<n>; a process killed (kill -9, OOM, power loss) between
// creating and renaming it cannot remove it, so each later write removes, in its folder, the
// temporary files of processes on this host that no longer exist. Files of live processes
// (another writer at work), of other hosts (a shared work folder) and of this process are
// kept. The older name <target>.tmp-<pid>-<n> (without the host) counts as this host's.
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>

namespace gcnet::io {

// This machine's host name, reduced to [A-Za-z0-9_.] (it becomes part of file names).
inline std::string this_host() {
  static const std::string host = [] {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return std::string("localhost");
    std::string h(buf);
    for (char& c : h)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_') c = '_';
    return h;
  }();
  return host;
}

namespace detail {
inline bool all_digits(const std::string& s) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// The writer's pid if `name` is a temporary file of a writer on this host, else -1.
inline long temporary_file_owner(const std::string& name) {
  const auto tmp = name.rfind(".tmp-");
  if (tmp == std::string::npos || tmp == 0) return -1;
  std::string rest = name.substr(tmp + 5);  // [<host>-]<pid>-<n>
  auto last_field = [&]() {
    const auto dash = rest.rfind('-');
    std::string field = dash == std::string::npos ? rest : rest.substr(dash + 1);
    rest = dash == std::string::npos ? std::string() : rest.substr(0, dash);
    return field;
  };
  const std::string n = last_field();
  const bool has_more = !rest.empty();
  const std::string pid = has_more ? last_field() : std::string();
  if (!all_digits(n) || !all_digits(pid)) return -1;
  if (!rest.empty() && rest != this_host()) return -1;  // rest is the host, or empty (old names)
  return std::stol(pid);
}
}  // namespace detail

// Removes the stale temporary files in `folder` (see above); returns how many. Errors are
// ignored: cleaning up is a courtesy, never a reason for a save to fail.
inline int remove_stale_temporary_files(const std::filesystem::path& folder) {
  namespace fs = std::filesystem;
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const long pid = detail::temporary_file_owner(it->path().filename().string());
    if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to ask)
    std::error_code rm;
    if (it->is_regular_file(rm) && fs::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

}  // namespace gcnet::io
