#pragma once
// The message of the gcnet::Error that f() throws, or "(no error)": tests check that a bad input is
// refused with a message naming the culprit (CHECK(error_of(...).find("...") != npos)).
#include <string>

#include "gcnet/core/error.hpp"

namespace gcnet::test {

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace gcnet::test
