#pragma once
// Reads the safetensors format (8-byte little-endian header length, JSON header,
// raw little-endian data): tensor names, dtypes, shapes, offsets, and the string
// metadata. Every inconsistency (missing file, not a regular file, truncation, bad JSON,
// a header nested deeper than the format's, bad entries, offsets outside the data, holes
// or overlaps, shapes whose size or strides overflow, checksum mismatches) is a
// gcnet::Error naming the file and the problem; nothing in a file can make the reader
// crash, and error messages quote at most a short prefix of what the file holds.
// Files gcnet wrote carry checksums (io/safetensors_checksums.hpp): the header's is verified
// on open, every tensor's when the data is read; files without them load unchecked.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/core/tensor.hpp"
#include "gcnet/io/safetensors_checksums.hpp"

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

namespace detail {
// `s` as it may appear in an error message: at most `max` bytes, control bytes as '?', so a
// hostile name or a huge parser message cannot flood the terminal or the log.
inline std::string brief(const std::string& s, std::size_t max = 120) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    out += (c < 32 || c == 127) ? '?' : static_cast<char>(c);
  }
  if (s.size() > max) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

// A valid header nests three levels: the top object, an entry (or __metadata__), an entry's
// shape or data_offsets array. Deeper containers, and arrays far longer than a shape can be,
// are refused while parsing, before they take memory or reach recursive code (nlohmann's
// dump() recurses: a shape nested 50000 deep overflowed the stack when quoted in an error).
struct HeaderShapeGuard {
  static constexpr std::size_t kMaxItems = 64;  // parse_entry reports ranks above max_rank by name
  std::string path;
  std::string entry;  // the top-level key being parsed
  std::size_t array_items = 0;
  bool operator()(int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::key && depth == 1) entry = parsed.is_string() ? parsed.get<std::string>() : "";
    if ((event == E::object_start || event == E::array_start) && depth > 2)
      gcnet::detail::fail(path, ": corrupt header entry '", brief(entry),
                          "' (nested deeper than a safetensors header: shape and data_offsets must be flat "
                          "arrays of integers)");
    if (event == E::array_start) array_items = 0;
    if (event == E::value && depth == 3 && ++array_items > kMaxItems)
      gcnet::detail::fail(path, ": corrupt header entry '", brief(entry), "' (an array of more than ", kMaxItems,
                          " elements; shapes of rank at most ", Shape::max_rank, " are supported)");
    return true;
  }
};
}  // namespace detail

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
    GCNET_CHECK(it != entries_.end(), path_, ": no tensor named '", detail::brief(name), "'");
    return it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (auto& [k, v] : entries_) n.push_back(k);
    return n;
  }
  // The string metadata, without gcnet's checksum keys (verified on open).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // True when the file carried gcnet's checksums (and they matched).
  bool checksummed() const { return checksummed_; }
  std::string meta(const std::string& key) const {
    auto it = metadata_.find(key);
    GCNET_CHECK(it != metadata_.end(), path_, ": no metadata key '", detail::brief(key), "'");
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
    gcnet::detail::fail(path_, ": metadata '", detail::brief(key), "' = '", detail::brief(v), "' is not an integer");
  }
  double meta_double(const std::string& key) const {
    const std::string v = meta(key);
    try {
      std::size_t used = 0;
      const double r = std::stod(v, &used);
      if (used == v.size()) return r;
    } catch (const std::exception&) {
    }
    gcnet::detail::fail(path_, ": metadata '", detail::brief(key), "' = '", detail::brief(v), "' is not a number");
  }

  // The named tensor converted to T (floating dtypes, I64/I32, U8/BOOL are accepted). A
  // floating value read as an integer type must lie in T's range (NaN does not).
  template <class T>
  Tensor<T, Cpu> tensor(const std::string& name) const {
    const auto& e = entry(name);
    GCNET_CHECK(has_data_, path_, ": opened for its header only; cannot read tensor '", detail::brief(name), "'");
    Tensor<T, Cpu> t(e.shape);
    const unsigned char* p = data_.data() + e.begin;
    T* out = t.data();
    const index_t n = t.numel();
    auto convert = [&](auto tag) {
      using S = decltype(tag);
      for (index_t i = 0; i < n; ++i) {
        S v;
        std::memcpy(&v, p + sizeof(S) * static_cast<std::size_t>(i), sizeof(S));
        if constexpr (std::is_floating_point_v<S> && std::is_integral_v<T>) {
          // Out of range (or NaN) would be undefined behaviour in the conversion.
          constexpr auto lo = static_cast<S>(std::numeric_limits<T>::min());
          constexpr auto hi = static_cast<S>(std::numeric_limits<T>::max() / 2 + 1) * S(2);
          GCNET_CHECK(v >= lo && v < hi, path_, ": tensor '", detail::brief(name), "' holds ", v, " at element ", i,
                      ", outside the range of the integer type it is read as");
        }
        out[i] = static_cast<T>(v);
      }
    };
    if (e.dtype == "F32") convert(float{});
    else if (e.dtype == "F64") convert(double{});
    else if (e.dtype == "I64") convert(std::int64_t{});
    else if (e.dtype == "I32") convert(std::int32_t{});
    else if (e.dtype == "U8" || e.dtype == "BOOL") convert(std::uint8_t{});
    else gcnet::detail::fail(path_, ": tensor '", detail::brief(name), "' has dtype ", e.dtype, ", which cannot be read as a number here");
    return t;
  }

 private:
  void read(bool with_data) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto st = fs::status(path_, ec);
    GCNET_CHECK(fs::exists(st), path_, ": cannot open: no such file");
    GCNET_CHECK(!fs::is_directory(st), path_, ": cannot open: it is a folder, not a file");
    // A FIFO or a device would block or never end: only regular files are read.
    GCNET_CHECK(fs::is_regular_file(st), path_, ": cannot open: not a regular file (a FIFO, socket or device)");
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
    verify_tensor_checksums();
  }

  void parse_header(const std::string& header, std::uint64_t data_size) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(header, detail::HeaderShapeGuard{path_, {}, 0});
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      gcnet::detail::fail(path_, ": corrupt header (not valid JSON: ", detail::brief(e.what(), 200), ")");
    }
    GCNET_CHECK(j.is_object(), path_, ": corrupt header (expected a JSON object)");
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "__metadata__") {
        GCNET_CHECK(it->is_object(), path_, ": corrupt header (__metadata__ is not an object)");
        for (auto m = it->begin(); m != it->end(); ++m) {
          GCNET_CHECK(m->is_string(), path_, ": corrupt header (metadata '", detail::brief(m.key()),
                      "' is not a string)");
          metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      entries_[it.key()] = parse_entry(it.key(), *it, data_size);
    }
    check_layout(data_size);
    verify_header_checksum();
  }

  SafetensorsEntry parse_entry(const std::string& key, const nlohmann::json& v, std::uint64_t data_size) const {
    const std::string name = detail::brief(key);
    GCNET_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"), path_,
                ": corrupt header entry '", name, "' (needs dtype, shape, data_offsets)");
    const auto& dt = v["dtype"];
    const auto& shape = v["shape"];
    const auto& off = v["data_offsets"];
    GCNET_CHECK(dt.is_string(), path_, ": corrupt header entry '", name, "' (dtype is not a string)");
    SafetensorsEntry e;
    e.dtype = dt.get<std::string>();
    const std::size_t es = dtype_size(e.dtype);
    GCNET_CHECK(es != 0, path_, ": tensor '", name, "' has unknown dtype '", detail::brief(e.dtype, 16), "'");
    GCNET_CHECK(shape.is_array(), path_, ": corrupt header entry '", name, "' (shape is not an array)");
    // The guard keeps the array flat, so dump() below is not recursive.
    GCNET_CHECK(shape.size() <= static_cast<std::size_t>(Shape::max_rank), path_, ": tensor '", name, "' has rank ",
                shape.size(), "; at most ", Shape::max_rank, " is supported");
    for (auto& d : shape)
      GCNET_CHECK(d.is_number_unsigned() && d.get<std::uint64_t>() <= std::uint64_t(std::numeric_limits<index_t>::max()),
                  path_, ": tensor '", name, "' has a bad shape ", detail::brief(shape.dump(), 200),
                  " (extents must be integers from 0 to 2^63-1)");
    // The element count (and so every contiguous stride, a product of some of the extents)
    // must fit index_t, and the byte count 64 bits: a corrupt extent could otherwise wrap
    // around to a small size, or overflow later in stride arithmetic. With a zero extent
    // the tensor is empty, but its strides are still products of the other extents.
    std::uint64_t nonzero_product = 1;
    bool empty = false;
    for (auto& d : shape) {
      const auto extent = d.get<std::uint64_t>();
      empty = empty || extent == 0;
      if (extent != 0 && __builtin_mul_overflow(nonzero_product, extent, &nonzero_product)) nonzero_product = ~0ull;
      e.shape.push_back(static_cast<index_t>(extent));
    }
    std::uint64_t bytes = 0;
    const bool fits = nonzero_product <= std::uint64_t(std::numeric_limits<index_t>::max()) &&
                      !__builtin_mul_overflow(empty ? 0 : nonzero_product, es, &bytes);
    GCNET_CHECK(fits, path_, ": tensor '", name, "' has shape ", detail::brief(shape.dump(), 200),
                ", too large (its element count or strides overflow 64-bit integers; the data section has ",
                data_size, " bytes)");
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
      GCNET_CHECK(begin == pos, path_, ": corrupt header (tensor '", detail::brief(*name), "' starts at byte ", begin,
                  (begin < pos ? ", overlapping the previous tensor" : ", leaving a hole after the previous tensor"),
                  ")");
      pos = entries_.at(*name).end;
    }
    GCNET_CHECK(pos == data_size, path_, ": corrupt file (the tensors cover ", pos, " bytes but the data section has ",
                data_size, ")");
  }

  // gcnet_header_crc32 (when present) must match what the header says now; the per-tensor
  // checksums it covers are kept for verify_tensor_checksums. Both keys leave metadata().
  void verify_header_checksum() {
    // Damage to the checksum keys' own names must not turn a checked file into an unchecked
    // one: a key a few flipped characters away from them is an error.
    for (const auto& [key, value] : metadata_)
      GCNET_CHECK(!looks_like_damaged_checksum_key(key), path_, ": corrupt header (metadata key '", detail::brief(key),
                  "' is a damaged ", kHeaderCrcKey, " or ", kTensorCrcKey, ")");
    const auto h = metadata_.find(kHeaderCrcKey);
    const auto t = metadata_.find(kTensorCrcKey);
    if (h == metadata_.end()) {
      GCNET_CHECK(t == metadata_.end(), path_, ": corrupt header (it has ", kTensorCrcKey, " but no ", kHeaderCrcKey,
                  ")");
      return;
    }
    HeaderDigest digest;
    for (const auto& [name, e] : entries_) digest.tensor(name, e.dtype, e.shape, e.begin, e.end);
    digest.metadata(metadata_);
    GCNET_CHECK(digest.crc_hex() == h->second, path_, ": corrupt header (its checksum ", detail::brief(h->second, 16),
                " does not match its content, ", digest.crc_hex(), "; the file was damaged, or edited by a tool that "
                "kept gcnet's checksum keys: remove ", kHeaderCrcKey, " and ", kTensorCrcKey,
                " from its metadata to load it unchecked)");
    GCNET_CHECK(t != metadata_.end(), path_, ": corrupt header (", kHeaderCrcKey, " without ", kTensorCrcKey, ")");
    nlohmann::json crcs;
    try {
      crcs = nlohmann::json::parse(t->second);
    } catch (const std::exception&) {
      gcnet::detail::fail(path_, ": corrupt header (", kTensorCrcKey, " is not valid JSON)");
    }
    GCNET_CHECK(crcs.is_object() && crcs.size() == entries_.size(), path_, ": corrupt header (", kTensorCrcKey,
                " must hold one checksum per tensor)");
    for (const auto& [name, e] : entries_) {
      const auto c = crcs.find(name);
      GCNET_CHECK(c != crcs.end() && c->is_string(), path_, ": corrupt header (no checksum for tensor '",
                  detail::brief(name), "')");
      tensor_crc_[name] = c->get<std::string>();
    }
    checksummed_ = true;
    metadata_.erase(kHeaderCrcKey);
    metadata_.erase(kTensorCrcKey);
  }

  static bool looks_like_damaged_checksum_key(const std::string& key) {
    if (is_checksum_key(key)) return false;
    for (const std::string known : {kHeaderCrcKey, kTensorCrcKey}) {
      if (key.size() != known.size()) continue;
      int differ = 0;
      for (std::size_t i = 0; i < key.size(); ++i) differ += key[i] != known[i];
      if (differ <= 4) return true;
    }
    return false;
  }

  void verify_tensor_checksums() const {
    for (const auto& [name, crc] : tensor_crc_) {
      const auto& e = entries_.at(name);
      const std::string got = crc32_hex(crc32_of(data_.data() + e.begin, e.end - e.begin));
      GCNET_CHECK(got == crc, path_, ": corrupt data (tensor '", detail::brief(name), "' has checksum ", got,
                  " but was written with ", detail::brief(crc, 16), "; the file was damaged after it was written)");
    }
  }

  std::string path_;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, std::string> tensor_crc_;  // name -> crc32 hex, when the file has them
  bool checksummed_ = false;
  std::vector<unsigned char> data_;
  bool has_data_ = false;
};

}  // namespace gcnet::io
