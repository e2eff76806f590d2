"""The FastAPI app that the middleware and safety tests serve: JSON,
sync (worker thread) and CPU-on-the-loop endpoints, awaits, streams, gated
streams, a failing endpoint, a file, headers, redirects, echo probes,
overlapping `/conc/...` endpoints and a websocket.

Factories for servers started by the tests (`module:function`): ``make_app``
(no profiling), ``make_profiled_app`` (the middleware, settings from the
environment and `.env`) and ``make_eager_app`` (wrapped at import);
``profiled(**settings)`` for a middleware with these settings only.
"""
from __future__ import annotations

import asyncio
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from reqprof import ProfilingMiddleware, Settings

#: What `/file` serves (this file).
SERVED_FILE = Path(__file__).resolve()

def spin(seconds: float) -> int:
    """Busy CPU work for about `seconds`."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def sync_cpu_work(seconds: float) -> int:
    return spin(seconds)


def failing_work() -> None:
    spin(0.02)


async def awaited_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


GATES: dict[str, asyncio.Event] = {}
ARRIVED: dict[str, int] = {}
RECEIVED: dict[str, dict] = {}


def gate(key: str) -> asyncio.Event:
    return GATES.setdefault(key, asyncio.Event())


async def all_arrived(gate_key: str = "", n: int = 1) -> None:
    """Dependency: holds each request until `n` have arrived, so they overlap."""
    if gate_key:
        ARRIVED[gate_key] = ARRIVED.get(gate_key, 0) + 1
        if ARRIVED[gate_key] >= n:
            gate(gate_key).set()
        await asyncio.wait_for(gate(gate_key).wait(), 30)


async def conc_async_0() -> None:
    for _ in range(25):
        spin(0.002)
        await asyncio.sleep(0)


async def conc_async_1() -> None:
    for _ in range(25):
        spin(0.002)
        await asyncio.sleep(0)


async def conc_async_2() -> None:
    for _ in range(25):
        spin(0.002)
        await asyncio.sleep(0)


async def conc_async_3() -> None:
    for _ in range(25):
        spin(0.002)
        await asyncio.sleep(0)


def conc_sync_0() -> None:
    spin(0.05)


def conc_sync_1() -> None:
    spin(0.05)


def conc_sync_2() -> None:
    spin(0.05)


def conc_sync_3() -> None:
    spin(0.05)


CONC_ASYNC = [conc_async_0, conc_async_1, conc_async_2, conc_async_3]
CONC_SYNC = [conc_sync_0, conc_sync_1, conc_sync_2, conc_sync_3]
CONC_NAMES = [f.__name__ for f in CONC_ASYNC + CONC_SYNC]


def make_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.ready = True
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/json")
    async def json_endpoint() -> dict:
        return {"hello": "world", "numbers": list(range(20))}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"item": item_id}

    @app.get("/sync")
    def sync_endpoint(ms: int = 10) -> dict:
        sync_cpu_work(ms / 1000)
        return {"worked_ms": ms}

    @app.get("/cpu")
    async def cpu_endpoint(ms: int = 10) -> dict:
        sync_cpu_work(ms / 1000)        # on the event loop, in the request's own context
        return {"worked_ms": ms}

    @app.get("/await")
    async def await_endpoint(ms: int = 10) -> dict:
        await awaited_sleep(ms / 1000)
        return {"slept_ms": ms}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks():
            for i in range(10):
                yield f"chunk {i}\n".encode() * 100
                await asyncio.sleep(0)
        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/gated/{key}")
    async def gated(key: str) -> StreamingResponse:
        async def chunks():
            yield b"first chunk\n"
            await asyncio.wait_for(gate(key).wait(), 30)
            yield b"second chunk\n"
        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/release/{key}")
    async def release(key: str) -> dict:
        gate(key).set()
        return {"released": key}

    @app.get("/fail")
    async def fail() -> dict:
        failing_work()
        raise RuntimeError("boom from the app")

    @app.get("/file")
    async def file() -> FileResponse:
        return FileResponse(SERVED_FILE, media_type="text/x-python")

    @app.get("/headers")
    async def headers() -> Response:
        response = Response(b"<p>hi</p>", media_type="text/html", headers={
            "x-custom": "kept", "etag": '"abc"', "content-security-policy": "script-src 'none'",
            "content-disposition": "attachment; filename=x.html"})
        response.set_cookie("session", "s1")
        return response

    @app.get("/empty", status_code=204)
    async def empty() -> Response:
        return Response(status_code=204)

    @app.get("/redirect")
    async def redirect() -> RedirectResponse:
        return RedirectResponse("/json", status_code=307)

    @app.post("/echo/{key}")
    async def echo(key: str, request: Request) -> dict:
        RECEIVED[key] = {"method": request.method,
                         "query": request.scope["query_string"].decode("latin-1"),
                         "body": (await request.body()).decode("latin-1"),
                         "x_test": request.headers.get("x-test")}
        return {"ok": True}

    @app.get("/seen/{key}")
    async def seen(key: str, request: Request) -> dict:
        RECEIVED[key] = {"headers": [[k, v] for k, v in request.headers.items()]}
        return {"ok": True}

    @app.get("/received/{key}")
    async def received(key: str) -> dict:
        return RECEIVED.get(key, {})

    @app.get("/ready")
    async def ready(request: Request) -> dict:
        return {"ready": getattr(request.app.state, "ready", False)}

    @app.get("/_process")
    async def process() -> dict:
        import sys
        return {"modules": sorted(m for m in sys.modules if m.startswith("reqprof")),
                "threads": len(os.listdir("/proc/self/task"))}

    for func in CONC_ASYNC:
        def add_async(func=func):
            @app.get(f"/conc/{func.__name__}", dependencies=[Depends(all_arrived)])
            async def endpoint() -> dict:
                await func()
                return {"done": func.__name__}
        add_async()
    for func in CONC_SYNC:
        def add_sync(func=func):
            @app.get(f"/conc/{func.__name__}", dependencies=[Depends(all_arrived)])
            def endpoint() -> dict:
                func()
                return {"done": func.__name__}
        add_sync()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"echo: {text}")
        await websocket.close()

    return app


def make_profiled_app() -> FastAPI:
    """Configured from the environment and `.env`, as users do."""
    app = make_app()
    app.add_middleware(ProfilingMiddleware)
    return app


def make_eager_app() -> Any:
    """Wrapped at import: a bad setting stops the server from starting."""
    return ProfilingMiddleware(make_app())


def profiled(**settings: Any) -> ProfilingMiddleware:
    """The test app behind a middleware configured with these settings only
    (the environment and `.env` are ignored)."""
    settings.setdefault("enabled", True)
    settings.setdefault("sample_rate", 0.0)
    return ProfilingMiddleware(make_app(), settings=Settings(**settings))
