"""Overhead child: ``overhead.py WORKLOAD TOOL``.

Builds the workload, runs it once under the tool (warm-up: caches, the
sampler thread), then times it REPEATS times bare and REPEATS times under the
tool, alternating, and prints the best of each, in wall time and in CPU time
of the whole process (all threads: the sampler's too):
``{"bare_s", "tool_s", "bare_cpu_s", "tool_cpu_s", "samples"}``. With TOOL
``bare`` both sides are bare runs (the noise floor of the ratio)."""
from __future__ import annotations

import sys
import time
from typing import Callable

from common import emit
from tools import Run, timed
from workloads import WORKLOADS

REPEATS = 3


def measure(run: Run, work: Callable[[], object]) -> tuple[float, float]:
    cpu = time.process_time()
    wall = timed(run, work)
    return wall, time.process_time() - cpu


def main(workload: str, tool: str) -> None:
    work = WORKLOADS[workload]()
    timed(Run(tool, interval=0.001), work)
    bare, profiled, samples = [], [], None
    for _ in range(REPEATS):
        bare.append(measure(Run("bare"), work))
        run = Run(tool, interval=0.001)
        profiled.append(measure(run, work))
        samples = run.samples()
    emit({"bare_s": min(w for w, _ in bare), "tool_s": min(w for w, _ in profiled),
          "bare_cpu_s": min(c for _, c in bare), "tool_cpu_s": min(c for _, c in profiled),
          "samples": samples})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
