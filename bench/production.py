"""Production-view child: ``production.py``.

- Merge cost: a real profile of about 200 call-tree nodes (random call
  paths), merged into a route's aggregate 2,000 times with
  ``_core.Aggregate.add`` (what every profiled request costs its thread
  when a store is on); median and p99 in microseconds.
- Store size per million requests: 1,000,000 requests over 20 routes at
  1,000 requests/s (17 one-minute windows), each window's merged profiles
  and latency histograms, and 1% of the requests kept in full (the report
  of the same 200-node profile), written with ``reqprof.store.Store``;
  the file's size.

Prints one JSON line.
"""
from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time

from common import emit


def _leaf() -> int:
    end = time.perf_counter() + 0.0002
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def _make_funcs(n: int) -> list:
    funcs = []
    for i in range(n):
        scope: dict = {"_leaf": _leaf}
        exec(f"def f{i}(path):\n    return path[0](path[1:]) if path else _leaf()\n", scope)
        funcs.append(scope[f"f{i}"])
    return funcs


def profile_of_about(nodes: int):
    """A stopped session whose tree has about ``nodes`` nodes."""
    from reqprof import Profiler

    funcs = _make_funcs(40)
    rng = random.Random(5)
    with Profiler(interval=0.0002) as prof:
        while True:
            for _ in range(50):
                path = [rng.choice(funcs) for _ in range(rng.randint(3, 8))]
                path[0](path[1:])
            if prof._session.summary()["nodes"] >= nodes:
                break
    return prof.report


def main() -> None:
    from reqprof import _core
    from reqprof.store import KeptRequest, RouteWindow, Store

    report = profile_of_about(200)
    session = report._session
    nodes = session.summary()["nodes"]
    agg = _core.Aggregate()
    times = []
    for i in range(2000):
        t = time.perf_counter_ns()
        agg.add(session, "GET", "/items/{item_id}", 0.012, 0.008, False)
        times.append((time.perf_counter_ns() - t) / 1000.0)
    times.sort()
    merge = {"nodes": nodes, "median_us": round(statistics.median(times), 1),
             "p99_us": round(times[int(0.99 * len(times))], 1)}

    report_json = report.to_bytes("json")
    with tempfile.TemporaryDirectory(prefix="reqprof-bench-") as tmp:
        store = Store(os.path.join(tmp, "store.db"))
        routes = [f"/route/{i}/{{id}}" for i in range(20)]
        per_window = 60_000 // len(routes)
        windows = 1_000_000 // 60_000 + 1
        kept_total = 0
        start = time.time()
        for w in range(windows):
            window_agg = _core.Aggregate()
            for route in routes:
                for k in range(20):     # merged trees: a few sessions are enough
                    window_agg.add(session, "GET", route, 0.010 + k / 1000, 0.006, False)
            rows = []
            for index, (method, route, count, errors, wall_s, cpu_s, max_ms, latency,
                        has_profile) in enumerate(window_agg.routes()):
                rows.append(RouteWindow(int(start) + 60 * w, method, route, per_window,
                                        errors, wall_s, cpu_s, max_ms, latency,
                                        window_agg.route_json(index).encode()))
            kept = [KeptRequest(start + 60 * w + i * 0.1, "GET", routes[i % 20], "/x", 200,
                                600.0, "slow", report_json)
                    for i in range(per_window * len(routes) // 100)]
            kept_total += len(kept)
            store.write(rows, kept)
        size = store.size_bytes()
        store.close()
    emit({"merge": merge, "store": {"requests": 1_000_000, "routes": len(routes),
                                    "windows": windows, "kept": kept_total,
                                    "report_kb": round(len(report_json) / 1024, 1),
                                    "mb_per_million": round(size / 2**20, 1)}})


if __name__ == "__main__":
    sys.setrecursionlimit(5000)
    main()
