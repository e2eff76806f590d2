"""Cost child: ``cost_log.py [REPORTS [ROUNDS]]``. What logging one sampled
report costs the reporter thread, in-process: the summary line, its
``extra`` fields, the text tree, and the record going through the product's
own handler (reqprof's fallback stderr handler and its formatter, stderr
being a file here, as under a server whose output goes to a log file).

The reports are real ones: a FastAPI app (an endpoint with a dependency, a
few layers of Python and some standard library work: a typical read
endpoint) is called in-process through ASGI under ``ProfilingMiddleware``
at rate 1.0 with a short interval (0.3 ms), so that each report has a few
dozen to a few hundred nodes; the reporter's ``submit`` keeps them instead
of handing them to its thread. Then each report is logged ``ROUNDS`` times
on this thread by ``reporter.handle(report, None, failures)``, the
reporter's own per-report path, with no other thread competing for the GIL:
what is measured is CPU (``time.thread_time_ns``), not waits.

Per report, three figures: the whole of ``handle``; the logging call alone
(``logger.info`` with the message, arguments and ``extra`` that ``handle``
produced for that report, captured beforehand: the `logging` machinery,
the escaping filter, the formatter and the write); and the rest (the
difference of the two for the same report): building the line, the fields
and the tree. Prints one JSON line (µs: median, mean, 90th percentile).

``cost_log.py --compare SRC [REPORTS [ROUNDS]]`` measures another
checkout's reqprof (``SRC``, its ``src`` directory, built) against this
one's in the same run: two child processes, each with its own reports,
take turns logging slices of them, so that both see the same load."""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import textwrap
import time
import urllib.parse
from typing import Any

from common import emit, run_main

REPORTS = 1000
ROUNDS = 3
SLICE = 50      # reports a child logs in its turn (--compare)
INTERVAL = 0.0003
QUERIES = [b"q=item+1&limit=20", b"q=a&limit=50", b"q=item&limit=10", b"q=7&limit=30"]


WORDS = re.compile(r"[a-z]+")
ROWS = [{"id": i, "name": f"item {i} " + "abcdefghij"[i % 10] * (i % 7),
         "price": (i * 37) % 500 / 3, "tags": ["new", "sale", "eco", "top"][: i % 4]}
        for i in range(1200)]


def score(row: dict) -> int:
    return sum(ord(c) for c in row["name"]) % 97 + len(row["tags"])


class Repo:
    def fetch(self, q: str) -> list[dict]:
        return [r for r in ROWS if self.matches(r, q)]

    def matches(self, row: dict, q: str) -> bool:
        return q in row["name"]

    def enrich(self, found: list[dict]) -> list[dict]:
        return [self.enrich_one(r) for r in found]

    def enrich_one(self, row: dict) -> dict:
        return {**row, "words": WORDS.findall(row["name"]), "score": score(row)}


def get_repo() -> Repo:
    return Repo()


def paginate(found: list[dict], limit: int) -> list[dict]:
    return sorted(found, key=lambda r: (r["score"], r["id"]))[:limit]


def make_app() -> Any:
    from fastapi import Depends, FastAPI
    from pydantic import BaseModel

    app = FastAPI()

    class Page(BaseModel):
        total: int
        items: list[dict]

    async def search(kind: str, q: str = "a", limit: int = 50,
                     repo: Repo = Depends(get_repo)) -> Any:
        found = repo.fetch(q)
        await asyncio.sleep(0)
        found = repo.enrich(found)
        page = paginate(found, limit)
        json.dumps(page, indent=1)
        statistics.fmean(r["price"] for r in found[:200])
        statistics.pstdev([r["price"] for r in found[:60]])
        [urllib.parse.urlencode({"q": q, "page": i, "kind": kind}) for i in range(20)]
        textwrap.fill(" ".join(r["name"] for r in page), width=40)
        return Page(total=len(found), items=page)

    app.get("/search/{kind}", response_model=Page)(search)
    return app


async def call(app: Any, query: bytes) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/search/books", "raw_path": b"/search/books",
             "root_path": "", "query_string": query, "headers": [(b"host", b"127.0.0.1")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    await app(scope, receive, send)


def collect(n: int) -> list[Any]:
    """n reports of the app's requests, kept from the reporter."""
    from reqprof import ProfilingMiddleware
    from reqprof._reporter import reporter

    reports: list[Any] = []
    reporter.submit = lambda report, *args, **kwargs: reports.append(report)   # type: ignore
    middleware = ProfilingMiddleware(make_app(), env_file=None, enabled=True, sample_rate=1.0,
                                     interval=INTERVAL)

    async def many() -> None:
        for i in range(n):
            await call(middleware, QUERIES[i % len(QUERIES)])

    asyncio.run(many())
    return reports


class Capture(logging.Filter):
    """Keeps what the reporter logs for a report: message, arguments (after
    the escaping filter) and ``extra`` fields. A filter of the `reqprof`
    logger, not a handler: a handler would be the app configuring logging,
    and the fallback handler would stand aside."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[tuple[str, Any, dict]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        extra = {k: v for k, v in vars(record).items() if k.startswith("reqprof_")}
        self.got.append((record.msg, record.args, extra))
        return True


def us(values: list[int]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered) / 1e3, "mean": statistics.fmean(ordered) / 1e3,
            "p90": ordered[int(0.9 * (len(ordered) - 1))] / 1e3}


class Logged:
    """This process's reports, each logged once already (its record kept
    for the logging call alone), ready to be logged again and timed."""

    def __init__(self, n: int, log: Any) -> None:
        from reqprof._logging import RateLimited, logger
        from reqprof._reporter import reporter

        self.log = log
        self.reports = collect(n)
        self.failures = RateLimited()
        self.handle, self.info = reporter.handle, logger.info
        capture = Capture()
        logger.addFilter(capture)
        for report in self.reports:
            self.handle(report, None, self.failures)
        logger.removeFilter(capture)
        self.records = capture.got
        if len(self.records) != len(self.reports):
            raise SystemExit(f"{len(self.records)} records for {len(self.reports)} reports")
        # Past the fallback handler's first record (which looks at the app's logging once).
        for report in self.reports[:50]:
            self.handle(report, None, self.failures)
        gc.collect()
        self.start = log.tell()
        self.timed = 0

    def time(self, order: Any) -> tuple[list[int], list[int]]:
        """CPU (ns) of the reporter's handle() and of the logging call alone,
        for each report of `order` (indices)."""
        whole: list[int] = []
        alone: list[int] = []
        clock = time.thread_time_ns
        for i in order:
            report, (msg, args, extra) = self.reports[i], self.records[i]
            t = clock()
            self.handle(report, None, self.failures)
            t1 = clock()
            self.info(msg, *args, extra=extra)
            t2 = clock()
            whole.append(t1 - t)
            alone.append(t2 - t1)
        self.timed += len(whole)
        return whole, alone

    def figures(self) -> dict[str, Any]:
        nodes = [rep.nodes for rep in self.reports]
        return {"reports": len(self.reports), "interval_s": INTERVAL,
                "nodes": {"median": statistics.median(nodes), "min": min(nodes), "max": max(nodes)},
                "samples": statistics.median(rep.samples for rep in self.reports),
                "bytes_per_record": (self.log.seek(0, os.SEEK_END) - self.start)
                / max(1, 2 * self.timed)}


def summary(whole: list[int], alone: list[int]) -> dict[str, Any]:
    return {"whole": us(whole), "logging_call": us(alone),
            "rest": us([w - a for w, a in zip(whole, alone)])}


def serve(n: int, log: Any) -> None:
    """--serve: logs the slices of reports the parent asks for ("first
    end reverse" on stdin), answering each with its times on stdout."""
    logged = Logged(n, log)
    emit(logged.figures())
    for line in sys.stdin:
        first, end, reverse = (int(x) for x in line.split())
        order = range(first, end) if not reverse else range(end - 1, first - 1, -1)
        whole, alone = logged.time(order)
        emit({"whole": whole, "alone": alone})
    emit(logged.figures())


def compare(other_src: str, n: int, rounds: int) -> None:
    """--compare SRC: this checkout's reqprof ("after") and the one in SRC
    ("before"), each in a child process with its own reports, logging
    slices of SLICE reports in turn (the order of the two alternating):
    both measured in the same stretch of time, the machine's load shared."""
    import subprocess

    script = os.path.abspath(__file__)
    children: dict[str, subprocess.Popen] = {}
    figures: dict[str, Any] = {}
    try:
        for name, path in (("before", other_src), ("after", None)):
            env = dict(os.environ)
            if path is not None:
                env["PYTHONPATH"] = path + os.pathsep + env.get("PYTHONPATH", "")
            children[name] = child = subprocess.Popen(
                [sys.executable, script, "--serve", str(n)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, env=env)
            figures[name] = json.loads(child.stdout.readline())     # its reports made
        times: dict[str, tuple[list[int], list[int]]] = {name: ([], []) for name in children}
        turn = 0
        for r in range(rounds):
            for first in range(0, n, SLICE):
                names = list(children) if turn % 2 == 0 else list(children)[::-1]
                turn += 1
                for name in names:
                    child = children[name]
                    child.stdin.write(f"{first} {min(n, first + SLICE)} {r % 2}\n")
                    child.stdin.flush()
                    got = json.loads(child.stdout.readline())
                    times[name][0].extend(got["whole"])
                    times[name][1].extend(got["alone"])
        for name, child in children.items():
            child.stdin.close()
            figures[name] = json.loads(child.stdout.readline())
            figures[name].update(summary(*times[name]))
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
            child.wait()
    emit({"rounds": rounds, "slice": SLICE, **figures})


def main() -> None:
    args = sys.argv[1:]
    mode = args.pop(0) if args and args[0].startswith("--") else None
    other = args.pop(0) if mode == "--compare" else None
    n = int(args[0]) if args else REPORTS
    rounds = int(args[1]) if len(args) > 1 else ROUNDS
    if other is not None:
        compare(other, n, rounds)
        return
    log = tempfile.TemporaryFile()
    os.dup2(log.fileno(), 2)
    if mode == "--serve":
        serve(n, log)
        return
    logged = Logged(n, log)
    whole: list[int] = []
    alone: list[int] = []
    for r in range(rounds):
        order = range(n) if r % 2 == 0 else range(n - 1, -1, -1)
        w, a = logged.time([i for i in order if i < len(logged.reports)])
        whole += w
        alone += a
    emit({"rounds": rounds, **logged.figures(), **summary(whole, alone)})


if __name__ == "__main__":
    run_main(main)
