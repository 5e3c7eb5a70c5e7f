// test_study_shards.cpp: the study split into shards (sweep --shard I/N) and merged back
// (benchmarks/study_records.cpp, benchmarks/study_merge.cpp), on run records made here.
#include <algorithm>
#include <set>

#include "support/catch.hpp"

#include "programs/args.hpp"
#include "dropnet/errors.hpp"
#include "sweep.hpp"

using namespace dropnet::bench;

namespace {

SweepConfig study(std::size_t rates, int seeds) {
  SweepConfig c;
  for (std::size_t i = 0; i < rates; ++i) c.rates.push_back(0.1 * double(i));
  c.max_norms = {2.0};
  c.seeds = seeds;
  return c;
}

// A finished run with results that follow from its id.
RunRecord finished(const RunRecord& planned, double accuracy) {
  RunRecord r = planned;
  r.init_hash = "seed" + std::to_string(r.seed);
  r.test_accuracy = accuracy;
  r.wall_seconds = accuracy * 100;  // a timing: not a result
  return r;
}

MergeInput shard_input(const SweepConfig& c, int index, int count, std::vector<RunRecord> runs) {
  MergeInput in{.path = "shard" + std::to_string(index)};
  in.file.config = c;
  in.file.config.shard = {index, count};
  in.file.settings = settings_json(c);
  in.file.provenance = {.dropnet_version = "0.1.0", .git_commit = "abc", .data_fnv1a = "d"};
  in.file.runs = std::move(runs);
  return in;
}

}  // namespace

TEST_CASE("shards partition the study's runs into contiguous slices of nearly equal size", "[study][shard]") {
  for (const auto& [rates, seeds] : {std::pair<std::size_t, int>{2, 2}, {5, 10}, {3, 1}, {1, 7}}) {
    const SweepConfig c = study(rates, seeds);
    const std::vector<RunRecord> all = planned_runs(c);
    REQUIRE(all.size() == rates * std::size_t(seeds));
    for (int n = 1; n <= int(all.size()); ++n) {
      std::vector<std::string> joined;
      std::size_t smallest = all.size(), largest = 0;
      for (int i = 1; i <= n; ++i) {
        const std::vector<RunRecord> part = shard_runs(c, {i, n});
        smallest = std::min(smallest, part.size()), largest = std::max(largest, part.size());
        for (const RunRecord& r : part) {
          joined.push_back(r.id);
          const auto at = std::size_t(std::find_if(all.begin(), all.end(), [&](auto& a) { return a.id == r.id; }) -
                                      all.begin());
          CHECK(shard_of(at, all.size(), n) == i);
        }
      }
      std::vector<std::string> ids;
      for (const RunRecord& r : all) ids.push_back(r.id);
      CHECK(joined == ids);  // every run once, in the sweep's order: a partition into contiguous slices
      CHECK(largest - smallest <= 1);
    }
  }
}

TEST_CASE("a shard holds whole seeds when the shard count divides the seeds", "[study][shard]") {
  const SweepConfig c = study(5, 10);
  for (int i = 1; i <= 5; ++i) {
    std::set<std::uint64_t> seeds;
    for (const RunRecord& r : shard_runs(c, {i, 5})) seeds.insert(r.seed);
    CHECK(seeds == std::set<std::uint64_t>{c.seed + 2 * std::uint64_t(i - 1), c.seed + 2 * std::uint64_t(i) - 1});
  }
}

TEST_CASE("shard specs I/N are parsed strictly", "[study][shard]") {
  CHECK(parse_shard("2/4", 4) == ShardSpec{2, 4});
  for (const char* bad : {"0/4", "5/4", "2", "2/", "/4", "a/4", "2/4x", "-1/4", "2/0"})
    CHECK_THROWS_AS(parse_shard(bad, 10), dropnet::cli::UsageError);
  CHECK_THROWS_WITH(parse_shard("1/5", 4), Catch::Contains("at most 4 shards"));
}

TEST_CASE("merge: shards put back together, unfinished runs listed", "[study][merge]") {
  const SweepConfig c = study(2, 2);
  std::vector<MergeInput> in;
  for (int i = 1; i <= 4; ++i) {
    std::vector<RunRecord> runs;
    for (const RunRecord& r : shard_runs(c, {i, 4})) runs.push_back(finished(r, 0.1 * i));
    in.push_back(shard_input(c, i, 4, runs));
  }
  MergeResult m = merge_studies(in);
  CHECK(m.unfinished.empty());
  CHECK(m.shard_count == 4);
  CHECK(m.study.runs.size() == 4);
  CHECK(!m.study.config.shard.active());
  // Canonical order (rate, then seed), not the order of the shards.
  CHECK(m.study.runs[0].id == run_id(0.0, 2.0, 1));
  CHECK(m.study.runs[1].id == run_id(0.0, 2.0, 2));

  SECTION("a missing shard and a failed run are unfinished") {
    in.erase(in.begin() + 2);
    in[1].file.runs[0].ok = false;
    in[1].file.runs[0].failure = "boom";
    m = merge_studies(in);
    REQUIRE(m.unfinished.size() == 2);
    CHECK(m.unfinished[0].id == shard_runs(c, {2, 4})[0].id);
    CHECK(!m.unfinished[0].ok);
    CHECK(m.unfinished[1].id == shard_runs(c, {3, 4})[0].id);
  }
  SECTION("the same run twice: same results (other timings) are fine, a finished retry replaces a failure") {
    MergeInput copy = in[0];
    copy.path = "copy";
    copy.file.runs[0].wall_seconds = 999;
    in.push_back(copy);
    CHECK(merge_studies(in).study.runs.size() == 4);
    in[0].file.runs[0].ok = false;
    m = merge_studies(in);
    CHECK(m.unfinished.empty());
    CHECK(std::all_of(m.study.runs.begin(), m.study.runs.end(), [](const RunRecord& r) { return r.ok; }));
  }
  SECTION("the same run twice with different results is refused") {
    MergeInput copy = in[0];
    copy.path = "copy";
    copy.file.runs[0].test_accuracy = 0.99;
    in.push_back(copy);
    CHECK_THROWS_WITH(merge_studies(in), Catch::Contains("with different results"));
  }
  SECTION("other settings, data, builds or splits are refused, naming what differs") {
    SweepConfig other = c;
    other.epochs = 3;
    in[1].file.settings = settings_json(other);
    CHECK_THROWS_WITH(merge_studies(in), Catch::Contains("\"epochs\" is 3 there but 55 in shard1"));
    in[1].file.settings = settings_json(c);
    in[1].file.provenance.data_fnv1a = "e";
    CHECK_THROWS_WITH(merge_studies(in), Catch::Contains("other data than shard1"));
    in[1].file.provenance.data_fnv1a = "d";
    in[1].file.provenance.git_commit = "def";
    CHECK_THROWS_WITH(merge_studies(in), Catch::Contains("merge only shards run by one build"));
    in[1].file.provenance.git_commit = "abc";
    in[1].file.config.shard = {2, 3};
    CHECK_THROWS_WITH(merge_studies(in), Catch::Contains("merge the shards of one split"));
  }
  SECTION("runs of one seed must start from the same weights") {
    in[1].file.runs[0].init_hash = "other";
    CHECK_THROWS_WITH(merge_studies(in), Catch::Contains("different initial weights"));
  }
}
