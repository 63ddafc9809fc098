#pragma once
// Inflating a PNG's zlib stream to exactly the size its header implies, through zlib:
// zlib verifies the stream's Adler-32 (so a flipped bit in the image data is an error,
// not other pixels), and output is produced in bounded steps, so a small file that
// inflates to gigabytes (a decompression bomb) stops with an error as soon as it passes
// the expected size, before anything that large is allocated.
#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/core/error.hpp"

namespace gcnet::data {

// Inflates the zlib stream `z` (n bytes) into `out` (`expected` bytes), or, with out ==
// nullptr, only checks that it inflates to exactly `expected` bytes and passes its Adler-32.
// Bytes after the end of the stream are ignored (as libpng does). Errors name `path`.
inline void inflate_exactly(const std::uint8_t* z, std::size_t n, std::uint8_t* out, std::size_t expected,
                            const std::string& path) {
  z_stream s{};
  GCNET_CHECK(inflateInit(&s) == Z_OK, path, ": cannot start zlib (out of memory)");
  struct End {
    z_stream* s;
    ~End() { inflateEnd(s); }
  } end{&s};
  std::uint8_t scratch[1 << 15];  // where the bytes go when only checking, and the overflow probe
  std::size_t produced = 0;
  s.next_in = const_cast<Bytef*>(z);
  for (;;) {
    if (s.avail_in == 0 && n > 0) {  // zlib takes 32-bit lengths
      s.avail_in = n > (1u << 30) ? (1u << 30) : static_cast<uInt>(n);
      n -= s.avail_in;
    }
    // Room for the rest of the expected bytes, plus one step past them to detect a surplus.
    const std::size_t left = expected - produced;
    if (out && left > 0) {
      s.next_out = out + produced;
      s.avail_out = left > (1u << 30) ? (1u << 30) : static_cast<uInt>(left);
    } else {
      s.next_out = scratch;
      s.avail_out = static_cast<uInt>(left > 0 && left < sizeof scratch ? left : sizeof scratch);
    }
    const uInt room = s.avail_out, in_before = s.avail_in;
    const int rc = inflate(&s, Z_NO_FLUSH);
    produced += room - s.avail_out;
    GCNET_CHECK(produced <= expected, path, ": corrupt PNG (the image data inflates to more than the ", expected,
                " bytes its header implies: a decompression bomb, or a damaged header)");
    if (rc == Z_STREAM_END) break;
    const bool stuck = s.avail_out == room && s.avail_in == in_before;  // neither read nor wrote
    if (rc == Z_BUF_ERROR || (rc == Z_OK && stuck && n == 0))
      gcnet::detail::fail(path, ": truncated PNG (the image data ends after ", produced, " of ", expected,
                          " bytes, before the end of its zlib stream)");
    if (rc == Z_MEM_ERROR) gcnet::detail::fail(path, ": out of memory while inflating the image data");
    if (rc != Z_OK) {
      const std::string why = s.msg ? s.msg : rc == Z_NEED_DICT ? "needs a preset dictionary" : "invalid data";
      gcnet::detail::fail(path, ": corrupt PNG (the image data ",
                          why == "incorrect data check" ? std::string("fails its Adler-32 checksum")
                                                        : "does not inflate: " + why,
                          ")");
    }
  }
  GCNET_CHECK(produced == expected, path, ": truncated PNG (the image data inflates to ", produced,
              " bytes, its header implies ", expected, ")");
}

inline std::vector<std::uint8_t> inflate_exactly(const std::vector<std::uint8_t>& z, std::size_t expected,
                                                 const std::string& path) {
  std::vector<std::uint8_t> out(expected);
  inflate_exactly(z.data(), z.size(), out.data(), expected, path);
  return out;
}

}  // namespace gcnet::data
