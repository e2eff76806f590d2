"""Render-stall child: ``render_stall.py MODE``.

An app under uvicorn (a thread of this process) answers ``/ping`` while a
client asks ``?profile=1`` for a request whose report is ~25 MB (random
call paths 600 frames deep, ``PROFILING_MAX_DEPTH=1000``). A pinger keeps
one keep-alive connection busy with ``/ping`` the whole time and records
each latency; the middleware's render calls are timed, so the pings that
overlap a render can be told apart.

MODE ``thread``: reqprof as it is (the report rendered in a reqprof thread,
the C writers without the GIL). MODE ``loop``: the render run inline on the
event loop, as before (for comparison in the same run).

Prints one JSON line: ping p50/p99 before any profiled request (idle), p50
and max of the pings that overlap a render, the report size, the render
time.
"""
from __future__ import annotations

import http.client
import random
import statistics
import sys
import threading
import time
from typing import Any

from common import emit

ROUNDS = 3


def _spin() -> int:
    end = time.perf_counter() + 0.0005
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def _left(depth: int, bits: int) -> int:
    return _spin() if depth <= 0 else (_right if bits & 1 else _left)(depth - 1, bits >> 1)


def _right(depth: int, bits: int) -> int:
    return _spin() if depth <= 0 else (_right if bits & 1 else _left)(depth - 1, bits >> 1)


def wide(ms: int, depth: int) -> int:
    rng = random.Random(7)
    end = time.perf_counter() + ms / 1000
    total = 0
    while time.perf_counter() < end:
        total += _left(depth, rng.getrandbits(depth))
    return total


def make_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def ping(request: Any) -> PlainTextResponse:
        return PlainTextResponse("pong")

    def wide_endpoint(request: Any) -> JSONResponse:
        return JSONResponse({"total": wide(300, 600)})

    return Starlette(routes=[Route("/ping", ping), Route("/wide", wide_endpoint)])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(mode: str) -> None:
    import socket

    import uvicorn

    from reqprof import ProfilingMiddleware, Settings, _aio

    windows: list[tuple[float, float]] = []
    middleware = ProfilingMiddleware(make_app(), settings=Settings(
        enabled=True, sample_rate=0.0, max_depth=1000))
    real_render = middleware.profiling.render

    def timed_render(report: Any, fmt: str) -> Any:
        t = time.monotonic()
        try:
            return real_render(report, fmt)
        finally:
            windows.append((t, time.monotonic()))

    middleware.profiling.render = timed_render   # type: ignore[method-assign]
    if mode == "loop":
        async def inline(lib: str, fn: Any) -> Any:
            return fn()
        _aio.run_in_thread = inline     # type: ignore[assignment]

    # proto=TCP, as getaddrinfo gives it: asyncio sets TCP_NODELAY only then.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(middleware, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)

    pings: list[tuple[float, float]] = []
    stop = threading.Event()

    def pinger() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while not stop.is_set():
            t = time.monotonic()
            conn.request("GET", "/ping")
            conn.getresponse().read()
            pings.append((t, time.monotonic()))
            time.sleep(0.002)
        conn.close()

    ping_thread = threading.Thread(target=pinger)
    ping_thread.start()
    time.sleep(1.0)
    idle_until = time.monotonic()
    size = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(ROUNDS):
        conn.request("GET", "/wide?profile=1")
        size = len(conn.getresponse().read())
        time.sleep(0.3)
    conn.close()
    stop.set()
    ping_thread.join()
    server.should_exit = True
    thread.join(10)

    def overlaps(p: tuple[float, float]) -> bool:
        return any(p[0] < end and p[1] > start for start, end in windows)

    during = [(b - a) * 1000 for a, b in pings if overlaps((a, b))]
    idle = [(b - a) * 1000 for a, b in pings if b < idle_until]
    emit({
        "mode": mode, "report_mb": round(size / 2**20, 1),
        "render_ms": round(statistics.median((b - a) * 1000 for a, b in windows), 1),
        "pings_idle": len(idle), "pings_during": len(during),
        "p50_idle_ms": round(statistics.median(idle), 2),
        "p99_idle_ms": round(percentile(idle, 0.99), 2),
        "p50_during_ms": round(statistics.median(during), 2) if during else None,
        "p99_during_ms": round(percentile(during, 0.99), 2) if during else None,
        "max_during_ms": round(max(during), 2) if during else None,
    })


if __name__ == "__main__":
    sys.setrecursionlimit(5000)
    main(sys.argv[1] if len(sys.argv) > 1 else "thread")
