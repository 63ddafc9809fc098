// GlobalContextBlock's two forwards on the CPU (cpu::ForwardPath): the CPU fast path, one
// parallel region (cpu/global_context_team.hpp), and the backend-generic one. Both must give the
// same output and leave the same state for the (generic) backward, for GC, SE and the simplified
// NL, at team sizes 1, 2 and 3 (unequal shares, members with no channels), down to H*W = 1. The single region pools by images when the batch is a multiple of the team
// (batch 2 and 4 on two threads, 3 on three, any on one) and by channels otherwise (batch 1 and 3
// on two threads, 1, 2 and 4 on three): both splits are covered.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "blocks_parity.hpp"
#include "gcnet/blocks/gc_block.hpp"
#include "gcnet/blocks/se_layer.hpp"
#include "gcnet/blocks/simplified_nl.hpp"
#include "gcnet/testing/gradient_check.hpp"
#include "support/layer_testing.hpp"

using namespace gcnet;
using cpu::ForwardPath;

namespace {

// max |a - b| / max |b| (+inf on a shape mismatch or NaN).
template <class T>
double relative_diff(const Tensor<T>& a, const Tensor<T>& b) {
  double scale = 1e-30;
  for (index_t i = 0; i < b.numel(); ++i) scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  return test::max_abs_diff(a, b) / scale;
}

// What one forward and backward produce: y, dx (from zero) and every parameter gradient.
template <class T>
struct Pass {
  Tensor<T> y, dx;
  std::vector<std::string> names;
  std::vector<Tensor<T>> grads;
};

template <Layer L, class T = typename L::value_type>
Pass<T> forward_backward(L& block, ForwardPath path, const Tensor<T>& x, const Tensor<T>& dy) {
  block.set_forward_path(path);
  Pass<T> p;
  block.forward(x, p.y);
  p.dx.resize(x.shape());
  fill(p.dx, T(0));
  block.backward(x, p.y, dy, p.dx);
  for (auto& [name, prm] : named_parameters(block)) {
    p.names.push_back(name);
    p.grads.push_back(clone(prm->grad));
  }
  return p;
}

template <Layer L>
void check_paths_agree(L& block, const Shape& shape, double tolerance) {
  using T = typename L::value_type;
  test::randomize_parameters(block, 11);
  const auto x = test::random_tensor<T>(shape, 21), dy = test::random_tensor<T>(shape, 22);
  for (int threads : {1, 2, 3}) {
    test::with_threads(threads, [&] {
      const auto generic = forward_backward(block, ForwardPath::Generic, x, dy);
      const auto single = forward_backward(block, ForwardPath::SingleRegion, x, dy);
      INFO(block.describe() << " on " << shape.str() << ", " << threads << " thread(s)");
      CHECK(relative_diff(generic.y, x) > 1e-3);  // the block does change x
      CHECK(relative_diff(single.y, generic.y) <= tolerance);
      CHECK(relative_diff(single.dx, generic.dx) <= tolerance);
      REQUIRE(single.grads.size() == generic.grads.size());
      for (std::size_t i = 0; i < single.grads.size(); ++i) {
        INFO("parameter " << single.names[i]);
        if (shape.h() * shape.w() == 1 && single.names[i] == "conv_mask.weight") {
          // A softmax over one position does not depend on the logits: this gradient is 0 up to
          // rounding on both paths, so only its size is compared.
          const auto zero = zeros<T>(single.grads[i].shape());
          CHECK(test::max_abs_diff(single.grads[i], zero) <= 1e-5);
          CHECK(test::max_abs_diff(generic.grads[i], zero) <= 1e-5);
          continue;
        }
        CHECK(relative_diff(single.grads[i], generic.grads[i]) <= tolerance);
      }
    });
  }
}

// C = 40 splits 16 + 24 over two threads and 16 + 16 + 8 over three; C = 8 leaves all but one
// member without channels. (GC uses ratio 1/2 here: a LayerNorm over 2 planes is nearly
// constant, and its gradients are rounding noise that no two summation orders agree on.)
std::vector<Shape> shapes_for(index_t c) {
  return {Shape{1, c, 5, 4}, Shape{3, c, 7, 7}, Shape{3, c, 1, 1}, Shape{2, c, 13, 11}, Shape{4, c, 3, 5}};
}

template <class T, double Tolerance>
void check_every_block() {
  for (index_t c : {40, 8}) {
    for (const Shape& s : shapes_for(c)) {
      for (Pooling pooling : {Pooling::Attention, Pooling::Average}) {
        GCBlock<std::ratio<1, 2>, fusion::Add, T> add(c, pooling);
        check_paths_agree(add, s, Tolerance);
        GCBlock<std::ratio<1, 2>, fusion::Mul, T> mul(c, pooling);
        check_paths_agree(mul, s, Tolerance);
        GCBlock<std::ratio<1, 2>, fusion::MulAdd, T> muladd(c, pooling);
        check_paths_agree(muladd, s, Tolerance);
      }
      SELayer<T> se(c, 2);
      check_paths_agree(se, s, Tolerance);
      SimplifiedNL<T> snl(c);
      check_paths_agree(snl, s, Tolerance);
    }
  }
}

}  // namespace

TEST_CASE("GlobalContextBlock forward paths agree: float (GC every fusion and pooling, SE, SNL)") {
  check_every_block<float, 2e-5>();
}

TEST_CASE("GlobalContextBlock forward paths agree: double") { check_every_block<double, 1e-12>(); }

TEST_CASE("GlobalContextBlock forward paths agree at ResNet widths (several 16-row blocks per member)") {
  GCBlock<std::ratio<1, 16>, fusion::MulAdd> gc(512);
  check_paths_agree(gc, Shape{3, 512, 3, 3}, 2e-5);
  SELayer<float> se(272, 16);
  check_paths_agree(se, Shape{1, 272, 2, 5}, 2e-5);
  SimplifiedNL<float> snl(136);
  check_paths_agree(snl, Shape{2, 136, 4, 4}, 2e-5);
}

TEST_CASE("GlobalContextBlock: gradients with each forward path pinned") {
  for (ForwardPath path : {ForwardPath::SingleRegion, ForwardPath::Generic}) {
    for (int threads : {1, 2}) {
      test::with_threads(threads, [&] {
        GCBlock<std::ratio<1, 4>, fusion::MulAdd, double> gc(40);
        test::randomize_parameters(gc, 5);
        gc.set_forward_path(path);
        auto r = testing::check_gradients(gc, Shape{3, 40, 3, 5});
        INFO("GC, path " << int(path) << ", " << threads << " thread(s)\n" << r.report);
        CHECK(r.ok);
        SELayer<double> se(40, 4);
        test::randomize_parameters(se, 6);
        se.set_forward_path(path);
        r = testing::check_gradients(se, Shape{1, 40, 4, 3});
        INFO("SE\n" << r.report);
        CHECK(r.ok);
        SimplifiedNL<double> snl(24);
        test::randomize_parameters(snl, 7);
        snl.set_forward_path(path);
        r = testing::check_gradients(snl, Shape{3, 24, 2, 3});
        INFO("SNL\n" << r.report);
        CHECK(r.ok);
      });
    }
  }
}

TEST_CASE("GlobalContextBlock: PyTorch parity with each forward path pinned") {
  for (const char* file :
       {"/blocks_gc.safetensors", "/blocks_gc_c256.safetensors", "/blocks_se.safetensors", "/blocks_snl.safetensors"}) {
    const io::SafetensorsReader f(std::string(GCNET_FIXTURE_DIR) + file);
    for (const auto& c : test::split_csv(f.meta("cases")))
      for (ForwardPath path : {ForwardPath::SingleRegion, ForwardPath::Generic}) {
        auto r = test::block_parity(f, c, path);
        INFO(c << ", path " << int(path) << "\n" << r.report);
        CHECK(r.ok);
      }
  }
}

#if defined(_OPENMP)
TEST_CASE("GlobalContextBlock: the single-region forward inside a parallel region runs serially") {
  // One block per thread of an outer region: each forward must not reach the outer region's
  // barriers (it runs as a team of one) and must give what it gives outside.
  const Shape shape{2, 40, 6, 5};
  const auto x = test::random_tensor<float>(shape, 3);
  std::vector<GCBlock<std::ratio<1, 4>, fusion::MulAdd>> blocks;
  blocks.reserve(2);
  for (int t = 0; t < 2; ++t) {
    blocks.emplace_back(40);
    test::randomize_parameters(blocks.back(), 9);
    blocks.back().set_forward_path(ForwardPath::SingleRegion);
  }
  Tensor<float> reference;
  blocks[0].set_forward_path(ForwardPath::Generic);
  blocks[0].forward(x, reference);
  blocks[0].set_forward_path(ForwardPath::SingleRegion);
  std::vector<Tensor<float>> ys(2);
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    if (t < 2) blocks[static_cast<std::size_t>(t)].forward(x, ys[static_cast<std::size_t>(t)]);
  }
  for (const auto& y : ys) CHECK(relative_diff(y, reference) <= 2e-5);
  CHECK(relative_diff(reference, x) > 1e-3);
}
#endif

TEST_CASE("GlobalContextBlock: the single-region forward validates its input like the generic one") {
  GCBlock<std::ratio<1, 16>> gc(32);
  gc.set_forward_path(ForwardPath::SingleRegion);
  Tensor<float> y;
  CHECK_THROWS_WITH_AS(gc.forward(test::random_tensor<float>(Shape{2, 16, 4, 4}, 1), y),
                       doctest::Contains("GCBlock(32, ratio=1/16, pooling=attention, fusion=add): expected input "
                                         "with 32 channels, got shape [2, 16, 4, 4]"),
                       gcnet::Error);
  SELayer<float> se(32, 4);
  se.set_forward_path(ForwardPath::SingleRegion);
  CHECK_THROWS_WITH_AS(se.forward(test::random_tensor<float>(Shape{1, 32, 4}, 1), y),
                       doctest::Contains("SELayer(32, ratio=4): expected a 4-d NCHW input, got shape [1, 32, 4]"),
                       gcnet::Error);
}
