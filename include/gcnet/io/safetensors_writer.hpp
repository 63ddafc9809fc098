#pragma once
// Writes the safetensors format: 8-byte little-endian header length, a JSON header
// padded with spaces to a multiple of 8 bytes (so the data starts 8-byte aligned), then
// the raw little-endian data. Dtypes: F32 for float, F64 for double, I64 for int64, I32
// for int32; a floating tensor named "*num_batches_tracked" is written as I64 because
// PyTorch stores that BatchNorm buffer as int64. Writes are atomic (io/atomic_file.hpp).
// Every file gets gcnet's checksums in its metadata (io/safetensors_checksums.hpp): one per
// tensor and one of the header, computed at write time (keys of those names that the caller
// copied from another file are replaced).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/core/transfer.hpp"
#include "gcnet/io/atomic_file.hpp"
#include "gcnet/io/crc32.hpp"
#include "gcnet/io/safetensors_checksums.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/kernels/elementwise.hpp"

namespace gcnet::io {

inline bool is_num_batches_tracked(const std::string& name) {
  static const std::string suffix = "num_batches_tracked";
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class SafetensorsWriter {
 public:
  // Snapshots `t` (any backend, any strides) under `name`.
  template <class T, class B>
  void add(const std::string& name, const Tensor<T, B>& t) {
    GCNET_CHECK(!name.empty() && name != "__metadata__", "SafetensorsWriter: invalid tensor name '", name, "'");
    GCNET_CHECK(!items_.count(name), "SafetensorsWriter: tensor '", name, "' added twice");
    GCNET_CHECK(t.defined(), "SafetensorsWriter: tensor '", name, "' is undefined");
    const Tensor<T, Cpu> host = clone(to_backend<Cpu>(t));
    Item item;
    item.shape = host.shape();
    if constexpr (std::is_floating_point_v<T>) {
      if (is_num_batches_tracked(name)) {
        std::vector<std::int64_t> counts(static_cast<std::size_t>(host.numel()));
        for (index_t i = 0; i < host.numel(); ++i) counts[static_cast<std::size_t>(i)] = std::llround(host[i]);
        item.dtype = "I64";
        item.bytes.resize(counts.size() * 8);
        if (!counts.empty()) std::memcpy(item.bytes.data(), counts.data(), item.bytes.size());
        items_.emplace(name, std::move(item));
        return;
      }
    }
    item.dtype = dtype_name<T>();
    item.bytes.resize(static_cast<std::size_t>(host.numel()) * sizeof(T));
    if (!item.bytes.empty()) std::memcpy(item.bytes.data(), host.data(), item.bytes.size());
    items_.emplace(name, std::move(item));
  }

  void add_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  bool contains(const std::string& name) const { return items_.count(name) != 0; }

  // The header: JSON padded with spaces so that 8 + its length is a multiple of 8.
  std::string header() const {
    std::map<std::string, std::pair<std::size_t, std::size_t>> offsets;
    std::size_t offset = 0;
    for (const auto* kv : data_order()) {
      offsets[kv->first] = {offset, offset + kv->second.bytes.size()};
      offset += kv->second.bytes.size();
    }
    std::map<std::string, std::string> meta = metadata_;
    nlohmann::json crcs = nlohmann::json::object();
    HeaderDigest digest;
    for (const auto& [name, it] : items_) {
      crcs[name] = crc32_hex(crc32_of(it.bytes.data(), it.bytes.size()));
      digest.tensor(name, it.dtype, it.shape, offsets[name].first, offsets[name].second);
    }
    meta[kTensorCrcKey] = crcs.dump();
    meta.erase(kHeaderCrcKey);
    digest.metadata(meta);
    meta[kHeaderCrcKey] = digest.crc_hex();

    nlohmann::json j = nlohmann::json::object();
    j["__metadata__"] = meta;
    for (const auto& [name, it] : items_)
      j[name] = {{"dtype", it.dtype},
                 {"shape", std::vector<index_t>(it.shape.begin(), it.shape.end())},
                 {"data_offsets", {offsets[name].first, offsets[name].second}}};
    std::string h = j.dump();
    h.resize((h.size() + 7) / 8 * 8, ' ');
    return h;
  }

  // Writes the file atomically: on any failure the previous file at `path` is untouched.
  void write(const std::string& path) const {
    const std::string h = header();
    write_file_atomically(path, [&](FileSink& out) {
      unsigned char len[8];
      std::uint64_t n = h.size();
      for (int i = 0; i < 8; ++i, n >>= 8) len[i] = static_cast<unsigned char>(n & 0xff);
      out.write(len, 8);
      out.write(h.data(), h.size());
      for (const auto* kv : data_order()) out.write(kv->second.bytes.data(), kv->second.bytes.size());
    });
  }

 private:
  struct Item {
    std::string dtype;
    Shape shape;
    std::vector<unsigned char> bytes;
  };

  template <class T>
  static const char* dtype_name() {
    if constexpr (std::is_same_v<T, float>) return "F32";
    else if constexpr (std::is_same_v<T, double>) return "F64";
    else if constexpr (std::is_same_v<T, std::int64_t>) return "I64";
    else if constexpr (std::is_same_v<T, std::int32_t>) return "I32";
    else if constexpr (std::is_same_v<T, std::uint8_t>) return "U8";
    else static_assert(sizeof(T) == 0, "SafetensorsWriter: unsupported element type");
  }

  // Data order: larger elements first, then by name, so every tensor stays aligned to its
  // element size without padding between tensors (the format allows no holes).
  std::vector<const std::pair<const std::string, Item>*> data_order() const {
    std::vector<const std::pair<const std::string, Item>*> order;
    for (const auto& kv : items_) order.push_back(&kv);
    std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
      return dtype_size(a->second.dtype) > dtype_size(b->second.dtype);
    });
    return order;
  }

  std::map<std::string, Item> items_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace gcnet::io
