"""Accuracy child: ``accuracy.py TOOL TOTAL_S``.

Runs, inside an asyncio task, four parts of TOTAL_S/4 each whose wall time
is measured with perf_counter: Python on the CPU, time.sleep, one long C
call that releases the GIL (pbkdf2), an await. Prints, per part, the share
of wall time the profile gives it and the share it really took."""
from __future__ import annotations

import asyncio
import hashlib
import sys
import time

from common import emit
from tools import Run

PARTS = ("part_python", "part_sleep", "part_c_call", "part_await")


def part_python(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(100):
            x += i * i


def part_sleep(seconds: float) -> None:
    time.sleep(seconds)


def part_c_call(rounds: int) -> None:
    hashlib.pbkdf2_hmac("sha256", b"password", b"salt", rounds)


async def part_await(seconds: float) -> None:
    await asyncio.sleep(seconds)


def calibrate(seconds: float) -> int:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        part_c_call(20000)
        best = min(best, time.perf_counter() - t)
    return max(100, int(20000 * seconds / best))


async def main(tool: str, total: float) -> dict:
    each = total / 4
    rounds = calibrate(each)
    # Warm-up session: starts the sampler thread, imports the profiler.
    warm = Run(tool, interval=0.001)
    warm.start()
    await asyncio.sleep(0.005)
    warm.stop()

    truth: dict[str, float] = {}
    run = Run(tool, interval=0.001)
    run.start()
    t = time.perf_counter()
    part_python(each)
    truth["part_python"] = -t + (t := time.perf_counter())
    part_sleep(each)
    truth["part_sleep"] = -t + (t := time.perf_counter())
    part_c_call(rounds)
    truth["part_c_call"] = -t + (t := time.perf_counter())
    await part_await(each)
    truth["part_await"] = time.perf_counter() - t
    run.stop()

    measured, total_prof = run.inclusive_times()
    total_truth = sum(truth.values())
    parts = {}
    for name in PARTS:
        true_pct = 100 * truth[name] / total_truth
        prof_pct = 100 * measured.get(name, 0.0) / total_prof if total_prof else 0.0
        parts[name] = {"true_pct": true_pct, "prof_pct": prof_pct, "error": abs(prof_pct - true_pct)}
    return {"samples": run.samples(), "duration_s": run.duration(), "parts": parts}


if __name__ == "__main__":
    emit(asyncio.run(main(sys.argv[1], float(sys.argv[2]))))
