"""Short-session child: ``short_sessions.py TOOL``.

Many back-to-back sessions of a fixed length of CPU-bound Python (as many
short requests, one after another), interval 1 ms. Prints per length the
samples per session against what the interval implies (duration / interval)
and how much of the sessions' duration the profiles' wall time covers."""
from __future__ import annotations

import sys
import time

from common import emit
from tools import Run

LENGTHS = (0.0005, 0.002, 0.005, 0.02)
BUDGET_S = 0.4


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def profile_wall(run: Run) -> float:
    if run.tool.startswith("reqprof"):
        return float(run.result.wall_s)
    root = run.result.root_frame()
    return float(root.time) if root is not None else 0.0


def main(tool: str) -> None:
    warm = Run(tool, interval=0.001)
    warm.start()
    spin(0.005)
    warm.stop()
    out = {}
    for length in LENGTHS:
        n = max(20, int(BUDGET_S / length))
        samples = 0
        duration = wall = 0.0
        for _ in range(n):
            run = Run(tool, interval=0.001)
            run.start()
            spin(length)
            run.stop()
            samples += run.samples() or 0
            duration += run.duration() or 0.0
            wall += profile_wall(run)
        out[repr(length)] = {"sessions": n, "samples_per_session": samples / n,
                             "expected": duration / n / 0.001, "coverage": wall / duration}
    emit(out)


if __name__ == "__main__":
    main(sys.argv[1])
