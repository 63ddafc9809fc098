#pragma once
// Writes generated scenes to disk in the folder layout SegFolderDataset and FolderDataset
// read, with COCO annotations beside it, so other tools (mmseg, mmdet, pycocotools, an image
// viewer) can use the same data:
//   dir/images/scene_000000.png   RGB
//   dir/labels/scene_000000.png   palette PNG: index = class (0 background, 1..10)
//   dir/classes.json              class names and palette (seg_classes.hpp)
//   dir/instances.json            COCO: images, annotations (bbox [x, y, w, h] of the visible
//                                 mask, area, category_id, iscrowd 0, segmentation as
//                                 uncompressed RLE {counts, size}), categories 1..10
// Every file is written atomically (temporary file, rename), so an interrupted run leaves
// complete files only. Scenes are generated in parallel (each is independent of the others).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/data/coco_rle.hpp"
#include "gcnet/data/fashion_scenes_dataset.hpp"
#include "gcnet/data/image.hpp"
#include "gcnet/data/palette_png.hpp"
#include "gcnet/io/atomic_file.hpp"

namespace gcnet::data {

// The file stem of scene i ("scene_000042").
inline std::string scene_file_stem(index_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "scene_%06lld", static_cast<long long>(i));
  return name;
}

// COCO annotations of one scene (ids from `next_id` on) for image `image_id`.
inline nlohmann::json coco_annotations(const Scene& s, std::int64_t image_id, std::int64_t& next_id) {
  nlohmann::json out = nlohmann::json::array();
  for (const SceneInstance& inst : s.instances)
    out.push_back({{"id", next_id++},
                   {"image_id", image_id},
                   {"category_id", inst.category_id},
                   {"bbox", {inst.box.x, inst.box.y, inst.box.w, inst.box.h}},
                   {"area", inst.area},
                   {"iscrowd", 0},
                   {"segmentation", {{"counts", rle_encode(inst.mask, s.image.height, s.image.width)},
                                     {"size", {s.image.height, s.image.width}}}},
                   {"fashion_mnist_split", split_name(inst.source_split)},
                   {"fashion_mnist_index", inst.source_index}});
  return out;
}

struct WriteScenesOptions {
  int threads = 0;  // 0: std::thread::hardware_concurrency()
  // Called on the calling thread once per finished scene, done = 1, 2, ..., total in order.
  std::function<void(index_t done, index_t total)> progress{};
};

// Writes every scene of `ds` to `dir` (created if missing). Image ids are scene index + 1.
inline void write_fashion_scenes(const std::string& dir, const FashionScenesDataset& ds, WriteScenesOptions wo = {}) {
  namespace fs = std::filesystem;
  const fs::path root(dir), images = root / "images", labels = root / "labels";
  std::error_code ec;
  fs::create_directories(images, ec);
  GCNET_CHECK(!ec, images.string(), ": cannot create the folder (", ec.message(), ")");
  fs::create_directories(labels, ec);
  GCNET_CHECK(!ec, labels.string(), ": cannot create the folder (", ec.message(), ")");

  const index_t n = ds.size();
  const SegClasses classes = FashionScenesDataset::classes();
  std::vector<nlohmann::json> image_entries(static_cast<std::size_t>(n)), annotations(static_cast<std::size_t>(n));
  // Workers take scenes in turn; each scene's annotation ids are renumbered afterwards, in order.
  std::atomic<index_t> next{0};
  std::atomic<bool> failed{false};
  index_t done = 0;  // scenes finished (or abandoned after an error), under done_mu
  std::mutex done_mu;
  std::condition_variable done_cv;
  std::exception_ptr error;
  std::mutex error_mu;
  auto work = [&] {
    for (index_t i; (i = next++) < n;) {
      try {
        const Scene s = ds.scene(i);
        const std::string stem = scene_file_stem(i);
        write_png((images / (stem + ".png")).string(), s.image);
        write_palette_png((labels / (stem + ".png")).string(), s.label, classes.palette);
        std::int64_t ids = 0;
        annotations[static_cast<std::size_t>(i)] = coco_annotations(s, i + 1, ids);
        image_entries[static_cast<std::size_t>(i)] = {
            {"id", i + 1}, {"file_name", stem + ".png"}, {"height", s.image.height}, {"width", s.image.width}};
      } catch (...) {
        std::lock_guard lock(error_mu);
        if (!error) error = std::current_exception();
        next = n;  // stop the others
        failed = true;
      }
      {
        std::lock_guard lock(done_mu);
        ++done;
      }
      done_cv.notify_one();
    }
  };
  int threads = wo.threads > 0 ? wo.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<index_t>(threads, n));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  std::exception_ptr progress_error;  // a throwing callback stops the writers, then is rethrown
  if (wo.progress) {  // the calling thread reports each finished scene, in order, while the pool works
    try {
      index_t reported = 0;
      while (reported < n && !failed.load()) {
        index_t now;
        {
          std::unique_lock lock(done_mu);
          done_cv.wait(lock, [&] { return done > reported || failed.load(); });
          now = done;
        }
        while (reported < now && !failed.load()) wo.progress(++reported, n);
      }
    } catch (...) {
      progress_error = std::current_exception();
      next = n;
    }
  }
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  if (progress_error) std::rethrow_exception(progress_error);

  nlohmann::json coco;
  coco["info"] = {{"description", "gcnet Fashion-MNIST scenes"},
                  {"split", split_name(ds.options().split)},
                  {"seed", ds.options().seed},
                  {"articles_from", std::string("Fashion-MNIST ") + split_name(source_split(ds.options().split))}};
  coco["images"] = image_entries;
  coco["annotations"] = nlohmann::json::array();
  std::int64_t id = 1;
  for (auto& per_scene : annotations)
    for (auto& a : per_scene) {
      a["id"] = id++;
      coco["annotations"].push_back(std::move(a));
    }
  coco["categories"] = nlohmann::json::array();
  for (index_t c = 1; c < classes.size(); ++c)
    coco["categories"].push_back({{"id", c}, {"name", classes.names[static_cast<std::size_t>(c)]}, {"supercategory", "fashion"}});
  const std::string text = coco.dump();
  io::write_file_atomically((root / "instances.json").string(),
                            [&](io::FileSink& out) { out.write(text.data(), text.size()); });
  write_seg_classes((root / "classes.json").string(), classes);
}

}  // namespace gcnet::data
