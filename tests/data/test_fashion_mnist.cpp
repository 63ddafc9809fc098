// Fashion-MNIST reading (data/fashion_mnist.hpp, idx_file.hpp, gzip_reader.hpp): the real
// files from Debian's dataset-fashion-mnist, and every way a file can be missing, cut short,
// damaged or of the wrong shape, each an Error naming the file.
#include <doctest/doctest.h>
#include <zlib.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "data/fashion_mnist_required.hpp"
#include "gcnet/data/fashion_mnist.hpp"
#include "support/files.hpp"

using namespace gcnet;
using namespace gcnet::data;
namespace fs = std::filesystem;
using gcnet::test::has;

namespace {
std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
// An IDX file: magic (0, 0, type, rank), dims, data.
std::string idx(const std::vector<std::uint32_t>& dims, const std::string& data, int type = 0x08) {
  std::string s{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (std::uint32_t d : dims) s += be32(d);
  return s + data;
}
void write_gz(const fs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}
// A folder with the real t10k images (linked) and `labels` as the t10k labels file.
fs::path t10k_with_labels(const std::string& name, const std::string& labels_gz_bytes) {
  const fs::path dir = gcnet::test::scratch_dir("fashion_mnist", name);
  fs::create_symlink(fs::path(fashion_mnist_dir()) / "t10k-images-idx3-ubyte.gz", dir / "t10k-images-idx3-ubyte.gz");
  gcnet::test::spit(dir / "t10k-labels-idx1-ubyte.gz", labels_gz_bytes);
  return dir;
}
std::string gz_bytes(const std::string& raw) {
  const fs::path tmp = gcnet::test::scratch_dir("fashion_mnist", "gz") / "x.gz";
  write_gz(tmp, raw);
  return gcnet::test::slurp(tmp);
}
struct EnvVar {  // sets an environment variable for one scope
  std::string name;
  EnvVar(std::string n, const std::string& value) : name(std::move(n)) { ::setenv(name.c_str(), value.c_str(), 1); }
  ~EnvVar() { ::unsetenv(name.c_str()); }
};
}  // namespace

TEST_CASE("Fashion-MNIST: both splits read, counts, labels and class balance as published") {
  gcnet::test::require_fashion_mnist();
  for (const FashionSplit split : {FashionSplit::train, FashionSplit::test}) {
    const std::string name = split_name(split);
    CAPTURE(name);
    const FashionMnist fm = load_fashion_mnist(split);
    const index_t n = split == FashionSplit::train ? 60000 : 10000;
    REQUIRE(fm.count == n);
    REQUIRE(fm.images.size() == static_cast<std::size_t>(n * 28 * 28));
    std::array<index_t, 10> per_class{};
    for (index_t i = 0; i < n; ++i) ++per_class[static_cast<std::size_t>(fm.label(i))];
    for (index_t c : per_class) CHECK(c == n / 10);  // Fashion-MNIST is exactly balanced
    CHECK(fm.label(0) == 9);                          // both splits start with an ankle boot
    long sum = 0;
    for (int k = 0; k < 28 * 28; ++k) sum += fm.image(0)[k];
    CHECK(sum == (split == FashionSplit::train ? 76247 : 33456));  // the first image's pixel sum
  }
  CHECK(fashion_mnist_class_names()[0] == "T-shirt/top");
  CHECK(fashion_mnist_class_names()[9] == "Ankle boot");
  // Shared copies: one load per split and folder while someone holds it.
  const auto a = shared_fashion_mnist(FashionSplit::test), b = shared_fashion_mnist(FashionSplit::test);
  CHECK(a.get() == b.get());
}

TEST_CASE("Fashion-MNIST: a missing file names the file and the Debian package, from the option or the variable") {
  const fs::path empty = gcnet::test::scratch_dir("fashion_mnist", "empty");
  const std::string expected = (empty / "t10k-images-idx3-ubyte.gz").string();
  CHECK_THROWS_WITH_AS(load_fashion_mnist(FashionSplit::test, empty.string()), has(expected), gcnet::Error);
  CHECK_THROWS_WITH_AS(load_fashion_mnist(FashionSplit::test, empty.string()), has("dataset-fashion-mnist"),
                       gcnet::Error);
  {
    const EnvVar env("GCNET_FASHION_MNIST_DIR", empty.string());
    CHECK(fashion_mnist_dir() == empty.string());
    CHECK(fashion_mnist_dir("/explicit") == "/explicit");  // the option wins over the variable
    CHECK_THROWS_WITH_AS(shared_fashion_mnist(FashionSplit::train), has((empty / "train-images-idx3-ubyte.gz").string()),
                         gcnet::Error);
  }
  CHECK(fashion_mnist_dir() == fashion_mnist_debian_dir);
  // The labels missing beside present images: that file is named.
  const fs::path half = t10k_with_labels("half", "");
  fs::remove(half / "t10k-labels-idx1-ubyte.gz");
  CHECK_THROWS_WITH_AS(load_fashion_mnist(FashionSplit::test, half.string()),
                       has((half / "t10k-labels-idx1-ubyte.gz").string() + ": Fashion-MNIST file not found"), gcnet::Error);
}

TEST_CASE("Fashion-MNIST: truncated and damaged gzip files are errors naming the file") {
  gcnet::test::require_fashion_mnist();
  const std::string real = gcnet::test::slurp(fs::path(fashion_mnist_dir()) / "t10k-labels-idx1-ubyte.gz");
  REQUIRE(real.size() > 100);
  struct Case {
    const char* name;
    std::string bytes;
    const char* expect;
  };
  std::string flipped_crc = real, flipped_data = real;
  flipped_crc[real.size() - 6] = static_cast<char>(flipped_crc[real.size() - 6] ^ 0x10);  // inside the CRC-32
  flipped_data[real.size() / 2] = static_cast<char>(flipped_data[real.size() / 2] ^ 0x55);
  for (const Case& c : {Case{"half", real.substr(0, real.size() / 2), "truncated"},
                        Case{"no_trailer", real.substr(0, real.size() - 5), "truncated gzip file"},
                        Case{"crc", flipped_crc, "corrupt gzip file (the data fails its CRC-32 check"},
                        Case{"flipped", flipped_data, "corrupt"},
                        Case{"empty", "", "not a gzip file"},
                        Case{"plain", idx({10000}, std::string(10000, '\1')), "not a gzip file"}}) {
    const std::string name = c.name;
    CAPTURE(name);
    const fs::path dir = t10k_with_labels(c.name, c.bytes);
    const std::string file = (dir / "t10k-labels-idx1-ubyte.gz").string();
    CHECK_THROWS_WITH_AS(load_fashion_mnist(FashionSplit::test, dir.string()), has(file + ": "), gcnet::Error);
    CHECK_THROWS_WITH_AS(load_fashion_mnist(FashionSplit::test, dir.string()), has(c.expect), gcnet::Error);
  }
}

TEST_CASE("Fashion-MNIST: wrong magic, dimensions, sizes and labels are errors saying what was expected") {
  gcnet::test::require_fashion_mnist();
  std::string labels(10000, '\3');
  struct Case {
    const char* name;
    std::string raw;
    const char* expect;
  };
  std::string bad_label = labels;
  bad_label[1234] = 10;
  for (const Case& c : {Case{"type", idx({10000}, labels, 0x09), "unsupported IDX element type 0x9"},
                        Case{"rank", idx({10000, 1}, labels), "IDX file with 2 dimensions, expected 1 (10000 labels"},
                        Case{"magic", "\1\2" + idx({10000}, labels).substr(2), "not an IDX file"},
                        Case{"count", idx({9999}, labels.substr(1)),
                             "expected 10000 labels (the Fashion-MNIST test split), the IDX header says 9999"},
                        Case{"short", idx({10000}, labels.substr(10)), "truncated file"},
                        Case{"long", idx({10000}, labels + "xx"), "holds more than the 10008 bytes its IDX header implies"},
                        Case{"range", idx({10000}, bad_label), "label 10 of image 1234 is out of range (expected 0..9)"},
                        Case{"huge", idx({0xffffffffu}, ""), "the IDX header says 4294967295"}}) {
    const std::string name = c.name;
    CAPTURE(name);
    const fs::path dir = t10k_with_labels(c.name, gz_bytes(c.raw));
    const std::string file = (dir / "t10k-labels-idx1-ubyte.gz").string();
    CHECK_THROWS_WITH_AS(load_fashion_mnist(FashionSplit::test, dir.string()), has(file + ": "), gcnet::Error);
    CHECK_THROWS_WITH_AS(load_fashion_mnist(FashionSplit::test, dir.string()), has(c.expect), gcnet::Error);
  }
  // Images of the wrong size: 10000 of 28x27.
  const fs::path dir = gcnet::test::scratch_dir("fashion_mnist", "image_dims");
  write_gz(dir / "t10k-images-idx3-ubyte.gz", idx({10000, 28, 27}, std::string(10000 * 28 * 27, '\0')));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx({10000}, labels));
  CHECK_THROWS_WITH_AS(load_fashion_mnist(FashionSplit::test, dir.string()),
                       has((dir / "t10k-images-idx3-ubyte.gz").string() +
                           ": expected 10000 images of 28x28 (the Fashion-MNIST test split), the IDX header says 10000x28x27"),
                       gcnet::Error);
  // A header claiming more than the limit stops before allocating.
  write_gz(dir / "big.gz", idx({1000, 1000}, ""));
  CHECK_THROWS_WITH_AS(read_idx_gz((dir / "big.gz").string(), {-1, -1}, "anything", 1000),
                       has("big.gz: the IDX header claims 1000000 bytes of data, more than the limit of 1000"), gcnet::Error);
  // And a well-formed folder of made-up files loads.
  write_gz(dir / "t10k-images-idx3-ubyte.gz", idx({10000, 28, 28}, std::string(10000 * 28 * 28, '\7')));
  const FashionMnist fm = load_fashion_mnist(FashionSplit::test, dir.string());
  CHECK(fm.label(9999) == 3);
  CHECK(fm.image(9999)[783] == 7);
  fs::remove_all(dir.parent_path());
}
