"""Process lifecycle with profiled requests in flight: SIGTERM and SIGINT to
uvicorn, uvicorn --workers, gunicorn with uvicorn workers (forking after
the app and the engine were loaded), and interpreter shutdown with sessions
active through the middleware. Servers listen on 127.0.0.1 only."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import httpx
import pytest

from conftest import DEADLINE, TESTS_DIR
from mixed_app import fetch_stats

PROFILED = {"ENABLE_PROFILING": "1", "PROFILING_SAMPLE_RATE": "1.0",
            "PROFILING_MAX_CONCURRENT": "16"}
CRASH_SIGNS = ("Fatal Python error", "Segmentation fault", "core dumped", "Aborted",
               "AddressSanitizer")


def clean_exit(code: Optional[int], signum: int = signal.SIGTERM) -> bool:
    """uvicorn shuts down gracefully, then re-raises the signal it caught
    (since 0.29), so a clean exit is 0 or death by that same signal."""
    return code in (0, -signum)


def wait_sessions(port: int, at_least: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while fetch_stats(port)["engine"]["active_sessions"] < at_least:
        assert time.monotonic() < deadline, "the profiled requests did not start"
        time.sleep(0.02)


# -- signals to uvicorn -------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_profiled_requests_finishes_them_and_exits_cleanly(serve_process, signum):
    server = serve_process("mixed_app:make_profiled_app", env=PROFILED,
                           config={"timeout_graceful_shutdown": 10})
    server.wait_started()
    targets = ["/spin?ms=1500&profile=1&profile_format=json", "/sleep?ms=1500&profile=1",
               "/spin?ms=1500", "/sleep?ms=1500"]
    with ThreadPoolExecutor(len(targets)) as pool:
        futures = [pool.submit(httpx.get, server.url + t, timeout=DEADLINE) for t in targets]
        wait_sessions(server.port, len(targets))
        sent = time.monotonic()
        server.proc.send_signal(signum)
        responses = [f.result() for f in futures]
        assert clean_exit(server.wait_exit(), signum), server.log()
        exited = time.monotonic() - sent
    manual_json, manual_html, auto_cpu, auto_sleep = responses
    assert manual_json.status_code == 200 and manual_json.json()["samples"] > 100
    assert manual_html.headers["content-type"] == "text/html; charset=utf-8"
    assert auto_cpu.json() == {"spun_ms": 1500} and auto_sleep.json() == {"slept_ms": 1500}
    assert exited < 10, exited
    log = server.log()
    assert "Application shutdown complete" in log and "Finished server process" in log
    assert not [s for s in CRASH_SIGNS if s in log], log


def test_shutdown_timeout_with_endless_profiled_requests(serve_process):
    server = serve_process("mixed_app:make_profiled_app", env=PROFILED,
                           config={"timeout_graceful_shutdown": 2})
    server.wait_started()
    with httpx.Client(base_url=server.url, timeout=DEADLINE) as client, \
            ThreadPoolExecutor(2) as pool:
        with client.stream("GET", "/long-stream?seconds=3600&period_ms=5") as stream:
            lines = stream.iter_lines()
            assert next(lines) == "line 0"
            manual = pool.submit(httpx.get, server.url + "/sleep?ms=3600000&profile=1",
                                 timeout=DEADLINE)
            wait_sessions(server.port, 2)
            sent = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            assert clean_exit(server.wait_exit()), server.log()
            exited = time.monotonic() - sent
            with pytest.raises((httpx.HTTPError, StopIteration)):
                for _ in lines:     # the stream is cut when the server gives up on it
                    pass
            try:            # cancelled: a 500 from uvicorn, or the connection cut
                assert manual.result().status_code == 500
            except httpx.HTTPError:
                pass
    assert 1.5 < exited < 8, exited
    log = server.log()
    assert "timeout graceful shutdown exceeded" in log
    assert not [s for s in CRASH_SIGNS if s in log], log


# -- pre-fork and multi-process servers ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A server command with several worker processes on 127.0.0.1:port."""

    def __init__(self, argv: list, port: int, env: dict, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("PROFILING_") and k != "ENABLE_PROFILING"}
        full_env.update(env)
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.environ.get("PYTHONPATH"), str(TESTS_DIR)) if p)
        with open(log, "wb") as f:
            self.proc = subprocess.Popen(argv, env=full_env, cwd=TESTS_DIR, stdout=f,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, count: int) -> None:
        deadline = time.monotonic() + DEADLINE
        while self.log().count(text) < count:
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.05)

    def stop(self) -> Optional[int]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                return None
        return self.proc.returncode

    def worker_pids(self) -> set[int]:
        pids = set()
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            with open(f"/proc/{self.proc.pid}/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        return pids


def per_worker_reports(cluster: Cluster, workers: int) -> dict[int, list[dict]]:
    """Manual JSON reports of /pid, on new connections, until every worker
    has answered a few: {worker pid: [report, ...]}. Each request spins
    for 200 ms in a worker thread: long enough that a loaded or throttled
    machine still leaves it a few samples."""
    seen: dict[int, list[dict]] = {}

    def one(_: int) -> tuple[int, dict]:
        r = httpx.get(f"{cluster.url}/pid?ms=200&profile=1&profile_format=json",
                      headers={"connection": "close"}, timeout=DEADLINE)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        return int(r.headers["x-worker-pid"]), r.json()

    with ThreadPoolExecutor(4) as pool:
        for _ in range(25):
            for pid, report in pool.map(one, range(8)):
                seen.setdefault(pid, []).append(report)
            if len(seen) >= workers and all(len(v) >= 2 for v in seen.values()):
                break
    return seen


def check_workers(cluster: Cluster, out: Path, workers: int) -> dict:
    reports = per_worker_reports(cluster, workers)
    assert len(reports) == workers, sorted(reports)
    assert set(reports) <= cluster.worker_pids() | {cluster.proc.pid}
    assert cluster.proc.pid not in reports          # the workers serve, not the master
    for pid, items in reports.items():
        for report in items:
            assert report["samples"] >= 5, (pid, report["samples"])
            assert "sync_work" in report_json_functions(report), pid
    # Auto-sampled requests: each worker writes its own reports. Which
    # worker accepts a connection is the kernel's choice: requests go on, a
    # few at a time on fresh connections, until every worker has written.
    deadline = time.monotonic() + DEADLINE
    sent = 0
    while True:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: httpx.get(f"{cluster.url}/async/{n}",
                                              headers={"connection": "close"},
                                              timeout=DEADLINE), range(sent, sent + 8)))
        sent += 8
        writers = {int(p.name.split("-")[2]) for p in out.glob("reqprof-*.json")}
        if writers >= set(reports):
            break
        assert time.monotonic() < deadline, (writers, set(reports))
        time.sleep(0.2)
    return {pid: len(items) for pid, items in reports.items()}


def report_json_functions(report: dict) -> set[str]:
    from profile_tree import functions
    return functions(report["root"])


def serve_workers(argv: list, port: int, tmp_path: Path) -> None:
    """Runs a multi-worker server, checks that its 2 workers each profile
    their own requests, stops it and checks it exited cleanly."""
    out = tmp_path / "reports"
    cluster = Cluster(argv, port, dict(PROFILED, PROFILING_OUTPUT_DIR=str(out)),
                      tmp_path / "server.log")
    try:
        cluster.wait_log("Application startup complete", 2)
        check_workers(cluster, out, 2)
    finally:
        code = cluster.stop()
    log = cluster.log()
    assert clean_exit(code), log
    assert not [s for s in CRASH_SIGNS if s in log], log


@pytest.mark.server
def test_uvicorn_workers_each_profile_their_own_requests(tmp_path):
    port = free_port()
    serve_workers([sys.executable, "-m", "uvicorn", "mixed_app:make_profiled_app", "--factory",
                   "--workers", "2", "--host", "127.0.0.1", "--port", str(port)], port, tmp_path)


@pytest.mark.server
@pytest.mark.parametrize("preload", [True, False])
def test_gunicorn_uvicorn_workers_each_profile_their_own_requests(tmp_path, preload):
    pytest.importorskip("gunicorn")
    pytest.importorskip("uvicorn_worker")
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "mixed_app:make_warm_profiled_app()",
            "-k", "uvicorn_worker.UvicornWorker", "-w", "2", "--bind", f"127.0.0.1:{port}",
            "--graceful-timeout", "10"]
    if preload:
        # The app, the engine and its sampler thread exist before the fork.
        argv.append("--preload")
    serve_workers(argv, port, tmp_path)


# -- interpreter shutdown with sessions active ------------------------------------------------------

SHUTDOWN_SCRIPT = textwrap.dedent("""
    import asyncio, contextvars, sys, threading, time
    from reqprof import ProfilingMiddleware, Settings, _core

    def spin_forever():
        while True:
            sum(range(1000))

    async def app(scope, receive, send):
        if scope["path"] == "/await":
            await asyncio.sleep(3600)
        elif scope["path"] == "/thread":          # the request's work in a daemon thread
            ctx = contextvars.copy_context()
            threading.Thread(target=ctx.run, args=(spin_forever,), daemon=True).start()
            await asyncio.sleep(3600)
        elif scope["path"] == "/cpu":             # blocks its event loop for good
            spin_forever()

    middleware = ProfilingMiddleware(app, settings=Settings(enabled=True, sample_rate=1.0,
                                                            max_concurrent=8))

    def request(path, query=b""):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "root_path": "", "query_string": query, "headers": [],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        async def receive():
            await asyncio.sleep(3600)
        async def send(message):
            pass
        return middleware(scope, receive, send)

    def wait_active(n):
        deadline = time.monotonic() + 30
        while _core.stats()["active_sessions"] < n:
            assert time.monotonic() < deadline, _core.stats()
            time.sleep(0.01)

    mode = sys.argv[1]
    if mode == "daemon-loop":
        # Event loops in daemon threads, their requests profiled, one loop
        # spinning; the main thread returns and the interpreter finalizes.
        def serve(paths):
            async def main():
                for path, query in paths:
                    asyncio.ensure_future(request(path, query))
                await asyncio.sleep(3600)
            asyncio.run(main())
        threading.Thread(target=serve, args=([("/await", b"profile=1"), ("/thread", b"")],),
                         daemon=True).start()
        threading.Thread(target=serve, args=([("/cpu", b"")],), daemon=True).start()
        wait_active(3)
        time.sleep(0.3)
    elif mode == "exit-from-loop":
        # sys.exit inside the loop: asyncio.run cancels the profiled requests.
        async def main():
            tasks = [asyncio.ensure_future(request("/await", b"profile=1")),
                     asyncio.ensure_future(request("/thread"))]
            await asyncio.sleep(0.2)
            wait_active(2)
            await asyncio.sleep(0.3)
            sys.exit(0)
        asyncio.run(main())
    elif mode == "exit-from-thread":
        # A request's worker thread is still sampled while the main thread
        # leaves through sys.exit with the loop (and its sessions) abandoned.
        loop = asyncio.new_event_loop()
        loop.create_task(request("/thread"))
        loop.create_task(request("/await", b"profile=1&profile_format=json"))
        loop.run_until_complete(asyncio.sleep(0.5))
        wait_active(2)
        sys.exit(0)
    print("exiting with", _core.stats()["active_sessions"], "active sessions", flush=True)
""")


@pytest.mark.parametrize("mode", ["daemon-loop", "exit-from-loop", "exit-from-thread"])
def test_interpreter_exit_with_sessions_active(mode, tmp_path):
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", SHUTDOWN_SCRIPT, mode], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    assert not [s for s in CRASH_SIGNS if s in out.stderr], out.stderr
    assert elapsed < 30, elapsed
    if mode == "daemon-loop":
        assert "exiting with 3 active sessions" in out.stdout, out.stdout
