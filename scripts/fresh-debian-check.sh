#!/usr/bin/env bash
# fresh-debian-check.sh: the README's two commands on a fresh, minimal Debian root file system, as a new
# user would run them (as root, nothing but Debian's minbase installed).
#
#   sudo scripts/fresh-debian-check.sh RELEASE        RELEASE: bookworm (Debian 12) or trixie (Debian 13)
#
# 1. debootstrap --variant=minbase RELEASE into a temporary folder, from the Debian mirror that apt uses
#    on this machine (the first .../debian URI in /etc/apt/sources.list*; MIRROR=URL overrides);
# 2. git clone of this repository's HEAD (the committed state: commit first) into /root/dropnet there;
# 3. inside, with chroot (and /proc, /sys, /dev mounted): scripts/train.sh, then scripts/test.sh;
# 4. prints a summary (release, commit, versions of the compiler, CMake, fmt, OpenBLAS, Catch2, the time
#    and exit code of each command, ctest's closing lines) and removes the root file system.
#
# Needs root, debootstrap (installed through apt-get when missing) and the package mirror; it downloads
# a few hundred MB and builds the whole project, so on 2 cores it takes 20-40 minutes. It is a script to
# run by hand (results in docs/portability.md), not part of CI. There is no CUDA inside the root file
# system: the CPU build runs. KEEP=1 keeps the root file system (its path is printed); OUT=DIR puts the
# full log in DIR/RELEASE.log (default: build-fresh/ in the repository). Exits with the first failing
# command's exit code, 0 when both passed.
set -euo pipefail

release=${1:-}
case "$release" in
  bookworm | trixie | forky | sid) ;;
  *) echo "usage: $0 bookworm|trixie" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "fresh-debian-check: needs root (debootstrap, chroot, mount)" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${OUT:-$repo/build-fresh}
mkdir -p "$out"
log=$out/$release.log
commit=$(git -C "$repo" rev-parse HEAD)
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
  echo "fresh-debian-check: note: uncommitted changes are not checked (it clones HEAD, $commit)" >&2

if [ -z "${MIRROR:-}" ]; then
  MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -Eo 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)
  [ -n "$MIRROR" ] || { echo "fresh-debian-check: no Debian mirror in apt's sources; set MIRROR=URL" >&2; exit 2; }
fi
command -v debootstrap > /dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap > /dev/null; }

work=$(mktemp -d /var/tmp/dropnet-fresh-"$release".XXXXXX)
root=$work/root
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2> /dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "fresh-debian-check: kept $root"; else rm -rf "$work"; fi
}
trap cleanup EXIT

say() { echo "[fresh-debian-check $release $(date -u +%H:%M:%S)] $*" | tee -a "$log"; }
: > "$log"
say "commit $commit, root $root"

t0=$(date +%s)
debootstrap --variant=minbase "$release" "$root" "$MIRROR" >> "$log" 2>&1 ||
  { say "debootstrap failed (see $log)"; exit 1; }
say "debootstrap: $(( $(date +%s) - t0 )) s, $(du -sh "$root" | cut -f1)"

git clone --quiet --no-hardlinks "$repo" "$root/root/dropnet"
git -C "$root/root/dropnet" checkout --quiet "$commit"
rm -rf "$root/root/dropnet/.git"   # a user's copy has one, but nothing in the build may depend on git
cp /etc/resolv.conf "$root/etc/resolv.conf" 2> /dev/null || true
for m in proc sys dev dev/pts; do
  mkdir -p "$root/$m"
  case $m in
    proc) mount -t proc proc "$root/proc" ;;
    sys) mount -t sysfs sys "$root/sys" ;;
    dev) mount --bind /dev "$root/dev" ;;
    dev/pts) mount -t devpts devpts "$root/dev/pts" ;;
  esac
  mounted+=("$root/$m")
done

in_root() {  # in_root COMMAND: runs a shell command as root inside, in a clean environment
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -c "$1"
}

status=0
run_step() {  # run_step NAME COMMAND
  local name=$1 cmd=$2 t rc=0
  say "$name: $cmd"
  t=$(date +%s)
  in_root "cd /root/dropnet && $cmd" > "$out/$release.$name.log" 2>&1 || rc=$?
  cat "$out/$release.$name.log" >> "$log"
  say "$name: exit $rc in $(( $(date +%s) - t )) s"
  [ $rc -eq 0 ] || [ $status -ne 0 ] || status=$rc
  return 0
}
run_step train scripts/train.sh
run_step test scripts/test.sh

{
  echo
  echo "== summary: $release, commit $commit, $(date -u +%Y-%m-%dT%H:%MZ)"
  in_root '. /etc/os-release; echo "os: $PRETTY_NAME"
           echo "compiler: $(c++ --version | head -n 1)"
           echo "cmake: $(cmake --version | head -n 1)"
           dpkg-query -W -f="\${Package} \${Version}\n" libfmt-dev catch2 libcatch2-dev libopenblas-dev zlib1g-dev 2>/dev/null | sed "s/^/package: /"' || true
  echo "-- train.sh:"
  grep -m 1 "^dropnet: CUDA backend" "$out/$release.train.log" || true
  tail -n 3 "$out/$release.train.log"
  echo "-- test.sh:"
  grep -m 1 "^dropnet: CUDA backend" "$out/$release.test.log" || true
  grep -E "tests passed|tests failed out of|^The following tests FAILED|\(Failed\)|\*\*\*" "$out/$release.test.log" || true
  echo "== $release: $([ $status -eq 0 ] && echo PASSED || echo "FAILED (exit $status)")"
} | tee -a "$log"
exit $status
