#pragma once
// Reading a gzip file's contents piece by piece, in exactly the sizes the caller expects.
// The caller (idx_file.hpp) learns the total size from a header inside the compressed data,
// so the stream is inflated in steps: the header first, then exactly the bytes it implies,
// then the end of the stream. zlib verifies gzip's CRC-32 and length trailer when the stream
// ends, so a damaged file is an error; a file that lost its tail is reported as truncated,
// never silently shorter; data beyond what the header implies is an error, not ignored.
#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gcnet/core/error.hpp"
#include "gcnet/data/file_bytes.hpp"

namespace gcnet::data {

class GzipReader {
 public:
  // Reads the whole compressed file (a missing file: "<path>: cannot open file (...)").
  explicit GzipReader(std::string path) : path_(std::move(path)), bytes_(read_file_bytes(path_)) {
    GCNET_CHECK(bytes_.size() >= 2 && bytes_[0] == 0x1f && bytes_[1] == 0x8b, path_,
                ": not a gzip file (expected the gzip signature 1f 8b",
                bytes_.empty() ? "; the file is empty)" : ")");
    // 16 + MAX_WBITS: a gzip wrapper (not zlib's), whose CRC-32 and length zlib checks.
    GCNET_CHECK(inflateInit2(&z_, 16 + MAX_WBITS) == Z_OK, path_, ": cannot start zlib (out of memory)");
    z_.next_in = bytes_.data();
    left_in_ = bytes_.size();
  }
  ~GzipReader() { inflateEnd(&z_); }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  const std::string& path() const { return path_; }
  // Decompressed bytes handed out so far.
  std::size_t position() const { return produced_; }

  // The next n decompressed bytes into `out`; `what` names them in errors ("the IDX header").
  void read(std::uint8_t* out, std::size_t n, const std::string& what) {
    std::size_t got = 0;
    while (got < n) {
      const std::size_t want = n - got;
      z_.next_out = out + got;
      z_.avail_out = want > (1u << 30) ? (1u << 30) : static_cast<uInt>(want);
      const uInt room = z_.avail_out;
      const int rc = step();
      got += room - z_.avail_out;
      produced_ += room - z_.avail_out;
      if (rc == Z_STREAM_END && got < n)
        gcnet::detail::fail(path_, ": truncated file (its decompressed contents end after ", produced_,
                            " bytes, in ", what, ", which needs ", n - got, " more bytes)");
    }
  }

  // After the last expected byte: the gzip stream must end here, its CRC-32 and length right.
  void expect_end(const std::string& expected_size_why) {
    std::uint8_t probe[256];
    for (;;) {
      z_.next_out = probe;
      z_.avail_out = sizeof probe;
      const int rc = step();
      const std::size_t extra = sizeof probe - z_.avail_out;
      GCNET_CHECK(extra == 0, path_, ": corrupt file (it holds more than the ", produced_, " bytes ",
                  expected_size_why, ")");
      if (rc == Z_STREAM_END) return;
    }
  }

 private:
  // One inflate() call; every outcome but progress or the stream's end is an error.
  int step() {
    if (z_.avail_in == 0 && left_in_ > 0) {  // zlib takes 32-bit lengths
      z_.avail_in = left_in_ > (1u << 30) ? (1u << 30) : static_cast<uInt>(left_in_);
      left_in_ -= z_.avail_in;
    }
    const uInt in_before = z_.avail_in, out_before = z_.avail_out;
    const int rc = inflate(&z_, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) return rc;
    const bool stuck = z_.avail_in == in_before && z_.avail_out == out_before;
    if (rc == Z_BUF_ERROR || (rc == Z_OK && stuck && left_in_ == 0))
      gcnet::detail::fail(path_, ": truncated gzip file (the compressed data ends after ", produced_ + out_before - z_.avail_out,
                          " decompressed bytes, before the end of the gzip stream)");
    if (rc == Z_MEM_ERROR) gcnet::detail::fail(path_, ": out of memory while decompressing");
    if (rc != Z_OK) {
      const std::string why = z_.msg ? z_.msg : "invalid data";
      gcnet::detail::fail(path_, ": corrupt gzip file (",
                          why == "incorrect data check"     ? std::string("the data fails its CRC-32 check")
                          : why == "incorrect length check" ? std::string("the data's length differs from its trailer")
                                                            : why,
                          ": the file was damaged)");
    }
    return rc;
  }

  std::string path_;
  std::vector<std::uint8_t> bytes_;
  z_stream z_{};
  std::size_t left_in_ = 0, produced_ = 0;
};

}  // namespace gcnet::data
