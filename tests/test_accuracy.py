"""Accuracy: a workload whose time split is known (measured with
perf_counter around each part) against what the profile says. Generous
tolerances: the figures themselves belong to bench/."""
from __future__ import annotations

import asyncio
import hashlib
import time

from profile_tree import name_of, self_cpu_under, total_wall
from reqprof import Profiler


def python_part(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(200):
            x += i * i


def sleep_part(seconds: float) -> None:
    time.sleep(seconds)


def c_call_part(rounds: int) -> None:
    # One long C call that releases the GIL.
    hashlib.pbkdf2_hmac("sha256", b"password", b"salt", rounds)


def calibrate_pbkdf2(seconds: float) -> int:
    rounds = 20000
    t = time.perf_counter()
    c_call_part(rounds)
    per_round = (time.perf_counter() - t) / rounds
    return max(1000, int(seconds / per_round))


def assert_shares(report: dict, truth: dict[str, float]) -> None:
    """Each part's share of the profile's wall time is within 5 points of
    its share of the measured time."""
    total_truth = sum(truth.values())
    total_prof = report["root"]["wall_s"]
    for name, seconds in truth.items():
        want = 100 * seconds / total_truth
        got = 100 * total_wall(report["root"], name) / total_prof
        assert abs(got - want) <= 5, f"{name}: profile {got:.1f}% vs truth {want:.1f}%"


def test_known_split_python_sleep_and_c_call():
    rounds = calibrate_pbkdf2(0.25)
    truth: dict[str, float] = {}
    truth_cpu: dict[str, float] = {}
    with Profiler(interval=0.001) as prof:
        for name, call in (
            ("python_part", lambda: python_part(0.25)),
            ("sleep_part", lambda: sleep_part(0.25)),
            ("c_call_part", lambda: c_call_part(rounds)),
        ):
            t, c = time.perf_counter(), time.thread_time()
            call()
            truth[name] = time.perf_counter() - t
            truth_cpu[name] = time.thread_time() - c
    report = prof.report.to_dict()
    assert_shares(report, truth)
    # CPU time per part against the thread's CPU clock around it (on a busy
    # machine CPU is well below wall, so wall is no reference for it).
    for name, cpu in truth_cpu.items():
        got = self_cpu_under(report["root"], name)
        assert abs(got - cpu) <= max(0.05, 0.25 * cpu), f"{name}: profile CPU {got:.3f}s vs {cpu:.3f}s"
    sleep_wall = total_wall(report["root"], "sleep_part")
    assert self_cpu_under(report["root"], "sleep_part") <= 0.1 * sleep_wall


def test_known_split_with_an_await():
    async def awaiting_part(seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def main() -> tuple[dict, dict[str, float]]:
        truth: dict[str, float] = {}
        async with Profiler(interval=0.001) as prof:
            t = time.perf_counter()
            python_part(0.2)
            truth["python_part"] = time.perf_counter() - t
            t = time.perf_counter()
            await awaiting_part(0.2)
            truth[name_of(awaiting_part)] = time.perf_counter() - t
        return prof.report.to_dict(), truth

    report, truth = asyncio.run(main())
    assert_shares(report, truth)
    # Waiting costs no CPU (a sample may catch the coroutine starting).
    awaited = total_wall(report["root"], name_of(awaiting_part))
    assert self_cpu_under(report["root"], name_of(awaiting_part)) <= 0.1 * awaited
