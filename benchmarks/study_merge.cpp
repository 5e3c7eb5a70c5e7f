// study_merge.cpp: `dropnet-bench merge OUT DIR...`: the shards of a study (`sweep --shard I/N`, each with its
// own runs.jsonl) put back together into the runs.jsonl and reports a single-process study writes. The
// reports come from the same code (write_reports) and the records are sorted the same way, so a complete
// merge is byte-identical to the unsharded study's sweep.csv, sweep.json, report.md and report.html.
//
// Refused, with one line saying which input differs from the first and how: other settings, other data
// (hash, source or sizes), another dropnet build (version or commit), shards of different splits, a run
// recorded twice with different results, a run id that is not part of the study. Allowed: the same run in
// two inputs with the same results (timings aside), a failed copy of a run next to a finished one (a retry).
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include <fmt/format.h>

#include "bench_util.hpp"
#include "programs/args.hpp"
#include "dropnet/errors.hpp"
#include "io/json.hpp"
#include "sweep.hpp"

namespace dropnet::bench {
namespace {

namespace json = io::json;

// A JSON value written back (numbers and strings as read), to name a differing setting.
std::string json_text(const json::Value& v) {
  switch (v.kind) {
    case json::Value::Kind::Null: return "null";
    case json::Value::Kind::Bool: return v.boolean ? "true" : "false";
    case json::Value::Kind::Number: return v.text;
    case json::Value::Kind::String: return json::quote(v.text);
    case json::Value::Kind::Array: {
      std::string s = "[";
      for (std::size_t i = 0; i < v.items.size(); ++i) s += (i ? "," : "") + json_text(v.items[i]);
      return s + "]";
    }
    case json::Value::Kind::Object: {
      std::string s = "{";
      for (std::size_t i = 0; i < v.members.size(); ++i)
        s += (i ? "," : "") + json::quote(v.members[i].first) + ":" + json_text(v.members[i].second);
      return s + "}";
    }
  }
  return "";
}

// "epochs is 2 in A but 1 in B" for the first setting that differs.
std::string settings_difference(const std::string& a, const std::string& b) {
  const json::Value va = json::parse(a), vb = json::parse(b);
  for (const json::Member& m : va.members) {
    const json::Value* other = vb.find(m.first);
    const std::string ta = json_text(m.second), tb = other ? json_text(*other) : "absent";
    if (ta != tb) return fmt::format("\"{}\" is {} there but {} in", m.first, tb, ta);
  }
  return "the settings differ from those in";
}

// A run's results as the reports see them: its record without the timings.
std::string results_of(RunRecord r) {
  r.wall_seconds = r.train_seconds = r.images_per_second = r.peak_memory_mib = kNaN;
  for (EpochRecord& e : r.epochs) e.seconds = 0;
  return run_line(r);
}

}  // namespace

MergeResult merge_studies(const std::vector<MergeInput>& inputs) {
  if (inputs.empty()) throw DataError("nothing to merge");
  const MergeInput& first = inputs.front();
  const RunsFile& f0 = first.file;
  const Provenance& p0 = f0.provenance;
  MergeResult m;
  for (const MergeInput& in : inputs) {
    const RunsFile& f = in.file;
    const Provenance& p = f.provenance;
    const std::string where = in.path.string(), ref = first.path.string();
    if (f.settings != f0.settings)
      throw DataError(fmt::format("{}: {} {}: merge only the shards of one study (same flags)", where,
                                  settings_difference(f0.settings, f.settings), ref));
    if (p.data_fnv1a != p0.data_fnv1a || p.data_source != p0.data_source || p.train_samples != p0.train_samples ||
        p.val_samples != p0.val_samples || p.test_samples != p0.test_samples)
      throw DataError(fmt::format("{}: other data than {} ({}, hash {}, {}/{}/{} records there; {}, hash {}, {}/{}/{} "
                                  "in {}): merge only shards that trained on the same data", where, ref,
                                  p.data_source, p.data_fnv1a, p.train_samples, p.val_samples, p.test_samples,
                                  p0.data_source, p0.data_fnv1a, p0.train_samples, p0.val_samples, p0.test_samples,
                                  ref));
    if (p.dropnet_version != p0.dropnet_version || p.git_commit != p0.git_commit)
      throw DataError(fmt::format("{}: written by dropnet {} (commit {}), {} by dropnet {} (commit {}): merge only "
                                  "shards run by one build", where, p.dropnet_version, p.git_commit, ref,
                                  p0.dropnet_version, p0.git_commit));
    if (f.config.shard.active()) {
      if (m.shard_count != 0 && m.shard_count != f.config.shard.count)
        throw DataError(fmt::format("{}: shard {}, but other inputs are shards of {}: merge the shards of one split",
                                    where, f.config.shard.text(), m.shard_count));
      m.shard_count = f.config.shard.count;
    }
    if (p.device_description != p0.device_description || p.threads != p0.threads)
      m.notes.push_back(fmt::format("{} ran on {} with {} CPU threads, {} on {} with {}; the report shows the latter "
                                    "(CPU results do not depend on the thread count)", where, p.device_description,
                                    p.threads, ref, p0.device_description, p0.threads));
  }

  // The runs, keyed by id; every id must be one of the study's.
  const std::vector<RunRecord> planned = planned_runs(f0.config);
  std::set<std::string> planned_ids;
  for (const RunRecord& r : planned) planned_ids.insert(r.id);
  std::map<std::string, std::pair<RunRecord, std::string>> runs;  // id -> (record, the file it came from)
  for (const MergeInput& in : inputs)
    for (const RunRecord& r : in.file.runs) {
      if (!planned_ids.contains(r.id))
        throw DataError(fmt::format("{}: run {} is not one of the study's runs", in.path.string(), r.id));
      auto it = runs.find(r.id);
      if (it == runs.end()) {
        runs.emplace(r.id, std::pair(r, in.path.string()));
        continue;
      }
      const RunRecord& kept = it->second.first;
      if (kept.ok && r.ok && results_of(kept) != results_of(r))
        throw DataError(fmt::format("run {} is in {} and in {} with different results: one run must give one result "
                                    "(remove the copy that is wrong)", r.id, it->second.second, in.path.string()));
      if (!kept.ok && r.ok) it->second = std::pair(r, in.path.string());  // a retry that finished
    }

  // The premise of the paired comparison, across shards: one seed, one set of initial weights, one batch order.
  std::map<std::uint64_t, const RunRecord*> by_seed;
  for (const auto& [id, entry] : runs) {
    const RunRecord& r = entry.first;
    if (!r.ok) continue;
    auto [it, fresh] = by_seed.emplace(r.seed, &r);
    if (!fresh)
      if (const auto why = pairing_conflict(*it->second, r))
        throw DataError(fmt::format("{}, so they cannot be compared paired by seed", *why));
  }

  m.study.config = f0.config;
  m.study.config.shard = {};
  m.study.provenance = p0;
  for (auto& [id, entry] : runs) m.study.runs.push_back(entry.first);
  sort_runs(m.study.config, m.study.runs);
  for (const RunRecord& r : planned) {
    const auto it = runs.find(r.id);
    if (it == runs.end()) m.unfinished.push_back(r);
    else if (!it->second.first.ok) m.unfinished.push_back(it->second.first);
  }
  return m;
}

int run_merge(std::span<const std::string> args) {
  bool partial = false;
  std::vector<std::filesystem::path> paths;
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      fmt::print("usage: dropnet-bench merge [--partial] OUT DIR...\n\nPuts the shards of a study (the directories "
                 "of 'dropnet-bench sweep --shard I/N', or their runs.jsonl files) together into OUT: runs.jsonl and "
                 "the same reports a single-process study writes (report.md, also on stdout, sweep.csv, runs.csv, "
                 "sweep.json, the SVG plots, report.html). Shards of other settings, data or dropnet builds are "
                 "refused. When runs are missing or failed it lists them by shard, says which shards to rerun, "
                 "writes nothing and exits 1; run it again once they have finished.\n\n  --partial   write the "
                 "reports anyway (they say how many runs are recorded and list the failed ones)\n");
      return kExitOk;
    }
    if (a == "--partial") partial = true;
    else if (a.rfind("--", 0) == 0)
      throw cli::UsageError(fmt::format("unknown flag {}: expected --partial, OUT and shard directories", a));
    else paths.emplace_back(a);
  }
  if (paths.size() < 2)
    throw cli::UsageError("expected OUT and at least one shard directory (dropnet-bench merge OUT DIR...)");
  const std::filesystem::path out = paths.front();

  std::vector<MergeInput> inputs;
  for (std::size_t i = 1; i < paths.size(); ++i) {
    const std::filesystem::path& p = paths[i];
    const std::filesystem::path file = std::filesystem::is_directory(p) ? p / "runs.jsonl" : p;
    if (!std::filesystem::is_regular_file(file))
      throw cli::UsageError(fmt::format("{}: no runs.jsonl there (expected a directory written by 'dropnet-bench "
                                        "sweep --shard I/N', or its runs.jsonl)", p.string()));
    inputs.push_back({file, read_runs_file(file, SweepConfig{})});
  }
  MergeResult m = merge_studies(inputs);
  for (const std::string& note : m.notes) fmt::print(stderr, "[merge] note: {}\n", note);

  const std::size_t total = planned_runs(m.study.config).size();
  if (!m.unfinished.empty() && !partial) {
    // By shard: what is missing, and the command that reruns only those shards.
    const std::vector<RunRecord> planned = planned_runs(m.study.config);
    std::map<int, std::vector<std::string>> by_shard;
    for (const RunRecord& r : m.unfinished) {
      const std::size_t i = std::size_t(std::find_if(planned.begin(), planned.end(),
                                                     [&](const RunRecord& p) { return p.id == r.id; }) -
                                        planned.begin());
      const int shard = m.shard_count > 0 ? shard_of(i, total, m.shard_count) : 0;
      by_shard[shard].push_back(r.ok || r.failure.empty() ? r.id + " (no record)" : r.id + " (failed: " + r.failure + ")");
    }
    for (const auto& [shard, ids] : by_shard) {
      std::string list;
      for (const std::string& id : ids) list += (list.empty() ? "" : "; ") + id;
      fmt::print(stderr, "dropnet-bench merge: {} {} of {} runs unfinished: {}\n",
                 shard > 0 ? fmt::format("shard {}/{}:", shard, m.shard_count) : std::string("study:"), ids.size(),
                 total, list);
    }
    std::string shards;
    for (const auto& [shard, ids] : by_shard) shards += (shards.empty() ? "" : ",") + std::to_string(shard);
    const std::filesystem::path submit = out / "submit.sh";
    if (m.shard_count > 0 && std::filesystem::exists(submit))
      fmt::print(stderr, "dropnet-bench merge: {} of {} runs unfinished; rerun only those shards (their finished runs "
                         "are kept, failed ones retried) and merge again: {} {}\n", m.unfinished.size(), total,
                 submit.string(), shards);
    else if (m.shard_count > 0)
      fmt::print(stderr, "dropnet-bench merge: {} of {} runs unfinished; rerun shards {} of {} (sweep with the study's "
                         "flags and --shard I/{}, adding --resume DIR --retry-failed where DIR exists), then merge "
                         "again\n", m.unfinished.size(), total, shards, m.shard_count, m.shard_count);
    else
      fmt::print(stderr, "dropnet-bench merge: {} of {} runs unfinished; finish them with dropnet-bench sweep "
                         "--resume DIR --retry-failed, then merge again\n", m.unfinished.size(), total);
    return kExitRuntime;
  }

  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec || !std::filesystem::is_directory(out))
    throw cli::UsageError(fmt::format("{}: cannot create the output directory ({})", out.string(),
                                      ec ? ec.message() : "a file of that name exists"));
  std::string command = "dropnet-bench merge";
  for (const std::string& a : args) command += " " + a;
  Provenance prov = m.study.provenance;
  prov.command = command;
  write_runs_file(out / "runs.jsonl", m.study.config, prov, m.study.runs);
  const std::string md = markdown_report(m.study);
  fmt::print("{}", md);
  std::fflush(stdout);
  write_reports(m.study, out);
  const auto ok_runs = std::count_if(m.study.runs.begin(), m.study.runs.end(), [](const RunRecord& r) { return r.ok; });
  fmt::print(stderr, "[merge] {} of {} runs from {} input{}{}; wrote runs.jsonl, report.md, sweep.csv, runs.csv, "
                     "sweep.json, the SVG plots and report.html to {}\n", ok_runs,
             total, inputs.size(), inputs.size() == 1 ? "" : "s",
             m.unfinished.empty() ? "" : fmt::format(" ({} unfinished: --partial)", m.unfinished.size()), out.string());
  return kExitOk;
}

}  // namespace dropnet::bench
