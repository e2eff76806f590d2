"""Cost child: ``cost_glue.py [CONFIG SECONDS]``. What reqprof's own code costs per profiled
request, without a server: the HTTP benchmark's FastAPI app
(``http_app.py``) called in-process through ASGI, ``N`` requests one after
another on one event loop, each wrapped in ``ProfilingMiddleware``.

Configurations in the same process, interleaved in rounds (CONFIGS): the
app alone, the middleware with profiling off (ENABLE_PROFILING=false),
every request profiled (rate 1.0, 1 ms, report logged to a file by the
reporter thread), and two variants of the last that take one part away:
an interval of 1 s (no tick lands in a request: the sampler neither wakes
nor takes the GIL) and the reporter quiet (the `reqprof` logger at
WARNING: a report is handed over, and dropped unread), and both (what is
left is reqprof's own code on the request's thread). Per request: each
thread's CPU time (and, apart, the CPU time spent inside the app itself,
under the middleware: the app's own code, slower or not), the sampler's
wake-ups, ticks; and, at rate 1.0, the
wall time of each step of reqprof's code (timers put around its functions
by this script, the product untouched): on the request's thread the
profile's start and stop and what wraps them, in the reporter thread the
summary line with the text tree (one engine call) and the logging call.

With CONFIG and SECONDS, it only runs that configuration for that long
(for py-spy or perf to look at) and prints ``{}``."""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from typing import Any, Callable

from common import emit, name_threads, proc_threads, run_main, thread_delta

N = 150
ROUNDS = 9
QUERY = b"q=a&limit=20"
STEPS: dict[str, list[int]] = {}


def timed(owner: Any, name: str, label: str) -> None:
    """Wraps ``owner.name`` to add its wall time (ns) to STEPS[label]."""
    func = getattr(owner, name)
    times = STEPS.setdefault(label, [])

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter_ns()
        try:
            return func(*args, **kwargs)
        finally:
            times.append(time.perf_counter_ns() - t)

    setattr(owner, name, wrapper)


def instrument() -> None:
    from reqprof import _logging, _profiling, _reporter, _request, asgi, profiler

    timed(_profiling.Profiling, "begin", "request: Profiling.begin (whole)")
    timed(_request.RequestProfile, "end", "request: RequestProfile.end (whole)")
    timed(profiler, "start_session", "request: start_session (engine session started)")
    timed(profiler, "stop_session", "request: stop_session (engine stop, symbols, Report built)")
    timed(asgi._Exchange, "meta", "request: describe() (the report's request metadata)")
    timed(_profiling.Profiling, "_finished", "request: hand-over to the reporter (_finished)")
    timed(_reporter.Reporter, "track", "request: reporter.track (deadline)")
    timed(_reporter.Reporter, "handle", "reporter: Reporter.handle (whole)")
    timed(_logging, "log_record", "reporter: summary line, fields and text tree (log_record)")
    for handler in logging.getLogger("reqprof").handlers:
        timed(handler, "emit", "reporter: log record written (handler.emit)")


async def call(app: Any) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/items", "raw_path": b"/items", "root_path": "",
             "query_string": QUERY, "headers": [(b"host", b"127.0.0.1")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    await app(scope, receive, send)


class AppTimer:
    """The app, with the CPU time of this thread spent inside it (ns) added
    up: what the app's own code costs, apart from the middleware around it."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.cpu_ns = 0

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        t = time.thread_time_ns()
        try:
            await self.app(scope, receive, send)
        finally:
            self.cpu_ns += time.thread_time_ns() - t


APP_TIMERS: list[AppTimer] = []


def engine_counts() -> dict[str, int]:
    from reqprof import _core

    s = _core.stats()
    return {k: int(s[k]) for k in ("ticks", "tick_ns", "gil_wait_ns", "gil_switches", "assisted_waits")}


def run(app: Any, n: int, quiet: bool = False) -> dict[str, float]:
    """n requests: per request, wall time and each thread's CPU (ns, by
    kernel thread name; ``loop`` is this thread), voluntary context switches
    of the engine's threads, engine counters."""
    from reqprof._reporter import reporter

    logger = logging.getLogger("reqprof")
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    me = threading.get_native_id()
    app_cpu = sum(t.cpu_ns for t in APP_TIMERS)
    before, counts = proc_threads(), engine_counts()
    t = time.perf_counter_ns()

    async def many() -> None:
        for _ in range(n):
            await call(app)

    try:
        asyncio.run(many())
        wall = time.perf_counter_ns() - t
        reporter.drain(10.0)
    finally:
        logger.setLevel(level)
    delta = thread_delta(before, proc_threads())
    out: dict[str, float] = {"wall": wall / n, "app": (sum(t.cpu_ns for t in APP_TIMERS) - app_cpu) / n}
    for tid, d in delta.items():
        name = "loop" if tid == me else d["comm"]
        out[name] = out.get(name, 0) + d["run_ns"] / n
        out[name + " vcs"] = out.get(name + " vcs", 0) + d["vcs"] / n
    out.update({k: (v - counts[k]) / n for k, v in engine_counts().items()})
    return out


def call_counts(alone: Callable, profiled: Callable, n: int = 100) -> dict[str, Any]:
    """Python function calls per request (cProfile's counts, exact; its
    times are not used), alone and profiled, and the functions of reqprof
    and the stdlib that a profiled request calls most."""
    import cProfile
    import pstats

    counts = {}
    for name, app in (("alone", alone), ("rate1", profiled)):
        prof = cProfile.Profile()
        prof.enable()
        run(app, n)
        prof.disable()
        counts[name] = pstats.Stats(prof).stats    # type: ignore[attr-defined]
    total = {k: sum(v[1] for v in st.values()) / n for k, st in counts.items()}
    extra: dict[str, float] = {}
    for (file, line, func), v in counts["rate1"].items():
        before = counts["alone"].get((file, line, func), (0, 0))[1]
        if v[1] > before:
            where = "reqprof/" + file.split("reqprof/", 1)[1] if "reqprof/" in file else os.path.basename(file)
            extra[f"{func} ({where}:{line})" if line else func] = (v[1] - before) / n
    top = sorted(extra.items(), key=lambda kv: -kv[1])[:15]
    return {"n": n, "alone": total["alone"], "rate1": total["rate1"], "top": top}


def main() -> None:
    # The reporter logs to stderr (reqprof's fallback handler): a file, as
    # under a server whose output goes to a log file.
    log = tempfile.TemporaryFile()
    os.dup2(log.fileno(), 2)
    os.environ["BENCH_MIDDLEWARE"] = "none"
    name_threads()
    from http_app import app
    from reqprof import ProfilingMiddleware

    inner = AppTimer(app)
    APP_TIMERS.append(inner)

    def profiled(**options: Any) -> Callable:
        return ProfilingMiddleware(inner, env_file=None, enabled=True, sample_rate=1.0, **options)

    # name: (ASGI app, reporter quiet)
    configs: dict[str, tuple[Callable, bool]] = {
        "alone": (inner, False),
        "off": (ProfilingMiddleware(inner, env_file=None, enabled=False), False),
        "rate1": (profiled(), False),
        "rate1_no_ticks": (profiled(interval=1.0), False),
        "rate1_quiet": (profiled(), True),
        "rate1_bare": (profiled(interval=1.0), True),
    }
    for a, quiet in configs.values():
        run(a, 50, quiet)                               # warm-up
    calls = call_counts(configs["alone"][0], configs["rate1"][0])
    if len(sys.argv) > 2:                               # one config, for a profiler to look at
        a, quiet = configs[sys.argv[1]]
        end = time.monotonic() + float(sys.argv[2])
        while time.monotonic() < end:
            run(a, 100, quiet)
        emit({})
        return
    instrument()
    results: dict[str, list[dict[str, float]]] = {k: [] for k in configs}
    timed_steps: dict[str, list[int]] = {}
    order = list(configs)
    for r in range(ROUNDS):
        for name in (order if r % 2 == 0 else order[::-1]):
            for steps in STEPS.values():
                steps.clear()
            results[name].append(run(configs[name][0], N, configs[name][1]))
            if name == "rate1":
                for label, v in STEPS.items():
                    timed_steps.setdefault(label, []).extend(v)
    steps = {label: {"median_us": statistics.median(v) / 1000, "mean_us": statistics.fmean(v) / 1000,
                     "per_request": len(v) / (N * ROUNDS)}
             for label, v in timed_steps.items() if v}
    emit({"n": N, "rounds": ROUNDS, "runs": results, "steps": steps, "calls": calls})


if __name__ == "__main__":
    run_main(main)
