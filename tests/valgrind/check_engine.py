"""Runs engine_workload.py under valgrind memcheck and fails on any error
whose stack goes through reqprof's extension.

CPython itself is not clean under memcheck without its suppression file
(Misc/valgrind-python.supp, not shipped with an installed Python), so errors
are attributed by their stacks: an error counts when a frame of it is in one
of the extension's source files."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORE = HERE.parents[1] / "src" / "reqprof" / "_core"


def main() -> int:
    sources = sorted(p.name for p in CORE.glob("*.c"))
    ours = re.compile(r"\((?:%s):\d+\)|_core\.cpython" % "|".join(map(re.escape, sources)))
    log = HERE.parents[1] / "build" / "valgrind-engine.log"
    log.parent.mkdir(exist_ok=True)
    cmd = [
        "valgrind", "--error-exitcode=0", "--leak-check=no", "--num-callers=40",
        f"--log-file={log}", sys.executable, str(HERE / "engine_workload.py"),
    ]
    env = {**os.environ, "PYTHONMALLOC": "malloc"}
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if run.returncode != 0 or not run.stdout.startswith("ok"):
        print(run.stdout, run.stderr, sep="\n")
        print("engine workload failed under valgrind")
        return 1
    blocks = re.split(r"\n==\d+== \n", log.read_text())
    errors = [b for b in blocks if ours.search(b) and re.search(r"== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and destination)", b)]
    total = re.findall(r"ERROR SUMMARY: (\d+) errors", log.read_text())
    print(f"valgrind: {len(errors)} errors in reqprof's code "
          f"({total[-1] if total else '?'} in all, the rest in CPython; log: {log.name})")
    for block in errors[:5]:
        print(block)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
