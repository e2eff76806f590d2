"""An app with the responses that tested whether a profiler problem can
hurt its host: endless streams, server-sent events, silent streams, slow
answers, a failure whose message forges log lines, a very wide call tree.

Each stream's generator records that it was closed in ``CLOSED`` (by the
key in its path), so tests can see that a cut stream's generator ended.
``make_lazy_app`` (``app.add_middleware``: Starlette builds the middleware
on the first ASGI call, the lifespan) and ``make_host_app`` are factories
for servers in a subprocess, configured from the environment.
"""
from __future__ import annotations

import anyio
import random
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from reqprof import ProfilingMiddleware

CLOSED: dict[str, threading.Event] = {}
YIELDED: dict[str, int] = {}
EVENT = b"data: tick\n\n\n"     # 13 bytes, as the SSE case of the issue


def closed(key: str) -> threading.Event:
    return CLOSED.setdefault(key, threading.Event())


FORGED = ("bad input\nINFO:     reqprof: GET /forged -> 200 in 1.0 ms\r\n"
          "\x1b[31mred\x1b[0m and a NUL \x00 end")


def _spin_a_little() -> int:
    end = time.perf_counter() + 0.0005
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def _left(depth: int, bits: int) -> int:
    if depth <= 0:
        return _spin_a_little()
    return (_right if bits & 1 else _left)(depth - 1, bits >> 1)


def _right(depth: int, bits: int) -> int:
    if depth <= 0:
        return _spin_a_little()
    return (_right if bits & 1 else _left)(depth - 1, bits >> 1)


def wide_work(ms: int, depth: int) -> int:
    """Random paths ``depth`` calls deep for ``ms``: nearly every sample is
    a new path, so the call tree (and its report) is very large."""
    rng = random.Random(7)
    end = time.perf_counter() + ms / 1000
    total = 0
    while time.perf_counter() < end:
        total += _left(depth, rng.getrandbits(depth))
    return total


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/sse/{key}")
    async def sse(key: str) -> StreamingResponse:
        async def events():
            try:
                while True:
                    yield EVENT
                    await anyio.sleep(0.01)
            finally:
                closed(key).set()
        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/empty-stream/{key}")
    async def empty_stream(key: str) -> StreamingResponse:
        async def nothing():
            try:
                while True:         # never awaits: only the send can stop it
                    YIELDED[key] = YIELDED.get(key, 0) + 1
                    yield b""
            finally:
                closed(key).set()
        return StreamingResponse(nothing(), media_type="application/octet-stream")

    @app.get("/big-stream/{key}")
    async def big_stream(key: str) -> StreamingResponse:
        chunk = b"x" * 65536

        async def chunks():
            try:
                while True:
                    yield chunk
                    await anyio.sleep(0)
            finally:
                closed(key).set()
        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.get("/silent-stream/{key}")
    async def silent_stream(key: str) -> StreamingResponse:
        async def never():
            try:
                await anyio.sleep(3600)
                yield b"too late"
            finally:
                closed(key).set()
        return StreamingResponse(never(), media_type="text/event-stream")

    @app.get("/slow")
    async def slow(ms: int = 1000) -> dict:
        await anyio.sleep(ms / 1000)
        return {"slept_ms": ms}

    @app.get("/json")
    async def json_endpoint() -> dict:
        return {"hello": "world"}

    @app.get("/headers")
    async def headers(request: Request) -> dict:
        return {"headers": [k for k in request.headers.keys()]}

    @app.get("/forge")
    async def forge() -> dict:
        raise ValueError(FORGED)

    @app.get("/wide")
    def wide(ms: int = 300, depth: int = 400) -> JSONResponse:
        return JSONResponse({"total": wide_work(ms, depth)})

    return app


def make_lazy_app() -> Any:
    """Configured from the environment, added the Starlette way (built on
    the first ASGI call: the lifespan, when the server runs it)."""
    app = make_app()
    app.add_middleware(ProfilingMiddleware)
    return app
