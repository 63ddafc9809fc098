#pragma once
// COCO's polygon rasteriser (maskApi.c rleFrPoly) and box rasteriser (rleFrBbox), and
// pycocotools' frPyObjects for a COCO "segmentation" entry.
//
// rleFrPoly, reproduced exactly because COCO areas, GT masks and segm AP depend on it:
//  1. vertices are scaled by 5 and truncated to int ((int)(5 * v + 0.5), so negative
//     coordinates truncate toward zero as in C);
//  2. every edge (the last vertex joins the first) is walked one step per unit of its longer
//     axis, rounding the other coordinate with (int)(a + s * t + 0.5); each edge is walked from
//     its lower end along that axis and both of its end points are kept;
//  3. where consecutive points change x, the crossing column xd = (min x or x - 1 + 0.5) / 5 - 0.5
//     is kept if it is an integer in [0, w - 1], with row ceil(clamp((min y + 0.5) / 5 - 0.5,
//     0, h)); each such point toggles the mask from there down the column (column-major
//     position x * h + y);
//  4. the sorted toggle positions (plus h * w) become run lengths, zero-length runs merged.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "gcnet/data/coco_mask_ops.hpp"
#include "gcnet/data/coco_rle.hpp"

namespace gcnet::data {

// `xy`: x0, y0, x1, y1, ... (pixel coordinates); an odd trailing coordinate is ignored as in
// pycocotools (callers that must reject odd polygons check before). Errors: no vertex,
// non-finite coordinates or ones beyond +-1e6 (pycocotools would walk billions of
// points, or overflow its ints).
inline Rle rle_from_polygon(const std::vector<double>& xy, index_t h, index_t w,
                            const std::string& where = "rle_from_polygon") {
  GCNET_CHECK(h > 0 && w > 0, where, ": image size ", h, "x", w, " is not positive");
  const std::size_t k = xy.size() / 2;
  GCNET_CHECK(k > 0, where, ": polygon has no vertex (", xy.size(), " coordinates)");
  constexpr double scale = 5;
  std::vector<int> x(k + 1), y(k + 1);
  for (std::size_t j = 0; j < k; ++j) {
    for (int c = 0; c < 2; ++c) {
      const double v = xy[2 * j + static_cast<std::size_t>(c)];
      GCNET_CHECK(std::isfinite(v) && std::abs(v) <= 1e6, where, ": polygon coordinate ", 2 * j + c, " is ", v,
                  " (expected a finite pixel coordinate within +-1e6)");
    }
    x[j] = static_cast<int>(scale * xy[2 * j] + .5);
    y[j] = static_cast<int>(scale * xy[2 * j + 1] + .5);
  }
  x[k] = x[0];
  y[k] = y[0];

  // 2. Dense boundary points (u, v) on the upsampled grid.
  std::size_t total = 0;
  for (std::size_t j = 0; j < k; ++j)
    total += static_cast<std::size_t>(std::max(std::abs(x[j] - x[j + 1]), std::abs(y[j] - y[j + 1]))) + 1;
  std::vector<int> u, v;
  u.reserve(total);
  v.reserve(total);
  for (std::size_t j = 0; j < k; ++j) {
    int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
    const bool along_x = dx >= dy;
    const bool flip = along_x ? xs > xe : ys > ye;  // walk from the lower end, emit in edge order
    if (flip) {
      std::swap(xs, xe);
      std::swap(ys, ye);
    }
    if (along_x) {
      // A repeated vertex (dx = dy = 0) has slope 0/0 in C; its one point is never used below
      // (its x equals its neighbours'), so any y will do.
      const double s = dx == 0 ? 0.0 : static_cast<double>(ye - ys) / dx;
      for (int d = 0; d <= dx; ++d) {
        const int t = flip ? dx - d : d;
        u.push_back(t + xs);
        v.push_back(static_cast<int>(ys + s * t + .5));
      }
    } else {
      const double s = static_cast<double>(xe - xs) / dy;
      for (int d = 0; d <= dy; ++d) {
        const int t = flip ? dy - d : d;
        v.push_back(t + ys);
        u.push_back(static_cast<int>(xs + s * t + .5));
      }
    }
  }

  // 3. Column crossings, back on the pixel grid, as column-major toggle positions.
  const auto hu = static_cast<std::uint32_t>(h), wu = static_cast<std::uint32_t>(w);
  std::vector<std::uint32_t> toggles;
  for (std::size_t j = 1; j < u.size(); ++j) {
    if (u[j] == u[j - 1]) continue;
    double xd = u[j] < u[j - 1] ? u[j] : u[j] - 1;
    xd = (xd + .5) / scale - .5;
    if (std::floor(xd) != xd || xd < 0 || xd > static_cast<double>(w - 1)) continue;
    double yd = v[j] < v[j - 1] ? v[j] : v[j - 1];
    yd = (yd + .5) / scale - .5;
    yd = std::ceil(yd < 0 ? 0 : yd > static_cast<double>(h) ? static_cast<double>(h) : yd);
    toggles.push_back(static_cast<std::uint32_t>(static_cast<int>(xd) * static_cast<int>(hu) + static_cast<int>(yd)));
  }
  toggles.push_back(hu * wu);
  std::sort(toggles.begin(), toggles.end());

  // 4. Differences are run lengths; a zero difference (two toggles at one place) cancels, so the
  // run after it joins the run before it. The first run may be 0 (the mask starts with a 1).
  Rle r{h, w, {}};
  r.counts.reserve(toggles.size());
  std::uint32_t prev = 0;
  for (std::size_t j = 0; j < toggles.size(); ++j) {
    const std::uint32_t len = toggles[j] - prev;
    prev = toggles[j];
    if (j == 0 || len > 0) {
      r.counts.push_back(len);
    } else if (++j < toggles.size()) {
      r.counts.back() += toggles[j] - prev;
      prev = toggles[j];
    }
  }
  return r;
}

// rleFrBbox: the 4-corner polygon (x, y), (x, y + h), (x + w, y + h), (x + w, y) of an
// [x, y, w, h] box.
inline Rle rle_from_bbox(const std::array<double, 4>& xywh, index_t h, index_t w,
                         const std::string& where = "rle_from_bbox") {
  const double xs = xywh[0], xe = xs + xywh[2], ys = xywh[1], ye = ys + xywh[3];
  return rle_from_polygon({xs, ys, xs, ye, xe, ye, xe, ys}, h, w, where);
}

// The union of a COCO polygon list (pycocotools' annToRLE: frPyObjects, then merge). As
// frPyObjects, a list whose FIRST polygon has exactly 4 numbers is read as a list of
// [x, y, w, h] boxes; a first polygon of fewer than 4 numbers is an Error there (and here).
inline Rle rle_from_polygons(const std::vector<std::vector<double>>& polygons, index_t h, index_t w,
                             const std::string& where = "rle_from_polygons") {
  GCNET_CHECK(!polygons.empty(), where, ": empty polygon list");
  GCNET_CHECK(polygons[0].size() >= 4, where, ": the first polygon has ", polygons[0].size(),
              " numbers (pycocotools reads at least 4)");
  std::vector<Rle> parts;
  parts.reserve(polygons.size());
  const bool boxes = polygons[0].size() == 4;
  for (const std::vector<double>& p : polygons) {
    if (boxes) {
      GCNET_CHECK(p.size() == 4, where, ": the first polygon has 4 numbers, so all are read as [x, y, w, h] boxes, "
                  "but one has ", p.size());
      parts.push_back(rle_from_bbox({p[0], p[1], p[2], p[3]}, h, w, where));
    } else {
      parts.push_back(rle_from_polygon(p, h, w, where));
    }
  }
  return rle_merge(parts);
}

}  // namespace gcnet::data
