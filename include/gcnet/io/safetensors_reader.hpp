#pragma once
// Reads the safetensors format (8-byte little-endian header length, JSON header,
// raw little-endian data): tensor names, dtypes, shapes, offsets, and the string
// metadata. Every inconsistency (missing file, truncation, bad JSON, bad entries,
// offsets outside the data, holes or overlaps, overflowing shapes) is a gcnet::Error
// naming the file and the problem; nothing in a file can make the reader crash.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/core/tensor.hpp"

namespace gcnet::io {

static_assert(std::endian::native == std::endian::little,
              "gcnet's safetensors reader/writer copy little-endian data as is");

struct SafetensorsEntry {
  std::string dtype;  // "F32", "F64", "I64", ...
  Shape shape;
  std::size_t begin = 0, end = 0;  // byte offsets into the data section
};

inline std::size_t dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

// The largest header accepted (the Python safetensors package uses the same bound): a
// corrupt length cannot make the reader allocate gigabytes.
inline constexpr std::uint64_t kMaxSafetensorsHeader = 100u << 20;

class SafetensorsReader {
 public:
  // Reads the header only (names, shapes, metadata); tensor() is then unavailable.
  struct HeaderOnly {};

  explicit SafetensorsReader(const std::string& path) : path_(path) { read(true); }
  SafetensorsReader(const std::string& path, HeaderOnly) : path_(path) { read(false); }

  const std::string& path() const { return path_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  const SafetensorsEntry& entry(const std::string& name) const {
    auto it = entries_.find(name);
    GCNET_CHECK(it != entries_.end(), path_, ": no tensor named '", name, "'");
    return it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (auto& [k, v] : entries_) n.push_back(k);
    return n;
  }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::string meta(const std::string& key) const {
    auto it = metadata_.find(key);
    GCNET_CHECK(it != metadata_.end(), path_, ": no metadata key '", key, "'");
    return it->second;
  }
  long long meta_int(const std::string& key) const {
    const std::string v = meta(key);
    try {
      std::size_t used = 0;
      const long long r = std::stoll(v, &used);
      if (used == v.size()) return r;
    } catch (const std::exception&) {
    }
    gcnet::detail::fail(path_, ": metadata '", key, "' = '", v, "' is not an integer");
  }
  double meta_double(const std::string& key) const {
    const std::string v = meta(key);
    try {
      std::size_t used = 0;
      const double r = std::stod(v, &used);
      if (used == v.size()) return r;
    } catch (const std::exception&) {
    }
    gcnet::detail::fail(path_, ": metadata '", key, "' = '", v, "' is not a number");
  }

  // The named tensor converted to T (floating dtypes, I64/I32, U8/BOOL are accepted).
  template <class T>
  Tensor<T, Cpu> tensor(const std::string& name) const {
    const auto& e = entry(name);
    GCNET_CHECK(has_data_, path_, ": opened for its header only; cannot read tensor '", name, "'");
    Tensor<T, Cpu> t(e.shape);
    const unsigned char* p = data_.data() + e.begin;
    T* out = t.data();
    const index_t n = t.numel();
    auto convert = [&](auto tag) {
      using S = decltype(tag);
      for (index_t i = 0; i < n; ++i) {
        S v;
        std::memcpy(&v, p + sizeof(S) * static_cast<std::size_t>(i), sizeof(S));
        out[i] = static_cast<T>(v);
      }
    };
    if (e.dtype == "F32") convert(float{});
    else if (e.dtype == "F64") convert(double{});
    else if (e.dtype == "I64") convert(std::int64_t{});
    else if (e.dtype == "I32") convert(std::int32_t{});
    else if (e.dtype == "U8" || e.dtype == "BOOL") convert(std::uint8_t{});
    else gcnet::detail::fail(path_, ": tensor '", name, "' has dtype ", e.dtype, ", which cannot be read as a number here");
    return t;
  }

 private:
  void read(bool with_data) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto st = fs::status(path_, ec);
    GCNET_CHECK(fs::exists(st), path_, ": cannot open: no such file");
    GCNET_CHECK(!fs::is_directory(st), path_, ": cannot open: it is a folder, not a file");
    std::ifstream in(path_, std::ios::binary);
    GCNET_CHECK(in.good(), path_, ": cannot open: ", std::strerror(errno));
    const auto size = fs::file_size(path_, ec);
    GCNET_CHECK(!ec, path_, ": cannot open: ", ec.message());
    GCNET_CHECK(size >= 8, path_, ": truncated (", size, " bytes, need at least the 8-byte header length)");
    unsigned char len_bytes[8];
    in.read(reinterpret_cast<char*>(len_bytes), 8);
    GCNET_CHECK(in.gcount() == 8, path_, ": cannot read the header length");
    std::uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
    GCNET_CHECK(header_len <= size - 8, path_, ": truncated or corrupt header (header length ", header_len,
                " but only ", size - 8, " bytes follow)");
    GCNET_CHECK(header_len <= kMaxSafetensorsHeader, path_, ": corrupt header (header length ", header_len,
                " exceeds ", kMaxSafetensorsHeader, " bytes)");
    std::string header(header_len, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header_len));
    GCNET_CHECK(static_cast<std::uint64_t>(in.gcount()) == header_len, path_, ": truncated header");
    const std::uint64_t data_size = size - 8 - header_len;
    parse_header(header, data_size);
    if (!with_data) return;
    data_.resize(data_size);
    in.read(reinterpret_cast<char*>(data_.data()), static_cast<std::streamsize>(data_size));
    GCNET_CHECK(static_cast<std::uint64_t>(in.gcount()) == data_size, path_, ": truncated data section");
    has_data_ = true;
  }

  void parse_header(const std::string& header, std::uint64_t data_size) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(header);
    } catch (const std::exception& e) {
      gcnet::detail::fail(path_, ": corrupt header (not valid JSON: ", e.what(), ")");
    }
    GCNET_CHECK(j.is_object(), path_, ": corrupt header (expected a JSON object)");
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "__metadata__") {
        GCNET_CHECK(it->is_object(), path_, ": corrupt header (__metadata__ is not an object)");
        for (auto m = it->begin(); m != it->end(); ++m) {
          GCNET_CHECK(m->is_string(), path_, ": corrupt header (metadata '", m.key(), "' is not a string)");
          metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      entries_[it.key()] = parse_entry(it.key(), *it, data_size);
    }
    check_layout(data_size);
  }

  SafetensorsEntry parse_entry(const std::string& name, const nlohmann::json& v, std::uint64_t data_size) const {
    GCNET_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"), path_,
                ": corrupt header entry '", name, "' (needs dtype, shape, data_offsets)");
    const auto& dt = v["dtype"];
    const auto& shape = v["shape"];
    const auto& off = v["data_offsets"];
    GCNET_CHECK(dt.is_string(), path_, ": corrupt header entry '", name, "' (dtype is not a string)");
    SafetensorsEntry e;
    e.dtype = dt.get<std::string>();
    const std::size_t es = dtype_size(e.dtype);
    GCNET_CHECK(es != 0, path_, ": tensor '", name, "' has unknown dtype '", e.dtype, "'");
    GCNET_CHECK(shape.is_array(), path_, ": corrupt header entry '", name, "' (shape is not an array)");
    GCNET_CHECK(shape.size() <= static_cast<std::size_t>(Shape::max_rank), path_, ": tensor '", name, "' has rank ",
                shape.size(), "; at most ", Shape::max_rank, " is supported");
    std::uint64_t bytes = es;
    for (auto& d : shape) {
      GCNET_CHECK(d.is_number_unsigned(), path_, ": tensor '", name, "' has a bad shape ", shape.dump());
      const auto extent = d.get<std::uint64_t>();
      // The byte count must not overflow: a corrupt extent could otherwise alias a small size.
      GCNET_CHECK(extent <= (std::uint64_t{1} << 62) && !__builtin_mul_overflow(bytes, extent, &bytes), path_,
                  ": tensor '", name, "' has shape ", shape.dump(), ", too large for the data section (",
                  data_size, " bytes)");
      e.shape.push_back(static_cast<index_t>(extent));
    }
    GCNET_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                path_, ": corrupt header entry '", name, "' (data_offsets must be two non-negative integers)");
    const auto b = off[0].get<std::uint64_t>(), en = off[1].get<std::uint64_t>();
    GCNET_CHECK(b <= en && en <= data_size, path_, ": tensor '", name, "' lies outside the data section (offsets ",
                b, "..", en, ", data is ", data_size, " bytes): file truncated?");
    GCNET_CHECK(en - b == bytes, path_, ": tensor '", name, "' has ", en - b, " bytes but shape ", e.shape.str(),
                " of ", e.dtype, " needs ", bytes);
    e.begin = static_cast<std::size_t>(b);
    e.end = static_cast<std::size_t>(en);
    return e;
  }

  // As the format requires: the tensors tile the data section, no overlap, no hole, no tail
  // (a tail or hole means the file was damaged or concatenated).
  void check_layout(std::uint64_t data_size) const {
    std::vector<std::pair<std::size_t, const std::string*>> order;
    for (auto& [k, e] : entries_) order.emplace_back(e.begin, &k);
    std::sort(order.begin(), order.end(), [&](auto& a, auto& b) {
      return a.first != b.first ? a.first < b.first : entries_.at(*a.second).end < entries_.at(*b.second).end;
    });
    std::uint64_t pos = 0;
    for (auto& [begin, name] : order) {
      GCNET_CHECK(begin == pos, path_, ": corrupt header (tensor '", *name, "' starts at byte ", begin,
                  (begin < pos ? ", overlapping the previous tensor" : ", leaving a hole after the previous tensor"),
                  ")");
      pos = entries_.at(*name).end;
    }
    GCNET_CHECK(pos == data_size, path_, ": corrupt file (the tensors cover ", pos, " bytes but the data section has ",
                data_size, ")");
  }

  std::string path_;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
  std::vector<unsigned char> data_;
  bool has_data_ = false;
};

}  // namespace gcnet::io
