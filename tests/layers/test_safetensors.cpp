// The safetensors writer and reader: layout (aligned header, little-endian data, I64
// num_batches_tracked), round trips, atomic writes, and every damaged-file failure mode as
// a clear Error naming the file (including a bounded fuzz loop of truncations and flips).
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "gcnet/core/rng.hpp"
#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/io/safetensors_writer.hpp"

#include "support/files.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
namespace fs = std::filesystem;

namespace {

using test::has;
using test::random_tensor;
using test::slurp;
using test::spit;
fs::path scratch(const std::string& name) { return test::scratch_dir("safetensors", name); }


// A small valid file with several dtypes and metadata.
fs::path write_sample(const fs::path& dir) {
  io::SafetensorsWriter w;
  w.add("conv.weight", random_tensor<float>(Shape{3, 2, 3, 3}, 1));
  w.add("fc.bias", random_tensor<double>(Shape{5}, 2));
  Tensor<std::int64_t, Cpu> labels(Shape{4});
  for (index_t i = 0; i < 4; ++i) labels[i] = 1000000000000LL * (i + 1) - 7;
  w.add("labels", labels);
  w.add("bn.num_batches_tracked", full<float>(Shape{}, 42.0f));
  w.add_metadata("iteration", "12");
  w.add_metadata("note", "hello \"world\"");
  const fs::path p = dir / "sample.safetensors";
  w.write(p.string());
  return p;
}

}  // namespace

TEST_CASE("safetensors: round trip of F32, F64, I64, metadata, num_batches_tracked as I64") {
  const fs::path p = write_sample(scratch("roundtrip"));
  io::SafetensorsReader r(p.string());
  CHECK(r.names() == std::vector<std::string>{"bn.num_batches_tracked", "conv.weight", "fc.bias", "labels"});
  CHECK(r.entry("conv.weight").dtype == "F32");
  CHECK(r.entry("fc.bias").dtype == "F64");
  CHECK(r.entry("labels").dtype == "I64");
  CHECK(r.entry("bn.num_batches_tracked").dtype == "I64");
  CHECK(r.entry("bn.num_batches_tracked").shape == Shape{});
  CHECK(r.tensor<double>("bn.num_batches_tracked")[0] == 42.0);
  const auto w = random_tensor<float>(Shape{3, 2, 3, 3}, 1);
  const auto wr = r.tensor<float>("conv.weight");
  REQUIRE(wr.shape() == w.shape());
  for (index_t i = 0; i < w.numel(); ++i) CHECK(wr[i] == w[i]);
  const auto b = random_tensor<double>(Shape{5}, 2);
  for (index_t i = 0; i < 5; ++i) CHECK(r.tensor<double>("fc.bias")[i] == b[i]);
  const auto l = r.tensor<std::int64_t>("labels");
  for (index_t i = 0; i < 4; ++i) CHECK(l[i] == 1000000000000LL * (i + 1) - 7);
  CHECK(r.meta_int("iteration") == 12);
  CHECK(r.meta("note") == "hello \"world\"");
  CHECK(r.checksummed());  // gcnet's checksums were there and matched; they stay out of metadata()
  CHECK(r.metadata().size() == 2);
  CHECK_THROWS_WITH_AS(r.meta_int("note"), doctest::Contains("metadata 'note' = 'hello \"world\"' is not an integer"),
                       Error);
}

TEST_CASE("safetensors: header length is 8-byte aligned and data is little-endian, largest dtypes first") {
  io::SafetensorsWriter w;
  w.add("a", full<float>(Shape{3}, 1.0f));   // 12 bytes: would misalign a following F64
  w.add("b", full<double>(Shape{1}, -2.0));  // F64 must come first in the data section
  const fs::path p = scratch("layout") / "x.safetensors";
  w.write(p.string());
  const std::string bytes = slurp(p);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  CHECK(n % 8 == 0);
  REQUIRE(bytes.size() == 8 + n + 8 + 12);
  CHECK(bytes[8] == '{');
  const std::string data = bytes.substr(8 + n);
  CHECK(data.substr(0, 8) == std::string("\x00\x00\x00\x00\x00\x00\x00\xc0", 8));  // -2.0 as LE double
  CHECK(data.substr(8, 4) == std::string("\x00\x00\x80\x3f", 4));                  // 1.0f as LE float
  io::SafetensorsReader r(p.string());
  CHECK(r.entry("b").begin == 0);
  CHECK(r.entry("a").begin == 8);
}

TEST_CASE("safetensors: a strided view is written as its contiguous values") {
  auto t = random_tensor<float>(Shape{4, 3}, 5);
  const auto view = t.narrow(1, 1, 2);  // columns 1..2: not contiguous
  REQUIRE(!view.is_contiguous());
  io::SafetensorsWriter w;
  w.add("v", view);
  const fs::path p = scratch("view") / "v.safetensors";
  w.write(p.string());
  const auto r = io::SafetensorsReader(p.string()).tensor<float>("v");
  REQUIRE(r.shape() == Shape{4, 2});
  for (index_t i = 0; i < 4; ++i)
    for (index_t j = 0; j < 2; ++j) CHECK(r.at({i, j}) == t.at({i, j + 1}));
}

TEST_CASE("safetensors: writer rejects duplicate and reserved names") {
  io::SafetensorsWriter w;
  w.add("x", full<float>(Shape{1}, 1.0f));
  CHECK_THROWS_WITH_AS(w.add("x", full<float>(Shape{1}, 1.0f)), doctest::Contains("tensor 'x' added twice"), Error);
  CHECK_THROWS_WITH_AS(w.add("__metadata__", full<float>(Shape{1}, 1.0f)), doctest::Contains("invalid tensor name"),
                       Error);
}

TEST_CASE("safetensors: a missing file, a folder, a truncated file, a corrupt header are clear errors") {
  const fs::path dir = scratch("errors");
  const fs::path good = write_sample(dir);
  const std::string bytes = slurp(good);
  const std::string missing = (dir / "nope.safetensors").string();
  CHECK_THROWS_WITH_AS(io::SafetensorsReader{missing}, has(missing + ": cannot open: no such file"),
                       Error);
  CHECK_THROWS_WITH_AS(io::SafetensorsReader{dir.string()}, doctest::Contains("it is a folder, not a file"), Error);

  const fs::path bad = dir / "bad.safetensors";
  const std::string b = bad.string();
  spit(bad, bytes.substr(0, 5));
  CHECK_THROWS_WITH_AS(io::SafetensorsReader{b}, has(b + ": truncated (5 bytes"), Error);
  spit(bad, bytes.substr(0, 40));
  CHECK_THROWS_WITH_AS(io::SafetensorsReader{b}, has(b + ": truncated or corrupt header"), Error);
  spit(bad, bytes.substr(0, bytes.size() - 3));  // cut inside the last tensor
  CHECK_THROWS_WITH_AS(io::SafetensorsReader{b}, doctest::Contains("lies outside the data section"), Error);
  CHECK_THROWS_WITH_AS(io::SafetensorsReader{b}, doctest::Contains("file truncated?"), Error);

  std::string corrupt = bytes;
  corrupt[8] = 'X';  // the JSON's opening brace
  spit(bad, corrupt);
  CHECK_THROWS_WITH_AS(io::SafetensorsReader{b}, has(b + ": corrupt header (not valid JSON"), Error);

  spit(bad, bytes + "tail");
  CHECK_THROWS_WITH_AS(io::SafetensorsReader{b}, has(b + ": corrupt file (the tensors cover"), Error);
}


TEST_CASE("safetensors: inconsistent headers are errors naming the tensor") {
  const fs::path p = scratch("headers") / "h.safetensors";
  const std::string s = p.string();
  auto expect = [&](const std::string& header, std::size_t data, const std::string& msg) {
    CAPTURE(header);
    test::write_raw_safetensors(p, header, data);
    try {
      io::SafetensorsReader r(s);
      FAIL("no error; expected: ", msg);
    } catch (const Error& e) {
      const std::string what = e.what();
      CHECK(what.rfind(s + ": ", 0) == 0);  // the file first ...
      CHECK(what.find(msg) != std::string::npos);  // ... then the problem
    }
  };
  expect(R"([1, 2])", 0, "corrupt header (expected a JSON object)");
  expect(R"({"a": {"dtype": "F32"}})", 0, "corrupt header entry 'a' (needs dtype, shape, data_offsets)");
  expect(R"({"a": {"dtype": 3, "shape": [1], "data_offsets": [0, 4]}})", 4, "entry 'a' (dtype is not a string)");
  expect(R"({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}})", 4, "tensor 'a' has unknown dtype 'Q7'");
  expect(R"({"a": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}})", 4, "entry 'a' (shape is not an array)");
  expect(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4, "tensor 'a' has a bad shape [-1]");
  expect(R"({"a": {"dtype": "F32", "shape": [1,1,1,1,1,1,1], "data_offsets": [0, 4]}})", 4, "tensor 'a' has rank 7");
  expect(R"({"a": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}})", 0,
         "tensor 'a' has shape [4611686018427387904,4], too large");
  expect(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, "8"]}})", 8, "(data_offsets must be two");
  expect(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 12]}})", 8, "tensor 'a' lies outside");
  expect(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 8, "tensor 'a' has 4 bytes but shape [2]");
  expect(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8, "leaving a hole");
  expect(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8, "overlapping the previous tensor");
  expect(R"({"__metadata__": {"k": 1}})", 0, "corrupt header (metadata 'k' is not a string)");
  test::write_raw_safetensors(p, R"({"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}})", 2);  // a readable header ...
  io::SafetensorsReader r(s);
  CHECK_THROWS_WITH_AS(r.tensor<float>("a"), doctest::Contains("tensor 'a' has dtype F16"), Error);  // ... not data
  CHECK_THROWS_WITH_AS(r.tensor<float>("zz"), has(s + ": no tensor named 'zz'"), Error);
}

TEST_CASE("safetensors: fuzz: truncations and byte flips give an Error or a valid read, never a crash") {
  const fs::path dir = scratch("fuzz");
  const std::string bytes = slurp(write_sample(dir));
  const fs::path p = dir / "fuzzed.safetensors";
  std::mt19937_64 gen(20240611);
  int errors = 0, valid = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::string b = bytes;
    if (trial % 3 == 0) {
      b.resize(std::uniform_int_distribution<std::size_t>(0, bytes.size() - 1)(gen));
    } else {
      const int flips = 1 + static_cast<int>(gen() % 4);
      for (int k = 0; k < flips; ++k) {
        // Half the flips hit the length and header, where damage matters most.
        const std::size_t limit = (k % 2 == 0) ? std::min<std::size_t>(bytes.size(), 8 + 64) : bytes.size();
        b[gen() % limit] ^= static_cast<char>(1u << (gen() % 8));
      }
    }
    spit(p, b);
    try {
      io::SafetensorsReader r(p.string());
      for (const auto& n : r.names()) {
        try {
          (void)r.tensor<double>(n);
        } catch (const Error&) {  // an unreadable dtype is a clean error too
        }
      }
      ++valid;
    } catch (const Error& e) {
      CHECK(std::string(e.what()).rfind(p.string() + ": ", 0) == 0);  // names the file first
      ++errors;
    }
  }
  MESSAGE("fuzz: ", errors, " errors, ", valid, " valid reads");
  CHECK(errors > 100);
}

TEST_CASE("safetensors: every committed fixture passes the strict layout checks") {
  int n = 0;
  for (const auto& e : fs::directory_iterator(GCNET_FIXTURE_DIR)) {
    if (e.path().extension() != ".safetensors") continue;
    CAPTURE(e.path().string());
    io::SafetensorsReader r(e.path().string());
    CHECK(!r.names().empty());
    ++n;
  }
  CHECK(n > 0);
}

TEST_CASE("safetensors: a failing write leaves the old file and no temporary file") {
  const fs::path dir = scratch("atomic");
  const fs::path p = write_sample(dir);
  const std::string before = slurp(p);
  // A failure in the middle of writing (simulated by the producer).
  CHECK_THROWS_WITH_AS(io::write_file_atomically(p.string(),
                                                 [](io::FileSink& out) {
                                                   out.write("partial", 7);
                                                   throw Error("simulated disk failure");
                                                 }),
                       doctest::Contains("simulated disk failure"), Error);
  CHECK(slurp(p) == before);
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  // A folder that does not exist.
  io::SafetensorsWriter w;
  w.add("x", full<float>(Shape{2}, 3.0f));
  const std::string nowhere = (dir / "no_such_folder" / "x.safetensors").string();
  CHECK_THROWS_WITH_AS(w.write(nowhere), has(nowhere + ": cannot write: folder"), Error);
  CHECK_THROWS_WITH_AS(w.write(nowhere), doctest::Contains("does not exist"), Error);
  // A path that is a folder.
  CHECK_THROWS_WITH_AS(w.write(dir.string()), doctest::Contains("cannot write: it is a folder"), Error);
  // A successful rewrite replaces the file as a whole.
  w.write(p.string());
  CHECK(io::SafetensorsReader(p.string()).names() == std::vector<std::string>{"x"});
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  fs::remove_all(dir);
}
