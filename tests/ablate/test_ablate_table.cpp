// The ablation table (ablate/table.hpp) and the run's record (ablate/run_info.hpp): statistics,
// the paired difference to the baseline, the three formats, completeness checks, and reading the
// commit from a .git folder without git.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "gcnet/ablate/table.hpp"
#include "gcnet/ablate/variants.hpp"
#include "support/files.hpp"

using namespace gcnet;
using namespace gcnet::ablate;
using gcnet::test::has;
namespace fs = std::filesystem;

namespace {
AblationTable two_rows() {
  AblationTable t;
  t.task = "classification";
  t.metric = "top-1 %";
  t.input_shape = "[1, 1, 28, 28]";
  t.seeds = {0, 1, 2};
  t.run = {"gcnet_ablate --x 'a b'", "2026-01-01T00:00:00Z", "gcc", "Release", "deadbeef", 2};
  AblationRow b{"none", "baseline", 100, 0, 1e6, 0, 0, 1.5, 4.5, {90.0, 91.0, 92.0}};
  AblationRow g{"gc16", "GC r16 (att, add)", 120, 20, 1.1e6, 1e5, 5e4, 1.7, 5.0, {90.5, 91.0, 93.0}};
  t.rows = {b, g};
  return t;
}
}  // namespace

TEST_CASE("ablation table: mean, sample std and the per-seed difference to the baseline") {
  const AblationTable t = two_rows();
  const ScoreSummary s = summarize(t.rows[0].scores);
  CHECK(s.mean == doctest::Approx(91.0));
  CHECK(s.std == doctest::Approx(1.0));  // n - 1
  const auto d = delta_to_baseline(t, t.rows[1]);
  REQUIRE(d.has_value());
  CHECK(d->mean == doctest::Approx(0.5));                // (0.5, 0, 1)
  CHECK(d->std == doctest::Approx(0.5));
  CHECK(summarize({3.0}).std == 0.0);
  AblationTable no_base = t;
  no_base.rows.erase(no_base.rows.begin());
  CHECK_FALSE(delta_to_baseline(no_base, no_base.rows[0]).has_value());
}

TEST_CASE("ablation table: Markdown, CSV and JSON hold every row and the run's record") {
  const AblationTable t = two_rows();
  const std::string md = to_markdown(t);
  CHECK(md.find("| GC r16 (att, add) | 120 | 20 | 1.100 | 0.100 | 0.050 | 1.7 | 5.0 | 91.50 ± 1.32 | +0.50 ± 0.50 |") !=
        std::string::npos);
  CHECK(md.find("| baseline | 100 | 0 | 1.000 |") != std::string::npos);
  CHECK(md.find("commit deadbeef") != std::string::npos);
  CHECK(md.find("2 threads") != std::string::npos);
  const std::string csv = to_csv(t);
  // The label holds a comma: quoted.
  CHECK(csv.find("gc16,\"GC r16 (att, add)\",120,20,1100000,100000,50000,") != std::string::npos);
  CHECK(csv.find("none,baseline,100,0,1000000,0,0,") != std::string::npos);
  CHECK(csv.find(",90.50;91.00;93.00\n") != std::string::npos);
  const nlohmann::json j = to_json(t);
  CHECK(j["rows"][1]["delta_mean"].get<double>() == doctest::Approx(0.5));
  CHECK(j["rows"][0]["delta_mean"].get<double>() == doctest::Approx(0.0));
  CHECK(j["run"]["commit"] == "deadbeef");
  const auto dir = test::scratch_dir("ablate_table", "write");
  const TablePaths p = write_table(t, (dir / "sub").string(), "x");
  CHECK(test::slurp(p.markdown) == md);
  CHECK(test::slurp(p.csv) == csv);
  CHECK(nlohmann::json::parse(test::slurp(p.json)) == j);
  for (const auto& e : fs::directory_iterator(dir / "sub")) CHECK(e.path().string().find(".tmp") == std::string::npos);
}

TEST_CASE("ablation table: an incomplete row is refused") {
  AblationTable t = two_rows();
  t.rows[1].scores.pop_back();
  CHECK_THROWS_WITH_AS(to_markdown(t), has("row gc16 has 2 scores for 3 seeds"), Error);
  t = two_rows();
  t.rows[0].fwd_ms = NAN;
  CHECK_THROWS_WITH_AS(to_csv(t), has("bad cost"), Error);
  t.rows.clear();
  CHECK_THROWS_WITH_AS(to_json(t), has("no rows"), Error);
}

TEST_CASE("run record: the commit from .git (loose ref, packed ref, detached, worktree file), and the command") {
  const auto root = test::scratch_dir("ablate_table", "git");
  CHECK(read_git_commit(root / "nowhere") == "unknown");
  const std::string a(40, 'a'), b(40, 'b'), c(40, 'c');
  fs::create_directories(root / "repo/.git/refs/heads");
  fs::create_directories(root / "repo/src/deep");
  test::spit(root / "repo/.git/HEAD", "ref: refs/heads/main\n");
  test::spit(root / "repo/.git/refs/heads/main", a + "\n");
  CHECK(read_git_commit(root / "repo/src/deep") == a);
  fs::remove(root / "repo/.git/refs/heads/main");
  test::spit(root / "repo/.git/packed-refs", "# pack-refs with: peeled\n" + b + " refs/heads/main\n");
  CHECK(read_git_commit(root / "repo") == b);
  test::spit(root / "repo/.git/HEAD", c + "\n");
  CHECK(read_git_commit(root / "repo") == c);
  fs::create_directories(root / "wt");
  test::spit(root / "wt/.git", "gitdir: ../repo/.git\n");
  CHECK(read_git_commit(root / "wt") == c);
  char a0[] = "gcnet_ablate", a1[] = "--variants", a2[] = "none,gc16", a3[] = "it's here";
  char* argv[] = {a0, a1, a2, a3};
  CHECK(command_line(4, argv) == "gcnet_ablate --variants none,gc16 'it'\\''s here'");
  CHECK(utc_date().size() == 20);
}

TEST_CASE("variants: the table's order, subsets and stages") {
  const auto all = all_variants();
  REQUIRE(all.size() == 9);
  CHECK(all.front().name == "none");
  CHECK(all.back().name == "nl");
  const auto some = select_variants("nl,se16,none");
  REQUIRE(some.size() == 3);
  CHECK(some[0].name == "none");
  CHECK(some[1].name == "se16");
  CHECK(some[2].name == "nl");
  CHECK(find_variant("gc16_noln").block.layer_norm == false);
  CHECK(find_variant("gc16_avg").block.pooling == Pooling::Average);
  CHECK(find_variant("gc16_mul").block.fusion == Fusion::Mul);
  CHECK(find_variant("gc4").block.ratio.den == 4);
  CHECK(find_variant("snl").block.kind == GlobalContextKind::SNL);
  CHECK(find_variant("se16").block.kind == GlobalContextKind::SE);
  CHECK(stages_name(parse_stage_digits("0111", "--stages")) == "c3,c4,c5");
  CHECK(stages_name(parse_stage_digits("0000", "--stages")) == "none");
  CHECK_THROWS_WITH_AS(parse_stage_digits("01a1", "--stages"), has("--stages"), Error);
  CHECK_THROWS_WITH_AS(select_variants(""), has("empty"), Error);
  CHECK_THROWS_WITH_AS(select_variants("none,,gc16"), has("empty entry"), Error);
}
