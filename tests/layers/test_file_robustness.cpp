// Files under attack (issue 14). Hostile and damaged files: each loader refuses them with a
// gcnet::Error that names the file and the problem, never a crash, a hang, an unbounded
// allocation or a load of other values (safetensors/checkpoints, then images). Writes under
// a file-size limit, and temporary files left by killed writers.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <limits>
#include <string>
#include <thread>

#include "gcnet/core/parallel.hpp"
#include "gcnet/data/image.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/io/safetensors_writer.hpp"

#include "support/files.hpp"
#include "support/png_maker.hpp"

using namespace gcnet;
namespace fs = std::filesystem;
using test::Bytes;
using test::has;
using test::slurp;
using test::spit;

namespace {

fs::path scratch(const std::string& name) { return test::scratch_dir("file_robustness", name); }


// The Error the reader gives for `p`, which must start with the file name.
std::string reader_error(const fs::path& p) {
  try {
    io::SafetensorsReader r(p.string());
    return "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK(what.rfind(p.string() + ": ", 0) == 0);
    return what;
  }
}

// A small checkpoint-like file: two tensors and metadata, written by gcnet (so checksummed).
std::string write_small(const fs::path& p) {
  io::SafetensorsWriter w;
  Tensor<float> a(Shape{2, 3});
  for (index_t i = 0; i < a.numel(); ++i) a[i] = 0.5f * static_cast<float>(i) - 1;
  Tensor<std::int64_t> b(Shape{2});
  b[0] = 7;
  b[1] = -9;
  w.add("layer.weight", a);
  w.add("layer.count", b);
  w.add_metadata("iter", "12");
  w.write(p.string());
  return slurp(p);
}

// The position of the last `needle` in `hay` (which must contain it).
std::size_t find(const std::string& hay, const std::string& needle) {
  const auto at = hay.rfind(needle);  // the last: tensor entries follow __metadata__
  REQUIRE(at != std::string::npos);
  return at;
}

}  // namespace

// Finding 1: a shape nested tens of thousands of levels deep overflowed the stack when the
// error message dumped the JSON.
TEST_CASE("safetensors: a header nested a million levels deep is an error, not a stack overflow") {
  const fs::path p = scratch("deep") / "deep.safetensors";
  const int depth = 1000000;  // 2 MB of brackets: quoting it with nlohmann's recursive dump() overflowed the stack
  test::write_raw_safetensors(p, R"({"a": {"dtype": "F32", "shape": )" + std::string(depth, '[') + std::string(depth, ']') +
                   R"(, "data_offsets": [0, 4]}})",
            4);
  const std::string e = reader_error(p);
  CHECK(e.find("corrupt header entry 'a' (nested deeper than a safetensors header") != std::string::npos);
  CHECK(e.size() < 600);
  // Deep nesting anywhere else (metadata, an unknown key) is refused the same way.
  test::write_raw_safetensors(p, R"({"__metadata__": {"k": )" + std::string(depth, '[') + std::string(depth, ']') + "}}", 0);
  CHECK(reader_error(p).find("nested deeper than a safetensors header") != std::string::npos);
}

TEST_CASE("safetensors: error messages quote at most a short prefix of what the file holds") {
  const fs::path p = scratch("long") / "long.safetensors";
  const std::string huge(1 << 20, 'x');
  test::write_raw_safetensors(p, R"({"a": {"dtype": "F32", "shape": [")" + huge + R"("], "data_offsets": [0, 4]}})", 4);
  std::string e = reader_error(p);
  CHECK(e.find("tensor 'a' has a bad shape [\"xxx") != std::string::npos);
  CHECK(e.size() < 600);
  test::write_raw_safetensors(p, "{\"" + huge + R"(": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}})", 4);
  e = reader_error(p);
  CHECK(e.find("has unknown dtype 'Q9'") != std::string::npos);
  CHECK(e.size() < 600);
  test::write_raw_safetensors(p, "{\"a\": \"" + huge + "\\q\"}", 0);  // a bad escape at the end of a 1 MB string
  e = reader_error(p);
  CHECK(e.find("corrupt header (not valid JSON") != std::string::npos);
  CHECK(e.size() < 600);
}

// Finding 2: [0, 2^62, 2^62] holds no element but its strides overflow int64.
TEST_CASE("safetensors: shapes whose element count or strides overflow 64 bits are refused") {
  const fs::path p = scratch("overflow") / "o.safetensors";
  for (const char* shape : {"[0, 4611686018427387904, 4611686018427387904]", "[4611686018427387904, 3, 0]",
                            "[3037000500, 3037000500]", "[9223372036854775808]", "[18446744073709551615, 0]"}) {
    CAPTURE(shape);
    test::write_raw_safetensors(p, std::string(R"({"a": {"dtype": "U8", "shape": )") + shape + R"(, "data_offsets": [0, 0]}})", 0);
    const std::string e = reader_error(p);
    CHECK((e.find("tensor 'a' has shape") != std::string::npos || e.find("tensor 'a' has a bad shape") != std::string::npos));
    CHECK((e.find("too large") != std::string::npos || e.find("extents must be integers") != std::string::npos));
  }
  // Big but representable empty shapes still load.
  test::write_raw_safetensors(p, R"({"a": {"dtype": "F64", "shape": [0, 4611686018427387904], "data_offsets": [0, 0]}})", 0);
  io::SafetensorsReader r(p.string());
  CHECK(r.tensor<float>("a").numel() == 0);
}

// Finding 3, checkpoints: a flipped bit in the data or the header of a file gcnet wrote is
// an error on load; files without checksums (converted from PyTorch) still load.
TEST_CASE("safetensors: bit flips in a checkpoint's data or header are caught by its checksums") {
  const fs::path p = scratch("checksum") / "c.safetensors";
  const std::string good = write_small(p);
  CHECK(io::SafetensorsReader(p.string()).tensor<float>("layer.weight")[5] == 1.5f);
  SUBCASE("every single-bit flip of the data section") {
    const std::size_t header_end = 8 + static_cast<std::size_t>(static_cast<unsigned char>(good[0])) +
                                   256 * static_cast<std::size_t>(static_cast<unsigned char>(good[1]));
    REQUIRE(good.size() - header_end == 6 * 4 + 2 * 8);
    int caught = 0, flips = 0;
    for (std::size_t at = header_end; at < good.size(); ++at)
      for (int bit = 0; bit < 8; bit += 3) {
        std::string bad = good;
        bad[at] = static_cast<char>(bad[at] ^ (1 << bit));
        spit(p, bad);
        ++flips;
        const std::string e = reader_error(p);
        caught += e.find("corrupt data (tensor 'layer.") != std::string::npos &&
                  e.find("the file was damaged after it was written") != std::string::npos;
      }
    CHECK(caught == flips);
  }
  SUBCASE("a metadata value, a tensor name, a shape") {
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"\"12\"", "\"13\""}, {"layer.weight", "layer.weighu"}, {"[2,3]", "[3,2]"}}) {
      CAPTURE(to);
      std::string bad = good;
      bad.replace(find(bad, from), from.size(), to);
      spit(p, bad);
      CHECK(reader_error(p).find("corrupt header (its checksum") != std::string::npos);
      CHECK_THROWS_WITH_AS(io::SafetensorsReader(p.string(), io::SafetensorsReader::HeaderOnly{}),
                           doctest::Contains("corrupt header (its checksum"), Error);
    }
  }
  SUBCASE("files without checksums load; rewriting a read file gives fresh checksums") {
    test::write_raw_safetensors(p, R"({"a": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]}})", 3);
    CHECK(io::SafetensorsReader(p.string()).tensor<int>("a")[2] == 1);
    spit(p, good);
    io::SafetensorsReader src(p.string());
    io::SafetensorsWriter w;
    for (const auto& [k, v] : src.metadata()) w.add_metadata(k, v);
    w.add_metadata("gcnet_header_crc32", "00000000");  // copied from elsewhere: replaced on write
    w.add("other", src.tensor<float>("layer.weight"));
    const fs::path q = p.parent_path() / "rewritten.safetensors";
    w.write(q.string());
    spit(q, slurp(q).replace(slurp(q).rfind("other"), 5, "othes"));
    CHECK(reader_error(q).find("corrupt header (its checksum") != std::string::npos);
  }
}

TEST_CASE("safetensors: a float read as an integer must lie in the integer's range") {
  const fs::path p = scratch("float_int") / "f.safetensors";
  io::SafetensorsWriter w;
  Tensor<float> t(Shape{3});
  t[0] = 1;
  t[1] = std::numeric_limits<float>::quiet_NaN();
  t[2] = 1e30f;
  w.add("t", t);
  w.write(p.string());
  io::SafetensorsReader r(p.string());
  CHECK_THROWS_WITH_AS(r.tensor<std::int64_t>("t"), doctest::Contains("tensor 't' holds nan at element 1"), Error);
}

// Finding 8 (part): a FIFO given as a checkpoint blocked the reader forever.
TEST_CASE("safetensors: a FIFO is refused as not a regular file, without blocking") {
  const fs::path p = scratch("fifo") / "latest.safetensors";
  REQUIRE(::mkfifo(p.c_str(), 0600) == 0);
  // Were the reader to open it, it would block until a writer appears: this one appears after
  // a second, so a regression fails (an error other than the expected one) instead of hanging.
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const int fd = ::open(p.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) {
      (void)!::write(fd, "\x10\0\0\0\0\0\0\0{}", 10);
      ::close(fd);
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH_AS(io::SafetensorsReader(p.string()), has(p.string() + ": cannot open: not a regular file"),
                       Error);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(900));
  writer.join();
}

// ---- Images ----

namespace {

Bytes pattern(std::size_t n, unsigned seed, unsigned modulo = 256) {
  Bytes v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 2654435761u + seed) % modulo);
  return v;
}

void write_bytes(const fs::path& p, const Bytes& b) { spit(p, std::string(b.begin(), b.end())); }

// What reading `p` gave: "loaded" when it decoded without error; else the Error, which must
// start with the file name.
template <class Read>
std::string outcome(const fs::path& p, Read read) {
  try {
    (void)read(p.string());
    return "loaded";
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK(what.rfind(p.string() + ": ", 0) == 0);
    return what;
  }
}
std::string image_outcome(const fs::path& p) { return outcome(p, [](const std::string& s) { return data::read_image(s); }); }
std::string label_outcome(const fs::path& p) {
  return outcome(p, [](const std::string& s) { return data::read_label_png(s); });
}

// Flips bits all over `good` (every byte after the signature, bits 0, 3, 6) and counts the
// files that still load: with chunk CRCs verified, none may.
int loads_after_flips(const Bytes& good, const fs::path& p, bool label) {
  int loaded = 0;
  for (std::size_t at = 8; at < good.size(); ++at)
    for (int bit = 0; bit < 8; bit += 3) {
      Bytes bad = good;
      bad[at] = static_cast<std::uint8_t>(bad[at] ^ (1 << bit));
      write_bytes(p, bad);
      const std::string r = label ? label_outcome(p) : image_outcome(p);
      if (r == "loaded") {
        ++loaded;
        MESSAGE("a flip of bit ", bit, " at byte ", at, " still loads");
      }
    }
  return loaded;
}

}  // namespace

// Finding 3, PNG: bit flips (a corrupted height loaded as a smaller image) must be caught by
// the chunk CRCs and the zlib stream's Adler-32.
TEST_CASE("PNG: no single-bit flip of a label or RGB PNG loads (chunk CRCs are verified)") {
  const fs::path dir = scratch("png_flips");
  const Bytes label = test::make_png(9, 7, 1, pattern(63, 3, 21), /*palette=*/true);
  REQUIRE(label_outcome((write_bytes(dir / "ok.png", label), dir / "ok.png")) == "loaded");
  CHECK(loads_after_flips(label, dir / "label.png", true) == 0);
  const Bytes rgb = test::make_png(6, 5, 3, pattern(90, 5));
  REQUIRE(image_outcome((write_bytes(dir / "ok.png", rgb), dir / "ok.png")) == "loaded");
  CHECK(loads_after_flips(rgb, dir / "rgb.png", false) == 0);
  // The height in IHDR (bytes 20..23), named in the error.
  Bytes taller = label;
  taller[23] ^= 0x02;
  write_bytes(dir / "taller.png", taller);
  CHECK(label_outcome(dir / "taller.png").find("corrupt PNG (chunk 'IHDR' at byte 8 fails its CRC-32 check") !=
        std::string::npos);
}

TEST_CASE("PNG: image data whose Adler-32 is wrong (chunk CRC recomputed) is an error") {
  const fs::path dir = scratch("png_adler");
  const Bytes pixels = pattern(12 * 10, 9, 30);
  Bytes raw;
  for (int y = 0; y < 10; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), pixels.begin() + 12 * y, pixels.begin() + 12 * (y + 1));
  }
  for (int c : {0, 3}) {  // gray (read_image and read_label_png) and palette (read_label_png)
    Bytes z = test::zlib_compress(raw);
    z[z.size() - 1] ^= 0x10;  // the Adler-32's last byte: the pixels inflate fine
    const Bytes png = test::make_png_raw(12, 10, 8, c, raw, c == 3 ? 256 : 0, 0, &z);
    const fs::path p = dir / "adler.png";
    write_bytes(p, png);
    CHECK(label_outcome(p).find("corrupt PNG (the image data fails its Adler-32 checksum)") != std::string::npos);
    if (c == 0)
      CHECK(image_outcome(p).find("corrupt PNG (the image data fails its Adler-32 checksum)") != std::string::npos);
  }
}

// Finding 3, BMP: stb loads a BMP that lost its tail.
TEST_CASE("BMP: every truncation of a BMP is an error naming the file") {
  const fs::path dir = scratch("bmp");
  const Bytes bmp = test::make_bmp(7, 5, pattern(105, 1));
  const fs::path p = dir / "cut.bmp";
  write_bytes(p, bmp);
  REQUIRE(image_outcome(p) == "loaded");
  int loaded = 0;
  for (std::size_t keep = 2; keep < bmp.size(); ++keep) {
    write_bytes(p, Bytes(bmp.begin(), bmp.begin() + static_cast<long>(keep)));
    const std::string r = image_outcome(p);
    loaded += r == "loaded";
    if (keep >= 54) CHECK(r.find("truncated BMP (7x5 at 24 bits per pixel needs 174 bytes") != std::string::npos);
  }
  CHECK(loaded == 0);
}

TEST_CASE("JPEG: every truncation of a JPEG is an error naming the file") {
  const fs::path dir = scratch("jpeg");
  const Bytes rgb = pattern(16 * 16 * 3, 7);
  const fs::path p = dir / "photo.jpg";
  REQUIRE(stbi_write_jpg(p.c_str(), 16, 16, 3, rgb.data(), 90));
  const std::string whole = slurp(p);
  REQUIRE(image_outcome(p) == "loaded");
  int loaded = 0;
  for (std::size_t keep = 1; keep < whole.size(); ++keep) {
    spit(p, whole.substr(0, keep));
    loaded += image_outcome(p) == "loaded";
  }
  CHECK(loaded == 0);
}

// Finding 4: a small file claiming a huge image, or a small image whose data inflates to
// far more than its size, must stop early with an error naming the file (not bad_alloc).
TEST_CASE("PNG: decompression bombs stop at the size the header implies or at the pixel limit") {
  const fs::path dir = scratch("bombs");
  // 40000 x 40000 gray: 1.6 G pixels, refused from the header alone.
  const Bytes row(40001, 0);
  const Bytes huge = test::make_png_raw(40000, 40000, 8, 0, row);
  write_bytes(dir / "huge.png", huge);
  CHECK(huge.size() < 1000);
  for (const std::string& e : {image_outcome(dir / "huge.png"), label_outcome(dir / "huge.png")})
    CHECK(e.find("image of 40000x40000 pixels exceeds the limit of 178956970 pixels") != std::string::npos);
  // 8 x 8 pixels whose data inflates to 200 MB: stops after the 72 bytes the header implies.
  const Bytes bomb_z = test::zlib_zero_bomb(200'000'000 / 258);
  for (int c : {0, 3}) {
    const Bytes bomb = test::make_png_raw(8, 8, 8, c, {}, c == 3 ? 256 : 0, 0, &bomb_z);
    CHECK(bomb.size() < 2'000'000);
    const fs::path p = dir / "bomb.png";
    write_bytes(p, bomb);
    const auto t0 = std::chrono::steady_clock::now();
    const std::string msg = "corrupt PNG (the image data inflates to more than the 72 bytes its header implies";
    CHECK(label_outcome(p).find(msg) != std::string::npos);
    if (c == 0) CHECK(image_outcome(p).find(msg) != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500));
  }
}

TEST_CASE("images: a FIFO is refused as not a regular file, without blocking") {
  const fs::path p = scratch("image_fifo") / "x.png";
  REQUIRE(::mkfifo(p.c_str(), 0600) == 0);
  std::thread writer([&] {  // unblocks a regressed reader, as in the safetensors case
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const int fd = ::open(p.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  });
  CHECK(image_outcome(p).find("not a regular file") != std::string::npos);
  CHECK(label_outcome(p).find("not a regular file") != std::string::npos);
  writer.join();
}

// ---- Writes ----

namespace {
// Runs `f` in a child process; its exit status (or 128 + the signal that killed it).
template <class F>
int in_child(F f) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 1;
    try {
#if defined(_OPENMP)
      omp_set_num_threads(1);  // a parent's OpenMP thread team does not exist in the child
#endif
      code = f();
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}
}  // namespace

// Finding 7: under `ulimit -f` a save died of SIGXFSZ, without a message, leaving its
// temporary file. Now the write fails with an Error and the previous file stays.
TEST_CASE("atomic writes: a file-size limit (ulimit -f) is an error, not SIGXFSZ, and leaves no temporary file") {
  const fs::path dir = scratch("fsize");
  const fs::path p = dir / "latest.safetensors";
  write_small(p);
  const std::string before = slurp(p);
  const int status = in_child([&] {
    struct rlimit lim {};
    lim.rlim_cur = lim.rlim_max = 64 * 1024;
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return 3;
    io::SafetensorsWriter w;
    w.add("big", Tensor<float>(Shape{1 << 16}));  // 256 KB: over the limit
    try {
      w.write(p.string());
    } catch (const Error& e) {
      const std::string m = e.what();
      return m.find(p.string() + ": cannot write: File too large (the file-size limit, ulimit -f, was reached)") == 0 ? 0 : 4;
    }
    return 5;
  });
  CHECK_MESSAGE(status == 0, "child exit status ", status, " (128 + ", SIGXFSZ, " is death by SIGXFSZ)");
  CHECK(slurp(p) == before);
  CHECK(files_in(dir) == std::vector<std::string>{"latest.safetensors"});
}

// Finding 7: temporary files of killed writers stayed forever; the next write removes them.
TEST_CASE("atomic writes: temporary files of dead writers are removed at the next write, others are kept") {
  const fs::path dir = scratch("stale");
  const pid_t dead = ::fork();  // a pid that is certainly not running any more
  REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string h(host);
  for (char& c : h)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_') c = '_';
  const std::string d = std::to_string(dead), live = std::to_string(::getppid());
  const std::vector<std::string> stale = {"iter_40.safetensors.tmp-" + d + "-0",  // the name gcnet used before
                                          "latest.safetensors.tmp-" + h + "-" + d + "-3"};
  const std::vector<std::string> kept = {"iter_80.safetensors.tmp-" + h + "-" + live + "-0",  // a live writer
                                         "iter_80.safetensors.tmp-otherhost-" + d + "-0",     // another host's
                                         "notes.tmp-draft", "x.png.tmp"};
  for (const auto& n : stale) spit(dir / n, "partial");
  for (const auto& n : kept) spit(dir / n, "partial");
  write_small(dir / "latest.safetensors");
  std::vector<std::string> want = kept;
  want.push_back("latest.safetensors");
  std::sort(want.begin(), want.end());
  CHECK(files_in(dir) == want);
}
