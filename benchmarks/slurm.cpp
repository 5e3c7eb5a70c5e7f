// slurm.cpp: `dropnet-bench slurm --shards N [sbatch flags] [sweep flags]`: a study as a Slurm job array.
// Writes into OUT:
//   study.sbatch  the job array: task I runs `dropnet-bench sweep FLAGS --shard I/N` into OUT/shards/I-of-N
//                 (resuming that directory, failed runs retried, when it exists: a rerun or a requeue)
//   merge.sbatch  `dropnet-bench merge OUT OUT/shards/*-of-N`, the reports of the whole study in OUT
//   submit.sh     submits the array (all shards, or those given: `submit.sh 2,3`) and the merge job with
//                 --dependency=afterok:ARRAY --kill-on-invalid-dep=yes, so that a failed shard cancels the
//                 merge instead of leaving it pending; prints both job ids
// and with --submit runs submit.sh. Every sweep flag is checked here, before anything waits in a queue.
#include <cstdlib>
#include <filesystem>
#include <sys/wait.h>

#include <fmt/format.h>

#include "bench_util.hpp"
#include "programs/args.hpp"
#include "dropnet/errors.hpp"
#include "io/atomic_file.hpp"
#include "sweep.hpp"

namespace dropnet::bench {
namespace {

// Sweep flags a shard gets from the generated script, not from the user.
bool script_owned(const std::string& name) {
  return name == "out" || name == "resume" || name == "retry-failed" || name == "shard";
}

const std::vector<cli::FlagSpec>& slurm_flags() {
  static const std::vector<cli::FlagSpec> specs = [] {
    std::vector<cli::FlagSpec> s = {
        {"shards", "N", "", "Split the study into N array tasks (sweep --shard I/N; at most one per run)."},
        {"out", "DIR", "sweep-out", "The study directory: the scripts, shards/I-of-N, logs/ and, after the merge, "
                                    "the reports."},
        {"time", "T", "", "sbatch --time of each array task (e.g. 1-00:00:00; default: the partition's)."},
        {"mem", "M", "", "sbatch --mem of each array task (e.g. 8G; default: the partition's)."},
        {"cpus-per-task", "C", "1", "sbatch --cpus-per-task; dropnet's CPU loops use this many threads."},
        {"gpus-per-task", "G", "", "sbatch --gpus-per-task (needed with --device cuda)."},
        {"partition", "P", "", "sbatch --partition (array and merge)."},
        {"account", "A", "", "sbatch --account (array and merge)."},
        {"qos", "Q", "", "sbatch --qos (array and merge)."},
        {"constraint", "C", "", "sbatch --constraint of the array tasks (e.g. a GPU model, so that every shard "
                                "runs on the same hardware)."},
        {"max-running", "K", "", "At most K array tasks at once (--array=1-N%K)."},
        {"job-name", "NAME", "dropnet-study", "sbatch --job-name (the merge job adds -merge)."},
        {"bench", "PATH", "", "The dropnet-bench the jobs run (default: this one), as the compute nodes see it."},
        {"submit", "yes|no", "no", "Submit at once (runs OUT/submit.sh) and print the job ids; --submit alone "
                                   "means yes."},
    };
    for (const cli::FlagSpec& f : sweep_flags())
      if (!script_owned(f.name)) s.push_back(f);
    return s;
  }();
  return specs;
}

// `s` as one bash word.
std::string sh(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:=,+-%@") ==
                        std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

void write_text(const std::filesystem::path& path, const std::string& text, bool executable) {
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(text.data());
  io::write_file_atomic(path, {std::span<const std::uint8_t>(bytes, text.size())});
  using std::filesystem::perms;
  std::filesystem::permissions(path, executable ? perms::owner_all | perms::group_read | perms::group_exec |
                                                      perms::others_read | perms::others_exec
                                                : perms::owner_read | perms::owner_write | perms::group_read |
                                                      perms::others_read);
}

}  // namespace

int run_slurm(std::span<const std::string> given_args) {
  std::vector<std::string> args(given_args.begin(), given_args.end());
  for (std::string& a : args)
    if (a == "--submit") a = "--submit=yes";
  const cli::Flags flags = cli::parse_flags(args, slurm_flags());
  if (flags.help) {
    fmt::print("usage: dropnet-bench slurm --shards N [flags] [sweep flags]\n\nA dropout study as a Slurm job array: "
               "writes OUT/study.sbatch (array task I runs 'dropnet-bench sweep FLAGS --shard I/N' into "
               "OUT/shards/I-of-N), OUT/merge.sbatch (dropnet-bench merge, after every task succeeded) and "
               "OUT/submit.sh, which submits both and prints their job ids ('OUT/submit.sh 2,3' reruns shards 2 and 3 "
               "only, with a fresh merge job). A failed task cancels the merge job. See docs/scaling.md.\n\n"
               "flags:\n{}", cli::format_flag_help(slurm_flags()));
    return kExitOk;
  }
  if (!flags.given("shards")) throw cli::UsageError("--shards N is required: the number of array tasks");
  const std::string submit_text = flags.get_string("submit");
  if (submit_text != "yes" && submit_text != "no")
    throw cli::UsageError(fmt::format("--submit {}: expected yes or no", submit_text));

  // The study's flags as a shard gets them, checked by the sweep's own parser.
  std::vector<std::string> study;
  for (const cli::FlagSpec& f : sweep_flags())
    if (!script_owned(f.name) && flags.given(f.name)) study.insert(study.end(), {"--" + f.name, *flags.value(f.name)});
  const std::filesystem::path out = std::filesystem::absolute(flags.get_string("out")).lexically_normal();
  // The login node that writes the scripts often has no GPU: --device cuda is checked for this build
  // here and for a GPU by each task.
  std::vector<std::string> check = study;
  const bool cuda = flags.get_string("device") == "cuda";
  if (cuda && !cuda_compiled())
    throw cli::UsageError("--device cuda: this dropnet-bench was built without CUDA (rebuild with -DDROPNET_CUDA=ON)");
  for (std::size_t i = 0; i + 1 < check.size(); i += 2)
    if (check[i] == "--device" && cuda) check[i + 1] = "cpu";
  check.insert(check.end(), {"--out", (out / "shards" / "check").string()});
  std::filesystem::path unused;
  bool only_resume = false;
  SweepConfig config = *parse_sweep_args(check, unused, only_resume);
  if (cuda) config.device = Device::CUDA;
  const std::size_t total = planned_runs(config).size();
  const int shards = int(flags.get_int("shards", 1, 1000000));
  (void)parse_shard(fmt::format("1/{}", shards), total);
  if (cuda && !flags.given("gpus-per-task"))
    throw cli::UsageError("--device cuda: add --gpus-per-task G (a Slurm job gets no GPU unless it asks for one)");
  const std::filesystem::path cwd = std::filesystem::current_path();
  if (!std::filesystem::exists(config.data))
    throw cli::UsageError(fmt::format("--data {}: not found from {} (where the jobs start); give a path the compute "
                                      "nodes see", config.data.string(), cwd.string()));
  if (flags.given("max-running")) (void)flags.get_int("max-running", 1, 1000000);
  const std::filesystem::path bench =
      flags.given("bench") ? std::filesystem::absolute(flags.get_string("bench"))
                           : std::filesystem::read_symlink("/proc/self/exe");

  // Shards already in OUT must be of this study (their tasks would resume them).
  std::error_code ec;
  std::filesystem::create_directories(out / "shards", ec);
  std::filesystem::create_directories(out / "logs", ec);
  if (ec) throw cli::UsageError(fmt::format("--out {}: cannot create the directory ({})", out.string(), ec.message()));
  for (const auto& entry : std::filesystem::directory_iterator(out / "shards")) {
    const std::filesystem::path runs = entry.path() / "runs.jsonl";
    if (std::filesystem::exists(runs) && read_runs_file(runs, SweepConfig{}).settings != settings_json(config))
      throw cli::UsageError(fmt::format("--out {}: {} holds a study with other settings; use another --out, or "
                                        "remove it", out.string(), entry.path().string()));
  }

  auto opt = [&](const char* name) { return flags.given(name) ? fmt::format("#SBATCH --{}={}\n", name, flags.get_string(name)) : ""; };
  std::string command = "dropnet-bench slurm";
  for (const std::string& a : given_args) command += " " + sh(a);
  const std::string job = flags.get_string("job-name");
  const std::string array_range =
      fmt::format("1-{}{}", shards, flags.given("max-running") ? "%" + flags.get_string("max-running") : "");
  std::string study_words;
  for (std::size_t i = 0; i < study.size(); i += 2)
    study_words += fmt::format("{}  {} {}", i ? " \\\n" : "", sh(study[i]), sh(study[i + 1]));

  const std::string array_script = fmt::format(
      R"SH(#!/bin/bash
# A dropout study as a job array of {shards} shards: task I trains the I-th slice of the study's {total} runs.
# Written by: {command}
# Submit with {out}/submit.sh (it adds the merge job); rerun shards 2 and 3 only: {out}/submit.sh 2,3
#SBATCH --job-name={job}
#SBATCH --array={range}
#SBATCH --chdir={cwd}
#SBATCH --output={out}/logs/shard-%a.job-%A.out
#SBATCH --cpus-per-task={cpus}
{time}{mem}{gpus}{partition}{account}{qos}{constraint}set -uo pipefail
shards={shards}
i=${{SLURM_ARRAY_TASK_ID:?submit this script as a job array: {out}/submit.sh}}
dir={out}/shards/$i-of-$shards
export DROPNET_CPU_THREADS=${{SLURM_CPUS_PER_TASK:-1}}   # dropnet's CPU loops: the CPUs of the allocation
study=(
{study}
)
if [[ -s $dir/runs.jsonl ]]; then
  where=(--resume "$dir" --retry-failed)   # a rerun or a requeue: keep the finished runs, retry failed ones
else
  where=(--out "$dir")
fi
{bench} sweep "${{study[@]}}" --shard "$i/$shards" "${{where[@]}}"
rc=$?
if (( rc != 0 )); then
  echo "dropnet study: shard $i/$shards failed (exit $rc); the merge job is cancelled. Once the other tasks are done, 'dropnet-bench merge {out} {out}/shards/*-of-$shards' lists every unfinished run; rerun the failed shards only: {out}/submit.sh $i (several: {out}/submit.sh 2,3)" >&2
fi
exit $rc
)SH",
      fmt::arg("shards", shards), fmt::arg("total", total), fmt::arg("command", command), fmt::arg("out", sh(out.string())),
      fmt::arg("job", sh(job)), fmt::arg("range", array_range), fmt::arg("cwd", sh(cwd.string())),
      fmt::arg("cpus", flags.get_int("cpus-per-task", 1, 100000)), fmt::arg("time", opt("time")),
      fmt::arg("mem", opt("mem")), fmt::arg("gpus", opt("gpus-per-task")), fmt::arg("partition", opt("partition")),
      fmt::arg("account", opt("account")), fmt::arg("qos", opt("qos")), fmt::arg("constraint", opt("constraint")),
      fmt::arg("study", study_words), fmt::arg("bench", sh(bench.string())));

  const std::string merge_script = fmt::format(
      R"SH(#!/bin/bash
# The merge of the study's shards into {out}: runs.jsonl, report.md, sweep.csv, runs.csv, sweep.json, plots, report.html.
# Submitted by {out}/submit.sh to run after every array task succeeded; cancelled when one fails.
#SBATCH --job-name={job}-merge
#SBATCH --chdir={cwd}
#SBATCH --output={out}/logs/merge.job-%j.out
#SBATCH --cpus-per-task=1
#SBATCH --time=00:30:00
#SBATCH --kill-on-invalid-dep=yes
{partition}{account}{qos}set -uo pipefail
exec {bench} merge {out} {out}/shards/*-of-{shards}
)SH",
      fmt::arg("out", sh(out.string())), fmt::arg("job", sh(job)), fmt::arg("cwd", sh(cwd.string())),
      fmt::arg("partition", opt("partition")), fmt::arg("account", opt("account")), fmt::arg("qos", opt("qos")),
      fmt::arg("bench", sh(bench.string())), fmt::arg("shards", shards));

  const std::string submit_script = fmt::format(
      R"SH(#!/bin/bash
# Submits the study: the job array ({out}/study.sbatch), all {shards} shards or only those given
# ("submit.sh 2,3", "submit.sh 5-8"), and a merge job ({out}/merge.sbatch) that runs after all of them
# succeeded and is cancelled as soon as one fails. Prints both job ids.
set -euo pipefail
shards=${{1:-{range}}}
if ! [[ $shards =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*(%[0-9]+)?$ ]]; then
  echo "submit.sh: expected shard numbers from 1 to {shards} such as 2,3 or 1-{shards}, got '$shards'" >&2
  exit 2
fi
mkdir -p {out}/logs {out}/shards
array=$(sbatch --parsable --array="$shards" {out}/study.sbatch)
array=${{array%%;*}}
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes {out}/merge.sbatch)
merge=${{merge%%;*}}
echo "dropnet study: array job $array (shards $shards of {shards}), merge job $merge (after every shard succeeded)"
echo "dropnet study: watch with: squeue -j $array,$merge; logs in {out}/logs; reports in {out} after the merge"
)SH",
      fmt::arg("out", sh(out.string())), fmt::arg("shards", shards), fmt::arg("range", array_range));

  write_text(out / "study.sbatch", array_script, true);
  write_text(out / "merge.sbatch", merge_script, true);
  write_text(out / "submit.sh", submit_script, true);
  fmt::print(stderr, "[slurm] {} runs in {} shards; wrote {}/study.sbatch (the job array), merge.sbatch and submit.sh\n",
             total, shards, out.string());
  if (submit_text == "no") {
    fmt::print("submit with: {}/submit.sh\n", sh(out.string()));
    return kExitOk;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const int status = std::system(("bash " + sh((out / "submit.sh").string())).c_str());
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(fmt::format("{}/submit.sh failed (exit {}): is sbatch on the PATH and the cluster reachable?",
                            out.string(), WIFEXITED(status) ? WEXITSTATUS(status) : -1));
  return kExitOk;
}

}  // namespace dropnet::bench
