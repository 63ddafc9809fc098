// COCO mask API (coco_mask.hpp) against pycocotools' semantics: the RLE strings, areas, boxes
// and IoUs of the detection reference (§16.8, verified there with pycocotools @ 8c9bcc3),
// polygon vectors produced by maskApi.c @ 8c9bcc3 compiled on its own (rleFrPoly, rleToString,
// rleArea, rleToBbox; the same comparison on 20000 random polygons, merges and IoUs matched
// exactly while this was written), brute-force checks of decode/merge/IoU on random masks, and
// the errors for damaged RLEs and polygons.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "gcnet/data/coco_mask.hpp"
#include "support/files.hpp"
#include "support/mask_blocks.hpp"

using namespace gcnet;
using gcnet::test::mask_block;
using namespace gcnet::data;
using gcnet::test::has;

namespace {

std::vector<std::uint8_t> random_mask(std::mt19937& g, index_t h, index_t w, double p) {
  std::bernoulli_distribution on(p);
  std::vector<std::uint8_t> m(static_cast<std::size_t>(h * w));
  // Runs of equal pixels, so the RLEs have long and short runs.
  std::uint8_t v = on(g);
  for (auto& px : m) {
    if (std::uniform_int_distribution<int>(0, 5)(g) == 0) v = on(g);
    px = v;
  }
  return m;
}

std::array<double, 4> brute_bbox(const std::vector<std::uint8_t>& m, index_t h, index_t w) {
  index_t xs = w, ys = h, xe = -1, ye = -1;
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x)
      if (m[static_cast<std::size_t>(y * w + x)]) {
        xs = std::min(xs, x), xe = std::max(xe, x), ys = std::min(ys, y), ye = std::max(ye, y);
      }
  if (xe < 0) return {0, 0, 0, 0};
  return {double(xs), double(ys), double(xe - xs + 1), double(ye - ys + 1)};
}

Rle poly(std::vector<double> xy, index_t h, index_t w) { return rle_from_polygon(xy, h, w); }
}  // namespace

TEST_CASE("RLE reference vectors: counts, strings, area, bbox") {
  // 4x5 mask with rows 1-2, cols 2-3 set.
  const Rle a = rle_from_mask(mask_block(4, 5, 1, 3, 2, 4), 4, 5);
  CHECK(a.counts == std::vector<std::uint32_t>{9, 2, 2, 2, 5});
  CHECK(rle_to_string(a) == "92203");
  CHECK(rle_area(a) == 4);
  CHECK(rle_to_bbox(a) == std::array<double, 4>{2, 1, 2, 2});
  CHECK(rle_to_mask(a) == mask_block(4, 5, 1, 3, 2, 4));
  // The old counts-only functions agree with the Rle ones.
  CHECK(rle_encode(mask_block(4, 5, 1, 3, 2, 4), 4, 5) == a.counts);

  // 3x4 all ones.
  const Rle ones = rle_from_mask(std::vector<std::uint8_t>(12, 1), 3, 4);
  CHECK(ones.counts == std::vector<std::uint32_t>{0, 12});
  CHECK(rle_to_string(ones) == "0<");

  // 48x64 with rows 0-39, cols 0-49 set.
  const Rle big = rle_from_mask(mask_block(48, 64, 0, 40, 0, 50), 48, 64);
  CHECK(rle_to_string(big) == "0X18" + std::string(97, '0') + "Pe0");
  CHECK(rle_area(big) == 2000);
  CHECK(rle_to_bbox(big) == std::array<double, 4>{0, 0, 50, 40});
  std::vector<std::uint32_t> uncompressed{0};
  for (int i = 0; i < 49; ++i) uncompressed.insert(uncompressed.end(), {40, 8});
  uncompressed.insert(uncompressed.end(), {40, 680});
  CHECK(big.counts == uncompressed);
  CHECK(rle_from_string(rle_to_string(big), 48, 64) == big);

  // 300x400 with rows 100-199, cols 50-59: one backslash and one backtick in the string.
  const Rle tall = rle_from_mask(mask_block(300, 400, 100, 200, 50, 60), 300, 400);
  CHECK(rle_to_string(tall) == "lg>T3X600000000000000000\\`S3");
  CHECK(rle_to_string(tall).size() == 28);
  CHECK(rle_from_string("lg>T3X600000000000000000\\`S3", 300, 400) == tall);
}

TEST_CASE("IoU reference vectors: boxes and masks, with and without crowd") {
  CHECK(coco_box_iou({0, 0, 10, 10}, {5, 5, 10, 10}, false) == doctest::Approx(1.0 / 7).epsilon(1e-15));
  CHECK(coco_box_iou({0, 0, 10, 10}, {5, 5, 10, 10}, true) == 0.25);
  const std::vector<double> m = coco_box_iou({{0, 0, 10, 10}, {20, 20, 5, 5}}, {{5, 5, 10, 10}, {0, 0, 10, 10}}, {1, 0});
  CHECK(m == std::vector<double>{0.25, 1.0, 0.0, 0.0});  // row-major [dt x gt]
  // Touching boxes do not overlap.
  CHECK(coco_box_iou({0, 0, 10, 10}, {10, 0, 10, 10}, false) == 0);

  const Rle gt = rle_from_mask(mask_block(48, 64, 0, 40, 0, 50), 48, 64);
  const Rle dt = rle_from_mask(mask_block(48, 64, 20, 48, 30, 64), 48, 64);
  CHECK(rle_area(dt) == 952);
  CHECK(rle_iou(dt, gt, false) == doctest::Approx(0.156740).epsilon(1e-6));
  CHECK(rle_iou(dt, gt, false) == 400.0 / (952 + 2000 - 400));
  CHECK(rle_iou(dt, gt, true) == doctest::Approx(0.420168).epsilon(1e-6));
  CHECK(rle_iou(dt, gt, true) == 400.0 / 952);
  const std::vector<double> o = rle_iou({dt, gt}, {gt, dt}, {1, 0});
  CHECK(o == std::vector<double>{400.0 / 952, 1.0, 1.0, 400.0 / 2552});
  // Different sizes: -1 where the boxes overlap (rleIou), 0 where they do not.
  const Rle other = rle_from_mask(mask_block(50, 64, 0, 10, 0, 10), 50, 64);
  CHECK(rle_iou(other, gt, false) == -1.0);
  const Rle far = rle_from_mask(mask_block(50, 64, 45, 50, 60, 64), 50, 64);
  CHECK(rle_iou(far, gt, false) == 0.0);
  CHECK_THROWS_WITH_AS(rle_iou_exact(other, gt, false), has("sizes 50x64 and 48x64 differ"), gcnet::Error);
  // An empty detection has IoU 0 with anything.
  const Rle empty = rle_from_mask(std::vector<std::uint8_t>(48 * 64, 0), 48, 64);
  CHECK(rle_iou(empty, gt, false) == 0.0);
  CHECK(rle_iou(empty, gt, true) == 0.0);
  CHECK(rle_iou(std::vector<Rle>{}, std::vector<Rle>{gt}, {0}).empty());
  CHECK_THROWS_WITH_AS(rle_iou({dt}, {gt}, {0, 1}), has("2 iscrowd flags for 1 ground truths"), gcnet::Error);
}

TEST_CASE("Polygons: the reference square and maskApi.c's own outputs") {
  const Rle sq = rle_from_polygons({{10, 10, 20, 10, 20, 20, 10, 20}}, 30, 30);
  CHECK(rle_area(sq) == 100);
  CHECK(rle_to_bbox(sq) == std::array<double, 4>{10, 10, 10, 10});
  CHECK(rle_to_mask(sq) == mask_block(30, 30, 10, 20, 10, 20));

  // Produced by maskApi.c @ 8c9bcc3 (rleFrPoly -> rleToString / rleArea / rleToBbox).
  struct Case {
    const char* name;
    std::vector<double> xy;
    index_t h, w;
    std::string rle;
    std::uint64_t area;
    std::array<double, 4> bbox;
  };
  const std::vector<Case> cases{
      {"triangle", {2.3, 1.7, 17.6, 4.2, 8.1, 14.9}, 16, 20, "b12>2N3M2O1N2NN2O1O1O2N1O1O1N^1", 91, {3, 2, 14, 13}},
      {"concave", {1, 1, 12.5, 1, 12.5, 10, 7, 5.5, 1, 10}, 12, 14, "=93O1O1O100O1001O001O1O1:", 82, {1, 1, 12, 9}},
      {"outside the image", {-3.2, -1, 9.7, -2.5, 11.4, 7.3, -0.6, 8.8}, 8, 10, "0`2", 80, {0, 0, 10, 8}},
      {"thinner than a pixel", {3, 2, 3.1, 2, 3.1, 9, 3, 9}, 10, 6, "l1", 0, {0, 0, 0, 0}},
      {"repeated vertices", {4, 4, 4, 4, 10.2, 4.4, 10.2, 4.4, 6.6, 11.1, 4, 4}, 13, 13, "h11<3M3MN2O1NU1", 23, {4, 4, 6, 7}},
      {"star",
       {10, 1, 12.4, 7.6, 19.5, 7.7, 13.8, 11.9, 16, 18.8, 10, 14.6, 4, 18.8, 6.2, 11.9, 0.5, 7.7, 7.6, 7.6},
       20,
       20,
       "`11c01O1DN42I1751ON3M2103N2M01OJH17OLN418O10<",
       111,
       {2, 2, 17, 16}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const Rle r = poly(c.xy, c.h, c.w);
    CHECK(rle_to_string(r) == c.rle);
    CHECK(rle_area(r) == c.area);
    CHECK(rle_to_bbox(r) == c.bbox);
    CHECK(rle_from_string(c.rle, c.h, c.w) == r);
  }
  // rleFrBbox of [2.5, 1.5, 4.2, 3.3] on 8x9, from the same build.
  const Rle b = rle_from_bbox({2.5, 1.5, 4.2, 3.3}, 8, 9);
  CHECK(rle_to_string(b) == "j03500000>");
  CHECK(rle_area(b) == 12);

  // frPyObjects: a first polygon of exactly 4 numbers makes the list [x, y, w, h] boxes.
  const Rle boxes = rle_from_polygons({{10, 10, 10, 10}, {0, 0, 2, 2}}, 30, 30);
  CHECK(boxes == rle_merge({rle_from_bbox({10, 10, 10, 10}, 30, 30), rle_from_bbox({0, 0, 2, 2}, 30, 30)}));
  CHECK(rle_area(boxes) == 104);
  // Several polygons are merged (union).
  const Rle two = rle_from_polygons({{0, 0, 4, 0, 4, 4, 0, 4}, {2, 2, 6, 2, 6, 6, 2, 6}}, 8, 8);
  CHECK(rle_area(two) == 16 + 16 - 4);

  CHECK_THROWS_WITH_AS(rle_from_polygons({}, 5, 5, "f.json: ann 3"), has("f.json: ann 3: empty polygon list"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(rle_from_polygons({{1, 2}}, 5, 5), has("first polygon has 2 numbers"), gcnet::Error);
  CHECK_THROWS_WITH_AS(rle_from_polygons({{1, 2, 3, 4}, {1, 2, 3, 4, 5, 6}}, 5, 5), has("but one has 6"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(poly({0, 0, 1, std::nan(""), 2, 2}, 5, 5), has("polygon coordinate 3 is nan"), gcnet::Error);
  CHECK_THROWS_WITH_AS(poly({0, 0, 1e7, 0, 2, 2}, 5, 5), has("polygon coordinate 2"), gcnet::Error);
  CHECK_THROWS_WITH_AS(poly({}, 5, 5), has("polygon has no vertex"), gcnet::Error);
}

TEST_CASE("toBbox: a run of ones that crosses a column spans the full height (rleToBbox)") {
  // 4x3: pixels (y 3, x 0) and (y 0, x 1) are consecutive in column-major order: one run.
  std::vector<std::uint8_t> m(12, 0);
  m[3 * 3 + 0] = 1;
  m[0 * 3 + 1] = 1;
  const Rle r = rle_from_mask(m, 4, 3);
  CHECK(r.counts == std::vector<std::uint32_t>{3, 2, 7});
  CHECK(rle_to_bbox(r) == std::array<double, 4>{0, 0, 2, 4});
  // A trailing run of zeros does not matter; an empty mask gives zeros.
  CHECK(rle_to_bbox(Rle{4, 3, {12}}) == std::array<double, 4>{0, 0, 0, 0});
  CHECK(rle_to_bbox(Rle{4, 3, {0, 12}}) == std::array<double, 4>{0, 0, 3, 4});
}

TEST_CASE("Random masks: encode/decode, strings, area, bbox, merge and IoU against brute force") {
  std::mt19937 g(7);
  for (int it = 0; it < 300; ++it) {
    const index_t h = std::uniform_int_distribution<index_t>(1, 37)(g), w = std::uniform_int_distribution<index_t>(1, 29)(g);
    const auto a = random_mask(g, h, w, it % 3 == 0 ? 0.9 : 0.4), b = random_mask(g, h, w, 0.5);
    const Rle ra = rle_from_mask(a, h, w), rb = rle_from_mask(b, h, w);
    REQUIRE(rle_to_mask(ra) == a);
    std::vector<std::uint8_t> out(a.size(), 7);  // every byte must be written
    rle_to_mask(ra, out.data());
    CHECK(out == a);
    CHECK(ra.counts == rle_encode(a, h, w));
    CHECK(rle_decode(ra.counts, h, w) == a);
    CHECK(rle_from_string(rle_to_string(ra), h, w) == ra);
    std::uint64_t area_a = 0, area_b = 0, inter = 0, uni = 0;
    std::vector<std::uint8_t> u(a.size()), x(a.size());
    for (std::size_t p = 0; p < a.size(); ++p) {
      area_a += a[p] != 0, area_b += b[p] != 0, inter += a[p] && b[p], uni += a[p] || b[p];
      u[p] = a[p] || b[p];
      x[p] = a[p] && b[p];
    }
    CHECK(rle_area(ra) == area_a);
    // A box from a run crossing columns may be taller than the pixels (see above), never smaller.
    const auto bb = rle_to_bbox(ra), brute = brute_bbox(a, h, w);
    CHECK(bb[0] == brute[0]);
    CHECK(bb[2] == brute[2]);
    CHECK(bb[1] <= brute[1]);
    CHECK(bb[1] + bb[3] >= brute[1] + brute[3]);
    CHECK(rle_merge({ra, rb}) == rle_from_mask(u, h, w));
    CHECK(rle_merge({ra, rb}, true) == rle_from_mask(x, h, w));
    CHECK(rle_merge({ra}) == ra);
    const double want = inter == 0 ? 0.0 : double(inter) / double(uni);
    const double want_crowd = inter == 0 ? 0.0 : double(inter) / double(area_a);
    CHECK(rle_iou_exact(ra, rb, false) == want);
    CHECK(rle_iou_exact(ra, rb, true) == want_crowd);
    CHECK(rle_iou(ra, rb, false) == want);
    CHECK(rle_iou(ra, rb, true) == want_crowd);
  }
}

TEST_CASE("Merge: union of three, sizes must agree") {
  const Rle a = rle_from_mask(mask_block(6, 7, 0, 2, 0, 7), 6, 7), b = rle_from_mask(mask_block(6, 7, 4, 6, 0, 3), 6, 7),
            c = rle_from_mask(mask_block(6, 7, 0, 6, 6, 7), 6, 7);
  CHECK(rle_area(rle_merge({a, b, c})) == 14 + 6 + 6 - 2);
  CHECK(rle_area(rle_merge({a, b, c}, true)) == 0);
  CHECK(rle_merge({a, b, c}, true).counts == std::vector<std::uint32_t>{42});
  CHECK_THROWS_WITH_AS(rle_merge({a, Rle{7, 6, {42}}}), has("rle_merge: RLE 1 is 7x6 but RLE 0 is 6x7"), gcnet::Error);
  CHECK_THROWS_WITH_AS(rle_merge({}), has("no RLEs to merge"), gcnet::Error);
}

TEST_CASE("Compressed strings: damage is an Error naming the place") {
  const std::string where = "gt.json: annotations[4] (id 9)";
  // A character outside '0'..'o'.
  CHECK_THROWS_WITH_AS(rle_from_string("92 03", 4, 5, where),
                       has("gt.json: annotations[4] (id 9): compressed RLE string has the character   at position 2"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(rle_from_string("92p03", 4, 5, where), has("character p at position 2"), gcnet::Error);
  // A last character with the "more" bit: truncated.
  CHECK_THROWS_WITH_AS(rle_from_string("9220P", 4, 5, where), has("ends inside the value that starts at character 4"),
                       gcnet::Error);
  // Counts that do not sum to h * w (the right string for 4x5 read as 4x6).
  CHECK_THROWS_WITH_AS(rle_from_string("92203", 4, 6, where), has("RLE counts sum to 20 but its size 4x6 has 24 pixels"),
                       gcnet::Error);
  // A difference that makes a count negative ('O' = -1 after 2 - 2 ... : counts 9, 2, 2, then 2 - 3).
  CHECK_THROWS_WITH_AS(rle_from_string("922M", 4, 5, where), has("decodes to the count -1 (run 3"), gcnet::Error);
  // The empty string has no counts.
  CHECK_THROWS_WITH_AS(rle_from_string("", 4, 5, where), has("RLE counts sum to 0"), gcnet::Error);
  CHECK_THROWS_WITH_AS(rle_from_string("92203", 0, 5, where), has("RLE size 0x5 is not positive"), gcnet::Error);
  // Negative differences encode and decode (sign extension).
  const Rle r{10, 10, {5, 40, 3, 10, 42}};
  CHECK(rle_from_string(rle_to_string(r), 10, 10) == r);
}

TEST_CASE("rle_check and decode: counts must cover h * w exactly") {
  CHECK_NOTHROW(rle_check(Rle{2, 3, {2, 1, 3}}));
  CHECK_THROWS_WITH_AS(rle_check(Rle{2, 3, {2, 1}}, "x.json"), has("x.json: RLE counts sum to 3 but its size 2x3 has 6"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(rle_to_mask(Rle{2, 3, {7}}, "y.json"), has("y.json: RLE counts sum to 7"), gcnet::Error);
  CHECK_THROWS_WITH_AS(rle_from_mask(std::vector<std::uint8_t>(5), 2, 3), has("mask of 5 bytes for 2x3"), gcnet::Error);
  // Column-major encoding of the same mask gives the same RLE.
  const auto m = mask_block(4, 5, 1, 3, 2, 4);
  std::vector<std::uint8_t> cm(20);
  for (index_t y = 0; y < 4; ++y)
    for (index_t x = 0; x < 5; ++x) cm[static_cast<std::size_t>(x * 4 + y)] = m[static_cast<std::size_t>(y * 5 + x)];
  CHECK(rle_encode_column_major(cm.data(), 4, 5) == rle_from_mask(m, 4, 5));
}
