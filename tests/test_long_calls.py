"""A long C call that holds the GIL (sum over a big range): the sampler
cannot take the GIL until it returns, so the fast path reads the holder's
stack without the GIL at each tick it misses (wait snapshots). Its time
and its samples go to the frame that called it."""
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
