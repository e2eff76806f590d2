"""Report-writer child: ``report_write.py NODES OUT_HTML``.

Builds a profile of exactly NODES call-tree nodes (random chains through
100,000 distinct functions until the node cap stops growth), then times
each writer the installed ``Report`` has (best of 3) and, for reference,
pyinstrument's HTML renderer on a profile of the same workload (one run:
it takes seconds). Writes the HTML
report to OUT_HTML (for the viewer benchmark) when there is one."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from common import emit
from pathological import distinct_functions
from tools import Run, walk

WRITERS = ("to_json", "to_text", "to_collapsed", "to_html", "to_speedscope", "to_pprof")


def best_of(fn: Callable[[], Any], n: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(nodes: int, out_html: str) -> None:
    work = distinct_functions(100_000, 45, 1.0)
    run = Run("reqprof", interval=0.0002, max_nodes=nodes)
    run.start()
    work()
    run.stop()
    report = run.result
    writers: dict[str, Any] = {}
    for name in WRITERS:
        method = getattr(report, name, None)
        via = "Report"
        if method is None and hasattr(report._session, name):
            # The engine has the writer but Report does not offer it yet.
            method, via = getattr(report._session, name), "engine"
        if method is None:
            writers[name] = None
            continue
        try:
            seconds, data = best_of(method)
        except NotImplementedError:
            writers[name] = None
            continue
        writers[name] = {"seconds": seconds, "via": via,
                         "bytes": len(data.encode() if isinstance(data, str) else data)}
        if name == "to_html":
            with open(out_html, "w", encoding="utf-8") as f:
                f.write(data)

    pyi = Run("pyinstrument", interval=0.0002)
    pyi.start()
    work()
    pyi.stop()
    session = pyi.result
    frames = sum(1 for _ in walk(session.root_frame(), lambda f: f.children))
    peer = {}
    for name, fn in (("html", lambda: pyi._prof.output_html()),):
        seconds, data = best_of(fn, 1)
        peer[name] = {"seconds": seconds, "bytes": len(data.encode())}
    emit({"nodes": report.nodes, "samples": report.samples, "writers": writers,
          "html": out_html if writers.get("to_html") else None,
          "pyinstrument": {"frames": frames, "samples": session.sample_count, "writers": peer}})


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
