// gcnet_coco_eval_timing: how long eval::coco_evaluate takes on a COCO-sized synthetic set
// (issue 17's speed item: 5000 images x 100 detections, bbox and segm). Not a test.
//   gcnet_coco_eval_timing [--images 5000] [--dets 100] [--repeats 3]
// The data are deterministic (fixed seed): 640x480 images, 80 categories, 1-15 GTs per image
// (about 8, COCO val has 7.3) with 1% crowd, and per image 100 detections: 3 jittered copies of
// each GT, the rest random boxes in the image's or random categories, uniform scores. Masks
// are the ellipses inscribed in the boxes, as RLEs. Times are the median of the repeats, with
// all threads and with one (and that run's CPU time); building the data is not timed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <string>
#include <vector>

#include "gcnet/core/parallel.hpp"
#include "gcnet/core/rng.hpp"
#include "gcnet/eval/coco_eval.hpp"

using namespace gcnet;

namespace {

constexpr index_t kH = 480, kW = 640;

// The ellipse inscribed in box [x, y, w, h], one run of pixels per column.
data::Rle ellipse_rle(const std::array<double, 4>& b) {
  data::Rle r{kH, kW, {}};
  const double cx = b[0] + b[2] / 2, cy = b[1] + b[3] / 2, rx = b[2] / 2, ry = b[3] / 2;
  std::uint64_t last = 0;
  const index_t x0 = std::max<index_t>(0, static_cast<index_t>(std::floor(b[0])));
  const index_t x1 = std::min<index_t>(kW - 1, static_cast<index_t>(std::ceil(b[0] + b[2])));
  for (index_t x = x0; x <= x1; ++x) {
    const double dx = (static_cast<double>(x) + 0.5 - cx) / rx;
    if (std::abs(dx) >= 1) continue;
    const double half = ry * std::sqrt(1 - dx * dx);
    const auto ya = static_cast<std::uint64_t>(std::clamp<double>(std::round(cy - half), 0, kH));
    const auto yb = static_cast<std::uint64_t>(std::clamp<double>(std::round(cy + half), 0, kH));
    if (ya >= yb) continue;
    const std::uint64_t start = static_cast<std::uint64_t>(x) * kH + ya, end = static_cast<std::uint64_t>(x) * kH + yb;
    r.counts.push_back(static_cast<std::uint32_t>(start - last));
    r.counts.push_back(static_cast<std::uint32_t>(end - start));
    last = end;
  }
  r.counts.push_back(static_cast<std::uint32_t>(static_cast<std::uint64_t>(kH * kW) - last));
  return r;
}

std::array<double, 4> random_box(Rng& rng) {
  const double w = std::exp(std::log(6.0) + rng.uniform() * (std::log(400.0) - std::log(6.0)));
  const double h = std::clamp(w * std::exp((rng.uniform() - 0.5) * 1.5), 4.0, 470.0);
  const double bw = std::min(w, 630.0);
  return {std::round(rng.uniform() * (kW - bw) * 10) / 10, std::round(rng.uniform() * (kH - h) * 10) / 10,
          std::round(bw * 10) / 10, std::round(h * 10) / 10};
}

eval::CocoEvalInput synthetic(index_t images, index_t dets_per_image, bool masks) {
  Rng rng(17);
  eval::CocoEvalInput in;
  for (index_t k = 1; k <= 80; ++k) in.category_ids.push_back(k);
  std::int64_t next_id = 1;
  for (index_t i = 0; i < images; ++i) {
    const std::int64_t img = 1000 + 7 * i;
    in.image_ids.push_back(img);
    const index_t ngt = 1 + static_cast<index_t>(rng.below(15));
    std::vector<std::int64_t> cats;
    index_t ndet = 0;
    for (index_t g = 0; g < ngt; ++g) {
      eval::EvalGt gt;
      gt.id = next_id++;
      gt.image_id = img;
      gt.category_id = 1 + static_cast<std::int64_t>(rng.below(80));
      gt.bbox = random_box(rng);
      gt.iscrowd = rng.uniform() < 0.01;
      if (masks) gt.segmentation = ellipse_rle(gt.bbox);
      gt.area = masks ? static_cast<double>(data::rle_area(gt.segmentation)) : gt.bbox[2] * gt.bbox[3] * 0.78;
      cats.push_back(gt.category_id);
      for (int j = 0; j < 3 && ndet < dets_per_image; ++j, ++ndet) {
        eval::EvalDet d;
        d.image_id = img;
        d.category_id = rng.uniform() < 0.9 ? gt.category_id : 1 + static_cast<std::int64_t>(rng.below(80));
        const double s = 0.15 * (j + 1);
        d.bbox = {std::max(0.0, gt.bbox[0] + (rng.uniform() - 0.5) * s * gt.bbox[2]),
                  std::max(0.0, gt.bbox[1] + (rng.uniform() - 0.5) * s * gt.bbox[3]),
                  gt.bbox[2] * (1 + (rng.uniform() - 0.5) * s), gt.bbox[3] * (1 + (rng.uniform() - 0.5) * s)};
        d.score = rng.uniform();
        in.dets.push_back(std::move(d));
      }
      in.gts.push_back(std::move(gt));
    }
    for (; ndet < dets_per_image; ++ndet) {
      eval::EvalDet d;
      d.image_id = img;
      d.category_id = rng.uniform() < 0.5 ? cats[rng.below(cats.size())] : 1 + static_cast<std::int64_t>(rng.below(80));
      d.bbox = random_box(rng);
      d.score = rng.uniform() * 0.6;
      in.dets.push_back(std::move(d));
    }
  }
  // loadRes' areas: box area for bbox results, mask area for segm results.
  for (auto& d : in.dets) {
    if (masks) {
      d.segmentation = ellipse_rle(d.bbox);
      d.area = static_cast<double>(data::rle_area(d.segmentation));
    } else {
      d.area = d.bbox[2] * d.bbox[3];
    }
  }
  return in;
}

struct Times {
  double wall = 0, cpu = 0;  // seconds: elapsed, and CPU time of the process (all threads)
};

// The median of `repeats` runs (by wall time). CPU time is reported too: on a shared machine the
// wall time of a one-thread run includes the time other processes held the core.
Times median_times(const eval::CocoEvalInput& in, eval::IouType type, int repeats, eval::CocoEvalResult* out) {
  std::vector<Times> t;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    *out = eval::coco_evaluate(in, type);
    const std::clock_t c1 = std::clock();
    t.push_back({std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                 static_cast<double>(c1 - c0) / CLOCKS_PER_SEC});
  }
  std::sort(t.begin(), t.end(), [](const Times& a, const Times& b) { return a.wall < b.wall; });
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  index_t images = 5000, dets = 100;
  int repeats = 3;
  for (int a = 1; a + 1 < argc; a += 2) {
    const std::string k = argv[a];
    const long long v = std::atoll(argv[a + 1]);
    if (k == "--images") images = v;
    else if (k == "--dets") dets = v;
    else if (k == "--repeats") repeats = static_cast<int>(v);
    else {
      std::fprintf(stderr, "usage: gcnet_coco_eval_timing [--images 5000] [--dets 100] [--repeats 3]\n");
      return 2;
    }
  }
  if (images < 1 || dets < 1 || repeats < 1) {
    std::fprintf(stderr, "gcnet_coco_eval_timing: --images, --dets and --repeats must be positive\n");
    return 2;
  }
  const int threads = num_threads();
  for (const eval::IouType type : {eval::IouType::bbox, eval::IouType::segm}) {
    const eval::CocoEvalInput in = synthetic(images, dets, type == eval::IouType::segm);
    eval::CocoEvalResult r;
    const Times all = median_times(in, type, repeats, &r);
    set_num_threads(1);
    const Times one = median_times(in, type, repeats, &r);
    set_num_threads(threads);
    std::printf("%s: %lld images, %zu GTs, %zu detections: coco_evaluate %.3f s with %d threads, %.3f s with 1 "
                "(CPU time %.3f s); AP %.4f AP50 %.4f AR100 %.4f\n",
                eval::iou_type_name(type), static_cast<long long>(images), in.gts.size(), in.dets.size(), all.wall,
                threads, one.wall, one.cpu, r.stats[0], r.stats[1], r.stats[8]);
    std::fflush(stdout);
  }
  return 0;
}
