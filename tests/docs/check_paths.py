#!/usr/bin/env python3
"""check_paths.py: the README and docs/ name no path outside the repository.

A reader has the repository, not the machine it was written on: a relative path that climbs out of the
checkout (`../shared/...` from the root) or an absolute path of the development machines (/work/...)
is a broken reference. Relative paths are resolved from the file that names them (Markdown links) and
from the repository root as well (paths in code spans are often written from there); a path is right if
either way it names something that exists inside the repository.

    tests/docs/check_paths.py SOURCE_DIR
"""
import pathlib
import re
import sys

ABSOLUTE = re.compile(r"(?<![\w.:/])/(?:work|mnt|scratch)/[\w./-]+")
RELATIVE = re.compile(r"(?<![\w./])((?:\.\./)+[\w./-]*)")


def main(root):
    root = root.resolve()
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted(root.glob("*/README.md"))]
    problems = []
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            for m in ABSOLUTE.finditer(line):
                problems.append(f"{f.relative_to(root)}:{n}: absolute path of a machine: {m.group(0)}")
            for m in RELATIVE.finditer(line):
                rel = m.group(1)
                resolved = [(base / rel).resolve() for base in (f.parent, root)]
                if not any((p == root or root in p.parents) and p.exists() for p in resolved):
                    problems.append(f"{f.relative_to(root)}:{n}: path outside the repository (or to nothing "
                                    f"in it): {rel}")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"check_paths: {len(files)} files, {len(problems)} paths outside the repository")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
