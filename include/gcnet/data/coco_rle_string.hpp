#pragma once
// The compressed string form of a COCO RLE ({"size": [h, w], "counts": "92203"}), as
// maskApi.c's rleToString / rleFrString: every count from the fourth on (index > 2, not >= 2)
// is stored as the difference to the count two places before it (the previous run of the same
// value), and each value is written as little-endian 5-bit groups, one character per group
// ('0' + group, bit 0x20 = "more groups follow", bit 0x10 of the last group = negative, so the
// value is sign-extended). Characters are '0'..'o' (48..111); a JSON writer escapes the '\\'
// that can occur.
//
// Decoding is strict where pycocotools reads past the end or wraps silently: a character
// outside '0'..'o', a string that ends inside a value, a count that falls outside uint32, and
// counts that do not sum to h * w are each an Error naming `where` and the offending position.
#include <cstdint>
#include <string>

#include "gcnet/data/coco_rle.hpp"

namespace gcnet::data {

inline std::string rle_to_string(const Rle& r) {
  std::string s;
  s.reserve(r.counts.size() * 2);
  for (std::size_t i = 0; i < r.counts.size(); ++i) {
    std::int64_t x = r.counts[i];
    if (i > 2) x -= r.counts[i - 2];
    for (bool more = true; more;) {
      int c = static_cast<int>(x & 0x1f);
      x >>= 5;  // arithmetic: a negative x tends to -1
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s.push_back(static_cast<char>(c + 48));
    }
  }
  return s;
}

inline Rle rle_from_string(const std::string& s, index_t h, index_t w, const std::string& where = "rle_from_string") {
  GCNET_CHECK(h > 0 && w > 0, where, ": RLE size ", h, "x", w, " is not positive");
  Rle r{h, w, {}};
  r.counts.reserve(s.size());
  std::size_t p = 0;
  while (p < s.size()) {
    const std::size_t start = p;
    std::int64_t x = 0;
    int k = 0;
    for (bool more = true; more; ++k) {
      GCNET_CHECK(p < s.size(), where, ": compressed RLE string ends inside the value that starts at character ",
                  start, " (the string is truncated or damaged)");
      const unsigned char ch = static_cast<unsigned char>(s[p]);
      GCNET_CHECK(ch >= 48 && ch <= 111, where, ": compressed RLE string has the character ",
                  (ch >= 32 && ch < 127) ? std::string(1, static_cast<char>(ch)) : "\\x" + std::to_string(ch),
                  " at position ", p, " (valid characters are '0'..'o')");
      GCNET_CHECK(k < 12, where, ": compressed RLE string has a value longer than 12 characters at position ", start);
      const int c = ch - 48;
      x |= static_cast<std::int64_t>(c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      if (!more && (c & 0x10)) x |= static_cast<std::int64_t>(-1) * (std::int64_t{1} << (5 * (k + 1)));
    }
    if (r.counts.size() > 2) x += r.counts[r.counts.size() - 2];
    GCNET_CHECK(x >= 0 && x <= static_cast<std::int64_t>(UINT32_MAX), where, ": compressed RLE string decodes to the count ",
                x, " (run ", r.counts.size(), ", at character ", start, "), which is not a pixel count");
    r.counts.push_back(static_cast<std::uint32_t>(x));
  }
  rle_check(r, where);
  return r;
}

}  // namespace gcnet::data
