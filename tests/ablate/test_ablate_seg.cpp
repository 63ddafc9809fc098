// gcnet_ablate --task seg on a tiny configuration (ablate/seg_task.hpp): every variant family
// (none, a context block, +1 NL) trains and is scored, the table is complete, the block columns
// are the blocks' own counts and the shared layers start from the baseline's values.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "data/fashion_mnist_required.hpp"
#include "gcnet/ablate/seg_task.hpp"

using namespace gcnet;
using namespace gcnet::ablate;

namespace {
SegAblationSettings tiny() {
  SegAblationSettings s;
  s.model.base_channels = 8;
  s.model.stem_channels = 8;
  s.model.head_channels = 8;
  s.model.aux_channels = 8;
  s.scenes = 4;
  s.val_scenes = 2;
  s.iters = 2;
  s.batch = 2;
  s.seeds = {0};
  s.latency_batch = 1;
  s.latency_warmup = 0;
  s.latency_repeats = 1;
  s.print = false;
  return s;
}
}  // namespace

TEST_CASE("segmentation ablation: a tiny run gives a complete table") {
  test::require_fashion_mnist();
  const SegAblationSettings s = tiny();
  const AblationTable t = run_seg_ablation(s, select_variants("none,gc16,nl"), RunInfo{});
  REQUIRE(t.rows.size() == 3);
  check_table(t);
  for (const auto& r : t.rows) {
    REQUIRE(r.scores.size() == 1);
    CHECK((r.scores[0] >= 0 && r.scores[0] <= 100));
    CHECK(r.fwd_bwd_ms > 0);
  }
  CHECK(t.rows[0].block_params == 0);
  CHECK(t.rows[1].block_params == t.rows[1].params - t.rows[0].params);
  CHECK(t.rows[2].block_params == t.rows[2].params - t.rows[0].params);
  // The NL's multiply-adds are in the backbone's total.
  CHECK(t.rows[2].macs - t.rows[0].macs == doctest::Approx(t.rows[2].block_macs));
  CHECK(t.rows[1].macs - t.rows[0].macs == doctest::Approx(t.rows[1].block_macs));
  CHECK(to_markdown(t).find("| +1 NL |") != std::string::npos);
}

TEST_CASE("segmentation ablation: one NL in c4's last block; shared layers start as the baseline's") {
  const SegAblationSettings s = tiny();
  auto base = build_seg_variant(s, find_variant("none"), 5);
  auto nl = build_seg_variant(s, find_variant("nl"), 5);
  int nls = 0;
  for (int k = 0; k < 4; ++k)
    for (std::size_t i = 0; i < nl->backbone().stage(k).size(); ++i)
      for (auto& p : nl->backbone().stage(k)[i].plugins())
        if (plugin_layer<NonLocal2d<float, Cpu>>(*p.plugin)) {
          ++nls;
          CHECK(k == 2);
          CHECK(i + 1 == nl->backbone().stage(k).size());
        }
  CHECK(nls == 1);
  std::map<std::string, Param<float, Cpu>*> b;
  for (auto& [n, p] : named_parameters(*base)) b[n] = p;
  index_t same = 0;
  for (auto& [n, p] : named_parameters(*nl)) {
    if (!b.count(n)) continue;
    bool eq = true;
    for (index_t i = 0; i < p->value.numel(); ++i) eq = eq && p->value[i] == b[n]->value[i];
    same += eq;
  }
  CHECK(same == static_cast<index_t>(b.size()));
}
