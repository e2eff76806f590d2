"""Requests never wait on the sampler thread.

What can be done to one thread from outside, and is done here:
- starve it: a C call that holds the GIL for a quarter of a second at a
  time in another thread (the sampler waits for the GIL like everyone);
- freeze it: ptrace stops the sampler thread alone (PTRACE_SEIZE +
  PTRACE_INTERRUPT on its thread id; the rest of the process runs on),
  for seconds, while it is parked and while a profiled request is being
  sampled;
- kill it: the engine's shutdown hook stops it for good in a running
  server.
In each case requests are served, with their reports (without samples while
the sampler is gone), and sampling comes back when it does.

One state cannot be survived by any thread design: a thread frozen inside
CPython's GIL hand-over (it asked for the GIL and the holder waits for it to
take it) stalls every thread; the freeze test notes and retries that case.
"""
from __future__ import annotations

import ctypes
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from apps import profiled
from mixed_app import fetch_stats

SANITIZED = os.environ.get("REQPROF_EXPECT_SANITIZED") == "1"
# Samples in a report the sampler thread took no part in: the session's own
# start and stop may each record the stack they run on.
NO_SAMPLER = 2


# -- a GIL hog ------------------------------------------------------------------------------

def test_requests_are_served_while_a_c_call_hogs_the_gil(serve):
    from reqprof import _core

    libc = ctypes.PyDLL(None)           # PyDLL: the GIL stays held during the call
    libc.usleep.argtypes = [ctypes.c_uint]
    server = serve(profiled(sample_rate=1.0))
    before = _core.stats()
    stop = threading.Event()
    hog_periods = []

    def hog() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            libc.usleep(250_000)
            hog_periods.append(time.monotonic() - t0)
            time.sleep(0.05)

    hogger = threading.Thread(target=hog, daemon=True)
    hogger.start()
    latencies = []
    try:
        def one(i: int) -> dict:
            t0 = time.monotonic()
            response = server.client.get(f"/sync?ms=20&profile={i % 2}&profile_format=json")
            latencies.append(time.monotonic() - t0)
            assert response.status_code == 200
            return response.json()

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(one, range(40)))
    finally:
        stop.set()
        hogger.join(10)
    assert len(hog_periods) >= 3
    assert max(latencies) < 10, max(latencies)
    reports = [r for r in results if "root" in r]
    assert len(reports) == 20
    after = _core.stats()
    assert after["late_ticks"] > before["late_ticks"]       # the sampler fell behind, and
    data = server.client.get("/sync?ms=60&profile=1&profile_format=json").json()
    assert data["samples"] >= 10                             # it samples again
    server.wait_idle()
    assert _core.stats()["active_sessions"] == 0


# -- a frozen sampler (ptrace) -------------------------------------------------------------------

PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17
WALL = 0x40000000


class Frozen:
    """Stops one thread of another process with ptrace until released."""

    def __init__(self, pid: int, tid: int) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                     ctypes.c_void_p]
        self.libc.ptrace.restype = ctypes.c_long
        self.pid, self.tid = pid, tid
        if self.libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
            err = ctypes.get_errno()
            pytest.skip(f"ptrace is not permitted here ({os.strerror(err)})")
        self.attached = True
        assert self.libc.ptrace(PTRACE_INTERRUPT, tid, None, None) == 0
        waited, _ = os.waitpid(tid, WALL)
        assert waited == tid
        assert self.state() == "t"

    def state(self) -> str:
        with open(f"/proc/{self.pid}/task/{self.tid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]

    def release(self) -> None:
        if self.attached:
            self.attached = False
            assert self.libc.ptrace(PTRACE_DETACH, self.tid, None, None) == 0


def sampler_tid(pid: int) -> int:
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == "reqprof-sampler":
                    return int(tid)
        except FileNotFoundError:
            pass
    raise AssertionError("no reqprof-sampler thread")


def profiled_reports(client: httpx.Client, n: int, ms: int = 15) -> list[dict]:
    reports = []
    for _ in range(n):
        t0 = time.monotonic()
        response = client.get(f"/spin?ms={ms}&profile=1&profile_format=json", timeout=10)
        assert time.monotonic() - t0 < 5
        assert response.status_code == 200
        reports.append(response.json())
    return reports


def responsive(server: Any, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"{server.url}/async/1", timeout=timeout).status_code == 200
    except httpx.TimeoutException:
        return False


@pytest.fixture
def sampler_server(serve_process):
    server = serve_process("mixed_app:make_profiled_app",
                           env={"ENABLE_PROFILING": "1", "PROFILING_SAMPLE_RATE": "0"})
    server.wait_started()
    [warm] = profiled_reports(server.client, 1, ms=30)      # the sampler thread exists now
    assert warm["samples"] > NO_SAMPLER
    return server


@pytest.mark.skipif(SANITIZED, reason="ptrace-stopping a thread of an ASan process is not "
                                      "what this test is about")
def test_requests_go_on_while_the_parked_sampler_is_frozen(sampler_server):
    server = sampler_server
    deadline = time.monotonic() + 30
    while fetch_stats(server.port)["engine"]["active_sessions"] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.1)             # parked on its condition variable, no GIL, no lock
    frozen = Frozen(server.proc.pid, sampler_tid(server.proc.pid))
    try:
        t0 = time.monotonic()
        reports = profiled_reports(server.client, 30)
        plain = [server.client.get(f"/async/{i}").json() for i in range(30)]
        elapsed = time.monotonic() - t0
        assert frozen.state() == "t"                         # frozen all along
    finally:
        frozen.release()
    assert plain == [{"async": i} for i in range(30)]
    assert elapsed < 15, elapsed
    assert all(r["samples"] <= NO_SAMPLER and r["duration_s"] > 0.01 for r in reports)
    after = profiled_reports(server.client, 3, ms=40)        # sampling is back
    assert max(r["samples"] for r in after) > 10     # the sampler is back


@pytest.mark.skipif(SANITIZED, reason="ptrace-stopping a thread of an ASan process is not "
                                      "what this test is about")
def test_requests_go_on_while_the_busy_sampler_is_frozen(sampler_server):
    server = sampler_server
    handover_stalls = 0
    with ThreadPoolExecutor(1) as pool:
        # A profiled request that keeps the sampler busy for seconds.
        long = pool.submit(httpx.get, f"{server.url}/spin?ms=6000&profile=1&profile_format=json",
                           timeout=60)
        deadline = time.monotonic() + 30
        while fetch_stats(server.port)["engine"]["active_sessions"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)
        for _ in range(20):
            frozen = Frozen(server.proc.pid, sampler_tid(server.proc.pid))
            if responsive(server):
                break
            # Frozen inside the GIL hand-over: the whole process waits.
            frozen.release()
            handover_stalls += 1
            time.sleep(0.05)
        else:
            pytest.fail("the sampler was caught in the GIL hand-over 20 times")
        try:
            t0 = time.monotonic()
            reports = profiled_reports(server.client, 20)
            plain = [server.client.get(f"/async/{i}").json() for i in range(20)]
            elapsed = time.monotonic() - t0
            assert frozen.state() == "t"
        finally:
            frozen.release()
        long_report = long.result()
    assert plain == [{"async": i} for i in range(20)]
    assert elapsed < 15, elapsed
    assert all(r["samples"] <= NO_SAMPLER for r in reports)
    assert long_report.status_code == 200 and long_report.json()["samples"] > 100
    after = profiled_reports(server.client, 3, ms=40)
    assert max(r["samples"] for r in after) > 10     # the sampler is back
    print(f"sampler caught in the GIL hand-over {handover_stalls} time(s) before a clean freeze")


# -- a sampler that is gone for good ------------------------------------------------------------

def test_requests_go_on_when_the_sampler_is_gone(sampler_server):
    server = sampler_server
    assert server.client.post("/_stop_sampler").json() == {"thread_alive": 0}
    t0 = time.monotonic()
    reports = profiled_reports(server.client, 20)
    assert all(r["samples"] <= NO_SAMPLER for r in reports)
    assert [server.client.get(f"/sync/{i}").json() for i in range(10)] == \
        [{"sync": i} for i in range(10)]
    assert time.monotonic() - t0 < 15
    stats = fetch_stats(server.port)
    assert stats["engine"]["thread_alive"] == 0 and stats["engine"]["active_sessions"] == 0
    assert "Traceback" not in server.log()
