// The paper's statistic, ablate/cosine_distance.hpp: the mean of 1 - cos over all pairs of
// position vectors, on hand-made cases (identical, orthogonal, opposite, a known triangle), both
// layouts, zero vectors left out, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "gcnet/ablate/cosine_distance.hpp"
#include "support/files.hpp"

using namespace gcnet;
using namespace gcnet::ablate;
using gcnet::test::has;

TEST_CASE("cosine distance: identical vectors give 0, whatever their length") {
  // 5 positions of the same direction, different lengths; rows layout [P, D].
  std::vector<float> rows;
  for (int i = 0; i < 5; ++i)
    for (float v : {0.3f, -1.2f, 2.0f, 0.5f}) rows.push_back(v * float(i + 1));
  const CosineDistance d = mean_pairwise_cosine_distance(rows.data(), 5, 4, 4, 1);
  CHECK(d.pairs == 10);
  CHECK(d.skipped == 0);
  CHECK(std::abs(d.mean) < 1e-12);
}

TEST_CASE("cosine distance: mutually orthogonal vectors give 1 for every distinct pair") {
  // The standard basis of R^6 scaled, in the feature-map layout [C, P] (vector i = column i).
  const index_t P = 6, C = 6;
  std::vector<double> map(static_cast<std::size_t>(C * P), 0.0);
  for (index_t i = 0; i < P; ++i) map[static_cast<std::size_t>(i * P + i)] = 0.5 + double(i);
  const CosineDistance d = mean_pairwise_cosine_distance(map.data(), P, C, 1, P);
  CHECK(d.pairs == 15);
  CHECK(d.mean == doctest::Approx(1.0).epsilon(1e-15));
}

TEST_CASE("cosine distance: opposite vectors give 2, and a known mixture") {
  const std::vector<double> opposite{1, 2, -1, -2};  // two positions of 2 dims, rows layout
  CHECK(mean_pairwise_cosine_distance(opposite.data(), 2, 2, 2, 1).mean == doctest::Approx(2.0));
  // (1,0), (0,1), (1,1): pairs 1 - 0, 1 - 1/sqrt2, 1 - 1/sqrt2.
  const std::vector<float> tri{1, 0, 0, 1, 1, 1};
  const double want = (1.0 + 2.0 * (1.0 - 1.0 / std::sqrt(2.0))) / 3.0;
  CHECK(mean_pairwise_cosine_distance(tri.data(), 3, 2, 2, 1).mean == doctest::Approx(want).epsilon(1e-7));
}

TEST_CASE("cosine distance: both layouts agree on the same vectors") {
  const index_t P = 7, D = 5;
  std::vector<double> rows(static_cast<std::size_t>(P * D)), cols(static_cast<std::size_t>(P * D));
  for (index_t i = 0; i < P; ++i)
    for (index_t d = 0; d < D; ++d) {
      const double v = std::sin(1.7 * double(i) + 0.9 * double(d) * double(d)) + 0.1 * double(d);
      rows[static_cast<std::size_t>(i * D + d)] = v;
      cols[static_cast<std::size_t>(d * P + i)] = v;
    }
  const double a = mean_pairwise_cosine_distance(rows.data(), P, D, D, 1).mean;
  const double b = mean_pairwise_cosine_distance(cols.data(), P, D, 1, P).mean;
  CHECK(a == doctest::Approx(b).epsilon(1e-14));
  CHECK(a > 0.1);
}

TEST_CASE("cosine distance: a zero vector has no direction and its pairs are left out") {
  const std::vector<double> v{1, 0, 0, 0, 0, 1};  // (1,0), (0,0), (0,1)
  const CosineDistance d = mean_pairwise_cosine_distance(v.data(), 3, 2, 2, 1);
  CHECK(d.pairs == 1);
  CHECK(d.skipped == 2);
  CHECK(d.mean == doctest::Approx(1.0));
  const std::vector<double> zeros(6, 0.0);
  const CosineDistance z = mean_pairwise_cosine_distance(zeros.data(), 3, 2, 2, 1);
  CHECK(z.pairs == 0);
  CHECK(std::isnan(z.mean));
}

TEST_CASE("cosine distance: bad input is an Error naming the function") {
  const std::vector<double> one{1, 2};
  CHECK_THROWS_WITH_AS(mean_pairwise_cosine_distance(one.data(), 1, 2, 2, 1), has("at least 2 positions"), Error);
  const std::vector<double> bad{1, NAN, 0, 1};
  CHECK_THROWS_WITH_AS(mean_pairwise_cosine_distance(bad.data(), 2, 2, 2, 1), has("non-finite"), Error);
}
