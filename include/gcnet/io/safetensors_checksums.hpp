#pragma once
// Checksums gcnet stores in the safetensors files it writes, so that a flipped bit in a
// checkpoint is an error on load instead of a different value. The format itself has none;
// they live in the string metadata, where other readers (Python safetensors, PyTorch tools)
// ignore them:
//   gcnet_tensor_crc32  JSON object {"<tensor name>": "<crc32 of its bytes, 8 hex digits>"}
//   gcnet_header_crc32  crc32 of the canonical header text (below): every name, dtype, shape,
//                       offset and every other metadata value, gcnet_tensor_crc32 included
// Files without them (fixtures, files converted from PyTorch) load unchecked.
#include <cstdint>
#include <map>
#include <string>

#include "gcnet/core/shape.hpp"
#include "gcnet/io/crc32.hpp"

namespace gcnet::io {

inline constexpr const char* kTensorCrcKey = "gcnet_tensor_crc32";
inline constexpr const char* kHeaderCrcKey = "gcnet_header_crc32";

inline bool is_checksum_key(const std::string& key) { return key == kTensorCrcKey || key == kHeaderCrcKey; }

// What the header checksum covers, in a fixed order that does not depend on how the JSON
// was formatted: "name\0dtype\0d0,d1,...\0begin\0end\n" per tensor (sorted by name), then
// "key\0value\n" per metadata entry (sorted by key) except gcnet_header_crc32 itself.
struct HeaderDigest {
  std::string text;
  void tensor(const std::string& name, const std::string& dtype, const Shape& shape, std::uint64_t begin,
              std::uint64_t end) {
    text += name;
    text += '\0';
    text += dtype;
    text += '\0';
    for (int i = 0; i < shape.rank(); ++i) {
      if (i) text += ',';
      text += std::to_string(shape[i]);
    }
    text += '\0';
    text += std::to_string(begin);
    text += '\0';
    text += std::to_string(end);
    text += '\n';
  }
  void metadata(const std::map<std::string, std::string>& meta) {
    for (const auto& [k, v] : meta) {
      if (k == kHeaderCrcKey) continue;
      text += k;
      text += '\0';
      text += v;
      text += '\n';
    }
  }
  std::string crc_hex() const { return crc32_hex(crc32_of(text.data(), text.size())); }
};

}  // namespace gcnet::io
