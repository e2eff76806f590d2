"""Cost child: ``cost_ticks.py WORKLOAD [SECONDS]``. Where a workload's slowdown
under reqprof goes, in one process.

Builds the workload, warms it up under each tool, then runs ROUNDS rounds
of bare, reqprof (1 ms) and pyinstrument (1 ms) in a shuffled order. Around
each run it reads every thread's schedstat and context switches
(``common.proc_threads``) and, for reqprof, the engine's counters
(``_core.stats()``). Prints per run: wall time; the main thread's time on a
CPU, waiting for a CPU and blocked (the rest of the wall time: for a thread
that does not sleep, waiting for the GIL); the engine threads' CPU and
context switches; ticks, GIL waits, tick time, GIL hand-overs, assisted
waits.

With SECONDS, it only runs the workload under reqprof again and again for
that long (for perf to look at) and prints ``{}``."""
from __future__ import annotations

import os
import random
import sys
import threading
import time
from typing import Any

from common import emit, proc_threads, thread_delta
from tools import Run, timed
from workloads import WORKLOADS

ROUNDS = 3
TOOLS = ("bare", "reqprof", "pyinstrument")
ENGINE_THREADS = {"reqprof-sampler": "sampler", "reqprof-assist": "assist", "reqprof-watch": "watch"}
STATS = ("ticks", "late_ticks", "gil_wait_ns", "tick_ns", "assisted_waits", "gil_switches", "samples",
         "snapshot_samples",
         "gc_collections")


def engine_stats() -> dict[str, int]:
    from reqprof import _core

    s = _core.stats()
    return {k: int(s.get(k, 0)) for k in STATS}


def one(tool: str, work: Any) -> dict[str, Any]:
    main = threading.get_native_id()
    stats0 = engine_stats() if tool == "reqprof" else None
    threads0 = proc_threads()
    wall = timed(Run(tool, interval=0.001), work)
    threads = thread_delta(threads0, proc_threads())
    m = threads[main]
    out: dict[str, Any] = {
        "tool": tool, "wall_ns": wall * 1e9, "main_run_ns": m["run_ns"], "main_runq_ns": m["runq_ns"],
        "main_blocked_ns": max(0.0, wall * 1e9 - m["run_ns"] - m["runq_ns"]),
        "main_vcs": m["vcs"], "main_ivcs": m["ivcs"],
    }
    for t in threads.values():
        role = ENGINE_THREADS.get(t["comm"])
        if role is not None:
            for k in ("run_ns", "runq_ns", "vcs", "ivcs"):
                out[f"{role}_{k}"] = out.get(f"{role}_{k}", 0) + t[k]
    if stats0 is not None:
        stats1 = engine_stats()
        out.update({k: stats1[k] - stats0[k] for k in STATS})
    return out


def main(workload: str, seconds: float = 0.0) -> None:
    work = WORKLOADS[workload]()
    if seconds:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            one("reqprof", work)
        emit({})
        return
    for tool in TOOLS:
        one(tool, work)                     # warm-up: caches, the threads
    rng = random.Random(os.getpid())
    runs = []
    for _ in range(ROUNDS):
        order = list(TOOLS)
        rng.shuffle(order)
        runs += [one(tool, work) for tool in order]
    emit({"workload": workload, "runs": runs})


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
