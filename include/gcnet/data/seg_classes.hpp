#pragma once
// The classes of a segmentation data set: names in label order and one palette color each
// (for palette label PNGs and for drawing predictions), and the file that lets a data folder
// describe itself, classes.json:
//   {"classes": ["background", ...], "palette": [[0, 0, 0], ...], "ignore_index": 255,
//    "reduce_zero_label": false}
// "palette" may be left out (colors are then generated as PASCAL VOC's colormap does), and so
// may "reduce_zero_label" (false). Label values index the classes; 255 means "ignore", so at
// most 255 classes.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcnet/core/config.hpp"
#include "gcnet/core/error.hpp"
#include "gcnet/data/file_bytes.hpp"
#include "gcnet/io/atomic_file.hpp"

namespace gcnet::data {

using PaletteColor = std::array<std::uint8_t, 3>;

struct SegClasses {
  std::vector<std::string> names;
  std::vector<PaletteColor> palette;  // one per class
  index_t size() const { return static_cast<index_t>(names.size()); }
};

// PASCAL VOC's colormap: the bits of the class index spread over the high bits of R, G, B.
inline PaletteColor voc_color(int index) {
  int r = 0, g = 0, b = 0;
  for (int shift = 7, c = index; shift >= 0 && c > 0; --shift, c >>= 3) {
    r |= (c & 1) << shift;
    g |= ((c >> 1) & 1) << shift;
    b |= ((c >> 2) & 1) << shift;
  }
  return {static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(g), static_cast<std::uint8_t>(b)};
}

// `where` names the source in errors (a file, or "SegClasses").
inline void check_seg_classes(const SegClasses& c, const std::string& where) {
  GCNET_CHECK(!c.names.empty() && c.names.size() <= 255, where, ": a segmentation data set has 1..255 classes "
              "(label 255 means ignore), got ", c.names.size());
  GCNET_CHECK(c.palette.size() == c.names.size(), where, ": ", c.names.size(), " class names but ", c.palette.size(),
              " palette colors");
}

inline nlohmann::json seg_classes_json(const SegClasses& c, bool reduce_zero_label = false) {
  check_seg_classes(c, "SegClasses");
  nlohmann::json palette = nlohmann::json::array();
  for (const PaletteColor& p : c.palette) palette.push_back({p[0], p[1], p[2]});
  return {{"classes", c.names}, {"palette", palette}, {"ignore_index", 255}, {"reduce_zero_label", reduce_zero_label}};
}

// Parses classes.json text; errors name `path`.
inline SegClasses parse_seg_classes(const std::string& text, const std::string& path, bool* reduce_zero_label = nullptr) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    gcnet::detail::fail(path, ": not valid JSON (", e.what(), ")");
  }
  GCNET_CHECK(j.is_object() && j.contains("classes") && j["classes"].is_array(), path,
              ": expected an object with a \"classes\" array of class names");
  SegClasses c;
  for (const auto& n : j["classes"]) {
    GCNET_CHECK(n.is_string(), path, ": \"classes\" must hold strings, got ", n.dump());
    c.names.push_back(n.get<std::string>());
  }
  if (j.contains("palette")) {
    GCNET_CHECK(j["palette"].is_array(), path, ": \"palette\" must be an array of [r, g, b]");
    for (const auto& p : j["palette"]) {
      bool ok = p.is_array() && p.size() == 3;
      for (std::size_t k = 0; ok && k < 3; ++k) ok = p[k].is_number_integer() && p[k].get<int>() >= 0 && p[k].get<int>() <= 255;
      GCNET_CHECK(ok, path, ": palette entry ", p.dump(), " is not [r, g, b] with values 0..255");
      c.palette.push_back({p[0].get<std::uint8_t>(), p[1].get<std::uint8_t>(), p[2].get<std::uint8_t>()});
    }
  } else {
    for (std::size_t k = 0; k < c.names.size(); ++k) c.palette.push_back(voc_color(static_cast<int>(k)));
  }
  if (j.contains("ignore_index"))
    GCNET_CHECK(j["ignore_index"] == 255, path, ": \"ignore_index\" must be 255 (gcnet's ignore label), got ",
                j["ignore_index"].dump());
  if (reduce_zero_label) {
    *reduce_zero_label = false;
    if (j.contains("reduce_zero_label")) {
      GCNET_CHECK(j["reduce_zero_label"].is_boolean(), path, ": \"reduce_zero_label\" must be true or false");
      *reduce_zero_label = j["reduce_zero_label"].get<bool>();
    }
  }
  check_seg_classes(c, path);
  return c;
}

inline SegClasses read_seg_classes(const std::string& path, bool* reduce_zero_label = nullptr) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return parse_seg_classes(std::string(bytes.begin(), bytes.end()), path, reduce_zero_label);
}

inline void write_seg_classes(const std::string& path, const SegClasses& c, bool reduce_zero_label = false) {
  const std::string text = seg_classes_json(c, reduce_zero_label).dump(2) + "\n";
  io::write_file_atomically(path, [&](io::FileSink& out) { out.write(text.data(), text.size()); });
}

}  // namespace gcnet::data
