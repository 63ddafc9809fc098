#pragma once
// One exception type for every user-facing error, and a check macro that builds
// its message lazily: messages name the layer (or file) and what was expected.
#include <sstream>
#include <stdexcept>
#include <string>

namespace gcnet {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Parts>
[[noreturn]] inline void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(os.str());
}
}  // namespace detail

}  // namespace gcnet

// GCNET_CHECK(cond, part, part, ...): throws gcnet::Error with the parts streamed together.
#define GCNET_CHECK(cond, ...)                          \
  do {                                                  \
    if (!(cond)) ::gcnet::detail::fail(__VA_ARGS__);    \
  } while (0)
