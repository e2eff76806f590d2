"""A mixed FastAPI app for the load, soak and process tests: async, sync,
streaming, failing and websocket endpoints, and a `/_stats` probe of the
serving process (RSS, the C heap, the engine's counters, live sessions).

Factories for servers started by the tests (`module:function`):
``make_app`` (no profiling), ``make_profiled_app`` (the middleware, settings
from the environment) and ``make_warm_profiled_app`` (the same, after one
profiled block in the importing process: the sampler thread exists before a
pre-fork server forks its workers).
"""
from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import random
import sys
import time
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, StreamingResponse

STREAM_CHUNK = b"0123456789abcdef" * 64          # 1 KiB
STREAM_CHUNKS = 8


def spin(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def sync_work(ms: float) -> int:
    return spin(ms / 1000)


def failing_work() -> None:
    spin(0.001)
    raise RuntimeError("mixed app failure")


def deep(n: int) -> int:
    """Recursion deeper than PROFILING_MAX_DEPTH."""
    if n <= 0:
        spin(0.002)
        return 0
    return deep(n - 1) + 1


# Twelve distinct functions called in random orders: every sample of a long
# request lands on a new path, so its call tree grows until a cap stops it.
def _make_branches() -> list:
    funcs = []
    for i in range(12):
        namespace: dict = {}
        exec(f"def branch_{i}(path, spin):\n"
             f"    if not path:\n"
             f"        return spin(0.0005)\n"
             f"    return path[0](path[1:], spin)\n", namespace)
        funcs.append(namespace[f"branch_{i}"])
    return funcs


BRANCHES = _make_branches()


def wander(depth: int, rng: random.Random) -> int:
    path = [rng.choice(BRANCHES) for _ in range(depth)]
    return path[0](path[1:], spin)


def fetch_stats(port: int) -> dict:
    """The `/_stats` probe of the server on 127.0.0.1:`port`."""
    import json

    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}/_stats", open_timeout=30) as ws:
        return json.loads(ws.recv(timeout=30))


def process_stats() -> dict:
    """RSS, C heap in use, threads and the engine's state of this process.
    The engine and the reporter are read first: a report the reporter has
    let go of is freed, so the heap read after them holds no report that a
    probe saying "idle" could miss."""
    stats: dict[str, Any] = {"pid": os.getpid()}
    core = sys.modules.get("reqprof._core")
    if core is not None:
        stats["core_file"] = core.__file__
        stats["engine"] = core.stats()
        reporter = sys.modules.get("reqprof._reporter")
        if reporter is not None:
            stats["reports_queued"] = reporter.reporter.pending
        profiling = sys.modules.get("reqprof._profiling")
        if profiling is not None:   # slots held, over every configuration
            stats["slots_used"] = sum(p.slots.total - p.slots.free
                                      for p in list(profiling._shared.values())
                                      if getattr(p, "slots", None) is not None)
    gc.collect()
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    stats["rss_kb"] = int(status["VmRSS"].split()[0])
    stats["threads"] = int(status["Threads"])
    stats["heap_bytes"] = _heap_in_use()
    if core is not None:
        stats["live_sessions"] = sum(1 for o in gc.get_objects()
                                     if type(o).__name__ == "Session"
                                     and type(o).__module__ == "reqprof._core")
    return stats


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def _heap_in_use() -> int:
    """Bytes malloc has handed out and not got back (glibc), or -1."""
    try:
        libc = ctypes.CDLL(None)
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return -1
    mallinfo2.restype = _Mallinfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


SSE_EVENT = b"data: tick\n\n\n"


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/async/{n}")
    async def async_endpoint(n: int) -> dict:
        await asyncio.sleep(0)
        spin(0.0002)
        return {"async": n}

    @app.get("/sync/{n}")
    def sync_endpoint(n: int) -> dict:
        sync_work(0.3)
        return {"sync": n}

    @app.get("/stream/{n}")
    async def stream(n: int) -> StreamingResponse:
        async def chunks():
            for i in range(STREAM_CHUNKS):
                yield STREAM_CHUNK
                await asyncio.sleep(0)
            yield f"end {n}\n".encode()
        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.get("/fail/{n}")
    async def fail(n: int) -> dict:
        failing_work()
        return {"never": n}

    @app.get("/deep")
    def deep_endpoint(n: int = 80) -> dict:
        return {"deep": deep(n)}

    @app.get("/spin")
    def spin_endpoint(ms: float = 20) -> dict:
        sync_work(ms)
        return {"spun_ms": ms}

    @app.get("/sleep")
    async def sleep_endpoint(ms: float = 20) -> dict:
        await asyncio.sleep(ms / 1000)
        return {"slept_ms": ms}

    @app.get("/pid")
    def pid_endpoint(ms: float = 20) -> JSONResponse:
        sync_work(ms)
        return JSONResponse({"pid": os.getpid()}, headers={"x-worker-pid": str(os.getpid())})

    @app.get("/long-stream")
    async def long_stream(seconds: float = 5.0, depth: int = 6, period_ms: float = 10.0,
                          calls: int = 4) -> StreamingResponse:
        """Streams for `seconds`: one line every `period_ms`, computed by
        `calls` runs through `depth` random frames (a fresh call path almost
        every sample)."""
        async def lines():
            rng = random.Random(1234)
            end = time.monotonic() + seconds
            i = 0
            while time.monotonic() < end:
                for _ in range(calls):
                    wander(depth, rng)
                yield f"line {i}\n".encode()
                i += 1
                await asyncio.sleep(period_ms / 1000)
            yield b"done\n"
        return StreamingResponse(lines(), media_type="text/plain")

    @app.get("/sse")
    async def sse() -> StreamingResponse:
        """Server-sent events, one 13-byte event every 10 ms, until the
        client leaves."""
        async def events():
            while True:
                spin(0.0001)
                yield SSE_EVENT
                await asyncio.sleep(0.01)
        return StreamingResponse(events(), media_type="text/event-stream")

    @app.websocket("/_stats")
    async def stats(websocket: WebSocket) -> None:
        # A websocket, so that the probe itself is never a profiled request.
        await websocket.accept()
        await websocket.send_json(process_stats())
        await websocket.close()

    @app.post("/_stop_sampler")
    def stop_sampler() -> dict:
        """Stops the engine's sampler thread for good, as if it had died."""
        core = sys.modules["reqprof._core"]
        core._shutdown()
        return {"thread_alive": core.stats()["thread_alive"]}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                spin(0.0005)
                await websocket.send_text(f"echo {text}")
        except WebSocketDisconnect:
            pass

    return app


def make_profiled_app() -> Any:
    """Wrapped at creation, configured from the environment (and `.env`)."""
    from reqprof import ProfilingMiddleware

    return ProfilingMiddleware(make_app())


def make_warm_profiled_app() -> Any:
    """As make_profiled_app, after a profiled block in this process, so a
    pre-fork server forks with the sampler thread running."""
    from reqprof import Profiler

    with Profiler():
        spin(0.02)
    return make_profiled_app()
