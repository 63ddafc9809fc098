#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "gcnet/io/safetensors_reader.hpp"
#include "gcnet/ops/delta_xywh_coder.hpp"
#include "support/small_tensors.hpp"

using namespace gcnet;
using namespace gcnet::ops;
using gcnet::test::rows;

namespace {

// max |a - b| / max(1, max |b|): the error relative to the values' scale.
double scaled_error(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.shape() == b.shape());
  double err = 0, scale = 1;
  for (index_t i = 0; i < a.numel(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return err / scale;
}

const double kMaxRatio = std::abs(std::log(16.0 / 1000));
}  // namespace

TEST_CASE("delta2bbox: the reference's test vector (mmdet's docstring), max_shape (32, 32)") {
  const auto rois = rows(4, {0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 5, 5, 5, 5});
  const auto deltas = rows(4, {0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 2, -1, 0.7, -1.9, -0.5, 0.3});
  const DeltaXYWHBBoxCoder<float> coder;
  const auto out = coder.decode(rois, deltas, ImageSize{32, 32});
  const double want[16] = {0, 0, 1, 1, 0.140859, 0.140859, 2.859141, 2.859141,
                           0, 0.316060, 4.194528, 0.683940, 5, 5, 5, 5};
  REQUIRE(out.shape() == Shape{4, 4});
  for (int i = 0; i < 16; ++i) {
    CAPTURE(i);
    CHECK(std::abs(out[i] - want[i]) <= 1e-6);
  }
  // Without an image: no clipping (x1 of row 2 is 0.5 - e^2 / 2).
  const auto free = coder.decode(rois, deltas);
  CHECK(free[8] == doctest::Approx(0.5 - std::exp(2.0) / 2).epsilon(1e-6));
}

TEST_CASE("encode / decode equal mmdet's bbox2delta / delta2bbox in float32 (means, stds, 3 boxes per roi, clamp)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/detops_boxes.safetensors");
  DeltaXYWHOptions o;
  o.means = {0.1, -0.2, 0.05, 0.0};
  o.stds = {0.1, 0.1, 0.2, 0.2};
  const DeltaXYWHBBoxCoder<float> coder(o);
  const auto rois = f.tensor<float>("mm_coder.rois"), gt = f.tensor<float>("mm_coder.gt");
  // log and exp may differ from PyTorch's vectorized ones in the last bit; everything else is exact.
  const double enc = scaled_error(coder.encode(rois, gt), f.tensor<float>("mm_coder.encoded"));
  CHECK(enc <= 1e-6);
  const ImageSize img{f.meta_int("mm_coder.height"), f.meta_int("mm_coder.width")};
  const auto dec = coder.decode(rois, f.tensor<float>("mm_coder.deltas"), img);
  CHECK(scaled_error(dec, f.tensor<float>("mm_coder.decoded")) <= 1e-6);
  REQUIRE(dec.shape() == Shape{50, 12});
  // Row 0, box 0: dw = -9 * 0.2 + 0.05 is not clamped, dh = 9 * 0.2 is; all inside the image.
  for (index_t i = 0; i < dec.numel(); ++i) {
    CHECK(dec[i] >= 0.0f);
    CHECK(dec[i] <= ((i % 2 == 0) ? 320.0f : 240.0f));
  }
}

TEST_CASE("decode clamps dw, dh to +-log(1000/16) on both sides, torchvision's option only from above") {
  const auto rois = rows(4, {10, 10, 20, 30});
  const auto deltas = rows(4, {0, 0, -6, 6});
  const auto mm = DeltaXYWHBBoxCoder<float>().decode(rois, deltas);
  const double w = 10 * std::exp(-kMaxRatio), h = 20 * std::exp(kMaxRatio);
  CHECK(mm[0] == doctest::Approx(15 - w / 2).epsilon(1e-6));
  CHECK(mm[2] == doctest::Approx(15 + w / 2).epsilon(1e-6));
  CHECK(mm[1] == doctest::Approx(20 - h / 2).epsilon(1e-6));
  CHECK(mm[3] == doctest::Approx(20 + h / 2).epsilon(1e-6));
  DeltaXYWHOptions tv;
  tv.wh_clamp = WhClamp::upper_only;
  const auto t = DeltaXYWHBBoxCoder<float>(tv).decode(rois, deltas);
  CHECK(t[2] - t[0] == doctest::Approx(10 * std::exp(-6.0)).epsilon(1e-4));  // not clamped from below
  CHECK(t[3] - t[1] == doctest::Approx(h).epsilon(1e-6));
}

TEST_CASE("decode with torchvision's upper-only clamp matches torchvision's BoxCoder (weights 1)") {
  io::SafetensorsReader f(GCNET_FIXTURE_DIR "/detops_boxes.safetensors");
  DeltaXYWHOptions tv;
  tv.wh_clamp = WhClamp::upper_only;
  const auto got = DeltaXYWHBBoxCoder<float>(tv).decode(f.tensor<float>("tv_decode.rois"),
                                                        f.tensor<float>("tv_decode.deltas"));
  // torchvision computes the centre as x1 + w / 2, mmdet as (x1 + x2) / 2: rounding-level differences.
  CHECK(scaled_error(got, f.tensor<float>("tv_decode.boxes")) <= 2e-6);
  // Row 0 has dw = -7: torchvision keeps it, so does the option.
  const auto want = f.tensor<float>("tv_decode.boxes");
  CHECK(got[2] - got[0] == doctest::Approx(want[2] - want[0]).epsilon(1e-3));
}

TEST_CASE("add_ctr_clamp (YOLOF): centre shift clamped to +-ctr_clamp pixels, dw, dh only from above") {
  DeltaXYWHOptions o;
  o.add_ctr_clamp = true;
  o.ctr_clamp = 32;
  const auto rois = rows(4, {0, 0, 100, 100});
  const auto deltas = rows(4, {1, -1, -6, 0});
  const auto out = DeltaXYWHBBoxCoder<float>(o).decode(rois, deltas);
  const double w = 100 * std::exp(-6.0);
  CHECK((out[0] + out[2]) / 2 == doctest::Approx(50 + 32));
  CHECK((out[1] + out[3]) / 2 == doctest::Approx(50 - 32));
  CHECK(out[2] - out[0] == doctest::Approx(w).epsilon(1e-4));
}

TEST_CASE("encode then decode returns the GT boxes (double, within the clamp)") {
  DeltaXYWHOptions o;
  o.stds = {0.1, 0.1, 0.2, 0.2};
  const DeltaXYWHBBoxCoder<double> coder(o);
  const auto props = rows<double>(4, {0, 0, 10, 10, 5, 5, 50, 20, 100, 40, 130, 200});
  const auto gt = rows<double>(4, {1, 2, 12, 9, 0, 0, 60, 30, 90, 50, 140, 210});
  const auto d = coder.encode(props, gt);
  CHECK(d[0] == doctest::Approx(((6.5 - 5) / 10) / 0.1));
  CHECK(d[2] == doctest::Approx(std::log(11.0 / 10) / 0.2));
  const auto back = coder.decode(props, d);
  for (index_t i = 0; i < gt.numel(); ++i) CHECK(back[i] == doctest::Approx(gt[i]).epsilon(1e-12));
}

TEST_CASE("decode: empty input, the N x 4C layout") {
  const DeltaXYWHBBoxCoder<float> coder;
  const auto none = coder.decode(Tensor<float>(Shape{0, 4}), Tensor<float>(Shape{0, 8}), ImageSize{10, 10});
  CHECK(none.shape() == Shape{0, 8});
  const auto rois = rows(4, {0, 0, 10, 10});
  const auto deltas = rows(8, {0, 0, 0, 0, 0.5, 0, 0, 0});
  const auto out = coder.decode(rois, deltas);
  CHECK(out[0] == 0.0f);
  CHECK(out[4] == 5.0f);  // second box shifted by half a width
  CHECK(out[6] == 15.0f);
}

TEST_CASE("DeltaXYWHBBoxCoder: bad options and inputs throw with clear messages") {
  DeltaXYWHOptions o;
  o.stds = {0.1, 0.0, 0.2, 0.2};
  CHECK_THROWS_WITH_AS(DeltaXYWHBBoxCoder<float>{o}, doctest::Contains("stds[1] = 0, expected a finite value > 0"),
                       Error);
  DeltaXYWHOptions r;
  r.wh_ratio_clip = 2;
  CHECK_THROWS_WITH_AS(DeltaXYWHBBoxCoder<float>{r}, doctest::Contains("wh_ratio_clip = 2"), Error);
  const DeltaXYWHBBoxCoder<float> coder;
  const auto rois = rows(4, {0, 0, 10, 10, 0, 0, 5, 5});
  CHECK_THROWS_WITH_AS(coder.decode(rois, Tensor<float>(Shape{2, 5})),
                       doctest::Contains("deltas must have shape [N, 4C] with C >= 1, got [2, 5]"), Error);
  CHECK_THROWS_WITH_AS(coder.decode(rois, Tensor<float>(Shape{3, 4})),
                       doctest::Contains("2 rois but 3 rows of deltas"), Error);
  auto bad = rows(4, {0, 0, 0, 0, 0, 0, std::numeric_limits<double>::infinity(), 0});
  CHECK_THROWS_WITH_AS(coder.decode(rois, bad), doctest::Contains("delta (1, 2) = inf is not finite"), Error);
  CHECK_THROWS_WITH_AS(coder.decode(rois, rows(4, {0, 0, 0, 0, 0, 0, 0, 0}), ImageSize{-1, 4}),
                       doctest::Contains("image size must be positive"), Error);
  CHECK_THROWS_WITH_AS(coder.decode(rows(4, {0, 0, -1, 1}), rows(4, {0, 0, 0, 0})),
                       doctest::Contains("DeltaXYWHBBoxCoder::decode: rois row 0 = (0, 0, -1, 1) is inverted"), Error);
  CHECK_THROWS_WITH_AS(coder.encode(rows(4, {0, 0, 0, 5}), rows(4, {0, 0, 1, 1})),
                       doctest::Contains("encode: proposal 0 = (0, 0, 0, 5) is empty"), Error);
  CHECK_THROWS_WITH_AS(coder.encode(rows(4, {0, 0, 2, 5}), rows(4, {1, 1, 1, 2})),
                       doctest::Contains("encode: gt box 0 = (1, 1, 1, 2) is empty"), Error);
  CHECK_THROWS_WITH_AS(coder.encode(rois, rows(4, {0, 0, 1, 1})),
                       doctest::Contains("2 proposals but 1 gt boxes"), Error);
}
