// gcnet_coco_eval: COCO detection evaluation with pycocotools' semantics (COCOeval, bbox or segm).
//   gcnet_coco_eval GT.json RESULTS.json --type bbox|segm [--per-category] [--json OUT]
// Prints the 12 summary lines exactly as pycocotools' COCOeval.summarize() does, on stdout;
// what was read and how long it took go to stderr.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "gcnet/core/parallel.hpp"
#include "gcnet/io/atomic_file.hpp"
#include "gcnet/eval/coco_eval.hpp"
#include "gcnet/eval/coco_eval_load.hpp"

using namespace gcnet;

namespace {

const char* const kStatNames[12] = {"AP",    "AP50",  "AP75",   "APs",  "APm",  "APl",
                                    "AR1",   "AR10",  "AR100",  "ARs",  "ARm",  "ARl"};

nlohmann::json number_or_null(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

void print_per_category(const eval::CocoEvalResult& r, const data::CocoInstances& gt) {
  std::printf("\nPer-category AP (area all, maxDets %lld; nan: no GT of the category):\n",
              static_cast<long long>(r.params.max_dets.back()));
  std::printf("%8s  %-24s %7s %7s %7s %7s %7s %7s\n", "cat_id", "name", "AP", "AP50", "AP75", "APs", "APm", "APl");
  for (const auto& c : r.per_category) {
    std::string name;
    if (gt.has_category(c.category_id)) name = gt.categories[gt.category_index.at(c.category_id)].name;
    std::printf("%8lld  %-24s %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f\n", static_cast<long long>(c.category_id),
                name.substr(0, 24).c_str(), c.ap, c.ap50, c.ap75, c.ap_small, c.ap_medium, c.ap_large);
  }
}

nlohmann::json result_json(const eval::CocoEvalResult& r, const data::CocoInstances& gt, const std::string& gt_path,
                           const std::string& res_path) {
  nlohmann::json j;
  j["type"] = eval::iou_type_name(r.type);
  j["ground_truth"] = gt_path;
  j["results"] = res_path;
  nlohmann::json stats = nlohmann::json::object();
  for (int i = 0; i < 12; ++i) stats[kStatNames[i]] = r.stats[i];
  j["stats"] = stats;
  j["stats_list"] = r.stats;
  j["summary"] = r.lines;
  nlohmann::json cats = nlohmann::json::array();
  for (const auto& c : r.per_category) {
    nlohmann::json e;
    e["category_id"] = c.category_id;
    if (gt.has_category(c.category_id)) e["name"] = gt.categories[gt.category_index.at(c.category_id)].name;
    e["AP"] = number_or_null(c.ap);
    e["AP50"] = number_or_null(c.ap50);
    e["AP75"] = number_or_null(c.ap75);
    e["APs"] = number_or_null(c.ap_small);
    e["APm"] = number_or_null(c.ap_medium);
    e["APl"] = number_or_null(c.ap_large);
    cats.push_back(std::move(e));
  }
  j["per_category"] = cats;
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "gcnet_coco_eval: score detections against COCO ground truth, exactly as pycocotools' COCOeval does.\n"
      "GT.json is a COCO instances file (images, categories, annotations); RESULTS.json is a list of\n"
      "{\"image_id\", \"category_id\", \"score\", \"bbox\": [x, y, w, h]} and/or \"segmentation\" (RLE) entries,\n"
      "as written by mmdetection or gcnet. Prints the 12 numbers (AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l)\n"
      "in pycocotools' layout; -1 means nothing to measure (e.g. no large objects).\n"
      "Note: as in pycocotools, the first result decides how areas are read: if it has a \"bbox\", every result's\n"
      "area is its box area (also for --type segm); leave boxes out of a segm file to rank masks by mask area."};
  std::string gt_path, res_path, type = "bbox", json_out;
  bool per_category = false, strict_categories = false;
  int threads = 0;
  app.add_option("GT.json", gt_path, "COCO instances JSON with the ground truth")->required();
  app.add_option("RESULTS.json", res_path, "COCO results JSON (a list of detections)")->required();
  app.add_option("--type", type, "what to score: bbox (boxes) or segm (masks)")
      ->check(CLI::IsMember({"bbox", "segm"}))
      ->capture_default_str();
  app.add_flag("--per-category", per_category,
               "also print each category's AP (mmdetection's classwise table: AP, AP50, AP75, APs, APm, APl)");
  app.add_option("--json", json_out, "also write the numbers (and the per-category table) to this JSON file");
  app.add_flag("--strict-categories", strict_categories,
               "make a result whose category_id is not in GT.json an error (default: it is dropped with a "
               "warning, as pycocotools drops it silently, so the numbers stay pycocotools')");
  app.add_option("--threads", threads, "CPU threads (default: all)")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads > 0) set_num_threads(threads);
    const auto t0 = std::chrono::steady_clock::now();
    const eval::IouType iou_type = type == "bbox" ? eval::IouType::bbox : eval::IouType::segm;
    const data::CocoInstances gt = data::read_coco_instances(gt_path);
    const std::vector<data::CocoResult> results = data::read_coco_results(res_path, &gt);
    eval::CocoEvalLoadOptions lo;
    lo.ignore_unknown_categories = !strict_categories;
    lo.results_name = res_path;
    const eval::CocoEvalInput in = eval::coco_eval_input(gt, results, iou_type, lo);
    const auto t1 = std::chrono::steady_clock::now();
    const eval::CocoEvalResult r = eval::coco_evaluate(in, iou_type);
    const auto t2 = std::chrono::steady_clock::now();
    const std::string dropped = in.dets.size() == results.size() ? std::string()
        : " (" + std::to_string(results.size() - in.dets.size()) + " with unknown categories dropped)";
    std::fprintf(stderr, "gcnet_coco_eval: %s, %zu images, %zu categories, %zu GT annotations, %zu results%s "
                 "(read %.2fs, evaluated %.2fs)\n",
                 type.c_str(), gt.images.size(), gt.categories.size(), gt.annotations.size(), results.size(),
                 dropped.c_str(), std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count());
    if (!dropped.empty())
      std::fprintf(stderr, "gcnet_coco_eval: warning: %zu results name a category_id that %s does not have; they are "
                   "not scored (as pycocotools). Results must carry the GT's category ids, not label indices; "
                   "--strict-categories makes this an error naming the first one.\n",
                   results.size() - in.dets.size(), gt_path.c_str());
    std::fputs(r.summary().c_str(), stdout);
    if (per_category) print_per_category(r, gt);
    if (!json_out.empty()) {
      const std::string text = result_json(r, gt, gt_path, res_path).dump(2) + "\n";
      io::write_file_atomically(json_out, [&](io::FileSink& f) { f.write(text.data(), text.size()); });
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gcnet_coco_eval: %s\n", e.what());
    return 2;
  }
}
