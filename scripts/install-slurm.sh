#!/usr/bin/env bash
# install-slurm.sh: makes sure Slurm and munge are installed, for the bench_slurm test (tests/slurm/) and
# for trying `dropnet-bench slurm` on this machine. Idempotent: checks for slurmctld, slurmd, munged and
# sbatch, and installs Debian's slurm-wlm and munge with apt-get only when one is missing and root (or
# sudo without a password) is available; otherwise prints what to install and exits 1. It installs only:
# no daemon is started or enabled (the test starts its own, under a temporary directory).
set -euo pipefail

have_all() {
  local b
  for b in slurmctld slurmd munged sbatch; do
    command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b ]] || return 1
  done
}

if have_all; then
  echo "install-slurm.sh: slurmctld, slurmd, munged and sbatch are installed"
  exit 0
fi
if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "install-slurm.sh: Slurm is missing and this user cannot install packages; as root run:" >&2
  echo "  apt-get install -y --no-install-recommends slurm-wlm munge" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-slurm.sh: Slurm is missing and there is no apt-get here; install Slurm (slurmctld, slurmd," \
       "sbatch) and munge with this system's package manager" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The packages' own services (munge, slurmd, slurmctld) are not used: the test starts its own daemons.
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends slurm-wlm munge
have_all || { echo "install-slurm.sh: slurm-wlm and munge were installed but a binary is still missing" >&2; exit 1; }
echo "install-slurm.sh: installed slurm-wlm and munge ($(/usr/sbin/slurmctld -V))"
