#pragma once
// CRC-32 (the checksum of PNG chunks, zip and gzip) through zlib. zlib's is used rather than
// a hand-written table loop because it is several times faster (it works on words, not
// bytes), which matters when every tensor of a large checkpoint is checksummed on load.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace gcnet::io {

// The CRC-32 of `n` bytes at `data`, continuing from `crc` (0 to start).
inline std::uint32_t crc32_of(const void* data, std::size_t n, std::uint32_t crc = 0) {
  auto p = static_cast<const Bytef*>(data);
  uLong c = crc;
  while (n > 0) {  // zlib takes 32-bit lengths
    const uInt step = n > (1u << 30) ? (1u << 30) : static_cast<uInt>(n);
    c = ::crc32(c, p, step);
    p += step;
    n -= step;
  }
  return static_cast<std::uint32_t>(c);
}

// Eight lowercase hex digits, as stored in checkpoint metadata.
inline std::string crc32_hex(std::uint32_t crc) {
  char s[9];
  std::snprintf(s, sizeof s, "%08x", static_cast<unsigned>(crc));
  return s;
}

}  // namespace gcnet::io
