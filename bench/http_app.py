"""The FastAPI app of the HTTP benchmark. ``BENCH_MIDDLEWARE`` picks what
wraps it:

- ``none``: the bare app;
- ``reqprof``: ``reqprof.ProfilingMiddleware``, configured from the
  environment (``ENABLE_PROFILING``, ``PROFILING_SAMPLE_RATE``, ...);
- ``pyinstrument``: the FastAPI middleware from pyinstrument's documentation
  ("Profile a web request in FastAPI"): a request with ``?profile=1`` runs
  under ``pyinstrument.Profiler(async_mode="enabled")`` and gets the HTML
  report instead of its response.

The endpoint does what a typical read endpoint does: query parameters,
a filter and a sort over in-memory records, a pydantic response model.
"""
from __future__ import annotations

import asyncio
import os
import random
import time

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

MIDDLEWARE = os.environ.get("BENCH_MIDDLEWARE", "none")

app = FastAPI()


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str]


_rng = random.Random(7)
CATALOG = [
    {"id": i, "name": "".join(_rng.choice("abcdefghijklmnop") for _ in range(10)),
     "price": round(_rng.uniform(1, 500), 2), "tags": _rng.sample(["new", "sale", "eco", "top"], 2)}
    for i in range(2000)
]


@app.get("/items", response_model=list[Item])
async def list_items(q: str = "a", limit: int = 20) -> list[dict]:
    matches = [item for item in CATALOG if q in item["name"]]
    matches.sort(key=lambda item: (item["price"], item["id"]))
    return matches[:limit]


def probe_cpu(seconds: float) -> int:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(100):
            x += i * i
    return x


@app.get("/probe")
async def probe() -> dict:
    """A request with a known shape (4 ms of Python, then a 4 ms await),
    sent while other requests load the server, to see what its profile
    holds."""
    t = time.perf_counter()
    probe_cpu(0.004)
    await asyncio.sleep(0.004)
    return {"server_s": time.perf_counter() - t}


if MIDDLEWARE == "reqprof":
    from reqprof import ProfilingMiddleware

    app.add_middleware(ProfilingMiddleware, env_file=None)

elif MIDDLEWARE == "pyinstrument":
    from pyinstrument import Profiler

    @app.middleware("http")
    async def profile_request(request: Request, call_next):  # as documented by pyinstrument
        profiling = request.query_params.get("profile", False)
        if profiling:
            profiler = Profiler(interval=0.001, async_mode="enabled")
            profiler.start()
            await call_next(request)
            profiler.stop()
            return HTMLResponse(profiler.output_html())
        else:
            return await call_next(request)

elif MIDDLEWARE != "none":
    raise SystemExit(f"BENCH_MIDDLEWARE must be none, reqprof or pyinstrument, not {MIDDLEWARE!r}")
