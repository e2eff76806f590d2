"""Waits for the GIL: a long C call that holds it (sum over a big range)
keeps the sampler from taking it until it returns, and busy threads make
it wait whole switch intervals. Meanwhile the fast path reads, without the
GIL, the stacks of the threads a profile samples, at each tick it misses
(wait snapshots): their time and samples go to the frames they ran."""
from __future__ import annotations

import sys
import time

import pytest

from profile_tree import find, name_of, total_wall
from reqprof import Profiler, _core

pytestmark = pytest.mark.skipif(
    not _core.MODE.startswith("fast") or sys.version_info[:2] not in ((3, 11), (3, 12), (3, 13)),
    reason="wait snapshots need the fast path (CPython 3.11-3.13)")


def sum_size(seconds: float) -> int:
    """A range size whose sum takes about `seconds`."""
    n = 2_000_000
    t = time.perf_counter()
    sum(range(n))
    return max(100_000, int(n * seconds / (time.perf_counter() - t)))


def in_c(n: int) -> int:
    return sum(range(n))


def in_python(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(200):
            x += i * i


def test_a_long_c_call_is_sampled_on_its_caller_while_it_runs():
    n = sum_size(0.5)
    with Profiler(interval=0.001) as prof:
        t = time.perf_counter()
        in_c(n)
        c_s = time.perf_counter() - t
        in_python(0.5)
    root = prof.report.to_dict()["root"]
    c_wall = total_wall(root, name_of(in_c))
    py_wall = total_wall(root, name_of(in_python))
    c_samples = sum(node["samples"] for node in find(root, name_of(in_c)))
    assert c_wall == pytest.approx(c_s, rel=0.25), (c_wall, c_s)
    assert py_wall == pytest.approx(0.5, rel=0.25), py_wall
    # One look per asked interval the call lasted, less a generous margin
    # (a tick without snapshots gives this call one sample only).
    assert c_samples >= 0.2 * c_s / 0.001, (c_samples, c_s)


def test_a_thread_waiting_for_the_gil_is_sampled_from_snapshots():
    """Beside busy threads the sampler waits for the GIL for whole switch
    intervals; the request's thread, waiting for its turn meanwhile, cannot
    move its frames, so its stack is read during those waits too, and the
    time stays on what it runs."""
    import threading

    stop = threading.Event()

    def busy() -> None:
        x = 0
        while not stop.is_set():
            for i in range(200):
                x += i * i

    threads = [threading.Thread(target=busy) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        before = _core.stats()
        with Profiler(interval=0.001) as prof:
            t0 = time.perf_counter()
            in_python(0.6)
            spent = time.perf_counter() - t0
        after = _core.stats()
    finally:
        stop.set()
        for t in threads:
            t.join()
    root = prof.report.to_dict()["root"]
    assert total_wall(root, name_of(in_python)) == pytest.approx(spent, rel=0.2)
    assert after["snapshot_samples"] > before["snapshot_samples"], (before, after)
