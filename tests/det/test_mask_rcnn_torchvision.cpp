// End-to-end parity of MaskRCNN's torchvision preset with torchvision 0.14
// (tools/fixtures/det_torchvision_maskrcnn.py -> tests/fixtures/det_torchvision_maskrcnn{,_io}.safetensors):
// torchvision's MaskRCNN class with all its real parts on a narrow ResNet, seeded weights whose
// scores have no near-ties, converted by tools/convert_checkpoint.py --torchvision-maskrcnn and
// loaded strictly. On two images of different sizes: the transformed batch, the RPN's proposals,
// the final boxes, scores (1e-4 relative), labels (identical) and masks (IoU >= 0.99 each), and the
// soft 28 x 28 masks. The reference is torchvision in float64; the fixture script checks that
// torchvision in float32 reaches it within a third of these tolerances.
// With GCNET_DET_TV_FULL_DIR set to the directory written by `det_torchvision_maskrcnn.py --full
// DIR`, the same check runs on the real maskrcnn_resnet50_fpn (skipped with a message otherwise).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "gcnet/det/mask_rcnn.hpp"
#include "gcnet/det/torchvision_transform.hpp"
#include "gcnet/io/safetensors_reader.hpp"

using namespace gcnet;

namespace {

using TvBackbone = ResNetBackbone<float, Cpu, FrozenBatchNorm2d<float, Cpu>>;

// The fixture's sizes (its metadata; the real model when `full`).
MaskRCNNConfig fixture_config(const io::SafetensorsReader& io) {
  MaskRCNNConfig c = torchvision_mask_rcnn_config(io.meta_int("num_classes"), io.meta_int("min_size"),
                                                  io.meta_int("max_size"));
  if (io.meta_int("full") == 0) {
    c.backbone.depth = 0;
    c.backbone.stem_channels = c.backbone.base_channels = io.meta_int("base");
    c.backbone.blocks = {1, 1, 1, 1};
    c.neck_channels = io.meta_int("fpn_channels");
    c.roi.bbox_head.fc_out_channels = io.meta_int("representation");
    c.roi.mask_head->conv_out_channels = io.meta_int("mask_channels");
  }
  return finalize(c);
}

// A box's coordinates are compared relative to its largest one: y1 = cy - h / 2 of a tall box near
// the top edge is a small number with the absolute rounding of cy and h.
double box_scale(const Tensor<double>& boxes, index_t i) {
  double m = 0;
  for (index_t k = 0; k < 4; ++k) m = std::max(m, std::abs(boxes[i * 4 + k]));
  return m + 1;
}

// Reference (box, score) pairs each matched by a partner within `window` places (near-equal
// scores may swap); returns the partner of each reference entry, or -1.
std::vector<index_t> match(const Tensor<double>& ref_boxes, const Tensor<double>& ref_scores, const Tensor<float>& boxes,
                           const Tensor<float>& scores, double tol, index_t window) {
  const index_t n = ref_boxes.size(0);
  std::vector<index_t> partner(static_cast<std::size_t>(n), -1);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = std::max<index_t>(0, i - window); j < std::min(boxes.size(0), i + window + 1); ++j) {
      bool ok = std::abs(double(scores[j]) - ref_scores[i]) <= tol * std::abs(ref_scores[i]);
      for (index_t k = 0; ok && k < 4; ++k)
        ok = std::abs(double(boxes[j * 4 + k]) - ref_boxes[i * 4 + k]) <= tol * box_scale(ref_boxes, i);
      if (ok) {
        partner[static_cast<std::size_t>(i)] = j;
        break;
      }
    }
  return partner;
}

void check_parity(const std::string& ckpt, const std::string& io_path) {
  const io::SafetensorsReader io(io_path);
  const MaskRCNNConfig c = fixture_config(io);
  MaskRCNN<TvBackbone> model(c);
  load_mask_rcnn_checkpoint(ckpt, model);  // strict: every tensor by name and shape

  const auto N = static_cast<std::size_t>(io.meta_int("num_images"));
  std::vector<Tensor<float>> images;
  for (std::size_t i = 0; i < N; ++i) {
    const Tensor<std::uint8_t> u = io.tensor<std::uint8_t>("image." + std::to_string(i));
    Tensor<float> x(u.shape());
    for (index_t k = 0; k < u.numel(); ++k) x[k] = static_cast<float>(u[k]) / 255.0f;
    images.push_back(x);
  }

  // The transform: sizes, and the batch at every 4th row and column.
  const DetInputBatch<float> b = torchvision_transform(images, c.transform);
  const Tensor<std::int64_t> bs = io.tensor<std::int64_t>("batch_shape");
  for (int d = 0; d < 4; ++d) CHECK(b.images.size(d) == bs[d]);
  for (std::size_t i = 0; i < N; ++i) {
    const Tensor<std::int64_t> s = io.tensor<std::int64_t>("image_size." + std::to_string(i));
    CHECK(b.shapes[i].img_h == s[0]);
    CHECK(b.shapes[i].img_w == s[1]);
  }
  const Tensor<double> sub = io.tensor<double>("batch_sub4");
  double batch_err = 0;
  const index_t H = b.images.size(2), W = b.images.size(3), SH = sub.size(2), SW = sub.size(3);
  for (index_t p = 0; p < sub.size(0) * 3; ++p)
    for (index_t y = 0; y < SH; ++y)
      for (index_t x = 0; x < SW; ++x)
        batch_err = std::max(batch_err, std::abs(double(b.images[(p * H + 4 * y) * W + 4 * x]) - sub[(p * SH + y) * SW + x]));
  MESSAGE("transformed batch: max abs error ", batch_err);
  CHECK(batch_err < 1e-4);

  RoIHeadTestOptions opts = c.roi.test;
  opts.binary_masks = true;
  opts.soft_masks = true;
  const std::vector<Detections<float>> dets = model.predict(b.images, b.shapes, opts);
  REQUIRE(dets.size() == N);
  for (std::size_t i = 0; i < N; ++i) {
    const std::string s = std::to_string(i);
    CAPTURE(i);
    // RPN proposals (after NMS, descending score).
    const RPNProposals<float>& p = model.last_proposals()[i];
    const Tensor<double> rp = io.tensor<double>("proposals." + s), rs = io.tensor<double>("proposal_scores." + s);
    REQUIRE(p.size() == rp.size(0));
    const std::vector<index_t> pm = match(rp, rs, p.boxes, p.scores, 1e-4, 8);
    index_t unmatched = 0;
    for (index_t j : pm) unmatched += j < 0;
    MESSAGE("image ", i, ": ", p.size(), " proposals, ", unmatched, " unmatched");
    CHECK(unmatched == 0);

    // Detections: boxes and scores 1e-4 relative, labels identical (torchvision's are 1-based).
    const Detections<float>& d = dets[i];
    const Tensor<double> rb = io.tensor<double>("boxes." + s), rsc = io.tensor<double>("scores." + s);
    const Tensor<std::int64_t> rl = io.tensor<std::int64_t>("labels." + s);
    const Tensor<std::uint8_t> rm = io.tensor<std::uint8_t>("masks." + s);
    const Tensor<double> rprob = io.tensor<double>("mask_probs." + s);
    REQUIRE(d.size() == rb.size(0));
    const std::vector<index_t> dm = match(rb, rsc, d.boxes, d.scores, 1e-4, 2);
    double max_box = 0, max_score = 0, min_iou = 1, max_soft = 0;
    for (index_t k = 0; k < rb.size(0); ++k) {
      const index_t j = dm[static_cast<std::size_t>(k)];
      CAPTURE(k);
      CHECK(j >= 0);
      if (j < 0) continue;
      for (int e = 0; e < 4; ++e)
        max_box = std::max(max_box, std::abs(double(d.boxes[j * 4 + e]) - rb[k * 4 + e]) / box_scale(rb, k));
      max_score = std::max(max_score, std::abs(double(d.scores[j]) - rsc[k]) / rsc[k]);
      CHECK(d.labels[j] + 1 == rl[k]);
      // Masks at the original size: IoU with torchvision's (probability > 0.5).
      REQUIRE(d.masks.defined());
      REQUIRE(d.masks.shape() == rm.shape());
      const index_t HW = rm.size(1) * rm.size(2);
      index_t inter = 0, uni = 0;
      for (index_t q = 0; q < HW; ++q) {
        const bool a = d.masks[j * HW + q] != 0, e = rm[k * HW + q] != 0;
        inter += a && e;
        uni += a || e;
      }
      const double iou = uni ? double(inter) / double(uni) : 1.0;
      min_iou = std::min(min_iou, iou);
      CHECK(iou >= 0.99);
      // The soft M x M masks of the detected class.
      REQUIRE(d.soft_masks.defined());
      const index_t MM = rprob.size(1) * rprob.size(2);
      REQUIRE(d.soft_masks.numel() == rprob.numel());
      for (index_t q = 0; q < MM; ++q)
        max_soft = std::max(max_soft, std::abs(double(d.soft_masks[j * MM + q]) - rprob[k * MM + q]));
    }
    MESSAGE("image ", i, ": ", d.size(), " detections; max box error ", max_box, ", max score error ", max_score,
            ", min mask IoU ", min_iou, ", max soft mask error ", max_soft);
    CHECK(max_box <= 1e-4);
    CHECK(max_score <= 1e-4);
    CHECK(max_soft <= 1e-4);
  }
}

}  // namespace

TEST_CASE("MaskRCNN torchvision preset equals torchvision 0.14's MaskRCNN (narrow ResNet, converted checkpoint)") {
  check_parity(std::string(GCNET_FIXTURE_DIR) + "/det_torchvision_maskrcnn.safetensors",
               std::string(GCNET_FIXTURE_DIR) + "/det_torchvision_maskrcnn_io.safetensors");
}

TEST_CASE("MaskRCNN torchvision preset equals maskrcnn_resnet50_fpn (GCNET_DET_TV_FULL_DIR)") {
  const char* dir = std::getenv("GCNET_DET_TV_FULL_DIR");
  const std::string d = dir ? dir : "";
  if (d.empty() || !std::filesystem::exists(d + "/det_torchvision_maskrcnn_io.safetensors")) {
    MESSAGE("SKIPPED: set GCNET_DET_TV_FULL_DIR to the directory written by "
            "`/usr/bin/python3 tools/fixtures/det_torchvision_maskrcnn.py --full DIR` (the real R50-FPN, ~180 MB)");
    return;
  }
  check_parity(d + "/det_torchvision_maskrcnn.safetensors", d + "/det_torchvision_maskrcnn_io.safetensors");
}

TEST_CASE("MaskRCNN torchvision checkpoint: another preset or class count is refused") {
  const std::string ckpt = std::string(GCNET_FIXTURE_DIR) + "/det_torchvision_maskrcnn.safetensors";
  const io::SafetensorsReader io(std::string(GCNET_FIXTURE_DIR) + "/det_torchvision_maskrcnn_io.safetensors");
  MaskRCNNConfig other = fixture_config(io);
  other.preset = "mask-rcnn_r50_fpn_1x_coco";  // same shapes, another preset's name
  MaskRCNN<TvBackbone> a(other);
  CHECK_THROWS_WITH_AS(load_mask_rcnn_checkpoint(ckpt, a),
                       doctest::Contains("a checkpoint of the Mask R-CNN preset 'torchvision_maskrcnn' cannot be loaded "
                                         "into a model of the preset 'mask-rcnn_r50_fpn_1x_coco'"),
                       Error);
  MaskRCNNConfig fewer = fixture_config(io);
  fewer.num_classes = 3;
  MaskRCNN<TvBackbone> b(finalize(fewer));
  CHECK_THROWS_WITH_AS(load_mask_rcnn_checkpoint(ckpt, b), doctest::Contains("detector has 5 classes, the model 3"),
                       Error);
}
