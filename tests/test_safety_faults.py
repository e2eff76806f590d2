"""Faults: a failing profiler never fails, changes or delays a request; each
kind of failure is logged at most once a minute; profiling recovers.

Two ways in:
- at the Python boundary, in this process: profiler classes that fail,
  injected through the middleware's engine hook (``_profiler_class``), and
  failing writers, disks and report queues;
- in the engine itself: the extension built with its fault hooks
  (``REQPROF_FAULTS=1``, into ``build/faults``), driven by ``REQPROF_FAULT``
  in a server subprocess: ``start`` (Session.start raises), ``sample``
  (samples are dropped, the report is marked incomplete), ``report`` (the
  writers raise), each optionally ``:N`` times only.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps import make_app, profiled
from mixed_app import fetch_stats
from reqprof import _output as output_module
from reqprof import _reporter as reporter_module
from reqprof._logging import RateLimited
from reqprof.profiler import Profiler

ROOT = Path(__file__).resolve().parent.parent
CORE_DIR = ROOT / "src" / "reqprof" / "_core"
HTML = "text/html; charset=utf-8"
TARGETS = ["/json", "/items/3", "/sync?ms=5", "/stream", "/file", "/headers", "/empty",
           "/redirect", "/nope"]


def errors(logs: Any, text: str, level: int = logging.WARNING) -> list[str]:
    return [m for m in logs.messages(level) if text in m]


# -- at the Python boundary -------------------------------------------------------------

class StartFails(Profiler):
    error: BaseException = RuntimeError("injected: cannot start")

    def start(self, root_frame: Any = None) -> "Profiler":
        raise self.error


class StartRunsOutOfMemory(StartFails):
    error = MemoryError("injected: no memory at start")


class StopFails(Profiler):
    def stop(self) -> Any:
        super().stop()
        raise RuntimeError("injected: cannot stop")


@pytest.mark.parametrize("broken,message", [
    (StartFails, "could not start"), (StartRunsOutOfMemory, "could not start"),
    (StopFails, "could not stop"),
])
def test_profiler_failures_serve_the_apps_response_log_once_and_recover(
        serve, reqprof_logs, broken, message):
    bare = serve(make_app())
    middleware = profiled(sample_rate=1.0)
    middleware.profiling._profiler_class = broken
    server = serve(middleware)
    for target in TARGETS:
        for extra in ("", "profile=1", "profile=1&profile_format=json"):
            sep = "&" if "?" in target else "?"
            full = f"{target}{sep}{extra}" if extra else target
            assert server.raw(full) == bare.raw(full), full
    assert server.raw("/fail") == bare.raw("/fail")
    server.wait_idle()
    assert len(errors(reqprof_logs, message, logging.ERROR)) == 1
    assert reqprof_logs.summaries() == []
    assert middleware.profiling.slots.free == middleware.settings.max_concurrent
    # Recovery: the same middleware with a working profiler.
    middleware.profiling._profiler_class = Profiler
    assert server.client.get("/json?profile=1").headers["content-type"] == HTML
    server.client.get("/items/4")
    server.wait_idle()
    assert [r.reqprof_path for r in reqprof_logs.summaries()] == ["/items/4"]


class BrokenWriters:
    """A report whose every writer raises (as the engine's writers do when
    memory runs out)."""

    def __init__(self, report: Any) -> None:
        self._report = report
        self.meta = report.meta
        self.samples = report.samples
        self.duration_s = report.duration_s
        self.truncated_reasons: list = []

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise MemoryError("injected: writer out of memory")

    to_json = to_text = to_html = to_collapsed = to_dict = top_functions = _fail
    to_speedscope = to_pprof = to_bytes = _fail


class WritersFail(Profiler):
    def stop(self) -> Any:
        return BrokenWriters(super().stop())


def test_failing_writers_send_the_apps_own_response(serve, reqprof_logs):
    bare = serve(make_app())
    middleware = profiled()
    middleware.profiling._profiler_class = WritersFail
    server = serve(middleware)
    for fmt in middleware.profiling.formats:
        for target in ["/json", "/stream", "/headers", "/empty", "/file"]:
            full = f"{target}?profile=1&profile_format={fmt}"
            assert server.raw(full) == bare.raw(full), full
    assert len(errors(reqprof_logs, "could not be written", logging.ERROR)) == 1
    assert len(errors(reqprof_logs, "HTML viewer failed", logging.ERROR)) == 1


def test_failing_writers_in_the_background_still_log_the_summary(serve, reqprof_logs, tmp_path):
    bare = serve(make_app())
    middleware = profiled(sample_rate=1.0, output_dir=str(tmp_path))
    middleware.profiling._profiler_class = WritersFail
    server = serve(middleware)
    for target in TARGETS:
        assert server.raw(target) == bare.raw(target), target
    server.wait_idle()
    summaries = reqprof_logs.summaries()
    assert len(summaries) == len(TARGETS)          # one line each, without a tree
    assert all("\n" not in r.getMessage() for r in summaries)
    assert len(errors(reqprof_logs, "could not write a report", logging.ERROR)) == 1
    assert not [p for p in tmp_path.iterdir()]      # nothing half-written


def test_full_disk_is_logged_once_and_requests_go_on(serve, reqprof_logs, tmp_path, monkeypatch):
    def full(self: Any, stem: str, parts: Any, doomed: Any) -> str:
        raise OSError(errno.ENOSPC, "No space left on device", stem)

    monkeypatch.setattr(output_module.OutputDir, "_write_pair", full)
    server = serve(profiled(sample_rate=1.0, output_dir=str(tmp_path)))
    for i in range(10):
        assert server.client.get(f"/items/{i}").json() == {"item": i}
    server.wait_idle()
    assert len(reqprof_logs.summaries()) == 10
    [error] = errors(reqprof_logs, "was not written", logging.WARNING)
    assert "the file system is full (No space left on device)" in error


def test_report_backlog_drops_new_reports_with_one_warning(serve, reqprof_logs, monkeypatch):
    import threading

    release = threading.Event()
    real_handle = reporter_module.reporter.handle

    def slow_handle(*args: Any) -> None:
        release.wait(30)
        real_handle(*args)

    # The reporter thread is stuck on its first report: the queue fills up.
    monkeypatch.setattr(reporter_module.reporter, "handle", slow_handle)
    try:
        server = serve(profiled(sample_rate=1.0))
        started = time.monotonic()
        for i in range(reporter_module.REPORT_QUEUE + 20):
            assert server.client.get(f"/items/{i}").status_code == 200
        assert time.monotonic() - started < 30      # never waited for the reporter
        assert len(errors(reqprof_logs, "sampled reports are waiting")) == 1
    finally:
        release.set()
        assert reporter_module.reporter.drain(30)
    assert len(reqprof_logs.summaries()) >= reporter_module.REPORT_QUEUE


def test_rate_limit_is_once_a_period_and_counts_what_it_held_back(reqprof_logs, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("reqprof._logging.time.monotonic", lambda: now[0])
    limited = RateLimited(60.0)
    for _ in range(5):
        limited.log("start", logging.ERROR, "boom")
    now[0] += 59.9
    limited.log("start", logging.ERROR, "boom")
    limited.log("other", logging.ERROR, "other kind")
    now[0] += 0.2
    limited.log("start", logging.ERROR, "boom")
    assert reqprof_logs.messages() == [
        "boom", "other kind", "boom (5 similar message(s) suppressed)"]


# -- the engine's own fault hooks ------------------------------------------------------------

def _faults_so() -> Path:
    """The extension built with REQPROF_FAULTS=1 in build/faults by `make
    build-faults` (a prerequisite of `make test`). Fails when it is missing
    or older than its sources."""
    out = ROOT / "build" / "faults"
    built = sorted(out.glob("reqprof/_core*.so"))
    newest = max(p.stat().st_mtime for p in [*CORE_DIR.iterdir(), ROOT / "setup.py"])
    if not built or built[0].stat().st_mtime < newest:
        pytest.fail("the fault tests need the extension built with fault hooks, up to date: "
                    "run `make build-faults`", pytrace=False)
    return built[0]


@pytest.fixture(scope="module")
def faults_path(tmp_path_factory: Any) -> str:
    """A directory to put first on PYTHONPATH: this checkout's reqprof with
    the fault-hook extension."""
    so = _faults_so()
    target = tmp_path_factory.mktemp("faults") / "reqprof"
    shutil.copytree(ROOT / "src" / "reqprof", target,
                    ignore=shutil.ignore_patterns("*.so", "__pycache__", "_core"))
    shutil.copy2(so, target / so.name)
    return str(target.parent)


def fault_server(serve_process: Any, faults_path: str, fault: str, **env: str) -> Any:
    full_env = {"PYTHONPATH": faults_path, "REQPROF_FAULT": fault, "ENABLE_PROFILING": "1",
                "PROFILING_SAMPLE_RATE": "1.0"}
    full_env.update(env)
    server = serve_process("mixed_app:make_profiled_app", env=full_env)
    server.wait_started()
    stats = fetch_stats(server.port)
    assert stats["core_file"].startswith(faults_path), stats["core_file"]
    return server


def mixed_requests(client: httpx.Client, n: int, start: int = 0) -> None:
    """n requests over the mixed app's endpoints, each response checked."""
    from mixed_app import STREAM_CHUNK, STREAM_CHUNKS

    for i in range(start, start + n):
        kind = i % 5
        if kind == 0:
            r = client.get(f"/async/{i}")
            assert r.status_code == 200 and r.json() == {"async": i}
        elif kind == 1:
            r = client.get(f"/sync/{i}")
            assert r.status_code == 200 and r.json() == {"sync": i}
        elif kind == 2:
            r = client.get(f"/stream/{i}")
            assert r.status_code == 200
            assert r.content == STREAM_CHUNK * STREAM_CHUNKS + f"end {i}\n".encode()
        elif kind == 3:
            r = client.get(f"/fail/{i}", headers={"connection": "close"})
            assert r.status_code == 500 and r.text == "Internal Server Error"
        else:
            r = client.get("/spin?ms=3")
            assert r.status_code == 200 and r.json() == {"spun_ms": 3}


def wait_quiet(server: Any) -> dict:
    """/_stats once no session is active and no report waits."""
    deadline = time.monotonic() + 30
    while True:
        stats = fetch_stats(server.port)
        if stats["engine"]["active_sessions"] == 0 and stats.get("reports_queued", 0) == 0 \
                and stats["live_sessions"] == 0:
            return stats
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)


def test_engine_start_fault_then_recovery(serve_process, faults_path):
    server = fault_server(serve_process, faults_path, "start:3")
    mixed_requests(server.client, 3)                    # each start fails: served unprofiled
    log = server.log()
    assert log.count("profiling could not start") == 1
    assert "injected fault at session start" in log
    assert "reqprof: GET" not in log
    mixed_requests(server.client, 10, start=3)          # recovered
    server.wait_for_log("reqprof: GET", 10)
    report = server.client.get("/spin?ms=30&profile=1&profile_format=json").json()
    assert report["samples"] > 5
    assert server.log().count("profiling could not start") == 1
    wait_quiet(server)


def test_engine_start_fault_always(serve_process, faults_path):
    server = fault_server(serve_process, faults_path, "start")
    mixed_requests(server.client, 25)
    for target in ["/async/1?profile=1", "/stream/2?profile=1&profile_format=json"]:
        assert server.client.get(target).headers["content-type"] != HTML
    assert server.log().count("profiling could not start") == 1
    assert "reqprof: GET" not in server.log()
    stats = wait_quiet(server)
    assert stats["engine"]["active_sessions"] == 0


def test_engine_sample_fault_marks_the_report_and_recovers(serve_process, faults_path):
    server = fault_server(serve_process, faults_path, "sample:150",
                          PROFILING_SAMPLE_RATE="0")
    first = server.client.get("/spin?ms=100&profile=1&profile_format=json").json()
    assert "memory" in first["truncated_reasons"]
    log = server.wait_for_log("could not record some samples")
    assert log.count("could not record some samples") == 1
    # The next requests use up the remaining faults (how many requests that
    # takes depends on how fast the machine samples); then it recovers.
    for _ in range(50):
        later = server.client.get("/spin?ms=60&profile=1&profile_format=json").json()
        if "memory" not in later["truncated_reasons"]:
            break
    assert later["samples"] > 5 and "memory" not in later["truncated_reasons"]
    # Auto-sampled requests meanwhile: the responses are the app's own.
    server2 = fault_server(serve_process, faults_path, "sample")
    mixed_requests(server2.client, 20)
    server2.wait_for_log("reqprof: GET", 15)
    assert server2.log().count("could not record some samples") == 1
    stats = wait_quiet(server2)
    assert stats["engine"]["dropped_samples"] > 0


def test_a_sampler_wedged_holding_its_lock_blocks_no_request(serve_process, faults_path):
    # The "wedge" fault stops the sampler thread for 5 s at its first tick
    # holding the lock of its schedule, as a debugger could: sessions start
    # and stop without it, and it samples again when it goes on.
    server = fault_server(serve_process, faults_path, "wedge:1", PROFILING_SAMPLE_RATE="0")
    t0 = time.monotonic()
    during = [server.client.get("/spin?ms=30&profile=1&profile_format=json").json()
              for _ in range(5)]
    elapsed = time.monotonic() - t0
    print(f"five profiled requests during the wedge: {elapsed:.2f} s")
    assert elapsed < 2.5, elapsed       # not waiting out the wedge
    assert fetch_stats(server.port)["engine"]["lock_misses"] > 0
    assert all(r["meta"]["status"] == 200 for r in during)
    time.sleep(max(0.0, t0 + 5.5 - time.monotonic()))
    later = server.client.get("/spin?ms=60&profile=1&profile_format=json").json()
    assert later["samples"] > 5, later["samples"]


def _report_fault_works(faults_path: str) -> bool:
    code = ("from reqprof import Profiler\n"
            "with Profiler() as p: sum(range(1000))\n"
            "try:\n    p.report.to_json()\nexcept (MemoryError, RuntimeError):\n    print('raised')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=faults_path, REQPROF_FAULT="report"))
    return out.stdout.strip() == "raised"


def test_engine_report_fault_sends_the_apps_response_and_recovers(
        serve_process, faults_path, tmp_path):
    assert _report_fault_works(faults_path), "the faults build does not honour REQPROF_FAULT=report"
    bare = serve_process("mixed_app:make_app")
    bare.wait_started()
    server = fault_server(serve_process, faults_path, "report:6", PROFILING_SAMPLE_RATE="0",
                          PROFILING_OUTPUT_DIR=str(tmp_path / "out"))
    for target in ["/async/1?profile=1&profile_format=json", "/stream/2?profile=1",
                   "/async/3?profile=1&profile_format=text"]:
        got, want = server.client.get(target), bare.client.get(target)
        assert (got.status_code, got.content) == (want.status_code, want.content), target
        assert got.headers["content-type"] == want.headers["content-type"]
    log = server.log()
    assert log.count("could not be written") == 1
    for _ in range(6):
        server.client.get("/async/4?profile=1&profile_format=json")
    report = server.client.get("/spin?ms=30&profile=1&profile_format=json").json()
    assert report["samples"] > 5


def test_engine_faults_of_every_kind_under_concurrent_load(serve_process, faults_path):
    server = fault_server(serve_process, faults_path, "start:5,sample:300,report:4",
                          PROFILING_MAX_CONCURRENT="4")
    with ThreadPoolExecutor(8) as pool:
        clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(8)]
        try:
            list(pool.map(lambda i: mixed_requests(clients[i], 40, start=i * 40), range(8)))
        finally:
            for client in clients:
                client.close()
    stats = wait_quiet(server)
    log = server.log()
    assert log.count("profiling could not start") == 1
    assert log.count("could not record some samples") <= 1
    assert server.proc.poll() is None and "Fatal Python error" not in log
    report = server.client.get("/spin?ms=50&profile=1&profile_format=json").json()
    assert report["samples"] > 5 and report["truncated_reasons"] == []
    assert stats["engine"]["active_sessions"] == 0 and stats["live_sessions"] == 0
