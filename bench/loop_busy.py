"""Event-loop child: ``loop_busy.py TASKS``.

TASKS asyncio tasks on one loop, each profiled in its own session
(interval 1 ms), each spinning 0.5 ms of CPU then sleeping 2 ms, for about
a second: at a tick one task runs and the others wait, some of them ready
(their timer is due) while another spins. Alternating runs with the event
loop's detection off and on (``_core._set_loop_busy``), three of each, and
bare runs: prints the mean tick time (the sampler's work with the GIL
held) for each mode and the workload's wall time bare and profiled."""
from __future__ import annotations

import asyncio
import sys
import time

from common import emit
from reqprof import Profiler, _core

RUN_S = 1.0


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def worker(deadline: float, profiled: bool) -> None:
    prof = Profiler(interval=0.001) if profiled else None
    if prof is not None:
        prof.start()
    while time.perf_counter() < deadline:
        spin(0.0005)
        await asyncio.sleep(0.002)
    if prof is not None:
        prof.stop()


async def workload(tasks: int, profiled: bool) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(t0 + RUN_S, profiled) for _ in range(tasks)))
    return time.perf_counter() - t0


def tick_ns() -> tuple[int, int]:
    s = _core.stats()
    return s["tick_ns"], s["ticks"]


def measure(tasks: int, mode: str) -> dict:
    if mode != "bare":
        _core._set_loop_busy(mode == "on")
    ns0, n0 = tick_ns()
    wall = asyncio.run(workload(tasks, mode != "bare"))
    ns1, n1 = tick_ns()
    return {"wall_s": wall, "ticks": n1 - n0,
            "tick_us": (ns1 - ns0) / (n1 - n0) / 1000.0 if n1 > n0 else None}


def main(tasks: int) -> None:
    measure(tasks, "on")    # warm-up
    runs: dict[str, list[dict]] = {"bare": [], "off": [], "on": []}
    for _ in range(3):
        for mode in ("bare", "off", "on"):
            runs[mode].append(measure(tasks, mode))
    _core._set_loop_busy(True)
    emit({mode: {"tick_us": min(r["tick_us"] for r in rs) if mode != "bare" else None,
                 "ticks": sum(r["ticks"] for r in rs),
                 "wall_s": min(r["wall_s"] for r in rs)} for mode, rs in runs.items()})


if __name__ == "__main__":
    main(int(sys.argv[1]))
