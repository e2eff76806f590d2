"""Per profiled request, the CPU of reqprof's own code on the request's
thread: ``cost_request.py [REQUESTS [ROUNDS]]``.

The HTTP benchmark's FastAPI app (``http_app.py``) is called in-process
through ASGI, one request after another on one event loop, bare and wrapped
in ``ProfilingMiddleware`` at ``PROFILING_SAMPLE_RATE=1.0``:

- ``alone``: the app alone (what the harness itself costs around it);
- ``bare``: rate 1.0 with a 1 s interval (no tick lands in a request) and
  the ``reqprof`` logger at WARNING (the reporter drops each report
  unread): reqprof's code on the request's thread and nothing else;
- ``quiet``: rate 1.0 at 1 ms, the reporter quiet (ticks added);
- ``full``: rate 1.0 at 1 ms, each report logged by the reporter thread to
  a file (what production runs).

Each request's thread CPU (``time.thread_time_ns``) is read before and
after it, and again around the app inside the middleware, so that the CPU
of reqprof's code around the app (``around``) is the request's CPU less the
app's. The configurations run interleaved, ROUNDS rounds of REQUESTS
requests each. Prints one JSON line: per configuration the median and mean
per request (µs) of ``around``, of the whole request and of the app.

To compare two builds, run it once per build, alternating (PYTHONPATH
selects the build): both then see the same machine."""
from __future__ import annotations

import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

from common import emit, run_main

QUERY = b"q=a&limit=20"
SCOPE = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
         "scheme": "http", "path": "/items", "raw_path": b"/items", "root_path": "",
         "query_string": QUERY, "headers": [(b"host", b"127.0.0.1")],
         "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}


class AppTimer:
    """The app, with this thread's CPU inside it (ns) kept for the request."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.last = 0

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        t = time.thread_time_ns()
        try:
            await self.app(scope, receive, send)
        finally:
            self.last = time.thread_time_ns() - t


async def receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict) -> None:
    pass


def run(app: Any, timer: AppTimer, n: int, quiet: bool) -> tuple[list[int], list[int]]:
    """n requests: each one's thread CPU (ns), and the app's part of it."""
    from reqprof._reporter import reporter

    logger = logging.getLogger("reqprof")
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    whole: list[int] = []
    inner: list[int] = []

    async def many() -> None:
        clock = time.thread_time_ns
        for _ in range(n):
            timer.last = 0
            t = clock()
            await app(dict(SCOPE), receive, send)
            whole.append(clock() - t)
            inner.append(timer.last)

    try:
        asyncio.run(many())
        reporter.drain(10.0)
    finally:
        logger.setLevel(level)
    return whole, inner


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    log = tempfile.TemporaryFile()
    os.dup2(log.fileno(), 2)            # the reporter's log lines: a file
    os.environ["BENCH_MIDDLEWARE"] = "none"
    from http_app import app
    from reqprof import ProfilingMiddleware

    timer = AppTimer(app)

    def profiled(**options: Any) -> Callable:
        return ProfilingMiddleware(timer, env_file=None, enabled=True, sample_rate=1.0,
                                   **options)

    configs: dict[str, tuple[Callable, bool]] = {
        "alone": (timer, False),
        "bare": (profiled(interval=1.0), True),
        "quiet": (profiled(), True),
        "full": (profiled(), False),
    }
    for a, quiet in configs.values():
        run(a, timer, 200, quiet)                   # warm-up
    data: dict[str, dict[str, list[int]]] = {k: {"whole": [], "app": []} for k in configs}
    order = list(configs)
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            a, quiet = configs[name]
            whole, inner = run(a, timer, n, quiet)
            data[name]["whole"] += whole
            data[name]["app"] += inner
    out: dict[str, Any] = {"requests": n * rounds, "path": os.path.dirname(
        sys.modules["reqprof"].__file__ or "")}
    for name, d in data.items():
        around = [w - i for w, i in zip(d["whole"], d["app"])]
        out[name] = {key: {"median_us": statistics.median(v) / 1000,
                           "mean_us": statistics.fmean(v) / 1000}
                     for key, v in (("around", around), ("whole", d["whole"]), ("app", d["app"]))}
    emit(out)


if __name__ == "__main__":
    run_main(main)
