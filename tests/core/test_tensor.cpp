#include <doctest/doctest.h>

#include <cmath>

#include "gcnet/core/tensor.hpp"
#include "gcnet/kernels/blas.hpp"
#include "gcnet/kernels/elementwise.hpp"
#include "gcnet/core/rng.hpp"

using namespace gcnet;

TEST_CASE("shape: extents, errors and printing") {
  Shape s{2, 3, 4, 5};
  CHECK(s.rank() == 4);
  CHECK(s.numel() == 120);
  CHECK(s.c() == 3);
  CHECK(s[-1] == 5);
  CHECK(s.str() == "[2, 3, 4, 5]");
  CHECK_THROWS_WITH_AS(Shape({2, -1}), doctest::Contains("negative extent -1"), Error);
  CHECK_THROWS_WITH_AS(require_nchw(Shape{2, 0, 4, 4}, "Conv2d(3, 8)"),
                       doctest::Contains("Conv2d(3, 8): input shape [2, 0, 4, 4] has a zero extent"), Error);
  CHECK_THROWS_WITH_AS(require_nchw(Shape{2, 3}, "BatchNorm2d(3)"),
                       doctest::Contains("expected a 4-d NCHW input, got shape [2, 3]"), Error);
}

TEST_CASE("tensor: views share storage without copying") {
  Rng rng(7);
  Tensor<float> t(Shape{2, 3, 4, 5});
  for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(rng.normal());

  auto r = t.reshape(Shape{6, 20});
  CHECK(r.shares_storage_with(t));
  CHECK(r.data() == t.data());
  r[7] = 42.0f;
  CHECK(t[7] == 42.0f);

  auto s = t.slice(1, 2);  // second sample
  CHECK(s.shape() == Shape{1, 3, 4, 5});
  CHECK(s.data() == t.data() + 60);
  CHECK(s.is_contiguous());

  auto n = t.narrow(1, 1, 2);  // channels 1..2: strided
  CHECK_FALSE(n.is_contiguous());
  CHECK(n.at({1, 0, 2, 3}) == t.at({1, 1, 2, 3}));
  auto c = clone(n);
  CHECK(c.is_contiguous());
  CHECK_FALSE(c.shares_storage_with(t));
  for (index_t b = 0; b < 2; ++b)
    for (index_t ch = 0; ch < 2; ++ch)
      for (index_t h = 0; h < 4; ++h)
        for (index_t w = 0; w < 5; ++w) CHECK(c.at({b, ch, h, w}) == t.at({b, ch + 1, h, w}));

  CHECK_THROWS_WITH_AS(t.reshape(Shape{7, 7}), doctest::Contains("cannot view [2, 3, 4, 5] as [7, 7]"), Error);
  CHECK_THROWS_WITH_AS(n.reshape(Shape{2, 40}), doctest::Contains("not contiguous"), Error);
  CHECK_THROWS_WITH_AS(t.narrow(1, 2, 2), doctest::Contains("out of bounds"), Error);
}

TEST_CASE("tensor: resize keeps storage when it can") {
  Tensor<float> t(Shape{4, 4});
  const float* p = t.data();
  t.resize(Shape{2, 8});
  CHECK(t.data() == p);
  t.resize(Shape{3, 3});
  CHECK(t.data() == p);
  auto alias = t;  // shared: resize must not reuse a buffer others see
  t.resize(Shape{2, 2});
  CHECK(t.data() != alias.data());
}

TEST_CASE("blas: gemm matches a naive product for every transpose and beta") {
  Rng rng(3);
  const index_t m = 37, n = 29, k = 41;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (double beta : {0.0, 0.5}) {
        std::vector<double> a(m * k), b(k * n), c(m * n), ref(m * n);
        for (auto& v : a) v = rng.normal();
        for (auto& v : b) v = rng.normal();
        for (auto& v : c) v = rng.normal();
        for (index_t i = 0; i < m; ++i)
          for (index_t j = 0; j < n; ++j) {
            double s = 0;
            for (index_t p = 0; p < k; ++p)
              s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
            ref[i * n + j] = 1.5 * s + beta * c[i * n + j];
          }
        if (beta == 0.0) std::fill(c.begin(), c.end(), NAN);  // beta 0 must not read C
        blas::gemm(Cpu{}, ta ? blas::Op::T : blas::Op::N, tb ? blas::Op::T : blas::Op::N, m, n, k, 1.5,
                   a.data(), ta ? m : k, b.data(), tb ? k : n, beta, c.data(), n);
        double err = 0;
        for (index_t i = 0; i < m * n; ++i) err = std::max(err, std::abs(c[i] - ref[i]));
        CHECK(err < 1e-12);
      }
}
