// Segmentation folders: the scene writer (fashion_scenes_writer.hpp) round-trips through
// SegFolderDataset and FolderDataset, its palette PNGs, classes.json and COCO instances.json
// (RLE decoding to the masks); SegFolderDataset's checks (label size, class ids, empty folder,
// missing class list) and reduce_zero_label; palette PNGs and RLE on their own.
#include <doctest/doctest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/fashion_mnist_required.hpp"
#include "gcnet/data/coco_rle.hpp"
#include "gcnet/data/fashion_scenes_writer.hpp"
#include "gcnet/data/loader.hpp"
#include "gcnet/data/seg_folder_dataset.hpp"
#include "support/files.hpp"

using namespace gcnet;
using namespace gcnet::data;
namespace fs = std::filesystem;
using gcnet::test::has;

static_assert(Dataset<SegFolderDataset>);

namespace {
Image label_map(index_t h, index_t w, std::vector<std::uint8_t> values) {
  values.resize(static_cast<std::size_t>(h * w), 0);
  return Image{h, w, 1, std::move(values)};
}
Image rgb(index_t h, index_t w) { return Image{h, w, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(h * w * 3), 90)}; }
SegClasses three_classes() { return {{"sky", "road", "car"}, {{0, 0, 255}, {128, 128, 128}, {255, 0, 0}}}; }
// A one-image folder: root/images/a.png (h x w) and root/labels/a.png (label).
fs::path one_image_folder(const std::string& name, index_t h, index_t w, const Image& label) {
  const fs::path root = gcnet::test::scratch_dir("seg_folder", name);
  fs::create_directories(root / "images");
  fs::create_directories(root / "labels");
  write_png((root / "images" / "a.png").string(), rgb(h, w));
  write_palette_png((root / "labels" / "a.png").string(), label, three_classes().palette);
  return root;
}
}  // namespace

TEST_CASE("write_fashion_scenes: the folder reads back identically, with palette labels and COCO instances") {
  gcnet::test::require_fashion_mnist();
  const fs::path root = gcnet::test::scratch_dir("seg_folder", "scenes");
  const FashionScenesDataset ds({.split = SceneSplit::val, .count = 7, .seed = 12});
  index_t reported = -1;
  write_fashion_scenes(root.string(), ds, {.threads = 3, .progress = [&](index_t done, index_t) { reported = done; }});
  CHECK(reported == 7);
  CHECK(fs::is_regular_file(root / "images" / "scene_000006.png"));

  const SegFolderDataset folder(root.string());
  REQUIRE(folder.size() == 7);
  CHECK(folder.num_classes() == 11);
  CHECK(folder.class_names() == FashionScenesDataset::classes().names);
  CHECK(folder.palette() == FashionScenesDataset::classes().palette);
  CHECK_FALSE(folder.reduce_zero_label());
  const FolderDataset plain(root.string());  // the older reader sees the same files
  REQUIRE(plain.size() == 7);

  const nlohmann::json coco = nlohmann::json::parse(gcnet::test::slurp(root / "instances.json"));
  REQUIRE(coco["images"].size() == 7);
  REQUIRE(coco["categories"].size() == 10);
  CHECK(coco["categories"][0]["id"] == 1);
  CHECK(coco["categories"][0]["name"] == "T-shirt/top");
  CHECK(coco["categories"][9]["name"] == "Ankle boot");
  std::size_t annotation = 0;
  std::set<std::int64_t> ids;
  Rng rng;
  for (index_t i = 0; i < ds.size(); ++i) {
    CAPTURE(i);
    const Scene s = ds.scene(i);
    const Sample a = folder.get(i, rng), b = plain.get(i, rng);
    bool same = true;
    for (index_t p = 0; p < a.image.numel(); ++p) same &= a.image[p] == s.image.pixels[static_cast<std::size_t>(p)];
    for (index_t p = 0; p < a.label.numel(); ++p)
      same &= a.label[p] == s.label.pixels[static_cast<std::size_t>(p)] && b.label[p] == a.label[p];
    CHECK(same);
    // The label PNG is palette type (color type 3) with the 11-color palette.
    const std::string png = gcnet::test::slurp(folder.label_path(i));
    CHECK(png[25] == 3);
    CHECK(png.find("PLTE") == 37);
    CHECK(png.substr(33, 4) == std::string("\0\0\0\x21", 4));  // 33 bytes: 11 colors
    const auto& image = coco["images"][static_cast<std::size_t>(i)];
    CHECK(image["id"] == i + 1);
    CHECK(image["file_name"] == scene_file_stem(i) + ".png");
    CHECK(image["height"] == 128);
    for (const SceneInstance& inst : s.instances) {
      const auto& ann = coco["annotations"][annotation++];
      CHECK(ann["image_id"] == i + 1);
      CHECK(ann["category_id"] == inst.category_id);
      CHECK(ann["bbox"] == nlohmann::json{inst.box.x, inst.box.y, inst.box.w, inst.box.h});
      CHECK(ann["area"] == inst.area);
      CHECK(ann["iscrowd"] == 0);
      CHECK(ann["segmentation"]["size"] == nlohmann::json{128, 128});
      const auto counts = ann["segmentation"]["counts"].get<std::vector<std::uint32_t>>();
      CHECK(rle_decode(counts, 128, 128) == inst.mask);
      ids.insert(ann["id"].get<std::int64_t>());
    }
  }
  CHECK(annotation == coco["annotations"].size());
  CHECK(ids.size() == annotation);  // annotation ids are unique

  // Errors in a worker reach the caller (with progress reporting waiting on the workers).
  const fs::path blocked = gcnet::test::scratch_dir("seg_folder", "blocked");
  fs::create_directories(blocked / "images" / "scene_000003.png");  // a folder where a file goes
  CHECK_THROWS_WITH_AS(write_fashion_scenes(blocked.string(), ds, {.threads = 2, .progress = [](index_t, index_t) {}}),
                       has((blocked / "images" / "scene_000003.png").string() + ": cannot write"), gcnet::Error);
  gcnet::test::spit(blocked / "file", "x");
  CHECK_THROWS_WITH_AS(write_fashion_scenes((blocked / "file" / "sub").string(), ds),
                       has((blocked / "file" / "sub" / "images").string() + ": cannot create the folder"), gcnet::Error);
  fs::remove_all(root);
  fs::remove_all(blocked);
}

TEST_CASE("COCO RLE: column-major, starting with zeros") {
  // 2 x 3 mask, row-major [[0 1 1], [0 0 1]]: columns (0,0) (1,0) (1,1) -> 0 0 1 0 1 1.
  const std::vector<std::uint8_t> m{0, 1, 1, 0, 0, 1};
  CHECK(rle_encode(m, 2, 3) == std::vector<std::uint32_t>{2, 1, 1, 2});
  CHECK(rle_decode({2, 1, 1, 2}, 2, 3) == m);
  CHECK(rle_encode({1, 1, 1, 1}, 2, 2) == std::vector<std::uint32_t>{0, 4});
  CHECK(rle_encode({0, 0, 0, 0}, 2, 2) == std::vector<std::uint32_t>{4});
  CHECK_THROWS_WITH_AS(rle_decode({2, 1}, 2, 3, "x.json"), doctest::Contains("x.json: RLE counts cover 3 of the 6"),
                       gcnet::Error);
  CHECK_THROWS_WITH_AS(rle_decode({7}, 2, 3), doctest::Contains("more than the 6 pixels"), gcnet::Error);
}

TEST_CASE("Palette PNG: indices read back as indices, the palette as colors, 255 gets an entry") {
  const fs::path dir = gcnet::test::scratch_dir("seg_folder", "palette");
  const Image l = label_map(3, 4, {0, 1, 2, 255, 2, 2, 1, 0, 0, 0, 1, 1});
  write_palette_png((dir / "l.png").string(), l, three_classes().palette);
  CHECK(read_label_png((dir / "l.png").string()).pixels == l.pixels);
  const Image colors = read_image((dir / "l.png").string());  // stb expands the palette
  REQUIRE(colors.channels == 3);
  CHECK(colors.at(0, 0, 2) == 255);  // class 0: blue
  CHECK(colors.at(0, 2, 0) == 255);  // class 2: red
  CHECK(colors.at(0, 3, 1) == 255);  // 255: white
  CHECK_THROWS_WITH_AS(write_palette_png((dir / "rgb.png").string(), rgb(2, 2), three_classes().palette),
                       has((dir / "rgb.png").string() + ": cannot write the label PNG"), gcnet::Error);
}

TEST_CASE("SegFolderDataset: label size, class range, empty folder and class list errors name the file") {
  const SegFolderOptions opt{.classes = three_classes()};
  SUBCASE("a label map of another size than its image") {
    const fs::path root = one_image_folder("size", 4, 5, label_map(4, 6, {}));
    const SegFolderDataset ds(root.string(), opt);
    Rng rng;
    CHECK_THROWS_WITH_AS(ds.get(0, rng), has((root / "labels" / "a.png").string() + ": label map is 4x6 but image "),
                         gcnet::Error);
  }
  SUBCASE("a class id out of range; 255 is allowed") {
    const fs::path root = one_image_folder("range", 2, 3, label_map(2, 3, {0, 1, 2, 255, 3, 0}));
    const SegFolderDataset ds(root.string(), opt);
    Rng rng;
    CHECK_THROWS_WITH_AS(ds.get(0, rng),
                         has((root / "labels" / "a.png").string() +
                             ": label value 3 at (x 1, y 1) is out of range: the data set has 3 classes, so labels are "
                             "0..2 or 255 (ignore)"),
                         gcnet::Error);
    write_palette_png((root / "labels" / "a.png").string(), label_map(2, 3, {0, 1, 2, 255, 2, 0}), three_classes().palette);
    const Sample s = ds.get(0, rng);
    CHECK(s.label[3] == 255);
    CHECK(s.label[4] == 2);
  }
  SUBCASE("an empty data folder, a missing one") {
    const fs::path root = gcnet::test::scratch_dir("seg_folder", "empty");
    fs::create_directories(root / "images");
    fs::create_directories(root / "labels");
    CHECK_THROWS_WITH_AS(SegFolderDataset(root.string(), opt), has((root / "images").string()), gcnet::Error);
    CHECK_THROWS_WITH_AS(SegFolderDataset(root.string(), opt), has("no images in"), gcnet::Error);
    CHECK_THROWS_WITH_AS(SegFolderDataset((root / "nope").string(), opt), has((root / "nope").string() + ": FolderDataset: missing directory"),
                         gcnet::Error);
  }
  SUBCASE("no class list; a broken one") {
    const fs::path root = one_image_folder("classes", 2, 2, label_map(2, 2, {}));
    CHECK_THROWS_WITH_AS(SegFolderDataset(root.string()), has((root / "classes.json").string() + ": SegFolderDataset: no class list"),
                         gcnet::Error);
    gcnet::test::spit(root / "classes.json", "{\"classes\": [\"a\", \"b\"], \"palette\": [[1, 2, 3]]}");
    CHECK_THROWS_WITH_AS(SegFolderDataset(root.string()), has((root / "classes.json").string() + ": 2 class names but 1 palette colors"),
                         gcnet::Error);
    gcnet::test::spit(root / "classes.json", "{\"classes\": [\"a\", \"b\"], \"palette\": [[1, 2, 300], [0, 0, 0]]}");
    CHECK_THROWS_WITH_AS(SegFolderDataset(root.string()), has("palette entry [1,2,300] is not [r, g, b]"), gcnet::Error);
    gcnet::test::spit(root / "classes.json", "{\"classes\": [\"a\", \"b\"");
    CHECK_THROWS_WITH_AS(SegFolderDataset(root.string()), has((root / "classes.json").string() + ": not valid JSON"), gcnet::Error);
    // Without a palette, VOC's colormap; reduce_zero_label from the file.
    gcnet::test::spit(root / "classes.json", "{\"classes\": [\"a\", \"b\", \"c\"], \"reduce_zero_label\": true}");
    const SegFolderDataset ds(root.string());
    CHECK(ds.palette()[1] == PaletteColor{128, 0, 0});
    CHECK(ds.palette()[2] == PaletteColor{0, 128, 0});
    CHECK(ds.reduce_zero_label());
  }
}

TEST_CASE("SegFolderDataset: reduce_zero_label maps 0 to 255 and v to v - 1, then checks the range") {
  const fs::path root = one_image_folder("reduce", 2, 3, label_map(2, 3, {0, 1, 3, 255, 2, 1}));
  const SegFolderDataset ds(root.string(), {.classes = three_classes(), .reduce_zero_label = true});
  Rng rng;
  const Sample s = ds.get(0, rng);
  CHECK(std::vector<std::int64_t>(s.label.data(), s.label.data() + 6) == std::vector<std::int64_t>{255, 0, 2, 255, 1, 0});
  write_palette_png((root / "labels" / "a.png").string(), label_map(2, 3, {0, 4}), three_classes().palette);
  CHECK_THROWS_WITH_AS(ds.get(0, rng), has("a.png: label value 4 (3 after reduce_zero_label) at (x 1, y 0) is out of range"),
                       gcnet::Error);
  // Transforms run after the reduction: the loader pads with 255 as everywhere.
  write_palette_png((root / "labels" / "a.png").string(), label_map(2, 3, {1, 1, 1, 1, 1, 1}), three_classes().palette);
  const SegFolderDataset padded(root.string(), {.transform = {PadToMultiple{4}}, .classes = three_classes(), .reduce_zero_label = true});
  const Sample p = padded.get(0, rng);
  REQUIRE(p.label.shape() == Shape{4, 4});
  CHECK(p.label.at({0, 0}) == 0);
  CHECK(p.label.at({3, 3}) == 255);
  fs::remove_all(root.parent_path());
}
