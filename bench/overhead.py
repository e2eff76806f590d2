"""Overhead child: ``overhead.py WORKLOAD TOOL``.

Builds the workload, runs it once under the tool (warm-up: caches, the
sampler thread), then times it twice bare and twice under the tool,
alternating, and prints the best of each:
``{"bare_s": ..., "tool_s": ..., "samples": ...}``. With TOOL ``bare``
both figures are bare runs (the noise floor of the ratio)."""
from __future__ import annotations

import sys

from common import emit
from tools import Run, timed
from workloads import WORKLOADS

REPEATS = 2


def main(workload: str, tool: str) -> None:
    work = WORKLOADS[workload]()
    timed(Run(tool, interval=0.001), work)
    bare, profiled, samples = [], [], None
    for _ in range(REPEATS):
        bare.append(timed(Run("bare"), work))
        run = Run(tool, interval=0.001)
        profiled.append(timed(run, work))
        samples = run.samples()
    emit({"bare_s": min(bare), "tool_s": min(profiled), "samples": samples})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
