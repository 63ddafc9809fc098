#pragma once
// IDX files (the format of MNIST and Fashion-MNIST), gzip-compressed: a 4-byte magic number
// (two zero bytes, the element type, the number of dimensions), the dimensions as big-endian
// 32-bit integers, then the elements in row-major order. Only unsigned bytes (type 0x08) are
// read, which is all (Fashion-)MNIST uses. The header fixes the data's exact size, so a file
// that is shorter or longer than it says is an error, as is any damage gzip's CRC-32 catches.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/core/config.hpp"
#include "gcnet/core/error.hpp"
#include "gcnet/data/gzip_reader.hpp"

namespace gcnet::data {

struct IdxArray {
  std::vector<index_t> dims;
  std::vector<std::uint8_t> data;  // row-major, the product of dims bytes
};

// Reads a gzip-compressed IDX file of unsigned bytes with the dimensions `expected` (-1 for a
// dimension that may be anything). The header is checked against them before any data is
// allocated, so a damaged header cannot claim gigabytes. Errors name the file: missing, not
// gzip, truncated, damaged, wrong magic (another element type or rank), other dimensions
// (`what` says what was expected, e.g. "10000 labels (the Fashion-MNIST test split)"), or
// more data than the header implies.
inline IdxArray read_idx_gz(const std::string& path, const std::vector<index_t>& expected, const std::string& what,
                            std::uint64_t max_bytes = std::uint64_t{1} << 30) {
  const int rank = static_cast<int>(expected.size());
  GzipReader gz(path);
  std::uint8_t magic[4];
  gz.read(magic, 4, "the IDX magic number");
  GCNET_CHECK(magic[0] == 0 && magic[1] == 0, path, ": not an IDX file (the magic number starts with ",
              int{magic[0]}, " ", int{magic[1]}, ", expected 0 0)");
  GCNET_CHECK(magic[2] == 0x08, path, ": unsupported IDX element type 0x", std::hex, int{magic[2]}, std::dec,
              " (expected 0x08, unsigned bytes)");
  GCNET_CHECK(magic[3] == rank, path, ": IDX file with ", int{magic[3]}, " dimensions, expected ", rank, " (", what, ")");
  IdxArray a;
  std::vector<std::uint8_t> header(static_cast<std::size_t>(rank) * 4);
  gz.read(header.data(), header.size(), "the IDX dimensions");
  std::uint64_t total = 1;
  bool as_expected = true;
  for (int d = 0; d < rank; ++d) {
    const std::uint8_t* p = &header[static_cast<std::size_t>(d) * 4];
    const std::uint64_t n = (std::uint64_t{p[0]} << 24) | (std::uint64_t{p[1]} << 16) | (std::uint64_t{p[2]} << 8) | p[3];
    a.dims.push_back(static_cast<index_t>(n));
    as_expected &= expected[static_cast<std::size_t>(d)] < 0 || a.dims.back() == expected[static_cast<std::size_t>(d)];
    total = std::min<std::uint64_t>(total * n, std::uint64_t{1} << 62);  // saturate: no wrap-around
  }
  if (!as_expected) {
    std::string dims;
    for (const index_t n : a.dims) {
      if (!dims.empty()) dims += 'x';
      dims += std::to_string(n);
    }
    gcnet::detail::fail(path, ": expected ", what, ", the IDX header says ", dims);
  }
  GCNET_CHECK(total <= max_bytes, path, ": the IDX header claims ", total, " bytes of data, more than the limit of ",
              max_bytes, " (a damaged header?)");
  a.data.resize(static_cast<std::size_t>(total));
  gz.read(a.data.data(), a.data.size(), "the IDX data (" + std::to_string(total) + " bytes after the header)");
  gz.expect_end("its IDX header implies");
  return a;
}

}  // namespace gcnet::data
