#!/usr/bin/env python3
"""check_ptx.py: the CUDA kernels that promise to round as the CPU backend does, checked in the PTX that
nvcc makes of them with the build's own flags.

The CPU backend is the reference the CUDA backend is tested against, bit for bit where the math is shared
(kernels/*_math.hpp). On the GPU that rests on nvcc flags the emulated device never sees: -fmad=false on
the files whose multiply-adds must round twice, and no --use_fast_math anywhere those kernels divide or
take square roots. Deleting such a flag changes nothing on a machine without a GPU, so this test reads each
kernel's compile command from the build (compile_commands.json: the exact flags the library was built
with), compiles it to PTX for the newest architecture in that command, and fails where

  * a file promising "exact" has a floating-point fma that its source does not write: the PTX has more
    fma.rn.f32/f64 than the same command with -fmad=false appended (the source's own fmaf calls stay
    fmas either way);
  * a promised file has an approximate or flush-to-zero floating-point instruction (.approx, .ftz):
    what --use_fast_math, --ftz=true, --prec-div=false or --prec-sqrt=false produce.

    tests/ptx/check_ptx.py BUILD_DIR SOURCE_DIR              # check the kernels (CTest: ptx_flags)
    tests/ptx/check_ptx.py BUILD_DIR SOURCE_DIR --self-test  # the checker fails where it should

Exits 0 when every promise holds, 1 naming the file, the instruction and the flag to look at, and 77
(skipped) when the build has no compile_commands.json (a generator other than Makefiles or Ninja).
"""
import json
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile

# What each kernel file promises, and why (the tests that hold the CPU and CUDA results equal).
POLICY = {
    "kernels/adam.cu": ("exact", "Adam's update equals the CPU's bit for bit (kernels/adam_math.hpp)"),
    "kernels/noise.cu": ("exact", "the normal draws equal the CPU's bit for bit (kernels/normal_math.hpp)"),
    "kernels/dropout.cu": ("no-approx", "dropout's masks and 1/keep scale equal the CPU's; its one fma, "
                                        "x * 2^-32 + 2^-33, is exact (kernels/philox.hpp)"),
    "kernels/dropblock.cu": ("no-approx", "DropBlock's masks and scale equal the CPU's"),
    "kernels/maxnorm.cu": ("no-approx", "max-norm's square root and division are IEEE-rounded"),
}

FMA = re.compile(r"^\s*(?:@%p\d+\s+)?fma\.rn(?:\.ftz)?(?:\.sat)?\.(?:f32|f64)\b")
APPROX = re.compile(r"^\s*(?:@%p\d+\s+)?[a-z0-9]+(?:\.[a-z0-9]+)*\.(?:approx|ftz)\b")
ARCH_FLAG = re.compile(r"^(?:--generate-code|-gencode|--gpu-architecture|-arch|--gpu-code|-code)(?:=|$)")


def fail(msg):
    print(f"check_ptx: {msg}", file=sys.stderr)
    return 1


def ptx_command(entry_command, source=None, extra=()):
    """The build's command for one .cu file, made to write PTX for the newest compute_XX it names."""
    words = shlex.split(entry_command)
    archs = [int(m) for w in words for m in re.findall(r"compute_(\d+)", w)]
    if not archs:
        raise RuntimeError(f"no compute_XX architecture in: {entry_command}")
    out, skip = [], False
    for i, w in enumerate(words):
        if skip:
            skip = False
            continue
        if w in ("-c", "--compile"):
            continue
        if w in ("-o", "--output-file") or w in ("-gencode", "-arch", "--gpu-architecture", "-code", "--gpu-code"):
            skip = True
            continue
        if w.startswith("-o") and len(w) > 2 and not w.startswith("-options") or ARCH_FLAG.match(w):
            continue
        out.append(w)
    if source is not None:
        out = [source if w.endswith(".cu") and not w.startswith("-") else w for w in out]
    return out + [f"-arch=compute_{max(archs)}", *extra, "-ptx", "-o"]


def compile_ptx(entry, tmp, name, source=None, extra=()):
    cmd = ptx_command(entry["command"], source, extra)
    path = pathlib.Path(tmp) / name.replace("/", "_")
    r = subprocess.run(cmd + [str(path)], cwd=entry["directory"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"nvcc failed ({' '.join(cmd)}):\n{r.stderr}")
    return path.read_text().splitlines()


def check_one(entry, promise, tmp, label, source=None, extra=()):
    """Problems with one file under `promise` ("exact" or "no-approx"); empty when it keeps it."""
    built = compile_ptx(entry, tmp, label + ".ptx", source, extra)
    problems = []
    approx = [l.strip() for l in built if APPROX.match(l)]
    if approx:
        problems.append(f"{label}: {len(approx)} approximate or flush-to-zero instruction(s), e.g. "
                        f"'{approx[0]}' (--use_fast_math, --ftz=true, --prec-div=false or --prec-sqrt=false?)")
    if promise == "exact":
        reference = compile_ptx(entry, tmp, label + ".nofmad.ptx", source, (*extra, "-fmad=false"))
        n_built = sum(1 for l in built if FMA.match(l))
        n_ref = sum(1 for l in reference if FMA.match(l))
        if n_built != n_ref:
            first = next(l.strip() for l in built if FMA.match(l))
            problems.append(f"{label}: {n_built} fma instructions where the source writes {n_ref} "
                            f"(contracted multiply-adds, e.g. '{first}': is -fmad=false missing?)")
    return problems


def load_entries(build):
    db = pathlib.Path(build) / "compile_commands.json"
    if not db.exists():
        print(f"check_ptx: skipped: no {db} (CMAKE_EXPORT_COMPILE_COMMANDS needs the Makefile or Ninja "
              "generator)", file=sys.stderr)
        sys.exit(77)
    entries = {}
    for e in json.loads(db.read_text()):
        # The library's own objects (the emulated device compiles the same files as host C++).
        if e["file"].endswith(".cu") and "nvcc" in e["command"].split()[0]:
            entries.setdefault(pathlib.Path(e["file"]).resolve(), e)
    return entries


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    build, src = argv[1], pathlib.Path(argv[2]).resolve()
    entries = load_entries(build)
    with tempfile.TemporaryDirectory() as tmp:
        if "--self-test" in argv[3:]:
            return self_test(entries, src, tmp)
        problems = []
        for rel, (promise, why) in POLICY.items():
            entry = entries.get(src / rel)
            if entry is None:
                problems.append(f"{rel}: not in the build's compile commands (renamed? update POLICY)")
                continue
            found = check_one(entry, promise, tmp, rel)
            problems += [f"{p} -- promised because {why}" for p in found]
            if not found:
                print(f"check_ptx: {rel}: {promise} holds")
    for p in problems:
        fail(p)
    return 1 if problems else 0


def self_test(entries, src, tmp):
    """The checker on tests/ptx/contracting_kernel.cu under kernels/adam.cu's flags: passes as compiled,
    fails without -fmad=false (contraction) and with --use_fast_math (approximation)."""
    entry = dict(entries[src / "kernels/adam.cu"])
    subject = str(src / "tests/ptx/contracting_kernel.cu")
    if not re.search(r"-fmad=false", entry["command"]):
        return fail("kernels/adam.cu is built without -fmad=false: the self-test needs its flags as promised")
    without = dict(entry, command=re.sub(r"\s-fmad=false", "", entry["command"]))
    cases = [("as adam.cu is compiled", entry, (), False),
             ("without -fmad=false", without, (), True),
             ("with --use_fast_math", entry, ("--use_fast_math",), True)]
    bad = 0
    for what, e, extra, should_fail in cases:
        problems = check_one(e, "exact", tmp, "contracting_kernel", subject, extra)
        verdict = "fails" if problems else "passes"
        print(f"check_ptx self-test: {what}: {verdict}" + (f" ({problems[0]})" if problems else ""))
        if bool(problems) != should_fail:
            bad += 1
            fail(f"self-test: {what} should {'fail' if should_fail else 'pass'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
