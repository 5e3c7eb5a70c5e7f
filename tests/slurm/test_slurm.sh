#!/usr/bin/env bash
# test_slurm.sh: a dropout study run as a Slurm job array on a real single-node Slurm started here, from
# Debian's slurm-wlm and munge: munged, slurmctld and slurmd as root in the foreground, every file, socket
# and port under a temporary directory (no systemd, no cgroups, no accounting). Checks:
#   1. `dropnet-bench slurm --submit` of 2 rates x 2 seeds as 4 array tasks, then the dependent merge job,
#      gives sweep.csv, sweep.json, report.md and report.html byte-identical to the same study in one process;
#   2. a task that fails (DROPNET_BENCH_FAIL_RUN in one shard) leaves its array task FAILED and the merge job
#      cancelled, `dropnet-bench merge` lists the failed run and prints a command that reruns that shard only,
#      and that command completes the study (byte-identical again).
# The daemons it started are stopped by their process ids on success and on failure. Exits 77 (skipped)
# when Slurm is not installed (run scripts/install-slurm.sh) or cannot be started here.
#
#   tests/slurm/test_slurm.sh BUILD/dropnet-bench SOURCE_DIR
set -uo pipefail

bench=${1:?usage: test_slurm.sh path/to/dropnet-bench source-dir}
src=${2:?usage: test_slurm.sh path/to/dropnet-bench source-dir}
skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
start=$SECONDS
say() { echo "[$((SECONDS - start))s] $*"; }

PATH=$PATH:/usr/sbin:/sbin  # where Debian puts the daemons
missing=()
for b in munged slurmctld slurmd sbatch sinfo squeue scontrol scancel; do command -v "$b" >/dev/null || missing+=("$b"); done
((${#missing[@]} == 0)) || skip "Slurm is not installed (missing: ${missing[*]}): run scripts/install-slurm.sh"
bench=$(realpath "$bench") src=$(realpath "$src")
[[ $(id -u) -eq 0 ]] || skip "the single-node Slurm of this test runs its daemons as root; run the test as root"

tmp=$(mktemp -d /tmp/dropnet-slurm.XXXXXX)
chmod 755 "$tmp"  # the daemons' sockets live below it: execute permission for all
pids=()
cleanup() {
  local rc=$?
  if [[ -f $tmp/etc/slurm.conf ]] && ((${#pids[@]} > 1)); then
    # Jobs of this private cluster only (it has no other users); bounded wait for them to go.
    SLURM_CONF=$tmp/etc/slurm.conf timeout 5 scancel --full --quiet --user=root 2>/dev/null || true
    for _ in $(seq 1 50); do
      [[ -z $(SLURM_CONF=$tmp/etc/slurm.conf timeout 2 squeue -h -o %i 2>/dev/null) ]] && break
      sleep 0.1
    done
  fi
  for ((k = ${#pids[@]} - 1; k >= 0; k--)); do kill "${pids[k]}" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if ((rc != 0 && rc != 77)); then
    for log in "$tmp"/log/*.log; do [[ -f $log ]] && { echo "--- $log (last lines)"; tail -n 15 "$log"; }; done >&2
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mkdir -p "$tmp"/{etc,munge,log,run,state,spool,work}
chmod 700 "$tmp/munge"
chmod 755 "$tmp/run"

# munge: its own key, socket, pid and seed files.
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
sock=$tmp/run/munge.socket
munged -F --force --socket="$sock" --key-file="$tmp/munge/munge.key" --pid-file="$tmp/run/munged.pid" \
  --seed-file="$tmp/munge/munge.seed" --log-file="$tmp/log/munged.log" 2>>"$tmp/log/munged.log" &
pids+=($!)

# Two free loopback ports, chosen by the OS.
read -r ctld_port slurmd_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
host=$(hostname -s)
cpus=$(nproc)
cat >"$tmp/etc/slurm.conf" <<EOF
ClusterName=dropnettest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
MpiDefault=none
ReturnToService=2
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/run/slurmctld.pid
SlurmdPidFile=$tmp/run/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
DependencyParameters=kill_invalid_depend
MinJobAge=600
MailProg=/bin/true
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$tmp/etc/slurm.conf

for _ in $(seq 1 50); do [[ -S $sock ]] && break; sleep 0.1; done
[[ -S $sock ]] || skip "munged did not start here (see its log: $(tail -n 3 "$tmp/log/munged.log" | tr '\n' ' '))"
slurmctld -D -i -f "$SLURM_CONF" >>"$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N "$host" >>"$tmp/log/slurmd.out" 2>&1 &
pids+=($!)
up=
for _ in $(seq 1 100); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
  [[ $state == idle ]] && { up=1; break; }
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || break 2; done
  sleep 0.1
done
[[ -n $up ]] || skip "the single-node Slurm did not come up here (node state '${state:-none}'; slurmctld: $(tail -n 2 "$tmp/log/slurmctld.log" 2>/dev/null | tr '\n' ' '); slurmd: $(tail -n 2 "$tmp/log/slurmd.log" 2>/dev/null | tr '\n' ' '))"
say "Slurm $(sinfo -V | cut -d' ' -f2) up: node $host, $cpus CPUs, ports $ctld_port and $slurmd_port"

# State of one job (or array task: JOBID_TASK) as scontrol shows it.
job_field() { scontrol -o show job "$1" 2>/dev/null | grep -o "$2=[^ ]*" | head -n 1 | cut -d= -f2; }
# Waits (at most $3 s) until the job is in one of the states of the regex $2; prints the state.
wait_state() {
  local s=
  for _ in $(seq 1 $(($3 * 5))); do
    s=$(job_field "$1" JobState)
    [[ $s =~ ^($2)$ ]] && { echo "$s"; return 0; }
    sleep 0.2
  done
  echo "${s:-unknown}"
  return 1
}

cd "$src" || fail "cannot enter $src"
study=(--rates 0,0.5 --seeds 2 --mc-samples 2 --epochs 1 --limit 300 --test-limit 100 --batch-size 50
       --device cpu --data data/cifar10-sample)
# The same study in one process, meanwhile (1 thread, as each array task with --cpus-per-task 1).
DROPNET_CPU_THREADS=1 "$bench" sweep "${study[@]}" --out "$tmp/work/single" >/dev/null 2>"$tmp/log/single.log" &
single=$!
pids+=($single)

# 1. The whole study through the generated scripts.
"$bench" slurm --shards 4 --cpus-per-task 1 --time 10 --mem 500 --job-name dropnet-test "${study[@]}" \
  --out "$tmp/work/study" --submit >"$tmp/log/submit1.out" 2>&1 || { cat "$tmp/log/submit1.out" >&2; fail "slurm --submit"; }
array=$(grep -o 'array job [0-9]*' "$tmp/log/submit1.out" | grep -o '[0-9]*$')
merge=$(grep -o 'merge job [0-9]*' "$tmp/log/submit1.out" | grep -o '[0-9]*$')
[[ -n $array && -n $merge ]] || { cat "$tmp/log/submit1.out" >&2; fail "no job ids printed"; }
grep -q '^#SBATCH --array=1-4$' "$tmp/work/study/study.sbatch" || fail "study.sbatch has no 4-task array"
say "submitted array job $array and merge job $merge"
s=$(wait_state "$merge" 'COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY' 60)
[[ $s == COMPLETED ]] || { cat "$tmp/work/study/logs/"* >&2 2>/dev/null; fail "merge job $merge ended $s"; }
for i in 1 2 3 4; do
  [[ $(job_field "${array}_$i" JobState) == COMPLETED ]] || fail "array task $i: $(job_field "${array}_$i" JobState)"
  [[ -s $tmp/work/study/shards/$i-of-4/runs.jsonl ]] || fail "shard $i wrote no runs.jsonl"
done
wait "$single" || { cat "$tmp/log/single.log" >&2; fail "the single-process study failed"; }
say "4 array tasks and the merge job completed"
for f in sweep.csv sweep.json report.md report.html runs.csv; do
  cmp "$tmp/work/single/$f" "$tmp/work/study/$f" || fail "$f of the Slurm study differs from the single-process study's"
done
say "sweep.csv, sweep.json, report.md, report.html, runs.csv: byte-identical to the single-process study"

# 2. One task fails: its run is recorded as failed, the shard exits 1, the merge job is cancelled.
export DROPNET_BENCH_FAIL_RUN="rate=0.5,max_norm=2,seed=1"   # the run of shard 2 of 4
"$bench" slurm --shards 4 --cpus-per-task 1 --time 10 --mem 500 --job-name dropnet-test "${study[@]}" \
  --out "$tmp/work/failing" --submit >"$tmp/log/submit2.out" 2>&1 || { cat "$tmp/log/submit2.out" >&2; fail "slurm --submit"; }
unset DROPNET_BENCH_FAIL_RUN
array=$(grep -o 'array job [0-9]*' "$tmp/log/submit2.out" | grep -o '[0-9]*$')
merge=$(grep -o 'merge job [0-9]*' "$tmp/log/submit2.out" | grep -o '[0-9]*$')
s=$(wait_state "$merge" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 60)
[[ $s == CANCELLED ]] || fail "merge job $merge after a failed task: $s, expected CANCELLED"
for i in 1 2 3 4; do
  s=$(wait_state "${array}_$i" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 30)
  if ((i == 2)); then
    [[ $s == FAILED && $(job_field "${array}_$i" ExitCode) == 1:0 ]] \
      || fail "array task 2: $s, exit $(job_field "${array}_$i" ExitCode), expected FAILED with exit 1"
  else
    [[ $s == COMPLETED ]] || fail "array task $i: $s, expected COMPLETED"
  fi
done
say "task 2 FAILED (exit 1:0), tasks 1, 3, 4 COMPLETED, merge job $merge $(job_field "$merge" JobState) ($(job_field "$merge" Reason))"
grep -q 'shard 2/4: 1 of its 1 runs failed (rate=0.5,max_norm=2,seed=1: injected failure' \
  "$tmp/work/failing/logs/shard-2.job-$array.out" || fail "the task log does not say which run failed"
grep -q "submit.sh 2" "$tmp/work/failing/logs/shard-2.job-$array.out" || fail "the task log gives no rerun command"
[[ -f $tmp/work/failing/report.md ]] && fail "a report was written although a shard failed"

# The failure as merge reports it, and the rerun command it prints.
if "$bench" merge "$tmp/work/failing" "$tmp/work/failing"/shards/*-of-4 >/dev/null 2>"$tmp/log/merge2.err"; then
  fail "merge accepted a study with a failed run"
fi
grep -q '^dropnet-bench merge: shard 2/4: 1 of 4 runs unfinished: rate=0.5,max_norm=2,seed=1 (failed: injected failure' \
  "$tmp/log/merge2.err" || { cat "$tmp/log/merge2.err" >&2; fail "merge does not list the failed run by shard"; }
rerun=$(grep -o "rerun only those shards.*: [^ ]*/submit.sh [0-9,]*$" "$tmp/log/merge2.err" | sed 's/.*: //')
[[ $rerun == "$tmp/work/failing/submit.sh 2" ]] || { cat "$tmp/log/merge2.err" >&2; fail "rerun command '$rerun'"; }
say "merge lists the failed run; rerun command: $rerun"
$rerun >"$tmp/log/submit3.out" 2>&1 || { cat "$tmp/log/submit3.out" >&2; fail "the rerun command failed"; }
array=$(grep -o 'array job [0-9]*' "$tmp/log/submit3.out" | grep -o '[0-9]*$')
merge=$(grep -o 'merge job [0-9]*' "$tmp/log/submit3.out" | grep -o '[0-9]*$')
[[ $(job_field "$array" ArrayTaskId) == 2 || $(job_field "${array}_2" ArrayTaskId) == 2 ]] \
  || fail "the rerun array is not shard 2 alone: $(scontrol -o show job "$array" | grep -o 'ArrayTaskId=[^ ]*' | tr '\n' ' ')"
s=$(wait_state "$merge" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 60)
[[ $s == COMPLETED ]] || { cat "$tmp/work/failing/logs/"* >&2; fail "merge job after the rerun: $s"; }
grep -q "resuming .*: 0 of 1 runs (shard 2/4) already finished, 1 failed run to retry" "$tmp/work/failing/logs/shard-2.job-$array.out" \
  || fail "the rerun did not resume shard 2 retrying its failed run"
for f in sweep.csv sweep.json report.md report.html runs.csv; do
  cmp "$tmp/work/single/$f" "$tmp/work/failing/$f" || fail "$f after the rerun differs from the single-process study's"
done
say "the rerun of shard 2 alone completed the study: byte-identical to the single-process study"
echo "test_slurm.sh: all checks passed in $((SECONDS - start)) s"
