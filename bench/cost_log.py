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
and the tree. Prints one JSON line (µs: median, mean, 90th percentile)."""
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

from common import emit

REPORTS = 1000
ROUNDS = 3
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


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else REPORTS
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else ROUNDS
    log = tempfile.TemporaryFile()
    os.dup2(log.fileno(), 2)
    from reqprof._logging import RateLimited, logger
    from reqprof._reporter import reporter

    reports = collect(n)
    failures = RateLimited()
    # The records of each report, as the logging call alone will send them.
    capture = Capture()
    logger.addFilter(capture)
    for report in reports:
        reporter.handle(report, None, failures)
    logger.removeFilter(capture)
    records = capture.got
    if len(records) != len(reports):
        raise SystemExit(f"{len(records)} records for {len(reports)} reports")
    # Past the fallback handler's first record (which looks at the app's logging once).
    for report in reports[:50]:
        reporter.handle(report, None, failures)
    start = log.tell()
    whole: list[int] = []
    alone: list[int] = []
    rest: list[int] = []
    clock = time.thread_time_ns
    gc.collect()
    for r in range(rounds):
        order = range(len(reports)) if r % 2 == 0 else range(len(reports) - 1, -1, -1)
        for i in order:
            report, (msg, args, extra) = reports[i], records[i]
            t = clock()
            reporter.handle(report, None, failures)
            t1 = clock()
            logger.info(msg, *args, extra=extra)
            t2 = clock()
            whole.append(t1 - t)
            alone.append(t2 - t1)
            rest.append((t1 - t) - (t2 - t1))
    written = log.seek(0, os.SEEK_END) - start
    nodes = [rep.nodes for rep in reports]
    samples = [rep.samples for rep in reports]
    emit({"reports": len(reports), "rounds": rounds, "interval_s": INTERVAL,
          "nodes": {"median": statistics.median(nodes), "min": min(nodes), "max": max(nodes)},
          "samples": statistics.median(samples),
          "bytes_per_record": written / (2 * len(whole)),
          "whole": us(whole), "logging_call": us(alone), "rest": us(rest)})


if __name__ == "__main__":
    stderr = os.dup(2)
    try:
        main()
    except BaseException:
        import traceback

        os.dup2(stderr, 2)
        traceback.print_exc()
        sys.exit(1)
