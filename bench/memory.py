"""Memory child: ``memory.py SCENARIO TOOL``.

Profiles one scenario and prints what the finished profile holds: for
reqprof the engine's own accounting (``Report.memory_bytes``, nodes, which
caps were hit); for every tool the growth of the process's RSS while
sampling and once the profile is stopped (which includes what the workload
itself allocates: compare with the ``bare`` run). A warm-up session runs
first, so one-time costs (the sampler thread, imports) are not counted."""
from __future__ import annotations

import gc
import os
import sys
from typing import Any, Callable

from common import emit
from pathological import deep_recursion, distinct_functions
from tools import Run

INTERVAL = {"typical": 0.001, "deep": 0.001, "distinct": 0.0002, "distinct_4mib": 0.0002}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def typical_request() -> Callable[[], None]:
    """One GET through FastAPI (routing, validation, a pydantic response
    model), called as ASGI in-process, 20 times in a row."""
    import asyncio

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from http_app import app

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/items", "raw_path": b"/items", "root_path": "",
             "query_string": b"q=a&limit=20", "headers": [(b"host", b"bench")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def one() -> None:
        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            pass

        await app(dict(scope), receive, send)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(one())   # warm-up (route compilation, imports)

    def run() -> None:
        for _ in range(20):
            loop.run_until_complete(one())

    return run


def make(scenario: str) -> Callable[[], None]:
    if scenario == "typical":
        return typical_request()
    if scenario == "deep":
        return deep_recursion(900, 0.3)
    if scenario.startswith("distinct"):
        return distinct_functions(100_000, 45, 1.0)
    raise ValueError(scenario)


def main(scenario: str, tool: str) -> None:
    work = make(scenario)
    options: dict[str, Any] = {}
    if tool.startswith("reqprof") and scenario == "deep":
        options["max_depth"] = 1000
    if tool.startswith("reqprof") and scenario == "distinct_4mib":
        options["max_bytes"] = 4 << 20
    warm = Run(tool, interval=INTERVAL[scenario], **options)   # sampler thread, imports
    warm.start()
    warm.stop()
    del warm
    gc.collect()
    rss0 = rss_bytes()
    run = Run(tool, interval=INTERVAL[scenario], **options)
    run.start()
    work()
    rss_sampling = rss_bytes() - rss0
    run.stop()
    gc.collect()
    out: dict[str, Any] = {"samples": run.samples(), "rss_sampling": rss_sampling,
                           "rss_growth": rss_bytes() - rss0}
    if tool.startswith("reqprof"):
        r = run.result
        out.update(bytes=r.memory_bytes, nodes=r.nodes, truncated=r.truncated_reasons)
    run.result = None
    del run
    gc.collect()
    out["rss_after_release"] = rss_bytes() - rss0
    emit(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
