// sweep.hpp: the dropout study (`dropnet-bench sweep`): its settings, the record of one (variant, rate,
// max-norm, seed) run, and the parts that use them:
//   study_variants.cpp the variants axis (--variants): dropout type and schedule, parsed and named
//   sweep.cpp          runs the study: trains and measures each run and appends its record to runs.jsonl
//   study_records.cpp  runs.jsonl: one header line (settings + provenance) and one self-describing JSON line
//                      per finished run, keyed by a stable run id; written atomically after every run
//   study_analysis.cpp the analysis behind the reports: groups by condition, summaries over seeds, paired tests
//                      against the baseline, the conclusion sentences (study_analysis.hpp, internal)
//   sweep_report.cpp   the reports: a pure function of the settings and the set of finished run records
//                      (sorted by max-norm, rate and seed as the settings list them, never by completion),
//                      so a resumed study, or a merge of shards, gives byte-identical reports.
//   study_merge.cpp    the study split into shards (`sweep --shard I/N`) and put back together
//                      (`dropnet-bench merge`): checks that shards belong to one study, lists missing runs
//   slurm.cpp          `dropnet-bench slurm`: a job array over the shards and a dependent merge job
//
// Every run of seed index s uses the model seed settings.seed + s, so runs that differ only in variant, rate
// or max-norm start from the same initial weights and see the same shuffle order (layer seeds come from the
// model seed and the layer position, and the variants put their layer in the same positions); sweep.cpp
// checks the first by hashing the initial weights. This makes the comparison of two conditions paired by
// seed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "programs/args.hpp"
#include "programs/seed_model.hpp"
#include "dropnet/device.hpp"
#include "dropnet/layers.hpp"

namespace dropnet::bench {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr const char* kStudyFormat = "dropnet-study/1";

// The study settings: everything that decides the runs' results. They are the header's "settings" and
// must match for --resume (and, later, across shards).
// `--shard I/N`: the I-th (from 1) of N slices of the study's runs; count 0 is the whole study.
struct ShardSpec {
  int index = 0, count = 0;
  bool active() const { return count > 0; }
  std::string text() const;                   // "2/4"
  bool operator==(const ShardSpec&) const = default;
};

// One value of the variants axis (--variants TYPE or TYPE@SCHEDULE): which layer of the dropout family
// stands in the seed model's Dropout positions, and how its rate changes over training. The schedule's
// count is in EPOCHS here (as the user gives it); the sweep turns it into optimizer steps per run.
struct Variant {
  cli::DropoutType type = cli::DropoutType::Standard;
  DropoutSchedule schedule{};                 // steps: epochs (see in_steps)
  bool batch_norm = false;                    // +bn: BatchNormalization after each Conv2D (SeedModelConfig)
  // "dropout", "spatial", "dropout+bn", "dropout@early:3", "dropout@linear:0.1:5" (a constant schedule is left
  // out).
  std::string text() const;
  // The schedule in optimizer steps: its epoch count times the batches of one epoch.
  DropoutSchedule in_steps(std::uint64_t batches_per_epoch) const;
  bool operator==(const Variant&) const = default;
};

struct SweepConfig {
  std::vector<Variant> variants;              // empty: no variants axis (every run is plain Dropout, constant)
  std::string baseline_variant;               // with variants: the text of the one the others are compared with
  std::int64_t block_size = 3;                // DropBlock2D's block size (a setting only with variants)
  std::vector<double> rates;
  std::vector<double> max_norms;              // one entry (--max-norm) unless --max-norms was given
  bool vary_max_norm = false;                 // --max-norms given: the outputs carry a max_norm column
  std::vector<std::size_t> dropout_layers;    // 0-based indices of the Dropout layers that take the rate
  std::string dropout_layers_text;            // as given ("all", "1,2")
  int seeds = 5;                              // seed indices 0..seeds-1, model seeds seed..seed+seeds-1
  int epochs = 55;
  int batch_size = 250;
  std::int64_t limit = -1;                    // training records (-1: all)
  std::int64_t test_limit = -1;
  Device device = Device::CPU;
  std::uint64_t seed = 1;
  double validation_split = 0.2;
  double learning_rate = 1e-3;
  int mc_samples = 30;                        // Monte Carlo dropout passes on the test set (0: none)
  double baseline = 0;                        // the rate every other rate is compared with (paired by seed)
  double alpha = 0.05;                        // significance level; intervals are (1 - alpha)
  std::filesystem::path data;
  // Not settings: how this process runs.
  ShardSpec shard;                            // recorded in the header of a shard's runs.jsonl
  bool retry_failed = false;                  // --resume --retry-failed: runs recorded as failed run again
  int concurrent = 1;                         // --concurrent: runs trained at once, each on its own thread
  unsigned threads_per_run = 0;               // --threads-per-run: each run's CPU threads (0: the default)
  int verbose = 0;
  std::filesystem::path out;
  std::string command_line;
};

// Provenance of the study, recorded once in the header (taken from the process that started it).
struct Provenance {
  std::string dropnet_version, git_commit;
  std::string data_source, data_fnv1a;        // FNV-1a 64 of the loaded training and test images and labels
  std::int64_t train_samples = 0, val_samples = 0, test_samples = 0;
  std::string device_description;
  int threads = 0;                            // CPU threads of dropnet's loops (DROPNET_CPU_THREADS or cores)
  std::string command;                        // in runs.jsonl only (it differs between a run and a resume)
};

struct EpochRecord {
  int epoch = 0;                              // from 0, as Keras' CSVLogger writes it
  double loss = kNaN, accuracy = kNaN;        // training: running means with dropout active
  double val_loss = kNaN, val_accuracy = kNaN;
  double seconds = 0;                         // wall time (runs.jsonl only, never in the reports)
  double gap() const { return accuracy - val_accuracy; }
};

// Test-set prediction metrics of one run (src/metrics/calibration.hpp) and its reliability bins.
struct PredictionRecord {
  int passes = 0;                             // 1: weight scaling; MC: stochastic passes (1 when rate 0)
  double accuracy = kNaN, nll = kNaN, brier = kNaN, ece = kNaN, entropy = kNaN;
  double mutual_information = kNaN, auroc_entropy = kNaN;
  std::vector<std::int64_t> bin_count;
  std::vector<double> bin_confidence, bin_accuracy;
};

struct RunRecord {
  std::string id;                             // "rate=0.25,max_norm=2,seed=3": stable across shards and resumes
                                              // (with variants: "variant=spatial,rate=0.25,max_norm=2,seed=3")
  bool ok = true;
  std::string failure;                        // why, when !ok
  std::string variant;                        // Variant::text(); empty without a variants axis
  std::string schedule_steps;                 // with variants: the schedule the layers got, in optimizer steps
  double rate = 0, max_norm = 0;
  int seed_index = 0;
  std::uint64_t seed = 0;
  std::string init_hash;                      // FNV-1a of the initial weights (all layers, in order), hex
  std::string order_hash;                     // FNV-1a of the batch order of every epoch (History::order_fnv1a),
                                              // hex; empty in studies recorded before it existed
  std::vector<EpochRecord> epochs;
  int best_epoch = -1;                        // lowest val_loss, from 0; -1 without validation
  double test_loss = kNaN, test_accuracy = kNaN;              // after the last epoch (evaluate)
  double best_test_loss = kNaN, best_test_accuracy = kNaN;    // with the weights of best_epoch
  PredictionRecord standard, mc;              // weight-scaling inference; Monte Carlo dropout (if asked)
  // Timing (runs.jsonl only; the reports leave them out so that they are reproducible).
  // peak_memory_mib is the process's peak resident memory when the run ended (with --concurrent, of every
  // run in flight together).
  double wall_seconds = kNaN, train_seconds = kNaN, images_per_second = kNaN, peak_memory_mib = kNaN;

  double final_gap() const { return epochs.empty() ? kNaN : epochs.back().gap(); }
};

struct Study {
  SweepConfig config;
  Provenance provenance;
  std::vector<RunRecord> runs;                // finished runs (ok or failed), in canonical order
};

// ---- study_variants.cpp ----
// TYPE or TYPE@SCHEDULE (TYPE: dropout, spatial, gaussian, alpha, dropblock; SCHEDULE: constant, early:E,
// late:E, linear:START:E with E epochs from 1 to `epochs`). Throws cli::UsageError naming `flag`'s text.
Variant parse_variant(const std::string& text, int epochs, const std::string& flag = "--variants");
// A comma-separated list of variants; throws cli::UsageError for an empty or unknown entry or a duplicate.
std::vector<Variant> parse_variants(const std::string& text, int epochs);
// The variant axis as the runs see it: the variants' texts, or {""} without a variants axis.
std::vector<std::string> variant_axis(const SweepConfig& c);
// Rate 0 is one model, without dropout, for every variant whose schedule stays at 0 then (all but
// linear:START:E with START > 0) and that has the same architecture (with or without +bn), so the study
// trains it once per seed and architecture, under the first such variant (its "owner"; empty: none), and
// every other such variant's rate 0 is that condition, not a run of its own.
std::string rate0_owner(const SweepConfig& c, bool batch_norm = false);
// The owner of the rate 0 that `variant`'s rate 0 is (its architecture's).
std::string rate0_owner_of(const SweepConfig& c, const std::string& variant);
// Whether (variant, rate) is such a shared rate 0 of a variant other than the owner: not run, not reported
// apart.
bool shares_rate0(const SweepConfig& c, const std::string& variant, double rate);
// Whether two variants (texts; "" for no variants axis) build the same architecture, so that runs of one seed
// start from the same initial weights: both with BatchNormalization or both without.
bool same_architecture(const std::string& a, const std::string& b);
// The variant of a text as recorded (parse_variant without the epoch bound); throws DataError.
Variant variant_from_text(const std::string& text);
// The name of a condition in reports: "rate 0.5", "spatial, rate 0.5", "dropout@early:3, rate 0.5", with
// " (max-norm 2)" when the max-norm varies.
std::string condition_name(const SweepConfig& c, const std::string& variant, double rate, double max_norm);
// The batches (optimizer steps) of one training epoch: ceil(train_samples / batch_size).
std::uint64_t batches_per_epoch(std::int64_t train_samples, int batch_size);

// ---- study_records.cpp ----
std::string run_id(double rate, double max_norm, std::uint64_t seed);
// With a variant (empty: the form above).
std::string run_id(const std::string& variant, double rate, double max_norm, std::uint64_t seed);
std::string settings_json(const SweepConfig& c);           // canonical, one line
std::string provenance_json(const Provenance& p, bool with_command);
std::string header_line(const SweepConfig& c, const Provenance& p);  // with c.shard when active
std::string run_line(const RunRecord& r);                  // one line, no newline
// Reads DIR/runs.jsonl (throws IoError/DataError with the file and line). Settings are parsed into
// `config` (its non-setting fields are left as they are).
struct RunsFile {
  std::string settings;                       // canonical settings_json of the header
  SweepConfig config;                         // config.shard: the header's shard (none for a whole study)
  Provenance provenance;
  std::vector<RunRecord> runs;
};
RunsFile read_runs_file(const std::filesystem::path& path, const SweepConfig& defaults);
// Writes the header and the runs, atomically (io::write_file_atomic).
void write_runs_file(const std::filesystem::path& path, const SweepConfig& c, const Provenance& p,
                     const std::vector<RunRecord>& runs);
// Why runs `a` and `b` of one seed cannot be paired (different initial weights for the same architecture,
// or different batch orders where both recorded one), or nothing when they can (or are of different seeds
// or not both ok).
std::optional<std::string> pairing_conflict(const RunRecord& a, const RunRecord& b);
// Sorts runs into canonical order: max-norm, then variant, then rate as the settings list them, then seed.
void sort_runs(const SweepConfig& c, std::vector<RunRecord>& runs);

// Every run of the study in the order a sweep executes them: seed by seed, then max-norm, then variant, then
// rate, leaving out the shared rates 0 (shares_rate0) (id, variant, rate, max_norm, seed_index and seed
// filled in).
std::vector<RunRecord> planned_runs(const SweepConfig& c);
// The runs of one shard: the contiguous slice [floor((I-1)T/N), floor(IT/N)) of planned_runs (T runs), so the
// N slices partition the study, differ in size by at most one, and hold whole seeds when N divides the seeds.
std::vector<RunRecord> shard_runs(const SweepConfig& c, const ShardSpec& shard);
// The shard (of `count`) that holds the run of index `i` in planned_runs.
int shard_of(std::size_t i, std::size_t total, int count);
// "I/N" as --shard takes it. Throws cli::UsageError unless 1 <= I <= N <= total_runs.
ShardSpec parse_shard(const std::string& text, std::size_t total_runs);

// ---- sweep.cpp ----
// The flags of `dropnet-bench sweep`, and its command line parsed and checked (nothing when --help was
// asked for). `resume`/`only_resume` as run_sweep uses them. Throws cli::UsageError.
const std::vector<cli::FlagSpec>& sweep_flags();
std::optional<SweepConfig> parse_sweep_args(std::span<const std::string> args, std::filesystem::path& resume,
                                            bool& only_resume);

// ---- study_merge.cpp ----
// Shards (or whole studies) of one study, put together: every input must have the settings, data and
// dropnet build of the first (else a DataError saying which differs). A run recorded in several inputs must
// have the same results in each (timings aside); a run that finished ok replaces a failed copy of itself.
struct MergeInput {
  std::filesystem::path path;                 // the runs.jsonl read
  RunsFile file;
};
struct MergeResult {
  Study study;                                // settings and provenance of the first input; runs sorted
  std::vector<std::string> notes;             // what the merge accepted but a reader should know
  std::vector<RunRecord> unfinished;          // planned runs missing or recorded as failed, planned order
  int shard_count = 0;                        // N of the inputs' shards (0: none was a shard)
};
MergeResult merge_studies(const std::vector<MergeInput>& inputs);

// ---- sweep_report.cpp: every report file, from a Study alone ----
std::string markdown_report(const Study& study);
// Writes report.md, sweep.csv, runs.csv, sweep.json, the SVG plots and report.html to `out`, each atomically.
void write_reports(const Study& study, const std::filesystem::path& out);

// The max-norm as printed: "2", or "none" for 0 (no constraint).
std::string max_norm_text(double max_norm);

}  // namespace dropnet::bench
