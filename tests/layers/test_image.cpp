#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "gcnet/core/rng.hpp"
#include "gcnet/data/image.hpp"
#include "gcnet/io/safetensors_reader.hpp"

using namespace gcnet;
using namespace gcnet::data;

namespace {
namespace fs = std::filesystem;

// A per-process scratch folder, removed at exit.
struct TempDir {
  fs::path dir = fs::temp_directory_path() / ("gcnet_test_image_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(dir); }
  ~TempDir() { fs::remove_all(dir); }
  std::string operator()(const std::string& name) const { return (dir / name).string(); }
};
const TempDir tmp;

doctest::Contains has(const std::string& s) { return doctest::Contains(s.c_str()); }

Image random_image(index_t h, index_t w, index_t c, std::uint64_t seed) {
  Image img{h, w, c, std::vector<std::uint8_t>(static_cast<std::size_t>(h * w * c))};
  Rng rng(seed);
  for (auto& p : img.pixels) p = static_cast<std::uint8_t>(rng.below(256));
  return img;
}

std::vector<std::uint8_t> bytes_of(const std::string& path) { return read_file_bytes(path); }
void write_bytes(const std::string& path, const std::vector<std::uint8_t>& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// A hand-made PNG encoder (stored deflate blocks, real CRCs), to produce the PNG kinds that
// stb_image_write cannot: palette images of 1..8 bits and 16-bit images.
std::uint32_t crc32(const std::uint8_t* p, std::size_t n, std::uint32_t c = 0xFFFFFFFFu) {
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c;
}
void put32(std::vector<std::uint8_t>& v, std::uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<std::uint8_t>(x >> s));
}
void chunk(std::vector<std::uint8_t>& png, const char* type, const std::vector<std::uint8_t>& data) {
  put32(png, static_cast<std::uint32_t>(data.size()));
  std::vector<std::uint8_t> td(type, type + 4);
  td.insert(td.end(), data.begin(), data.end());
  png.insert(png.end(), td.begin(), td.end());
  put32(png, crc32(td.data(), td.size()) ^ 0xFFFFFFFFu);
}
// rows: already packed scanlines (without filter bytes); filter 1 (Sub) on odd rows exercises unfiltering.
std::vector<std::uint8_t> make_png(std::uint32_t w, std::uint32_t h, int depth, int color_type,
                                   const std::vector<std::vector<std::uint8_t>>& rows, int palette_size = 0) {
  std::vector<std::uint8_t> png = {137, 80, 78, 71, 13, 10, 26, 10}, ihdr;
  put32(ihdr, w);
  put32(ihdr, h);
  ihdr.insert(ihdr.end(), {static_cast<std::uint8_t>(depth), static_cast<std::uint8_t>(color_type), 0, 0, 0});
  chunk(png, "IHDR", ihdr);
  if (palette_size) {
    std::vector<std::uint8_t> plte;
    for (int i = 0; i < palette_size; ++i) plte.insert(plte.end(), {static_cast<std::uint8_t>(i * 7), 0, 0});
    chunk(png, "PLTE", plte);
  }
  std::vector<std::uint8_t> raw;
  for (std::size_t y = 0; y < rows.size(); ++y) {
    const bool sub = y % 2 == 1;
    raw.push_back(sub ? 1 : 0);
    for (std::size_t x = 0; x < rows[y].size(); ++x)
      raw.push_back(static_cast<std::uint8_t>(rows[y][x] - (sub && x ? rows[y][x - 1] : 0)));
  }
  std::vector<std::uint8_t> z = {0x78, 0x01};
  for (std::size_t pos = 0; pos < raw.size() || pos == 0; pos += 65535) {
    const std::size_t n = std::min<std::size_t>(65535, raw.size() - pos);
    z.push_back(pos + n >= raw.size() ? 1 : 0);
    z.insert(z.end(), {static_cast<std::uint8_t>(n), static_cast<std::uint8_t>(n >> 8),
                       static_cast<std::uint8_t>(~n), static_cast<std::uint8_t>(~n >> 8)});
    z.insert(z.end(), raw.begin() + static_cast<long>(pos), raw.begin() + static_cast<long>(pos + n));
    if (pos + n >= raw.size()) break;
  }
  std::uint32_t a = 1, b = 0;
  for (std::uint8_t c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  put32(z, (b << 16) | a);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", {});
  return png;
}

// Packs one row of `depth`-bit samples, MSB first.
std::vector<std::uint8_t> pack_row(const std::vector<int>& v, int depth) {
  std::vector<std::uint8_t> out((v.size() * static_cast<std::size_t>(depth) + 7) / 8, 0);
  for (std::size_t x = 0; x < v.size(); ++x) {
    const std::size_t bit = x * static_cast<std::size_t>(depth);
    out[bit / 8] |= static_cast<std::uint8_t>(v[x] << (8 - depth - static_cast<int>(bit % 8)));
  }
  return out;
}
}  // namespace

TEST_CASE("write_png -> read_image round trips gray and RGB exactly, RGBA drops alpha") {
  for (index_t c : {1, 3}) {
    const Image img = random_image(7, 11, c, 10 + static_cast<std::uint64_t>(c));
    const std::string path = tmp("rt" + std::to_string(c) + ".png");
    write_png(path, img);
    CHECK_FALSE(fs::exists(path + ".tmp"));
    const Image back = read_image(path);
    CHECK(back.height == 7);
    CHECK(back.width == 11);
    CHECK(back.channels == c);
    CHECK(back.pixels == img.pixels);
  }
  const Image rgba = random_image(5, 4, 4, 3);
  write_png(tmp("rgba.png"), rgba);
  const Image rgb = read_image(tmp("rgba.png"));
  REQUIRE(rgb.channels == 3);
  for (index_t y = 0; y < 5; ++y)
    for (index_t x = 0; x < 4; ++x)
      for (index_t c = 0; c < 3; ++c) CHECK(rgb.at(y, x, c) == rgba.at(y, x, c));
}

TEST_CASE("read_label_png: 8-bit gray values, and palette PNGs give indices (1, 2, 4, 8 bit)") {
  const Image lbl = random_image(6, 9, 1, 4);
  write_png(tmp("gray_label.png"), lbl);
  CHECK(read_label_png(tmp("gray_label.png")).pixels == lbl.pixels);

  for (int depth : {1, 2, 4, 8}) {
    const int colors = 1 << depth;
    const std::uint32_t W = 13, H = 5;  // odd width: partial last byte for sub-byte depths
    Rng rng(static_cast<std::uint64_t>(depth));
    std::vector<std::vector<std::uint8_t>> rows;
    std::vector<std::uint8_t> expected;
    for (std::uint32_t y = 0; y < H; ++y) {
      std::vector<int> v(W);
      for (auto& e : v) e = static_cast<int>(rng.below(static_cast<std::uint64_t>(colors)));
      expected.insert(expected.end(), v.begin(), v.end());
      rows.push_back(pack_row(v, depth));
    }
    const std::string path = tmp("pal" + std::to_string(depth) + ".png");
    write_bytes(path, make_png(W, H, depth, 3, rows, colors));
    const Image got = read_label_png(path);
    CAPTURE(depth);
    CHECK(got.height == H);
    CHECK(got.width == W);
    CHECK(got.channels == 1);
    CHECK(got.pixels == expected);
    // stb itself expands the palette to colors: index i has red (i * 7) mod 256.
    const Image colors_img = read_image(path);
    CHECK(colors_img.channels == 3);
    CHECK(colors_img.at(0, 1, 0) == static_cast<std::uint8_t>(expected[1] * 7));
  }
}

TEST_CASE("image errors name the file and the problem") {
  const std::string good = tmp("good.png");
  write_png(good, random_image(16, 16, 3, 5));
  const std::vector<std::uint8_t> bytes = bytes_of(good);

  SUBCASE("missing file") {
    const std::string missing = tmp("does_not_exist.png");
    CHECK_THROWS_WITH_AS(read_image(missing), has(missing + ": cannot open file (No such file"),
                         gcnet::Error);
    CHECK_THROWS_WITH_AS(read_label_png(missing), has(missing + ": cannot open file"), gcnet::Error);
  }
  SUBCASE("truncated PNG, cut inside the image data and just before IEND") {
    for (std::size_t keep : {bytes.size() / 2, bytes.size() - 12, std::size_t{20}}) {
      const std::string cut = tmp("cut.png");
      write_bytes(cut, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(keep)));
      CAPTURE(keep);
      CHECK_THROWS_WITH_AS(read_image(cut), has(cut + ": truncated PNG"), gcnet::Error);
      CHECK_THROWS_WITH_AS(read_label_png(cut), has(cut + ": truncated PNG"), gcnet::Error);
    }
  }
  SUBCASE("not an image") {
    const std::string txt = tmp("notes.png");
    std::ofstream(txt) << "these are not pixels, just some text long enough to look at\n";
    CHECK_THROWS_WITH_AS(read_image(txt), has(txt + ": not an image"), gcnet::Error);
    CHECK_THROWS_WITH_AS(read_label_png(txt), has(txt + ": not a PNG file"), gcnet::Error);
    const std::string empty = tmp("empty.png");
    write_bytes(empty, {});
    CHECK_THROWS_WITH_AS(read_image(empty), has(empty + ": empty file"), gcnet::Error);
  }
  SUBCASE("corrupt image data inside a complete PNG") {
    std::vector<std::uint8_t> bad = bytes;
    // Overwrite the compressed data (after signature 8 + IHDR 25 + IDAT header 8) with garbage.
    for (std::size_t i = 41 + 2; i < bad.size() - 20; ++i) bad[i] = static_cast<std::uint8_t>(i * 31);
    const std::string path = tmp("garbage.png");
    write_bytes(path, bad);
    // The IDAT chunk's CRC no longer matches: caught before stb decodes anything.
    CHECK_THROWS_WITH_AS(read_image(path), has(path + ": corrupt PNG (chunk 'IDAT' at byte 33 fails its CRC-32 check"),
                         gcnet::Error);
  }
  SUBCASE("16-bit PNG") {
    std::vector<std::vector<std::uint8_t>> rows(3, std::vector<std::uint8_t>(8, 0x5A));
    const std::string path = tmp("deep.png");
    write_bytes(path, make_png(4, 3, 16, 0, rows));
    CHECK_THROWS_WITH_AS(read_image(path), has(path + ": unsupported bit depth 16"), gcnet::Error);
    CHECK_THROWS_WITH_AS(read_label_png(path), has(path + ": unsupported bit depth 16"),
                         gcnet::Error);
  }
  SUBCASE("RGB label map") {
    CHECK_THROWS_WITH_AS(read_label_png(good), has(good + ": a label PNG must be single-channel"),
                         gcnet::Error);
  }
  SUBCASE("write_png to a missing folder") {
    const std::string path = tmp("no/such/dir/x.png");
    CHECK_THROWS_WITH_AS(write_png(path, random_image(2, 2, 1, 1)), has(path + ": cannot write PNG"),
                         gcnet::Error);
  }
}

TEST_CASE("read_label_png reads PIL's 4-bit palette label map as its indices (tools/fixtures/data.py)") {
  const io::SafetensorsReader f(std::string(GCNET_FIXTURE_DIR) + "/data.safetensors");
  const auto expected = f.tensor<double>("palette.indices");
  const Image got = read_label_png(std::string(GCNET_FIXTURE_DIR) + "/data_palette_label.png");
  REQUIRE(got.height == expected.size(0));
  REQUIRE(got.width == expected.size(1));
  index_t mismatches = 0, nonzero = 0;
  for (index_t i = 0; i < expected.numel(); ++i) {
    mismatches += got.pixels[static_cast<std::size_t>(i)] != static_cast<std::uint8_t>(expected[i]);
    nonzero += expected[i] != 0;
  }
  CHECK(mismatches == 0);
  CHECK(nonzero > 0);
}

TEST_CASE("read_image decodes a JPEG (stb_image_write's encoder) to the right size, close to the source") {
  Image img{8, 8, 3, std::vector<std::uint8_t>(192)};
  for (index_t y = 0; y < 8; ++y)
    for (index_t x = 0; x < 8; ++x)
      for (index_t c = 0; c < 3; ++c) img.at(y, x, c) = static_cast<std::uint8_t>(20 * x + 10 * y + 30 * c);
  const std::string path = tmp("smooth.jpg");
  REQUIRE(stbi_write_jpg(path.c_str(), 8, 8, 3, img.pixels.data(), 95));
  const Image back = read_image(path);
  CHECK(back.height == 8);
  CHECK(back.width == 8);
  CHECK(back.channels == 3);
  double err = 0;
  for (std::size_t i = 0; i < img.pixels.size(); ++i) err = std::max(err, std::abs(double(back.pixels[i]) - img.pixels[i]));
  CHECK(err < 24);
}

TEST_CASE("max_image_pixels: configurable, checked from the header by read_image and read_label_png") {
  CHECK(max_image_pixels() == kDefaultMaxImagePixels);
  struct Restore {
    ~Restore() { set_max_image_pixels(kDefaultMaxImagePixels); }
  } restore;
  const std::string png = tmp("limit.png"), jpg = tmp("limit.jpg");
  write_png(png, random_image(16, 12, 1, 3));
  const Image rgb = random_image(16, 12, 3, 4);
  REQUIRE(stbi_write_jpg(jpg.c_str(), 12, 16, 3, rgb.pixels.data(), 90));
  set_max_image_pixels(191);  // one pixel short of 16 x 12
  CHECK_THROWS_WITH_AS(read_image(png), has(png + ": image of 12x16 pixels exceeds the limit of 191 pixels"), gcnet::Error);
  CHECK_THROWS_WITH_AS(read_label_png(png), has(png + ": image of 12x16 pixels exceeds the limit of 191 pixels"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(read_image(jpg), has(jpg + ": image of 12x16 pixels exceeds the limit"), gcnet::Error);
  set_max_image_pixels(192);
  CHECK(read_label_png(png).height == 16);
  CHECK(read_image(jpg).width == 12);
  set_max_image_pixels(0);  // no limit
  CHECK(read_image(png).width == 12);
}
