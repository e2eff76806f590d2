"""A profiler problem never fails, slows or changes a request, through real
servers: streams under ?profile=1 (bounded in messages, bytes and time),
configuration mistakes (the server refuses to start, or serves unprofiled),
slots given back when a profile ends, the output directory within its
budget and the file system's free space, log lines that request text
cannot forge, the token header kept from the app, and reports rendered off
the event loop."""
from __future__ import annotations

import gc
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import host_app
from conftest import DEADLINE
from reqprof import ProfilingMiddleware, Settings
from reqprof import _request as request_module

TOKEN = "s3cret-token-0123456789"


def profiled(**settings: Any) -> ProfilingMiddleware:
    settings.setdefault("enabled", True)
    settings.setdefault("sample_rate", 0.0)
    return ProfilingMiddleware(host_app.make_app(), settings=Settings(**settings))


def key(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


def wait_for(predicate: Any, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def manual_json(server: Any, target: str, **kw: Any) -> tuple[dict, float]:
    """The JSON report of ``target`` and how long it took to come."""
    started = time.monotonic()
    sep = "&" if "?" in target else "?"
    response = server.client.get(f"{target}{sep}profile=1&profile_format=json", **kw)
    took = time.monotonic() - started
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    return response.json(), took


# -- 1. streams under ?profile=1 ----------------------------------------------------------

def test_event_stream_gets_its_report_at_the_time_limit(serve):
    server = serve(profiled(manual_timeout=1.0))
    k = key("sse")
    data, took = manual_json(server, f"/sse/{k}")
    assert 0.9 <= took < 1.0 + 5.0, took
    assert data["meta"]["ended"] == "time limit"
    assert data["meta"]["response_cut"] is True
    assert data["meta"]["status"] == 200
    assert data["meta"]["response_bytes"] >= len(host_app.EVENT)
    assert host_app.closed(k).wait(DEADLINE), "the app's generator was not closed"
    wait_for(lambda: server_free(server), "the slot was not given back")


def server_free(server: Any) -> bool:
    return server.server.config.app.profiling.slots.free == server.server.config.app.profiling.slots.total


def test_html_report_of_a_cut_stream_says_why_it_ended(serve):
    server = serve(profiled(manual_timeout=0.5))
    response = server.client.get(f"/sse/{key('sse-html')}?profile=1")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '"ended":"time limit"' in response.text and '"response_cut":true' in response.text


def test_endless_empty_messages_are_cut_at_the_size_limit(serve):
    server = serve(profiled(manual_timeout=30.0))
    k = key("empty")
    data, took = manual_json(server, f"/empty-stream/{k}")
    assert data["meta"]["ended"] == "size limit" and data["meta"]["response_cut"] is True
    assert took < 20, took
    assert server.client.get("/json").json() == {"hello": "world"}    # the loop is free again
    # The app was stopped: its generator is iterated no more. Suspended at
    # a `yield` (not in an await, where the cancellation would reach it),
    # it is closed when the response that holds it is freed, as when a
    # client leaves an unprofiled stream.
    count = host_app.YIELDED[k]
    time.sleep(0.2)
    assert host_app.YIELDED[k] == count
    gc.collect()
    assert host_app.closed(k).wait(DEADLINE)


def test_silent_stream_is_cut_at_the_time_limit(serve):
    server = serve(profiled(manual_timeout=0.5))
    k = key("silent")
    data, _ = manual_json(server, f"/silent-stream/{k}")
    assert data["meta"]["ended"] == "time limit" and data["meta"]["response_cut"] is True
    assert host_app.closed(k).wait(DEADLINE)


def test_slow_answer_past_the_time_limit_is_not_cut(serve):
    """A response not started at the time limit is not a stream: the app
    finishes, the profile having ended at the limit."""
    server = serve(profiled(manual_timeout=0.3))
    data, took = manual_json(server, "/slow?ms=800")
    assert took >= 0.75
    assert data["meta"]["ended"] == "time limit"
    assert "response_cut" not in data["meta"]
    assert data["meta"]["status"] == 200
    assert data["duration_s"] < 0.75


def test_capture_memory_is_released_when_the_request_ends_without_gc(serve):
    server = serve(profiled(manual_timeout=30.0))
    server.client.get("/json?profile=1")        # warm: the viewer, the engine, the pool
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        k = key("big")
        data, _ = manual_json(server, f"/big-stream/{k}")
        assert data["meta"]["ended"] == "size limit"
        assert data["meta"]["response_bytes"] >= 30 << 20
        assert host_app.closed(k).wait(DEADLINE)     # cancelled in its own await
        # A client that goes away in the middle of a captured stream (before
        # any byte of an answer: the report is not ready).
        gone = key("gone")
        with socket.create_connection(("127.0.0.1", server.port)) as conn:
            conn.sendall(f"GET /sse/{gone}?profile=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            time.sleep(0.3)
        assert host_app.closed(gone).wait(DEADLINE)
        server.wait_idle()
        wait_for(lambda: server_free(server), "slots were not given back")
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        gc.enable()
    assert after - before < 4 << 20, (before, after)


def test_auto_sampled_streams_go_through_untouched(serve, reqprof_logs):
    server = serve(profiled(sample_rate=1.0, manual_timeout=0.3))
    bare = serve(host_app.make_app())

    def first_events(target: Any, n: int) -> bytes:
        got = b""
        with target.client.stream("GET", f"/sse/{key('auto')}") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for chunk in response.iter_raw():
                got += chunk
                if len(got) >= n * len(host_app.EVENT):
                    break
        return got[:n * len(host_app.EVENT)]

    started = time.monotonic()
    assert first_events(server, 60) == first_events(bare, 60) == host_app.EVENT * 60
    assert time.monotonic() - started > 0.3     # went on past the manual time limit


# -- 2. configuration mistakes --------------------------------------------------------------

BAD_SETTINGS = [
    ({"ENABLE_PROFILING": "1", "PROFILING_SAMPLE_RATE": "abc"},
     ["PROFILING_SAMPLE_RATE='abc'", "the environment", "a number from 0.0 to 1.0"]),
    ({"ENABLE_PROFILING": "1", "PROFILING_TOKEN": "short"},
     ["PROFILING_TOKEN=<hidden, 5 characters>", "16 to 256 visible ASCII characters"]),
    ({"ENABLE_PROFILING": "ture"},
     ["ENABLE_PROFILING='ture'", "1/true/t/yes/y/on"]),
    ({"ENABLE_PROFILING": "1", "PROFILING_MANUAL_TIMEOUT": "0"},
     ["PROFILING_MANUAL_TIMEOUT='0'", "a number of seconds from 0.1 to 3600"]),
    ({"ENABLE_PROFILING": "1", "PROFILING_OUTPUT_MAX_MB": "lots"},
     ["PROFILING_OUTPUT_MAX_MB='lots'", "an integer number of megabytes"]),
]


@pytest.mark.parametrize("lifespan", ["auto", "on"])
@pytest.mark.parametrize("env,said", BAD_SETTINGS,
                         ids=[next(iter(e for e in env if e != "ENABLE_PROFILING"),
                                   "ENABLE_PROFILING") for env, _ in BAD_SETTINGS])
def test_bad_setting_stops_uvicorn_with_the_reason(serve_process, env, said, lifespan):
    server = serve_process("host_app:make_lazy_app", env=env, config={"lifespan": lifespan})
    assert server.wait_exit() != 0
    log = server.log()
    assert "Application startup failed. Exiting." in log
    errors = [line for line in log.splitlines() if line.startswith("ERROR:")]
    assert any(all(part in line for part in said) for line in errors), log
    assert "short" not in log


def test_unwritable_output_dir_stops_uvicorn(serve_process, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    server = serve_process("host_app:make_lazy_app", config={"lifespan": "auto"}, env={
        "ENABLE_PROFILING": "1", "PROFILING_OUTPUT_DIR": str(blocker / "reports")})
    assert server.wait_exit() != 0
    assert "PROFILING_OUTPUT_DIR=" in server.log() and "a writable directory" in server.log()


def test_bad_setting_without_lifespan_serves_unprofiled(serve_process):
    server = serve_process("host_app:make_lazy_app", config={"lifespan": "off"},
                           env={"ENABLE_PROFILING": "1", "PROFILING_SAMPLE_RATE": "abc"})
    for target in ["/json", "/json?profile=1", "/json", "/json?profile=1"]:
        response = server.client.get(target)
        assert response.status_code == 200 and response.json() == {"hello": "world"}
    log = server.log()
    assert log.count("this request is served unprofiled") == 1     # once a minute at most
    assert "PROFILING_SAMPLE_RATE='abc'" in log


def test_bad_setting_while_off_is_a_warning(serve_process):
    server = serve_process("host_app:make_lazy_app", config={"lifespan": "auto"},
                           env={"ENABLE_PROFILING": "false", "PROFILING_SAMPLE_RATE": "abc"})
    server.wait_started()
    assert server.client.get("/json?profile=1").json() == {"hello": "world"}
    log = server.log()
    assert "WARNING:  reqprof: PROFILING_SAMPLE_RATE='abc'" in log
    assert "ignored while ENABLE_PROFILING is off" in log
    assert "ERROR" not in log


def test_empty_enable_profiling_means_off(serve_process):
    server = serve_process("host_app:make_lazy_app", env={"ENABLE_PROFILING": ""})
    server.wait_started()
    assert server.client.get("/json?profile=1").json() == {"hello": "world"}
    assert "reqprof" not in server.log()


def test_unknown_variables_are_named_with_the_closest_known(serve_process, tmp_path):
    (tmp_path / ".env").write_text("PROFILING_MAXDEPTH=30\nOTHER_TOOL=1\n")
    server = serve_process("host_app:make_lazy_app", cwd=tmp_path, env={
        "ENABLE_PROFILING": "1", "PROFILING_SAMPLERATE": "1", "PROFILING_ENABLED": "1",
        "PROFILING_XYZZY_QUUX_FROB": "1"})
    server.wait_started()
    log = server.log()
    assert "PROFILING_SAMPLERATE (from the environment) is not a reqprof setting; " \
           "did you mean PROFILING_SAMPLE_RATE?" in log
    assert "PROFILING_ENABLED (from the environment) is not a reqprof setting; " \
           "did you mean ENABLE_PROFILING?" in log
    assert "PROFILING_MAXDEPTH (from .env line 1) is not a reqprof setting; " \
           "did you mean PROFILING_MAX_DEPTH?" in log
    assert "PROFILING_XYZZY_QUUX_FROB (from the environment) is not a reqprof setting\n" in log
    assert "OTHER_TOOL" not in log
    assert log.count("did you mean PROFILING_SAMPLE_RATE") == 1


@pytest.mark.server
def test_bad_setting_stops_hypercorn_with_the_reason(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROFILING_", "ENABLE_PROF"))}
    env.update(ENABLE_PROFILING="1", PROFILING_SAMPLE_RATE="abc",
               PYTHONPATH=str(Path(__file__).parent))
    proc = subprocess.run(
        [sys.executable, "-m", "hypercorn", "--bind",
         "127.0.0.1:0", "host_app:make_lazy_app()"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=DEADLINE)
    out = proc.stdout + proc.stderr     # (its main process exits 0 when the worker fails)
    assert "LifespanFailureError: Lifespan failure in startup" in out
    assert "PROFILING_SAMPLE_RATE='abc'" in out and "a number from 0.0 to 1.0" in out
    assert "Running on" not in out


# -- 3. slots --------------------------------------------------------------------------------

def test_long_sampled_streams_give_their_slots_back_at_max_duration(serve, reqprof_logs,
                                                                    monkeypatch):
    monkeypatch.setattr(request_module, "AUTO_MAX_DURATION", 0.5)
    middleware = profiled(sample_rate=1.0, max_concurrent=4)
    server = serve(middleware)
    clients = [httpx.Client(base_url=server.url, timeout=DEADLINE) for _ in range(4)]
    streams = [c.stream("GET", f"/sse/{key('long')}") for c in clients]
    try:
        readers = [s.__enter__().iter_raw() for s in streams]
        for r in readers:
            assert next(r).startswith(b"data: tick")
        assert middleware.profiling.slots.free == 1      # three sampled; one slot kept for ?profile=1
        wait_for(lambda: middleware.profiling.slots.free == 4, "slots held past the max duration")
        data, _ = manual_json(server, "/json")  # not "busy"
        assert data["meta"]["path"] == "/json"
        for r in readers:                       # the streams go on untouched
            assert next(r).startswith(b"data: tick")
        wait_for(lambda: len(reqprof_logs.summaries()) >= 3, "reports not logged")
        ended = [r for r in reqprof_logs.summaries() if r.reqprof_path.startswith("/sse/")]
        assert len(ended) == 3
        assert all("ended at max duration" in r.getMessage() for r in ended)
    finally:
        for s in streams:
            s.__exit__(None, None, None)
        for c in clients:
            c.close()


def test_sampling_never_takes_the_slot_kept_for_manual_requests(serve):
    middleware = profiled(sample_rate=1.0, max_concurrent=2)
    server = serve(middleware)
    with httpx.Client(base_url=server.url, timeout=DEADLINE) as client:
        with client.stream("GET", f"/sse/{key('hold')}") as held:
            # Kept: a dropped iterator would close the stream (a disconnect).
            events = held.iter_raw()
            next(events)
            assert middleware.profiling.slots.free == 1
            for _ in range(3):      # sampling is full; ?profile=1 is not
                assert server.client.get("/json").json() == {"hello": "world"}
            data, _ = manual_json(server, "/json")
            assert data["meta"]["trigger"] == "manual"


def test_manual_streams_give_their_slots_back_at_the_time_limit(serve):
    middleware = profiled(max_concurrent=4, sample_rate=0.0, manual_timeout=0.5)
    server = serve(middleware)
    with ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        reports = list(pool.map(lambda i: manual_json(server, f"/sse/{key('m')}")[0], range(4)))
        took = time.monotonic() - started
    assert all(r["meta"]["ended"] == "time limit" for r in reports)
    assert took < 0.5 + 8, took
    wait_for(lambda: middleware.profiling.slots.free == 4, "slots not given back")


class TrackedRun:
    """What the reporter's sweep needs of a running profile."""

    def __init__(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.ended_at: float | None = None

    def _deadline(self) -> None:
        self.ended_at = time.monotonic()


def test_profiles_tracked_without_waking_the_reporter_still_end_at_their_deadline():
    from reqprof._reporter import Reporter

    reporter = Reporter()
    first = TrackedRun(0.4)
    reporter.track(first, 0.4)          # the thread sleeps at most 0.4 s from now on
    time.sleep(0.05)
    later = [TrackedRun(0.4) for _ in range(3)]
    for run in later:                   # tracked while it sleeps, without waking it
        reporter.track(run, 0.4)
        time.sleep(0.1)
    untracked = TrackedRun(0.4)
    reporter.track(untracked, 0.4)
    reporter.untrack(untracked)         # ended before its deadline: never called
    wait_for(lambda: all(r.ended_at is not None for r in [first, *later]), "deadlines missed")
    for run in [first, *later]:
        assert run.ended_at >= run.deadline
    time.sleep(0.6)
    assert untracked.ended_at is None
    assert reporter.watching == 0


def test_a_shorter_timeout_wakes_the_reporter_for_its_deadline():
    from reqprof._reporter import Reporter

    reporter = Reporter()
    reporter.track(TrackedRun(300.0), 300.0)    # the thread sleeps up to 300 s
    time.sleep(0.05)
    short = TrackedRun(0.2)
    reporter.track(short, 0.2)
    wait_for(lambda: short.ended_at is not None, "the shorter deadline was missed", 30.0)
    assert short.ended_at >= short.deadline


def test_the_reporter_keeps_no_profile_it_ended():
    """A profile ended at its deadline holds its report until the request
    is over; the sleeping reporter must not keep it (nor the report)."""
    import gc
    import weakref

    from reqprof._reporter import Reporter

    reporter = Reporter()
    run = TrackedRun(0.1)
    gone = weakref.ref(run)
    reporter.track(run, 0.1)
    wait_for(lambda: run.ended_at is not None, "the deadline was missed", 30.0)
    del run
    gc.collect()
    wait_for(lambda: gone() is None, "the reporter thread still holds the ended profile")


# -- 4. the output directory ------------------------------------------------------------------

def report_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("reqprof-"))


def assert_complete_pairs(directory: Path) -> None:
    files = report_files(directory)
    stems = {p.name.rsplit(".", 1)[0] for p in files}
    assert not [p for p in files if p.name.endswith(".tmp")]
    for stem in stems:
        assert (directory / f"{stem}.json").exists() and (directory / f"{stem}.html").exists()


def test_output_dir_stays_within_its_byte_budget(serve, tmp_path, reqprof_logs):
    out = tmp_path / "reports"
    server = serve(profiled(sample_rate=1.0, output_dir=str(out), output_max_mb=1))
    for i in range(25):
        assert server.client.get("/json").status_code == 200
        server.wait_idle()
    total = sum(p.stat().st_size for p in report_files(out))
    assert 0 < total <= 1 << 20, total
    assert_complete_pairs(out)
    assert len(report_files(out)) < 50              # older ones were removed
    assert reqprof_logs.summaries()[-1].reqprof_report_path.startswith(str(out))


def test_removed_output_dir_is_made_again(serve, tmp_path, reqprof_logs):
    out = tmp_path / "reports"
    server = serve(profiled(sample_rate=1.0, output_dir=str(out)))
    server.client.get("/json")
    server.wait_idle()
    shutil.rmtree(out)
    server.client.get("/json")
    server.wait_idle()
    assert len(report_files(out)) == 2
    assert_complete_pairs(out)


def test_leftovers_of_a_crash_are_removed(serve, tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    old = time.time() - 3600
    leftovers = [out / "reqprof-20200101T000000.000000Z-1-0-GET-x-200.json",
                 out / "reqprof-20200101T000000.000000Z-1-1-GET-y-200.html.99.tmp"]
    for path in leftovers:
        path.write_text("{}")
        os.utime(path, (old, old))
    (out / "notes.txt").write_text("not ours")
    server = serve(profiled(sample_rate=1.0, output_dir=str(out)))
    server.client.get("/json")
    server.wait_idle()
    assert not any(p.exists() for p in leftovers)
    assert (out / "notes.txt").exists()
    assert_complete_pairs(out)


def test_report_larger_than_the_budget_is_dropped_and_said(serve, tmp_path, reqprof_logs):
    out = tmp_path / "reports"
    server = serve(profiled(sample_rate=1.0, output_dir=str(out), output_max_mb=1,
                            max_depth=1000))
    assert server.client.get("/wide?ms=300&depth=600").status_code == 200
    server.wait_idle()
    assert report_files(out) == []
    [warning] = [m for m in reqprof_logs.messages(logging.WARNING) if "was not written" in m]
    assert "more than PROFILING_OUTPUT_MAX_MB" in warning
    assert len(reqprof_logs.summaries()) == 1       # the request is still logged


@pytest.fixture
def tiny_volume(tmp_path: Path) -> Any:
    """A 1 MB tmpfs (root can mount one here; elsewhere the test says so)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"this test needs to mount a 1 MB tmpfs (as root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_small_volume_never_fills_up(serve, tiny_volume, reqprof_logs):
    out = tiny_volume / "reports"
    server = serve(profiled(sample_rate=1.0, output_dir=str(out)))
    lowest = None
    for i in range(30):
        assert server.client.get("/json").status_code == 200
        server.wait_idle()
        st = os.statvfs(tiny_volume)
        free = st.f_bavail * st.f_frsize
        lowest = free if lowest is None else min(lowest, free)
    size = os.statvfs(tiny_volume).f_blocks * os.statvfs(tiny_volume).f_frsize
    assert lowest >= 0.05 * size - 4096, (lowest, size)
    (tiny_volume / "other-writer").write_bytes(b"x" * 20000)     # others can still write
    assert_complete_pairs(out)
    assert report_files(out)


# -- 5. log lines request text cannot forge ------------------------------------------------------

def test_exception_text_cannot_forge_log_lines(serve, reqprof_logs):
    server = serve(profiled())
    response = server.client.get("/forge?profile=1")
    assert response.status_code == 200
    formatter = logging.Formatter("%(levelname)s: %(message)s")
    text = "\n".join(formatter.format(r) for r in reqprof_logs.records)
    assert "ValueError: bad input" in text
    for line in text.splitlines():
        assert not line.startswith("INFO:     reqprof: GET /forged"), line
    assert "\x1b" not in text and "\x00" not in text and "\r" not in text
    assert "\\nINFO:     reqprof: GET /forged" in text and "\\x1b[31m" in text


# -- 6. the token header never reaches the app ----------------------------------------------------

@pytest.mark.parametrize("query", ["", "?profile=0", "?profile=1&profile_format=nope",
                                   "?profile=1"])
@pytest.mark.parametrize("given", [TOKEN, "wrong-token-0123456789"])
def test_token_header_is_removed_from_every_request(serve, query, given):
    server = serve(profiled(token=TOKEN))
    response = server.client.get(f"/headers{query}", headers={"X-Profiling-Token": given,
                                                               "X-Other": "kept"})
    assert response.status_code == 200
    if response.headers["content-type"] == "application/json":
        seen = response.json()["headers"]
        assert "x-other" in seen and "x-profiling-token" not in seen
    else:
        assert query == "?profile=1" and given == TOKEN     # the report itself


def test_token_header_is_removed_while_profiling_is_off(serve):
    server = serve(ProfilingMiddleware(host_app.make_app(),
                                       settings=Settings(enabled=False, token=TOKEN)))
    seen = server.client.get("/headers", headers={"X-Profiling-Token": TOKEN}).json()["headers"]
    assert "x-profiling-token" not in seen


# -- 7. rendering off the event loop ---------------------------------------------------------------

def test_large_report_is_rendered_in_a_reqprof_thread(serve, monkeypatch):
    from reqprof import report as report_module

    threads: list[str] = []
    real = report_module.Report.to_bytes

    def spy(self: Any, fmt: str) -> bytes:
        threads.append(threading.current_thread().name)
        return real(self, fmt)

    monkeypatch.setattr(report_module.Report, "to_bytes", spy)
    server = serve(profiled(max_depth=1000))
    response = server.client.get("/wide?ms=200&depth=600&profile=1")
    assert response.status_code == 200 and len(response.content) > 1 << 20
    assert threads and all(name.startswith("reqprof-render") for name in threads), threads


@pytest.mark.server
def test_streams_are_cut_under_trio(tmp_path):
    """hypercorn's trio worker: the same time and size limits, through trio's
    cancel scopes."""
    from conftest import listening_socket

    sock = listening_socket()
    port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROFILING_", "ENABLE_PROF"))}
    env.update(ENABLE_PROFILING="1", PROFILING_SAMPLE_RATE="0", PROFILING_MANUAL_TIMEOUT="1",
               PYTHONPATH=str(Path(__file__).parent))
    log = open(tmp_path / "hypercorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "-k", "trio", "--bind", f"fd://{sock.fileno()}",
         "host_app:make_lazy_app()"],
        cwd=tmp_path, env=env, pass_fds=[sock.fileno()], stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=DEADLINE) as client:
            started = time.monotonic()
            sse = client.get("/sse/trio?profile=1&profile_format=json").json()
            assert time.monotonic() - started < 1 + 5
            assert sse["meta"]["ended"] == "time limit" and sse["meta"]["response_cut"] is True
            empty = client.get("/empty-stream/trio?profile=1&profile_format=json").json()
            assert empty["meta"]["ended"] == "size limit"
            assert client.get("/json").json() == {"hello": "world"}
    finally:
        proc.terminate()
        proc.wait(DEADLINE)
        log.close()
        sock.close()
    assert "Traceback" not in (tmp_path / "hypercorn.log").read_text()
