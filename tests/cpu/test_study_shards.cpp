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

// ---- the variants axis (--variants TYPE[@SCHEDULE],...) ----

TEST_CASE("variants are parsed strictly, schedules in epochs", "[study][variants]") {
  using dropnet::DropoutSchedule;
  using dropnet::cli::DropoutType;
  const std::vector<Variant> v = parse_variants("dropout,spatial,gaussian,alpha,dropblock,dropout@early:3,"
                                                "standard@late:2,dropout@linear:0.25:5,alpha@late:5", 5);
  REQUIRE(v.size() == 9);
  CHECK(v[0] == Variant{});
  CHECK(v[1].type == DropoutType::Spatial);
  CHECK(v[4].type == DropoutType::DropBlock);
  CHECK(v[5].schedule == DropoutSchedule::early(3));
  CHECK(v[6] == Variant{.schedule = DropoutSchedule::late(2)});
  CHECK(v[7].schedule == DropoutSchedule::linear(0.25, 5));
  CHECK(v[8] == Variant{.type = DropoutType::Alpha, .schedule = DropoutSchedule::late(5)});
  CHECK(parse_variant("spatial@constant", 5) == Variant{.type = DropoutType::Spatial});
  std::vector<std::string> names;
  for (const Variant& x : v) names.push_back(x.text());
  CHECK(names == std::vector<std::string>{"dropout", "spatial", "gaussian", "alpha", "dropblock", "dropout@early:3",
                                          "dropout@late:2", "dropout@linear:0.25:5", "alpha@late:5"});
  // Epochs become optimizer steps: E x the batches of an epoch.
  CHECK(v[5].in_steps(40) == DropoutSchedule::early(120));
  CHECK(v[7].in_steps(4) == DropoutSchedule::linear(0.25, 20));
  CHECK(v[0].in_steps(40) == DropoutSchedule::constant());
  CHECK(batches_per_epoch(160, 50) == 4);
  CHECK(batches_per_epoch(150, 50) == 3);
  // The recorded text reads back without the epoch bound.
  for (const Variant& x : v) CHECK(variant_from_text(x.text()) == x);
  CHECK_THROWS_AS(variant_from_text("nope"), dropnet::DataError);

  using dropnet::cli::UsageError;
  CHECK_THROWS_WITH(parse_variants("dropout,spatail", 5), Catch::Contains("unknown dropout type 'spatail'"));
  CHECK_THROWS_WITH(parse_variants("dropout@sometimes:2", 5), Catch::Contains("schedule 'sometimes:2': unknown form"));
  CHECK_THROWS_WITH(parse_variants("dropout@early:6", 5), Catch::Contains("6 epochs is more than --epochs 5"));
  CHECK_THROWS_WITH(parse_variants("dropout@late:0", 5), Catch::Contains("at least 1 epoch"));
  CHECK_THROWS_WITH(parse_variants("dropout@linear:1.5:2", 5), Catch::Contains("START must be a rate from 0 to 1"));
  CHECK_THROWS_WITH(parse_variants("dropout,dropout@constant", 5), Catch::Contains("dropout is listed twice"));
  CHECK_THROWS_WITH(parse_variants("spatial,,dropout", 5), Catch::Contains("an empty entry"));
  for (const char* bad : {"", "@early:2", "dropout@", "dropout@early", "dropout@early:x", "dropout@early:-1",
                          "dropout@early:2:3", "dropout@linear:0.5", "dropout@late:+2"})
    CHECK_THROWS_AS(parse_variants(bad, 5), UsageError);
}

TEST_CASE("variants are an axis of the study: seed, max-norm, variant, rate; ids name the variant", "[study][variants]") {
  SweepConfig c = study(2, 4);
  c.variants = parse_variants("dropout,dropout@early:1,spatial,dropout@linear:0.2:1", 2);
  c.baseline_variant = "dropout";
  // Rate 0 is one model (no dropout) for every variant but a linear ramp from above 0: run once per seed,
  // under the first variant.
  CHECK(rate0_owner(c) == "dropout");
  CHECK_FALSE(shares_rate0(c, "dropout", 0));
  CHECK(shares_rate0(c, "dropout@early:1", 0));
  CHECK(shares_rate0(c, "spatial", 0));
  CHECK_FALSE(shares_rate0(c, "spatial", 0.1));
  CHECK_FALSE(shares_rate0(c, "dropout@linear:0.2:1", 0));
  CHECK_FALSE(shares_rate0(study(2, 4), "", 0));
  const std::vector<RunRecord> all = planned_runs(c);
  REQUIRE(all.size() == 6 * 4);
  CHECK(all[0].id == "variant=dropout,rate=0,max_norm=2,seed=1");
  CHECK(all[1].id == "variant=dropout,rate=0.1,max_norm=2,seed=1");
  CHECK(all[2].id == "variant=dropout@early:1,rate=0.1,max_norm=2,seed=1");
  CHECK(all[2].variant == "dropout@early:1");
  CHECK(all[3].id == "variant=spatial,rate=0.1,max_norm=2,seed=1");
  CHECK(all[4].id == "variant=dropout@linear:0.2:1,rate=0,max_norm=2,seed=1");
  CHECK(all[6].id == "variant=dropout,rate=0,max_norm=2,seed=2");
  CHECK(run_id("", 0.5, 2, 3) == run_id(0.5, 2, 3));
  // Whole seeds per shard when the shard count divides the seeds.
  for (int i = 1; i <= 4; ++i) {
    std::set<std::uint64_t> seeds;
    std::set<std::string> variants;
    for (const RunRecord& r : shard_runs(c, {i, 4})) seeds.insert(r.seed), variants.insert(r.variant);
    CHECK(seeds == std::set<std::uint64_t>{c.seed + std::uint64_t(i - 1)});
    CHECK(variants.size() == 4);
  }
  // Canonical order: max-norm, variant, rate, seed.
  std::vector<RunRecord> runs = all;
  std::reverse(runs.begin(), runs.end());
  sort_runs(c, runs);
  CHECK(runs[0].id == "variant=dropout,rate=0,max_norm=2,seed=1");
  CHECK(runs[3].id == "variant=dropout,rate=0,max_norm=2,seed=4");
  CHECK(runs[4].id == "variant=dropout,rate=0.1,max_norm=2,seed=1");
  CHECK(runs[8].id == "variant=dropout@early:1,rate=0.1,max_norm=2,seed=1");
  // The settings carry the variants (so that resume and merge refuse another axis); without them, nothing.
  CHECK(settings_json(c).find(R"("variants":["dropout","dropout@early:1","spatial","dropout@linear:0.2:1"],)"
                             R"("baseline_variant":"dropout")") !=
        std::string::npos);
  CHECK(settings_json(study(2, 4)).find("variant") == std::string::npos);
  // A run line names the variant, its type and both forms of its schedule, and reads back.
  RunRecord r = finished(all[2], 0.5);
  r.schedule_steps = "early:4";
  const std::string line = run_line(r);
  CHECK(line.find(R"("variant":"dropout@early:1","dropout_type":"dropout","schedule_epochs":"early:1",)"
                  R"("schedule_steps":"early:4")") != std::string::npos);
  // Without rate 0 every variant has all its rates.
  c.rates = {0.1, 0.5};
  CHECK(planned_runs(c).size() == 4 * 2 * 4);
  CHECK(run_line(finished(planned_runs(study(2, 4))[0], 0.5)).find("variant") == std::string::npos);
}

TEST_CASE("+bn variants: another architecture, its own shared rate 0, paired by seed and batch order only",
          "[study][variants]") {
  const std::vector<Variant> v = parse_variants("dropout,dropout+bn,spatial+bn@early:1", 2);
  CHECK_FALSE(v[0].batch_norm);
  CHECK(v[1].batch_norm);
  CHECK(v[1].type == v[0].type);
  CHECK(v[2].batch_norm);
  CHECK(v[2].schedule == dropnet::DropoutSchedule::early(1));
  CHECK(v[2].text() == "spatial+bn@early:1");
  for (const Variant& x : v) CHECK(variant_from_text(x.text()) == x);
  CHECK_THROWS_WITH(parse_variants("+bn", 2), Catch::Contains("unknown dropout type '+bn'"));
  CHECK_THROWS_WITH(parse_variants("dropout+nb", 2), Catch::Contains("optionally followed by +bn"));
  CHECK_THROWS_WITH(parse_variants("dropout+bn,dropout+bn@constant", 2), Catch::Contains("dropout+bn is listed twice"));

  SweepConfig c = study(2, 2);
  c.variants = v;
  c.baseline_variant = "dropout";
  // Rate 0 is trained once per seed for each architecture: as dropout and as dropout+bn.
  CHECK(rate0_owner(c) == "dropout");
  CHECK(rate0_owner(c, true) == "dropout+bn");
  CHECK(rate0_owner_of(c, "spatial+bn@early:1") == "dropout+bn");
  CHECK_FALSE(shares_rate0(c, "dropout+bn", 0));
  CHECK(shares_rate0(c, "spatial+bn@early:1", 0));
  CHECK(planned_runs(c).size() == (2 + 2 + 1) * 2);
  CHECK(same_architecture("dropout+bn", "spatial+bn@early:1"));
  CHECK_FALSE(same_architecture("dropout", "dropout+bn"));
  CHECK(same_architecture("", "dropout"));
  // Runs of one seed with and without BatchNormalization start from different weights (the model has other
  // layers), which is no conflict; their batch orders must still agree.
  RunRecord plain = finished(planned_runs(c)[0], 0.5), bn = plain;
  bn.variant = "dropout+bn";
  bn.id = run_id(bn.variant, bn.rate, bn.max_norm, bn.seed);
  bn.init_hash = "0123456789abcdef";
  plain.order_hash = bn.order_hash = "00000000000000aa";
  CHECK_FALSE(pairing_conflict(plain, bn));
  bn.order_hash = "00000000000000bb";
  CHECK(pairing_conflict(plain, bn));
  RunRecord bn2 = bn;
  bn2.variant = "spatial+bn@early:1";
  bn2.init_hash = "fedcba9876543210";
  bn2.order_hash = bn.order_hash;
  CHECK(pairing_conflict(bn, bn2));  // the same architecture: the weights must agree
}

TEST_CASE("merge: shards of a variants study, and a study with other variants refused", "[study][variants][merge]") {
  SweepConfig c = study(2, 2);
  c.variants = parse_variants("dropout,dropout@late:1", 2);
  c.baseline_variant = "dropout";
  std::vector<MergeInput> in;
  for (int i = 1; i <= 2; ++i) {
    std::vector<RunRecord> runs;
    for (const RunRecord& r : shard_runs(c, {i, 2})) runs.push_back(finished(r, 0.1 * i));
    in.push_back(shard_input(c, i, 2, runs));
  }
  MergeResult m = merge_studies(in);
  CHECK(m.unfinished.empty());
  REQUIRE(m.study.runs.size() == 6);  // rate 0 once per seed, under dropout
  CHECK(m.study.runs[0].id == "variant=dropout,rate=0,max_norm=2,seed=1");
  CHECK(m.study.runs[4].id == "variant=dropout@late:1,rate=0.1,max_norm=2,seed=1");
  const std::string report = markdown_report(m.study);
  CHECK(report.find("| variant | rate | seeds |") != std::string::npos);
  CHECK(report.find("| dropout@late:1 | 0.1 |") != std::string::npos);
  CHECK(report.find("Paired by seed against the baseline, dropout, rate 0") != std::string::npos);
  CHECK(report.find("has the highest mean test accuracy") != std::string::npos);
  CHECK(report.find("| dropout@late:1 | 0 |") == std::string::npos);
  CHECK(report.find("it is trained once per seed, as dropout, rate 0") != std::string::npos);
  CHECK(report.find("within each metric over the 2 conditions compared with the baseline") != std::string::npos);

  SweepConfig other = c;
  other.variants = parse_variants("dropout,dropout@late:2", 2);
  in[1].file.settings = settings_json(other);
  CHECK_THROWS_WITH(merge_studies(in), Catch::Contains("\"variants\" is"));
  in[1].file.settings = settings_json(c);
  in[1].file.runs[0].init_hash = "other";
  CHECK_THROWS_WITH(merge_studies(in), Catch::Contains("different initial weights"));
}
