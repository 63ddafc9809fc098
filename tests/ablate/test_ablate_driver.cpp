// The classification ablation driver (ablate/classification.hpp) on a tiny configuration of the
// real Fashion-MNIST: a complete table in all three formats, cost columns that agree with the
// blocks' own counts, the same seed giving the same row twice, and variants of one seed sharing
// the initial values of every layer but the block.
#include <doctest/doctest.h>

#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "data/fashion_mnist_required.hpp"
#include "gcnet/ablate/classification.hpp"
#include "support/files.hpp"

using namespace gcnet;
using namespace gcnet::ablate;
using gcnet::test::has;

namespace {

ClassificationSettings tiny() {
  ClassificationSettings s;
  s.model.stem_channels = 4;
  s.model.base_channels = 8;  // GC r16 on c3 needs 16 channels
  s.model.blocks = {1, 1, 2, 1};
  s.train_images = 48;
  s.test_images = 40;
  s.batch = 16;  // 3 iterations
  s.epochs = 1;
  s.warmup_iters = 1;
  s.seeds = {3, 4};
  s.eval_batch = 16;
  s.latency_batch = 2;
  s.latency_warmup = 0;
  s.latency_repeats = 1;
  s.augment = true;  // the seed's shifts and flips must repeat too
  s.print = false;
  return s;
}

std::size_t count_lines(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

TEST_CASE("ablation driver: two variants, two seeds give a complete table in Markdown, CSV and JSON") {
  test::require_fashion_mnist();
  const ClassificationSettings s = tiny();
  const RunInfo run{"gcnet_ablate --tiny", "2026-01-01T00:00:00Z", "test compiler", "Release", "abc123", 1};
  const AblationTable t = run_classification_ablation(s, select_variants("gc16,none"), run);
  REQUIRE(t.rows.size() == 2);
  CHECK(t.rows[0].variant == "none");  // the table's order, whatever the order asked
  CHECK(t.rows[1].variant == "gc16");
  for (const auto& r : t.rows) {
    REQUIRE(r.scores.size() == 2);
    for (double a : r.scores) CHECK((a >= 0 && a <= 100));
    CHECK(r.fwd_ms > 0);
    CHECK(r.fwd_bwd_ms > 0);
    CHECK(r.macs > 0);
  }
  const auto dir = test::scratch_dir("ablate_driver", "table");
  const TablePaths p = write_table(t, dir.string());
  const std::string md = test::slurp(p.markdown), csv = test::slurp(p.csv);
  CHECK(md.find("| baseline |") != std::string::npos);
  CHECK(md.find("| GC r16 (att, add) |") != std::string::npos);
  CHECK(md.find("gcnet_ablate --tiny") != std::string::npos);
  CHECK(md.find("commit abc123") != std::string::npos);
  CHECK(md.find("1 threads") != std::string::npos);
  CHECK(count_lines(csv) == 3);  // header + 2 rows
  CHECK(csv.rfind("variant,label,params", 0) == 0);
  const nlohmann::json j = nlohmann::json::parse(test::slurp(p.json));
  REQUIRE(j["rows"].size() == 2);
  CHECK(j["run"]["command"] == "gcnet_ablate --tiny");
  CHECK(j["run"]["threads"] == 1);
  CHECK(j["seeds"] == nlohmann::json({3, 4}));
  CHECK(j["rows"][0]["delta_mean"].is_null() == false);
  CHECK(j["rows"][1]["scores"].size() == 2);
  CHECK(j["settings"]["train_seconds"]["gc16"].size() == 2);
  // Markdown rows: one per variant.
  std::istringstream lines(md);
  int rows = 0;
  for (std::string l; std::getline(lines, l);) rows += l.rfind("| baseline", 0) == 0 || l.rfind("| GC r16", 0) == 0;
  CHECK(rows == 2);
}

TEST_CASE("ablation driver: the same seed gives the same row twice, to the last digit") {
  test::require_fashion_mnist();
  ClassificationSettings s = tiny();
  s.seeds = {7};
  const FashionSubset d = load_fashion_subset(s.train_images, s.test_images);
  for (const std::string name : {"nl", "gc16_mul"}) {
    CAPTURE(name);
    double acc[2], loss[2];
    for (int k = 0; k < 2; ++k) {
      auto net = build_classifier(s.model, find_variant(name), 7);
      const TrainResult r = train_classifier(*net, d, s, 7);
      acc[k] = r.accuracy;
      loss[k] = r.final_loss;
    }
    CHECK(acc[0] == acc[1]);
    CHECK(loss[0] == loss[1]);
  }
  // And through the whole driver: identical score vectors.
  const RunInfo run{};
  const AblationTable a = run_classification_ablation(s, select_variants("se16"), run);
  const AblationTable b = run_classification_ablation(s, select_variants("se16"), run);
  CHECK(a.rows[0].scores == b.rows[0].scores);
}

TEST_CASE("ablation driver: the variants of one seed share the initial values of every layer but the block") {
  const ClassifierOptions o = tiny().model;
  auto base = build_classifier(o, find_variant("none"), 11);
  std::map<std::string, Tensor<float>> values;
  base->visit_parameters("", [&](const std::string& n, Param<float, Cpu>& p) { values[n] = p.value; });
  for (const Variant& v : all_variants()) {
    CAPTURE(v.name);
    auto net = build_classifier(o, v, 11);
    index_t shared = 0, own = 0;
    net->visit_parameters("", [&](const std::string& n, Param<float, Cpu>& p) {
      auto it = values.find(n);
      if (it == values.end()) {
        ++own;
        return;
      }
      ++shared;
      bool same = true;
      for (index_t i = 0; i < p.value.numel(); ++i) same = same && p.value[i] == it->second[i];
      CHECK_MESSAGE(same, n);
    });
    CHECK(shared == static_cast<index_t>(values.size()));
    CHECK((own > 0) == (v.family != BlockFamily::None));
  }
  // Another seed: other values.
  auto other = build_classifier(o, find_variant("none"), 12);
  bool differs = false;
  other->visit_parameters("", [&](const std::string& n, Param<float, Cpu>& p) {
    if (n == "stem.conv.weight") differs = p.value[0] != values.at(n)[0];
  });
  CHECK(differs);
}

TEST_CASE("ablation cost: parameter and FLOP columns agree with the blocks' own counts") {
  ClassifierOptions o = tiny().model;
  o.base_channels = 16;  // GC r16 needs C >= 16
  o.stem_channels = 8;
  const index_t S = 28;
  auto base = build_classifier(o, find_variant("none"), 0);
  const NetworkCost b = network_cost(*base, S, S);
  CHECK(b.block_params == 0);
  CHECK(b.block_macs == 0);
  CHECK(b.params == parameter_count(*base));
  for (const Variant& v : all_variants()) {
    if (v.family == BlockFamily::None) continue;
    CAPTURE(v.name);
    auto net = build_classifier(o, v, 0);
    const NetworkCost c = network_cost(*net, S, S);
    CHECK(c.params == parameter_count(*net));
    CHECK(c.params - b.params == c.block_params);  // the block is the only difference
    CHECK(c.macs - b.macs == doctest::Approx(c.block_macs));
    // The blocks counted one by one, at the shapes they see (stages at 28, 14, 7, 4 pixels).
    double params = 0, flops = 0, macs = 0;
    if (v.family == BlockFamily::Context) {
      Shape s{1, o.stem_channels, S, S};
      for (std::size_t i = 0; i < net->num_blocks(); ++i) {
        const Shape out = net->block(i).setup(s);
        if (auto* gc = net->context_block(i)) {
          params += double(gc->parameter_count());
          flops += gc->flops(out);
          macs += global_context_macs(gc->options(), out);
        }
        s = out;
      }
      CHECK(macs > 0);
      // macs + other work = the block's own flops() (a multiply-add counted as 2 there).
      CHECK(2 * c.block_macs + c.block_other_flops == doctest::Approx(flops).epsilon(1e-12));
    } else {
      auto& nl = *net->non_local();
      const Shape in{1, o.base_channels * 4, 7, 7};  // before layer3's last block
      params = double(nl.parameter_count());
      CHECK(c.block_macs == doctest::Approx(nl.flops(in) / 2));
      CHECK(non_local_macs(in.c(), nl.inter_channels(), in) == doctest::Approx(nl.flops(in) / 2));
      CHECK(c.block_other_flops == doctest::Approx(non_local_other_flops(in.c(), nl.inter_channels(), in)));
      macs = nl.flops(in) / 2;
    }
    CHECK(c.block_params == static_cast<index_t>(params));
    CHECK(c.block_macs == doctest::Approx(macs));
    CHECK(c.block_other_flops > 0);
  }
}

TEST_CASE("ablation driver: bad settings are Errors that say what to change") {
  ClassificationSettings s = tiny();
  CHECK_THROWS_WITH_AS(select_variants("gc16,foo"), has("unknown variant 'foo'"), Error);
  CHECK_THROWS_WITH_AS(select_variants("gc16,gc16"), has("twice"), Error);
  CHECK_THROWS_WITH_AS(parse_stage_digits("011", "--stages"), has("four 0/1 digits"), Error);
  CHECK_THROWS_WITH_AS(load_fashion_subset(70000, 10), has("--train-images"), Error);
  s.seeds.clear();
  CHECK_THROWS_WITH_AS(run_classification_ablation(s, select_variants("none"), RunInfo{}), has("no seeds"), Error);
}
