"""Sampling-fidelity child: ``fidelity.py SCENARIO TOOL INTERVAL_S``.

Profiles one scenario for DURATION seconds and prints the samples the tool
recorded per second of profile, with the engine's tick statistics for
reqprof (late ticks, average wait for the GIL, assisted waits, GIL
hand-overs) and the CPU time of its two threads (sampler, assist)."""
from __future__ import annotations

import hashlib
import sys
import threading
import time
from typing import Callable

from common import emit, proc_threads, thread_delta
from tools import Run

DURATION = 0.5


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(100):
            x += i * i


def pbkdf2_rounds(seconds: float) -> int:
    rounds = 20000
    t = time.perf_counter()
    hashlib.pbkdf2_hmac("sha256", b"password", b"salt", rounds)
    return max(1000, int(rounds * seconds / (time.perf_counter() - t)))


def sum_count(seconds: float) -> int:
    n = 2_000_000
    t = time.perf_counter()
    sum(range(n))
    return max(100_000, int(n * seconds / (time.perf_counter() - t)))


def scenario(name: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """(work, cleanup) for a scenario; calibration happens here, unprofiled."""
    if name == "cpu":
        return lambda: spin(DURATION), lambda: None
    if name == "c_nogil":
        rounds = pbkdf2_rounds(DURATION)
        return lambda: hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", rounds), lambda: None
    if name == "c_gil":
        n = sum_count(DURATION)
        return lambda: sum(range(n)) and None, lambda: None
    if name == "sleep":
        return lambda: time.sleep(DURATION), lambda: None
    if name == "threads4":
        stop = threading.Event()

        def busy() -> None:
            x = 0
            while not stop.is_set():
                for i in range(100):
                    x += i * i

        threads = [threading.Thread(target=busy, daemon=True) for _ in range(4)]

        def work() -> None:
            if not threads[0].is_alive():
                for t in threads:
                    t.start()
            spin(DURATION)

        def cleanup() -> None:
            stop.set()
            for t in threads:
                t.join()

        return work, cleanup
    raise ValueError(name)


def main(name: str, tool: str, interval: float) -> None:
    work, cleanup = scenario(name)
    stats = None
    try:
        warm = Run(tool, interval=interval)
        warm.start()
        time.sleep(0.01)
        warm.stop()
        if tool.startswith("reqprof"):
            from reqprof import _core
            before = _core.stats()
        threads = proc_threads()
        run = Run(tool, interval=interval)
        run.start()
        work()
        run.stop()
        if tool.startswith("reqprof"):
            after = _core.stats()
            ticks = max(1, after["ticks"] - before["ticks"])
            cpu = {"reqprof-sampler": 0, "reqprof-assist": 0, "reqprof-watch": 0}
            for t in thread_delta(threads, proc_threads()).values():
                if t["comm"] in cpu:
                    cpu[t["comm"]] += t["run_ns"]
            stats = {
                "late_pct": 100.0 * (after["late_ticks"] - before["late_ticks"]) / ticks,
                "gil_wait_us": (after["gil_wait_ns"] - before["gil_wait_ns"]) / ticks / 1000,
                "assisted_waits": after["assisted_waits"] - before["assisted_waits"],
                "gil_switches": after.get("gil_switches", 0) - before.get("gil_switches", 0),
                "sampler_cpu_s": cpu["reqprof-sampler"] / 1e9,
                "assist_cpu_s": cpu["reqprof-assist"] / 1e9,
                "watch_cpu_s": cpu["reqprof-watch"] / 1e9,
                "snapshot_samples": after.get("snapshot_samples", 0)
                - before.get("snapshot_samples", 0),
            }
    finally:
        cleanup()
    samples, duration = run.samples(), run.duration()
    emit({"samples": samples, "duration_s": duration,
          "rate": samples / duration if duration else 0.0, "stats": stats})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
