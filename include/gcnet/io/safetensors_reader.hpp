#pragma once
// Reads the safetensors format (8-byte little-endian header length, JSON header,
// raw little-endian data): tensor names, dtypes, shapes, offsets, and the string
// metadata. Every inconsistency is an Error naming the file and the problem.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/core/tensor.hpp"

namespace gcnet::io {

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

class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::string& path) : path_(path) {
    std::ifstream in(path, std::ios::binary);
    GCNET_CHECK(in.good(), path, ": cannot open file");
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::uint64_t>(in.tellg());
    in.seekg(0);
    GCNET_CHECK(size >= 8, path, ": truncated (", size, " bytes, need at least the 8-byte header length)");
    unsigned char len_bytes[8];
    in.read(reinterpret_cast<char*>(len_bytes), 8);
    std::uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
    GCNET_CHECK(header_len <= size - 8, path, ": truncated or corrupt header (header length ",
                header_len, " but only ", size - 8, " bytes follow)");
    std::string header(header_len, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header_len));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(header);
    } catch (const std::exception& e) {
      detail::fail(path, ": corrupt header (not valid JSON: ", e.what(), ")");
    }
    GCNET_CHECK(j.is_object(), path, ": corrupt header (expected a JSON object)");
    const std::uint64_t data_size = size - 8 - header_len;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "__metadata__") {
        GCNET_CHECK(it->is_object(), path, ": corrupt header (__metadata__ is not an object)");
        for (auto m = it->begin(); m != it->end(); ++m) {
          GCNET_CHECK(m->is_string(), path, ": metadata '", m.key(), "' is not a string");
          metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      entries_[it.key()] = parse_entry(it.key(), *it, data_size);
    }
    data_.resize(data_size);
    in.read(reinterpret_cast<char*>(data_.data()), static_cast<std::streamsize>(data_size));
    GCNET_CHECK(static_cast<std::uint64_t>(in.gcount()) == data_size, path, ": truncated data section");
  }

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
  long long meta_int(const std::string& key) const { return std::stoll(meta(key)); }
  double meta_double(const std::string& key) const { return std::stod(meta(key)); }

  // The named tensor converted to T (floating dtypes and I64/I32 are accepted).
  template <class T>
  Tensor<T, Cpu> tensor(const std::string& name) const {
    const auto& e = entry(name);
    Tensor<T, Cpu> t(e.shape);
    const unsigned char* p = data_.data() + e.begin;
    const index_t n = t.numel();
    for (index_t i = 0; i < n; ++i) t[i] = static_cast<T>(load(e.dtype, p, i, name));
    return t;
  }

 private:
  SafetensorsEntry parse_entry(const std::string& name, const nlohmann::json& v, std::uint64_t data_size) {
    GCNET_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
                path_, ": corrupt header entry '", name, "' (needs dtype, shape, data_offsets)");
    SafetensorsEntry e;
    e.dtype = v["dtype"].get<std::string>();
    const std::size_t es = dtype_size(e.dtype);
    GCNET_CHECK(es != 0, path_, ": tensor '", name, "' has unknown dtype '", e.dtype, "'");
    std::uint64_t numel = 1;
    for (auto& d : v["shape"]) {
      GCNET_CHECK(d.is_number_integer() && d.get<long long>() >= 0, path_, ": tensor '", name,
                  "' has a bad shape");
      e.shape.push_back(d.get<index_t>());
      numel *= d.get<std::uint64_t>();
    }
    const auto& off = v["data_offsets"];
    GCNET_CHECK(off.is_array() && off.size() == 2, path_, ": tensor '", name, "' has bad data_offsets");
    e.begin = off[0].get<std::size_t>();
    e.end = off[1].get<std::size_t>();
    GCNET_CHECK(e.begin <= e.end && e.end <= data_size, path_, ": tensor '", name,
                "' lies outside the data section (offsets ", e.begin, "..", e.end, ", data is ",
                data_size, " bytes): file truncated?");
    GCNET_CHECK(e.end - e.begin == numel * es, path_, ": tensor '", name, "' has ", e.end - e.begin,
                " bytes but shape ", e.shape.str(), " of ", e.dtype, " needs ", numel * es);
    return e;
  }

  double load(const std::string& dtype, const unsigned char* p, index_t i, const std::string& name) const {
    if (dtype == "F32") { float v; std::memcpy(&v, p + 4 * i, 4); return v; }
    if (dtype == "F64") { double v; std::memcpy(&v, p + 8 * i, 8); return v; }
    if (dtype == "I64") { std::int64_t v; std::memcpy(&v, p + 8 * i, 8); return static_cast<double>(v); }
    if (dtype == "I32") { std::int32_t v; std::memcpy(&v, p + 4 * i, 4); return v; }
    if (dtype == "U8" || dtype == "BOOL") return p[i];
    detail::fail(path_, ": tensor '", name, "' has dtype ", dtype, ", which cannot be read as a number here");
  }

  std::string path_;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
  std::vector<unsigned char> data_;
};

}  // namespace gcnet::io
