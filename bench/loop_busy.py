"""Event-loop child: ``loop_busy.py TASKS``.

What telling [event loop busy] from [await] costs, with TASKS asyncio
tasks in flight on one loop, each profiled in its own session:

- ``tick_us``: one tick (``_core._sample_now()``, the sampler's work with
  the GIL held) while one session runs and TASKS others wait in a 30 s
  ``asyncio.sleep`` (the common case: each waiting task is looked at, none
  is ready), with the detection off and on (``_core._set_loop_busy``);
- ``wall_s``: a fixed amount of work shared by the tasks (9,600 rounds in
  all of 40 µs of Python, each followed by ``await asyncio.sleep(0)``, so
  every waiting task is ready at every tick: the detection's worst case),
  bare, profiled with the detection off, and on (interval 1 ms).

Modes alternate; the best of 5 runs of each is printed."""
from __future__ import annotations

import asyncio
import sys
import time

from common import emit
from reqprof import Profiler, _core

TOTAL_ROUNDS = 9600
TICKS = 2000


def work() -> int:
    return sum(range(2000))     # ~40 µs


async def worker(rounds: int, profiled: bool) -> None:
    prof = Profiler(interval=0.001) if profiled else None
    if prof is not None:
        prof.start()
    for _ in range(rounds):
        work()
        await asyncio.sleep(0)
    if prof is not None:
        prof.stop()


async def workload(tasks: int, profiled: bool) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(TOTAL_ROUNDS // tasks, profiled) for _ in range(tasks)))
    return time.perf_counter() - t0


async def waiter() -> None:
    async with Profiler(interval=10.0):     # never ticked by the sampler
        await asyncio.sleep(30)


async def tick_cost(tasks: int, runs: int) -> dict[str, float]:
    waiting = [asyncio.create_task(waiter()) for _ in range(tasks)]
    await asyncio.sleep(0.01)
    best: dict[str, float] = {}
    async with Profiler(interval=10.0):     # the session that runs
        for _ in range(runs):
            for mode in ("off", "on"):
                _core._set_loop_busy(mode == "on")
                t0 = time.perf_counter_ns()
                for _ in range(TICKS):
                    _core._sample_now()
                us = (time.perf_counter_ns() - t0) / TICKS / 1000.0
                best[mode] = min(best.get(mode, us), us)
    for t in waiting:
        t.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    return best


def main(tasks: int) -> None:
    runs = 5
    ticks = asyncio.run(tick_cost(tasks, runs))
    asyncio.run(workload(tasks, True))      # warm-up
    walls: dict[str, float] = {}
    for _ in range(runs):
        for mode in ("bare", "off", "on"):
            if mode != "bare":
                _core._set_loop_busy(mode == "on")
            wall = asyncio.run(workload(tasks, mode != "bare"))
            walls[mode] = min(walls.get(mode, wall), wall)
    _core._set_loop_busy(True)
    emit({"tick_us": ticks, "wall_s": walls})


if __name__ == "__main__":
    main(int(sys.argv[1]))
