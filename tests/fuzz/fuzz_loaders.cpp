// Bounded, deterministic fuzzing of every file loader, built with ASan and UBSan (issue 14).
// Each loader gets valid seed files and, for each seed: every truncation, random bit flips,
// bit flips with the format's checksums repaired (so the damage reaches the decoder instead
// of stopping at the CRC), and hand-made hostile headers. Every input must either load or
// be refused with a gcnet::Error whose message starts with the file name; the sanitizers
// turn any out-of-bounds access, overflow or leak into a failure, and ASAN_OPTIONS caps
// single allocations (tests/fuzz/CMakeLists.txt), so an unbounded allocation fails too.
// Stronger promises where the format allows them: a truncated file never loads, and a PNG
// or a checkpoint gcnet wrote never loads as other data after a bit flip.
//
// Inputs are written to one temporary file before being read; a crash leaves the crashing
// input there (its path is printed first). Iteration counts and seeds are fixed, so a run
// is reproducible and takes about as long every time.
//
// Adding a loader (COCO JSON, RLE, idx...): a Loader (read the file, return a digest of what
// was loaded), seed files, and a TEST_CASE calling the mutators below.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/data/image.hpp"
#include "gcnet/io/safetensors_checksums.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "support/png_maker.hpp"

using namespace gcnet;
namespace fs = std::filesystem;
using test::Bytes;

namespace {

// ---- The harness ----

struct Loader {
  std::string name, extension;
  // Reads the file and returns a digest of everything it loaded (to compare with the seed's).
  std::function<std::string(const std::string& path)> load;
};

struct Stats {
  long inputs = 0, loaded = 0, refused = 0;
};

// The folder inputs are written to; removed at a normal exit, kept after a crash.
struct InputFolder {
  fs::path dir = fs::temp_directory_path() / ("gcnet_fuzz_" + std::to_string(::getpid()));
  InputFolder() {
    fs::create_directories(dir);
    std::printf("fuzz inputs are written to %s (a crash leaves the crashing input there)\n", dir.c_str());
  }
  ~InputFolder() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

fs::path input_path(const std::string& extension) {
  static const InputFolder folder;
  return folder.dir / ("input" + extension);
}

void write_file(const fs::path& p, const Bytes& b) {
  // A new file each time: ext4 flushes a file truncated and rewritten in place on close
  // (auto_da_alloc), which made each input wait for the disk.
  fs::remove(p);
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::string prefix(const std::string& s) { return s.substr(0, 300); }

// Reads `bytes` as a file; the digest if it loaded, nullopt if it was refused with an Error
// naming the file. Anything else (another exception type, an Error without the file name)
// is a failure.
std::optional<std::string> attempt(const Loader& l, const Bytes& bytes, Stats& st, const std::string& what) {
  const fs::path p = input_path(l.extension);
  write_file(p, bytes);
  ++st.inputs;
  try {
    std::string digest = l.load(p.string());
    ++st.loaded;
    return digest;
  } catch (const Error& e) {
    ++st.refused;
    const std::string m = e.what();
    if (m.rfind(p.string() + ": ", 0) != 0)
      FAIL_CHECK(l.name, ", ", what, ": the error does not start with the file name: ", prefix(m));
    if (m.size() > 2000) FAIL_CHECK(l.name, ", ", what, ": an error message of ", m.size(), " bytes");
  } catch (const std::exception& e) {
    FAIL_CHECK(l.name, ", ", what, ": threw something other than gcnet::Error: ", prefix(e.what()));
  }
  return std::nullopt;
}

// What a mutated input may do besides being refused.
enum class May { LoadAnything, LoadOnlyAsSeed, NeverLoad };

void judge(const Loader& l, const std::optional<std::string>& got, May may, const std::string& seed_digest,
           const std::string& what) {
  if (!got) return;
  if (may == May::NeverLoad) FAIL_CHECK(l.name, ", ", what, ": loaded, but must be refused");
  if (may == May::LoadOnlyAsSeed && *got != seed_digest)
    FAIL_CHECK(l.name, ", ", what, ": loaded as different data (silent corruption)");
}

// Every prefix of the seed (a truncated file never loads).
void truncations(const Loader& l, const Bytes& seed, Stats& st) {
  for (std::size_t n = 0; n < seed.size(); ++n)
    judge(l, attempt(l, Bytes(seed.begin(), seed.begin() + static_cast<long>(n)), st, "truncated to " + std::to_string(n)),
          May::NeverLoad, "", "truncated to " + std::to_string(n) + " bytes");
}

// `rounds` inputs with 1 to 4 random bit flips each, then `repair` (e.g. recompute CRCs).
void flips(const Loader& l, const Bytes& seed, int rounds, std::uint64_t rng_seed, May may, const std::string& seed_digest,
           Stats& st, const std::function<void(Bytes&)>& repair = {}) {
  std::mt19937_64 rng(rng_seed);
  for (int r = 0; r < rounds; ++r) {
    Bytes b = seed;
    const int n = 1 + static_cast<int>(rng() % 4);
    std::string what = "flips";
    for (int k = 0; k < n; ++k) {
      // Half the flips land in the first 64 bytes, where the headers are.
      const std::size_t limit = (k % 2 == 0) ? std::min<std::size_t>(b.size(), 64) : b.size();
      const std::size_t at = rng() % limit;
      const int bit = static_cast<int>(rng() % 8);
      b[at] = static_cast<std::uint8_t>(b[at] ^ (1u << bit));
      what += " " + std::to_string(at) + ":" + std::to_string(bit);
    }
    if (repair) repair(b);
    judge(l, attempt(l, b, st, what), may, seed_digest, what);
  }
}

void report(const Loader& l, const Stats& st, std::chrono::steady_clock::time_point t0) {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE(l.name, ": ", st.inputs, " inputs in ", s, " s: ", st.loaded, " loaded, ", st.refused, " refused");
  CHECK(st.refused > 0);
}

// ---- Images ----

std::string image_digest(const data::Image& img) {
  std::string d = std::to_string(img.height) + "x" + std::to_string(img.width) + "x" + std::to_string(img.channels) + ":";
  d.append(img.pixels.begin(), img.pixels.end());
  return d;
}

const Loader kImage{"read_image", ".img", [](const std::string& p) { return image_digest(data::read_image(p)); }};
const Loader kLabel{"read_label_png", ".png", [](const std::string& p) { return image_digest(data::read_label_png(p)); }};

Bytes pattern(std::size_t n, unsigned seed, unsigned modulo = 256) {
  Bytes v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 2654435761u + seed * 40503u) % modulo);
  return v;
}

// Scanlines with filter bytes cycling through the five PNG filters (the bytes after a filter
// byte are taken as they are: any bytes are a valid filtered row).
Bytes filtered_rows(std::size_t rows, std::size_t row_bytes, unsigned seed) {
  Bytes raw;
  const Bytes px = pattern(rows * row_bytes, seed);
  for (std::size_t y = 0; y < rows; ++y) {
    raw.push_back(static_cast<std::uint8_t>(y % 5));
    raw.insert(raw.end(), px.begin() + static_cast<long>(y * row_bytes), px.begin() + static_cast<long>((y + 1) * row_bytes));
  }
  return raw;
}

// The Adam7 layout of an interlaced 8-bit image (`channels` bytes per pixel), filter 0 rows.
Bytes adam7_raw(std::uint32_t w, std::uint32_t h, int channels, const Bytes& px) {
  static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
  static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
  Bytes raw;
  for (int p = 0; p < 7; ++p) {
    if (w <= std::uint32_t(x0[p]) || h <= std::uint32_t(y0[p])) continue;
    for (std::uint32_t y = y0[p]; y < h; y += dy[p]) {
      raw.push_back(0);
      for (std::uint32_t x = x0[p]; x < w; x += dx[p])
        for (int c = 0; c < channels; ++c) raw.push_back(px[(std::size_t{y} * w + x) * channels + c]);
    }
  }
  return raw;
}

struct PngSeed {
  std::string name;
  std::uint32_t w, h;
  int depth, color_type, interlace;
  Bytes raw;  // inflated scanlines
  Bytes file() const {
    return test::make_png_raw(w, h, depth, color_type, raw, color_type == 3 ? (1 << std::min(depth, 8)) : 0, interlace);
  }
};

std::vector<PngSeed> png_seeds(bool labels) {
  std::vector<PngSeed> s;
  for (int depth : {1, 2, 4, 8}) s.push_back({"palette " + std::to_string(depth) + "-bit", 13, 6, depth, 3, 0,
                                              filtered_rows(6, (13 * depth + 7) / 8, depth)});
  s.push_back({"gray 8-bit", 11, 7, 8, 0, 0, filtered_rows(7, 11, 9)});
  if (labels) return s;
  s.push_back({"RGB", 9, 5, 8, 2, 0, filtered_rows(5, 27, 10)});
  s.push_back({"RGBA", 6, 6, 8, 6, 0, filtered_rows(6, 24, 11)});
  s.push_back({"gray+alpha", 7, 3, 8, 4, 0, filtered_rows(3, 14, 12)});
  s.push_back({"RGB interlaced", 10, 9, 8, 2, 1, adam7_raw(10, 9, 3, pattern(270, 13))});
  s.push_back({"gray 16-bit", 4, 3, 16, 0, 0, filtered_rows(3, 8, 14)});
  return s;
}

// Recomputes every chunk's CRC while the chunk structure holds (flips then reach the decoder).
void repair_png_crcs(Bytes& b) {
  std::size_t pos = 8;
  while (pos + 12 <= b.size()) {
    const std::uint32_t len = (std::uint32_t{b[pos]} << 24) | (std::uint32_t{b[pos + 1]} << 16) |
                              (std::uint32_t{b[pos + 2]} << 8) | b[pos + 3];
    if (len > b.size() - pos - 12) return;
    const std::uint32_t crc = io::crc32_of(&b[pos + 4], std::size_t{len} + 4);
    for (int i = 0; i < 4; ++i) b[pos + 8 + len + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(crc >> (24 - 8 * i));
    pos += 12 + std::size_t{len};
  }
}

void fuzz_png(const Loader& l, bool labels, int flip_rounds, int raw_rounds) {
  const auto t0 = std::chrono::steady_clock::now();
  Stats st;
  std::uint64_t rng_seed = labels ? 100 : 200;
  for (const PngSeed& seed : png_seeds(labels)) {
    CAPTURE(seed.name);
    const Bytes file = seed.file();
    const std::optional<std::string> digest = attempt(l, file, st, seed.name);
    const bool loads = digest.has_value();
    if (!loads) MESSAGE(l.name, " refuses the seed '", seed.name, "' (as intended for this kind)");
    truncations(l, file, st);
    // CRCs intact: a flip is refused, or (a flip in a byte nothing reads) loads as the seed.
    flips(l, file, flip_rounds, ++rng_seed, May::LoadOnlyAsSeed, digest.value_or(""), st);
    // CRCs repaired: the damage reaches IHDR, the zlib stream and its Adler-32.
    flips(l, file, flip_rounds, ++rng_seed, May::LoadAnything, "", st, repair_png_crcs);
    // Damaged scanlines inside a valid zlib stream: filters, packed samples.
    std::mt19937_64 rng(++rng_seed);
    for (int r = 0; r < raw_rounds; ++r) {
      PngSeed m = seed;
      for (int k = 0; k < 3; ++k) m.raw[rng() % m.raw.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
      if (r % 7 == 0) m.raw.resize(rng() % (m.raw.size() + 1));  // too little data
      if (r % 7 == 1) m.raw.resize(m.raw.size() + 1 + rng() % 40, 0);  // too much
      attempt(l, m.file(), st, seed.name + " with damaged scanlines");
    }
  }
  // Hostile IHDRs (valid CRCs): sizes at and past every limit, every depth/color pair, bad methods.
  const Bytes small_raw = filtered_rows(4, 4, 1);
  const std::vector<std::pair<std::uint32_t, std::uint32_t>> sizes = {
      {0, 1}, {1, 0}, {0x7fffffffu, 1}, {1, 0x7fffffffu}, {0x80000000u, 1}, {0xffffffffu, 0xffffffffu},
      {40000, 40000}, {1024, 1025}, {65535, 2}, {4, 4}};
  for (auto [w, h] : sizes)
    for (int ct : {0, 2, 3, 4, 6})
      for (int depth : {1, 8, 16}) attempt(l, test::make_png_raw(w, h, depth, ct, small_raw, ct == 3 ? 4 : 0), st, "IHDR");
  for (int ct = 0; ct < 8; ++ct)
    for (int depth = 0; depth <= 17; ++depth)
      for (int interlace : {0, 1, 2}) attempt(l, test::make_png_raw(4, 4, depth, ct, small_raw, 2, interlace), st, "IHDR");
  for (int i = 0; i < 2; ++i) {  // compression or filter method 1
    Bytes b = test::make_png_raw(4, 4, 8, 0, small_raw);
    b[8 + 8 + 10 + static_cast<std::size_t>(i)] = 1;
    repair_png_crcs(b);
    attempt(l, b, st, "IHDR method");
  }
  // A decompression bomb: 8x8 pixels, data inflating to 50 MB.
  const Bytes bomb = test::zlib_zero_bomb(50'000'000 / 258);
  for (int ct : {0, 3}) attempt(l, test::make_png_raw(8, 8, 8, ct, {}, ct == 3 ? 4 : 0, 0, &bomb), st, "bomb");
  report(l, st, t0);
}

Bytes jpeg(int w, int h, int comp, int quality, unsigned seed) {
  Bytes out;
  const Bytes px = pattern(static_cast<std::size_t>(w * h * comp), seed, 200);
  stbi_write_jpg_to_func([](void* ctx, void* data, int n) {
    auto* o = static_cast<Bytes*>(ctx);
    o->insert(o->end(), static_cast<std::uint8_t*>(data), static_cast<std::uint8_t*>(data) + n);
  }, &out, w, h, comp, px.data(), quality);
  return out;
}

// A 32-bit BI_RGB BMP, rows top-down (negative height).
Bytes bmp32_top_down(std::uint32_t w, std::uint32_t h) {
  Bytes b = test::make_bmp(w, h, pattern(std::size_t{w} * h * 3, 3));
  Bytes out(b.begin(), b.begin() + 54);
  const std::uint32_t data = w * 4 * h;
  auto set = [&](std::size_t at, std::uint32_t v, int n) {
    for (int i = 0; i < n; ++i) out[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  set(2, 54 + data, 4);
  set(22, static_cast<std::uint32_t>(-static_cast<std::int32_t>(h)), 4);
  set(28, 32, 2);
  set(34, data, 4);
  const Bytes px = pattern(data, 4);
  out.insert(out.end(), px.begin(), px.end());
  return out;
}

// ---- Safetensors ----

struct TensorSpec {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
  Bytes bytes;
};

// A safetensors file from specs (written back to back in the given order), with gcnet's
// checksums when `checksums`; `header_override` replaces the JSON header text when set.
Bytes safetensors_file(const std::vector<TensorSpec>& specs, bool checksums, const std::string* header_override = nullptr) {
  nlohmann::json j = nlohmann::json::object();
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"iter", "12"}};
  std::size_t off = 0;
  nlohmann::json crcs = nlohmann::json::object();
  io::HeaderDigest digest;
  std::map<std::string, std::pair<std::size_t, std::size_t>> where;
  for (const auto& t : specs) {
    where[t.name] = {off, off + t.bytes.size()};
    j[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
    crcs[t.name] = io::crc32_hex(io::crc32_of(t.bytes.data(), t.bytes.size()));
  }
  if (checksums) {
    for (const auto& [name, range] : where) {
      const auto& t = *std::find_if(specs.begin(), specs.end(), [&](const TensorSpec& s) { return s.name == name; });
      Shape s;
      for (auto d : t.shape) s.push_back(d);
      digest.tensor(name, t.dtype, s, range.first, range.second);
    }
    meta[io::kTensorCrcKey] = crcs.dump();
    digest.metadata(meta);
    meta[io::kHeaderCrcKey] = digest.crc_hex();
  }
  j["__metadata__"] = meta;
  std::string h = header_override ? *header_override : j.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');
  Bytes out;
  test::put_le(out, static_cast<std::uint32_t>(h.size()), 4);
  test::put_le(out, static_cast<std::uint32_t>(std::uint64_t(h.size()) >> 32), 4);
  out.insert(out.end(), h.begin(), h.end());
  for (const auto& t : specs) out.insert(out.end(), t.bytes.begin(), t.bytes.end());
  return out;
}

template <class T>
Bytes as_bytes(const std::vector<T>& v) {
  Bytes b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<TensorSpec> tensor_specs() {
  return {{"conv.weight", "F32", {2, 3}, as_bytes(std::vector<float>{1.5f, -2, 0, 3e38f, 1e-40f, 7})},
          {"fc.bias", "F64", {4}, as_bytes(std::vector<double>{0.25, -1e300, 3, 4})},
          {"bn.num_batches_tracked", "I64", {}, as_bytes(std::vector<std::int64_t>{42})},
          {"labels", "I32", {3}, as_bytes(std::vector<std::int32_t>{-1, 2, 2147483647})},
          {"mask", "U8", {5}, Bytes{0, 1, 2, 254, 255}},
          {"flag", "BOOL", {1}, Bytes{1}},
          {"half", "F16", {2}, Bytes{0, 60, 0, 188}},
          {"empty", "F32", {0, 4}, {}}};
}

const Loader kSafetensors{"safetensors", ".safetensors", [](const std::string& p) {
  io::SafetensorsReader r(p);
  std::string d;
  for (const auto& [k, v] : r.metadata()) d += k + "=" + v + ";";
  for (const auto& n : r.names()) {
    const auto& e = r.entry(n);
    d += n + ":" + e.dtype + e.shape.str() + ":";
    for (auto read : {+[](const io::SafetensorsReader& f, const std::string& name) {
                        const auto t = f.tensor<double>(name);
                        return std::string(reinterpret_cast<const char*>(t.data()), sizeof(double) * t.numel());
                      },
                      +[](const io::SafetensorsReader& f, const std::string& name) {
                        const auto t = f.tensor<std::int64_t>(name);
                        return std::string(reinterpret_cast<const char*>(t.data()), sizeof(std::int64_t) * t.numel());
                      }}) {
      try {
        d += read(r, n);
      } catch (const Error& e) {  // an unreadable dtype or an out-of-range integer: still a clean Error
        if (std::string(e.what()).rfind(p + ": ", 0) != 0) FAIL_CHECK("tensor() error without the file name: ", prefix(e.what()));
        d += "(refused)";
      }
    }
  }
  // The same file header-only must agree on what it holds.
  io::SafetensorsReader h(p, io::SafetensorsReader::HeaderOnly{});
  if (h.names() != r.names()) FAIL_CHECK("header-only read sees other tensors");
  return d;
}};

// Hostile values for the header's fields; "@DEEP@" becomes 20000 nested arrays.
const std::vector<std::string> kHostileValues = {
    "-1", "0", "1", "4611686018427387904", "9223372036854775807", "9223372036854775808", "18446744073709551615",
    "1e300", "-0.0", "0.5", "\"F32\"", "\"I64\"", "\"\"", "null", "true", "[]", "[[]]", "{}", "[0, 4611686018427387904, 4611686018427387904]",
    "[1,1,1,1,1,1,1]", "[4294967296, 4294967296]", "[3037000500, 3037000500]", "[0, 18446744073709551615]",
    "\"@DEEP@\"", "[\"@DEEP@\"]", "{\"a\": \"@DEEP@\"}", "\"@LONG@\""};

std::string expand(std::string s) {
  auto put = [&](const std::string& token, const std::string& text) {
    for (std::size_t at; (at = s.find(token)) != std::string::npos;) s.replace(at, token.size(), text);
  };
  put("\"@DEEP@\"", std::string(20000, '[') + std::string(20000, ']'));
  put("@LONG@", std::string(100000, 'x'));
  return s;
}

}  // namespace

// ---- The test cases: one per loader ----

TEST_CASE("safetensors / checkpoint reader") {
  const auto t0 = std::chrono::steady_clock::now();
  const Loader& l = kSafetensors;
  Stats st;
  const auto specs = tensor_specs();
  const Bytes checked = safetensors_file(specs, true), plain = safetensors_file(specs, false);
  const auto seed_digest = attempt(l, checked, st, "seed");
  REQUIRE(seed_digest.has_value());
  REQUIRE(attempt(l, plain, st, "seed without checksums").has_value());
  truncations(l, checked, st);
  // With checksums, a flip is refused or changes nothing that is read (JSON whitespace).
  flips(l, checked, 8000, 1, May::LoadOnlyAsSeed, *seed_digest, st);
  // Without them (as a file converted from PyTorch), flips reach every parser and converter.
  flips(l, plain, 8000, 2, May::LoadAnything, "", st);
  // Hostile headers: one to three fields replaced by hostile values, entries removed or added.
  std::mt19937_64 rng(3);
  const nlohmann::json base = [&] {
    const std::uint64_t n = checked[0] | (std::uint64_t{checked[1]} << 8);
    return nlohmann::json::parse(std::string(checked.begin() + 8, checked.begin() + 8 + static_cast<long>(n)));
  }();
  const std::vector<std::string> names = {"conv.weight", "fc.bias", "bn.num_batches_tracked", "labels", "mask", "empty",
                                          "__metadata__", "new"};
  const std::vector<std::string> fields = {"dtype", "shape", "data_offsets", "extra"};
  for (int r = 0; r < 4000; ++r) {
    nlohmann::json j = base;
    if (r % 2) j["__metadata__"].erase(io::kHeaderCrcKey);  // half without the header checksum
    const int edits = 1 + static_cast<int>(rng() % 3);
    std::string what = "header";
    for (int k = 0; k < edits; ++k) {
      const std::string& name = names[rng() % names.size()];
      const std::string& field = fields[rng() % fields.size()];
      const std::string& value = kHostileValues[rng() % kHostileValues.size()];
      const auto v = nlohmann::json::parse(value);
      try {
        switch (rng() % 5) {
          case 0: j[name] = v; break;                                    // the whole entry
          case 1: j[name][field] = v; break;                             // one field
          case 2: if (j[name].is_object()) j[name].erase(field); break;  // a field removed
          case 3: if (j[name].is_object() && j[name][field].is_array() && !j[name][field].empty())
                    j[name][field][rng() % j[name][field].size()] = v;   // one array element
                  break;
          default: j.erase(name); break;                                 // the entry removed
        }
      } catch (const nlohmann::json::exception&) {  // e.g. a field of what is now a number
      }
      what += " " + name + "." + field + "=" + value;
    }
    const std::string header = expand(j.dump());
    attempt(l, safetensors_file(specs, false, &header), st, what);
  }
  // Header lengths that lie.
  for (std::uint64_t len : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{7}, std::uint64_t{100} << 20,
                            (std::uint64_t{100} << 20) + 1, ~std::uint64_t{0}, std::uint64_t{1} << 63}) {
    Bytes b = checked;
    for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(len >> (8 * i));
    attempt(l, b, st, "header length " + std::to_string(len));
  }
  report(l, st, t0);
}

TEST_CASE("read_image on PNG") {
  data::set_max_image_pixels(1 << 20);  // keeps what a hostile header may allocate small
  fuzz_png(kImage, false, 2000, 400);
}

TEST_CASE("read_label_png") {
  data::set_max_image_pixels(1 << 20);
  fuzz_png(kLabel, true, 2500, 600);
}

TEST_CASE("read_image on JPEG and BMP") {
  data::set_max_image_pixels(1 << 20);
  const auto t0 = std::chrono::steady_clock::now();
  const Loader& l = kImage;
  Stats st;
  std::uint64_t rng_seed = 300;
  const std::vector<std::pair<std::string, Bytes>> seeds = {
      {"JPEG gray", jpeg(16, 9, 1, 90, 1)},
      {"JPEG RGB", jpeg(19, 13, 3, 75, 2)},
      {"BMP 24-bit", test::make_bmp(7, 5, pattern(105, 5))},
      {"BMP 32-bit top-down", bmp32_top_down(5, 3)}};
  for (const auto& [name, file] : seeds) {
    CAPTURE(name);
    REQUIRE(attempt(l, file, st, name).has_value());
    truncations(l, file, st);
    // Neither format has a checksum: a flip may load as other pixels, but must not crash.
    flips(l, file, 6000, ++rng_seed, May::LoadAnything, "", st);
  }
  // Hostile BMP headers: sizes, bit depths, offsets and compressions at their limits.
  const Bytes bmp = test::make_bmp(7, 5, pattern(105, 5));
  auto set = [](Bytes& b, std::size_t at, std::uint32_t v, int n) {
    for (int i = 0; i < n; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  for (std::uint32_t w : {0u, 1u, 0x7fffffffu, 0x80000000u, 0xffffffffu, 70000u})
    for (std::uint32_t h : {0u, 1u, 0x7fffffffu, 0x80000000u, 0xfffffffbu})
      for (std::uint32_t bpp : {0u, 1u, 4u, 8u, 16u, 24u, 32u, 65535u})
        for (std::uint32_t comp : {0u, 1u, 3u, 4u}) {
          Bytes b = bmp;
          set(b, 18, w, 4), set(b, 22, h, 4), set(b, 28, bpp, 2), set(b, 30, comp, 4);
          attempt(l, b, st, "BMP header");
        }
  for (std::uint32_t dib : {0u, 12u, 39u, 40u, 56u, 108u, 124u, 0xffffffffu})
    for (std::uint32_t offset : {0u, 14u, 54u, 0xffffffffu}) {
      Bytes b = bmp;
      set(b, 14, dib, 4), set(b, 10, offset, 4);
      attempt(l, b, st, "BMP header");
    }
  // Hostile JPEG frame sizes (SOF0 height and width, after the 0xFFC0 marker).
  const Bytes jpg = jpeg(19, 13, 3, 75, 2);
  const std::size_t sof = [&] {
    for (std::size_t i = 0; i + 1 < jpg.size(); ++i)
      if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) return i;
    return std::size_t{0};
  }();
  REQUIRE(sof > 0);
  for (std::uint32_t h : {0u, 1u, 13u, 4097u, 65535u})
    for (std::uint32_t w : {0u, 1u, 19u, 4097u, 65535u}) {
      Bytes b = jpg;
      b[sof + 5] = static_cast<std::uint8_t>(h >> 8), b[sof + 6] = static_cast<std::uint8_t>(h);
      b[sof + 7] = static_cast<std::uint8_t>(w >> 8), b[sof + 8] = static_cast<std::uint8_t>(w);
      attempt(l, b, st, "JPEG size");
    }
  report(l, st, t0);
}
