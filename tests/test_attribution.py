"""Attribution in situations real apps build: garbage collections, child
tasks, greenlets, short and undersampled requests, work after the response,
trio, deep trees. Each test builds the situation with real code and checks
the call tree; test_attribution_apps.py does the same through real servers
and frameworks (Django, SQLAlchemy, hypercorn). This file needs only pytest
(async libraries are skipped when missing), so `make test-versions` runs it
on every CPython.

Where the logic is about which node a tick's time goes to, the tests use
sessions with a long interval (the sampler thread stays out of the way) and
take ticks themselves with ``_core._sample_now()`` at chosen moments: the
tree's shape and its splits are then exact. Tests through a real server
keep generous tolerances."""
from __future__ import annotations

import asyncio
import gc
import json
import json.scanner
import os
import re
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from profile_tree import find, functions, name_of, path_to, total_wall, walk
from reqprof import Profiler, Report, _core

FAST = _core.MODE.startswith("fast")
REQPROF_DIR = os.path.dirname(os.path.abspath(_core.__file__)) + os.sep
PARKED = 10.0       # a session interval no tick of the sampler thread reaches


def spin(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def reqprof_nodes(root: dict) -> list[str]:
    """Names of nodes that are reqprof's own frames (there must be none)."""
    return [n["name"] for n, _ in walk(root)
            if n["kind"] == "frame" and os.path.abspath(n["file"]).startswith(REQPROF_DIR)]


def await_names(root: dict) -> list[str]:
    return sorted(n["name"] for n, _ in walk(root) if n["kind"] == "await")


# ---- 1. garbage collection ---------------------------------------------------


class Transport:
    """An object with a finalizer, like asyncio's transports."""

    def __del__(self) -> None:
        pass


def make_cycles(n: int) -> None:
    """n reference cycles with finalizers, left for the collector."""
    for _ in range(n):
        t = Transport()
        t.cycle = {"t": t}


def collect_now() -> None:
    gc.collect()


def innocent_work() -> None:
    spin(0.02)


class CollectionTimer:
    """Measures the collections this thread runs, through its own
    gc.callbacks entry (other threads' are not the profile's)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0
        self._thread = threading.get_ident()

    def __call__(self, phase: str, info: dict) -> None:
        if threading.get_ident() != self._thread:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start

    def __enter__(self) -> "CollectionTimer":
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        gc.callbacks.remove(self)


def test_a_collection_is_charged_to_gc_under_the_frame_that_triggered_it():
    gc.collect()
    gc.disable()
    try:
        with CollectionTimer() as timer, Profiler() as prof:
            make_cycles(200_000)
            collect_now()
            innocent_work()
    finally:
        gc.enable()
    report = prof.report
    doc = report.to_dict()
    [gc_node] = find(doc["root"], "[gc]")
    assert gc_node["kind"] == "gc"
    path = path_to(doc["root"], "[gc]")
    assert path[-2] == name_of(collect_now), path
    # The collection's time, exactly: the engine is told when it starts and
    # ends (a tick can only land in it when a finalizer lets the GIL go).
    assert gc_node["wall_s"] == pytest.approx(timer.total, rel=0.05, abs=0.002)
    assert report.gc_s == pytest.approx(timer.total, rel=0.05, abs=0.002)
    assert doc["gc_s"] == report.gc_s
    assert gc_node["cpu_s"] > 0
    # Finalizers run by the collection are under it, nowhere else.
    dels = find(doc["root"], name_of(Transport.__del__))
    assert all(path_to(gc_node, name_of(Transport.__del__)) for _ in dels)
    assert total_wall(doc["root"], name_of(Transport.__del__)) <= gc_node["wall_s"]
    # What ran after it is not charged with it.
    assert total_wall(doc["root"], name_of(innocent_work)) < 0.02 + max(0.01, timer.total / 4)


def allocate_cycles(n: int) -> None:
    for _ in range(n):
        t = Transport()
        t.cycle = [t]


def test_an_automatic_collection_shows_under_the_allocating_frame():
    gc.collect()
    old = gc.get_threshold()
    gc.set_threshold(5000, 1, 1)    # every collection is a full one, often
    try:
        with CollectionTimer() as timer, Profiler() as prof:
            allocate_cycles(300_000)
    finally:
        gc.set_threshold(*old)
    doc = prof.report.to_dict()
    gcs = find(doc["root"], "[gc]")
    assert gcs and timer.total > 0
    for node in gcs:
        assert path_to(doc["root"], "[gc]")[-2] == name_of(allocate_cycles)
    assert sum(n["wall_s"] for n in gcs) == pytest.approx(timer.total, rel=0.2, abs=0.005)


def test_gc_time_is_in_the_log_summary():
    from reqprof import _logging

    gc.disable()
    try:
        with Profiler() as prof:
            make_cycles(50_000)
            collect_now()
    finally:
        gc.enable()
    line, extra = _logging.summary(prof.report, {"method": "GET", "path": "/x", "status": 200}, "auto")
    assert extra["reqprof_gc_ms"] == pytest.approx(prof.report.gc_s * 1000, abs=0.01)
    assert extra["reqprof_gc_ms"] > 0
    assert f", GC {prof.report.gc_s * 1000:.1f} ms" in line


# ---- 2. child tasks ----------------------------------------------------------


async def child_waits(event: asyncio.Event) -> None:
    await event.wait()


async def child_sleeps() -> None:
    await asyncio.sleep(30)


async def tick_later(done: asyncio.Event, delay: float = 0.05) -> None:
    """From outside the session's context: a tick while everything waits."""
    await asyncio.sleep(delay)
    _core._sample_now()
    done.set()


async def profile_waiting(body) -> dict:
    """The tree of one tick taken while `body(done)` waits, then `done` is
    set. The ticking task is created before the session, so it is not one
    of its children."""
    done = asyncio.Event()
    ticker = asyncio.create_task(tick_later(done))
    async with Profiler(interval=PARKED) as prof:
        await body(done)
    await ticker
    return prof.report.to_dict()


def child_paths(doc: dict) -> dict[str, list[str]]:
    """For each [await] point, the functions from the root down to it."""
    out = {}
    for n, _ in walk(doc["root"]):
        for c in n["children"]:
            if c["kind"] == "await":
                out[c["name"]] = path_to(doc["root"], c["name"]) or []
    return out


def await_walls(doc: dict) -> dict[str, float]:
    return {n["name"]: n["wall_s"] for n, _ in walk(doc["root"]) if n["kind"] == "await"}


def test_gather_shows_each_child_at_its_own_await_point_sharing_the_time():
    async def body(done):
        task = asyncio.gather(child_waits(done), child_waits_too(done))
        await task

    async def child_waits_too(event):
        await event.wait()

    doc = asyncio.run(profile_waiting(body))
    names = functions(doc["root"])
    assert {name_of(child_waits), name_of(child_waits_too)} <= names
    # Each child ends in its own [await], at the line it waits at.
    awaits = find(doc["root"], "[await]")
    assert len(awaits) == 2
    for node in awaits:
        assert node["name"].startswith("[await] asyncio/locks.py:")
        assert node["file"].endswith("locks.py") and node["line"] > 0
    # The tick's time is split, not counted twice: the tree's total is the
    # session's duration.
    a, b = (n["wall_s"] for n in awaits)
    assert a == pytest.approx(b, abs=2e-9)
    assert doc["root"]["wall_s"] == pytest.approx(doc["duration_s"], abs=1e-6)
    # Both hang under the frame that awaits the gather.
    for child in (child_waits, child_waits_too):
        assert path_to(doc["root"], name_of(child))[:2] == [doc["root"]["function"], name_of(body)]


def test_wait_taskgroup_awaited_task_and_shield_show_their_children():
    async def with_wait(done):
        tasks = [asyncio.create_task(child_waits(done)), asyncio.create_task(child_sleeps())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        tasks[1].cancel()

    async def with_awaited_task(done):
        await asyncio.create_task(child_waits(done))

    async def with_shield(done):
        await asyncio.shield(child_waits(done))

    cases = [with_wait, with_awaited_task, with_shield]
    if sys.version_info >= (3, 11):
        async def with_taskgroup(done):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(child_waits(done))
        cases.append(with_taskgroup)

    for body in cases:
        doc = asyncio.run(profile_waiting(body))
        path = path_to(doc["root"], name_of(child_waits))
        assert path is not None, (body.__name__, functions(doc["root"]))
        node = find(doc["root"], name_of(child_waits))[0]
        waits = [c for c in walk(node) if c[0]["kind"] == "await"]
        assert waits, body.__name__
        # Nothing is left as an [await] of the parent itself.
        assert all(n["name"].startswith("[await] asyncio/locks.py") or "tasks.py" in n["name"]
                   for n, _ in walk(doc["root"]) if n["kind"] == "await"), body.__name__


def test_children_running_only_library_code_give_way_to_app_children():
    # asyncio.wait on the app's work and on a task that only waits in
    # library code (a disconnect listener): the app's child gets the time.
    async def body(done):
        work = asyncio.create_task(child_waits(done))
        listener = asyncio.create_task(asyncio.sleep(30))
        await asyncio.wait([work, listener], return_when=asyncio.FIRST_COMPLETED)
        listener.cancel()

    doc = asyncio.run(profile_waiting(body))
    node = find(doc["root"], name_of(child_waits))[0]
    waited = sum(n["wall_s"] for n in find(doc["root"], "[await]"))
    assert node["wall_s"] == pytest.approx(waited, abs=1e-9)


def thread_work_for_a_child(suspended: threading.Event) -> None:
    suspended.wait(30)
    _core._sample_now()     # a tick now, while this thread works for the child


async def child_uses_a_thread() -> None:
    # Set once this task has handed the work over and is suspended (the
    # loop runs the callback after the task's step).
    suspended = threading.Event()
    asyncio.get_running_loop().call_soon(suspended.set)
    await asyncio.to_thread(thread_work_for_a_child, suspended)


def test_work_in_a_thread_for_a_child_task_shows_under_that_child():
    # A framework's handler waits for the view's task and a listener; the
    # view hands work to a thread (Django's sync_to_async does): the work
    # shows under the view's own await point, not under the handler's.
    async def handler(done):
        tasks = [asyncio.create_task(child_uses_a_thread()), asyncio.create_task(asyncio.sleep(30))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        tasks[1].cancel()
        done.set()

    async def main():
        async with Profiler(interval=PARKED) as prof:
            await handler(asyncio.Event())
        return prof.report.to_dict()

    doc = asyncio.run(main())
    path = path_to(doc["root"], name_of(thread_work_for_a_child))
    assert path is not None, functions(doc["root"])
    if not FAST:
        return      # the public-API path cannot tell which task the thread works for
    assert name_of(child_uses_a_thread) in path, path
    assert path.index(name_of(child_uses_a_thread)) < path.index(name_of(thread_work_for_a_child))
    assert any(p.startswith("[thread ") for p in path), path


def test_anyio_task_group_children_show_under_the_group():
    anyio = pytest.importorskip("anyio")

    async def body(done):
        async with anyio.create_task_group() as tg:
            tg.start_soon(child_waits, done)

    doc = asyncio.run(profile_waiting(body))
    assert path_to(doc["root"], name_of(child_waits)) is not None, functions(doc["root"])
    node = find(doc["root"], name_of(child_waits))[0]
    assert find(node, "[await]")


# ---- 4. the request as the root, [unsampled], undersampled -----------------------


def score_reviews(seconds: float) -> int:
    return spin(seconds)


def test_a_long_request_with_enough_samples_is_not_undersampled():
    with Profiler(interval=0.001) as prof:
        spin(0.1)
    r = prof.report
    if r.samples >= 50:     # a machine too loaded for this is what the flag is for
        assert r.undersampled is False and r.to_dict()["undersampled_reason"] is None


UNDERSAMPLED_REGEX_SCRIPT = """
import re, json
from reqprof import Profiler
text = "a" * 22 + "!"
with Profiler(interval=0.001) as prof:
    # Catastrophic backtracking: one C call holding the GIL for long.
    re.match(r"(a+)+$", text)
r = prof.report
print(json.dumps([r.samples, r.duration_s, r.undersampled, r.undersampled_reason]))
"""


def test_undersampled_reason_when_a_c_call_holds_the_gil():
    if not FAST:
        pytest.skip("the public-API path waits for the switch interval anyway")
    import subprocess

    # Without the snapshots taken during a wait, the one tick gets one sample.
    env = dict(os.environ, REQPROF_WAIT_SNAPSHOTS="0")
    out = subprocess.run([sys.executable, "-c", UNDERSAMPLED_REGEX_SCRIPT], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    samples, duration_s, undersampled, reason = json.loads(out.stdout)
    assert duration_s > 0.05, "the regex was too quick to hold the GIL for long"
    assert undersampled and reason == "GIL held by C code", (samples, duration_s)


def test_a_c_call_holding_the_gil_is_sampled_from_wait_snapshots():
    if not _core.stats().get("wait_snapshots"):
        pytest.skip("wait snapshots: the fast path only (CPython 3.11-3.13)")
    text = "a" * 22 + "!"
    with Profiler(interval=0.001) as prof:
        re.match(r"(a+)+$", text)
    r = prof.report
    assert r.duration_s > 0.05, "the regex was too quick to hold the GIL for long"
    assert not r.undersampled, (r.samples, r.duration_s)
    assert r.samples >= 0.2 * r.duration_s / 0.001, (r.samples, r.duration_s)


def test_decorator_and_with_forms_root_at_the_users_function():
    prof = Profiler()

    @prof
    def decorated_job():
        score_reviews(0.03)

    decorated_job()
    doc = prof.report.to_dict()
    job = name_of(decorated_job.__wrapped__)
    assert doc["root"]["function"] == job
    assert reqprof_nodes(doc["root"]) == []
    assert job not in functions({**doc["root"], "function": ""})    # not twice

    @prof
    async def decorated_async_job():
        score_reviews(0.02)
        await asyncio.sleep(0.02)

    asyncio.run(decorated_async_job())
    doc = prof.report.to_dict()
    assert doc["root"]["function"] == name_of(decorated_async_job.__wrapped__)
    assert reqprof_nodes(doc["root"]) == []

    def with_form():
        with Profiler() as p:
            score_reviews(0.02)
        return p.report.to_dict()

    doc = with_form()
    assert doc["root"]["function"] == name_of(with_form)
    assert reqprof_nodes(doc["root"]) == []


# ---- 5. work after the response ----------------------------------------------------


def background_job() -> None:
    score_reviews(0.05)
    time.sleep(0.05)


def test_mark_response_end_through_the_profiler_api():
    with Profiler() as prof:
        score_reviews(0.02)
        prof.mark_response_end()
        background_job()
    doc = prof.report.to_dict()
    assert 0.015 <= doc["response_s"] < doc["duration_s"] - 0.08
    [after] = find(doc["root"], "[after response]")
    assert "background_job" in functions(after)
    assert "background_job" not in {n["function"] for n in doc["root"]["children"]}


# ---- 7. deep trees ------------------------------------------------------------------


def recurse(n: int) -> None:
    if n:
        recurse(n - 1)
    else:
        spin(0.05)
        _core._sample_now()     # a tick at the bottom, however late the sampler


def test_every_output_works_at_the_deepest_allowed_tree():
    from reqprof.config import MAX_DEPTH_LIMIT

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(MAX_DEPTH_LIMIT * 3)
    try:
        with Profiler(max_depth=MAX_DEPTH_LIMIT) as prof:
            recurse(MAX_DEPTH_LIMIT + 100)
    finally:
        sys.setrecursionlimit(limit)
    report = prof.report
    doc = report.to_dict()
    depth = max(d for _, d in walk(doc["root"]))
    assert depth >= MAX_DEPTH_LIMIT
    # The same document json's parser gives (its pure-Python scanner, whose
    # depth only Python's recursion limit bounds).
    decoder = json.JSONDecoder()
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    sys.setrecursionlimit(MAX_DEPTH_LIMIT * 20)
    try:
        parsed = decoder.decode(report.to_json())
    finally:
        sys.setrecursionlimit(limit)
    # Compared level by level (== on nested dicts recurses in C, which
    # CPython 3.12 bounds on its own).
    assert {k: v for k, v in doc.items() if k != "root"} == \
        {k: v for k, v in parsed.items() if k != "root"}
    pairs = [(doc["root"], parsed["root"])]
    while pairs:
        a, b = pairs.pop()
        assert {k: v for k, v in a.items() if k != "children"} == \
            {k: v for k, v in b.items() if k != "children"}
        assert len(a["children"]) == len(b["children"])
        pairs.extend(zip(a["children"], b["children"]))
    assert Report.from_dict(doc).to_json() == report.to_json()
    for out in (report.to_text(), report.to_collapsed(), report.to_speedscope(), report.to_html(),
                report.to_log_text()):
        assert out
    assert report.to_pprof()


# ---- 6. trio --------------------------------------------------------------------------


def make_trio_worker(name: str):
    ns: dict = {"spin": spin}
    exec(textwrap.dedent(f"""
        def {name}(seconds):
            return spin(seconds)
        """), ns)
    return ns[name]


TRIO_WORKERS = [make_trio_worker(f"trio_work_{i}") for i in range(3)]


def test_trio_tasks_record_their_awaits_and_are_kept_apart():
    trio = pytest.importorskip("trio")
    reports: dict[int, Report] = {}

    async def one(i: int) -> None:
        async with Profiler() as prof:
            for _ in range(3):
                TRIO_WORKERS[i](0.01)
                await trio.sleep(0.005)
            await trio.sleep(0.15)
        reports[i] = prof.report

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(one, i)

    trio.run(main)
    for i, report in reports.items():
        doc = report.to_dict()
        root = doc["root"]
        names = functions(root)
        own = f"trio_work_{i}"
        assert own in names, (i, names)
        assert not names & {f"trio_work_{j}" for j in range(3) if j != i}, (i, names)
        # Its waits are [await] nodes under trio.sleep, not lost.
        waited = sum(n["wall_s"] for n in find(root, "[await]"))
        assert waited >= 0.12, (i, waited)
        assert path_to(root, "[await]")[:2] == [root["function"], "sleep"]
        # The thread's outer stack (the runner, trio's scheduler) is never
        # below the root.
        assert not {"run", "<module>", "unrolled_run"} & names, names


async def trio_child(seconds: float) -> None:
    import trio

    await trio.sleep(seconds)


def test_trio_nursery_and_anyio_on_trio_show_their_children():
    trio = pytest.importorskip("trio")
    anyio = pytest.importorskip("anyio")

    async def with_nursery() -> dict:
        async with Profiler() as prof:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio_child, 0.15)
        return prof.report.to_dict()

    async def with_anyio() -> dict:
        async with Profiler() as prof:
            async with anyio.create_task_group() as tg:
                tg.start_soon(trio_child, 0.15)
        return prof.report.to_dict()

    for doc in (trio.run(with_nursery), anyio.run(with_anyio, backend="trio")):
        child = find(doc["root"], "trio_child")
        assert child, functions(doc["root"])
        assert sum(n["wall_s"] for n in find(child[0], "[await]")) >= 0.12


# ---- 3. greenlets ------------------------------------------------------------------------


def greenlet_child_work(main: Any) -> None:
    score_reviews(0.03)
    main.switch()
    score_reviews(0.03)


def switch_to_greenlets() -> None:
    import greenlet

    child = greenlet.greenlet(greenlet_child_work)
    child.switch(greenlet.getcurrent())
    score_reviews(0.01)
    child.switch()


def test_a_greenlet_is_shown_under_the_frame_that_switched_to_it():
    pytest.importorskip("greenlet")     # imported before the profile starts, as apps do
    with Profiler() as prof:
        switch_to_greenlets()
    root = prof.report.to_dict()["root"]
    # All of the greenlet's work is under the switching frame, none
    # grafted at the root.
    assert {c["function"] for c in root["children"]} <= {name_of(switch_to_greenlets), "[unsampled]"}, \
        [c["function"] for c in root["children"]]
    path = path_to(root, name_of(greenlet_child_work))
    assert path[1:3] == [name_of(switch_to_greenlets), name_of(greenlet_child_work)], path
    assert total_wall(root, name_of(greenlet_child_work)) >= 0.04


# ---- every writer carries the pseudo-frames -------------------------------------------


def test_every_writer_carries_the_new_pseudo_frames():
    import gzip

    async def waits() -> None:
        await asyncio.sleep(0.02)

    async def main() -> Report:
        gc.disable()
        try:
            async with Profiler() as prof:
                make_cycles(20_000)
                collect_now()
                await waits()
                prof.mark_response_end()
                background_job()
        finally:
            gc.enable()
        report = prof.report
        report.meta.update({"method": "GET", "path": "/x/1", "route": "/x/{n}"})
        report.name_request()
        return report

    report = asyncio.run(main())
    doc = report.to_dict()
    kinds = {n["kind"] for n, _ in walk(doc["root"])}
    assert {"request", "gc", "after-response", "await", "unsampled"} <= kinds, kinds
    assert doc["root"]["name"] == "GET /x/{n}"
    await_name = next(n["name"] for n, _ in walk(doc["root"]) if n["kind"] == "await")
    assert re.fullmatch(r"\[await\] asyncio/tasks\.py:\d+", await_name), await_name
    labels = ["GET /x/{n}", "[gc]", "[after response]", "[unsampled]", await_name]
    text = report.to_text()
    collapsed = report.to_collapsed()
    speedscope = json.loads(report.to_speedscope())
    frames = {f["name"] + (f" {f['file']}:{f['line']}" if f["name"] == "[await]" else "")
              for f in speedscope["shared"]["frames"]}
    pprof = gzip.decompress(report.to_pprof())
    log = report.to_log_text(min_percent=0)
    for label in labels:
        assert label in text, label
        assert label in collapsed, label
        assert label in frames, (label, frames)
        assert label.encode() in pprof, label
        assert label in log, label
    assert "wall   cpu    %wall  frame" in text.splitlines()
    assert Report.from_json(report.to_json()).to_json() == report.to_json()
