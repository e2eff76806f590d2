"""The app the Pyroscope tests push profiles of: a hot function with a
known share of the time, a light route, a slow one, and the worker's pid."""
from __future__ import annotations

import asyncio
import os
import time

from fastapi import FastAPI

from reqprof import ProfilingMiddleware


def pyroscope_hot(seconds: float) -> int:
    """Busy CPU work: the hot function the tests look for."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def make_app() -> FastAPI:
    app = FastAPI()

    # On the event loop, so all of its time is in its request's profile (a
    # worker thread's is the engine's thread attribution, tested elsewhere).
    @app.get("/hot")
    async def hot(ms: int = 20) -> dict:
        started = time.perf_counter()
        n = pyroscope_hot(ms / 1000.0)
        # The time it took (a thread may wait for the GIL past `ms`), and who.
        return {"n": n, "ms": (time.perf_counter() - started) * 1000.0, "pid": os.getpid()}

    @app.get("/light/{item_id}")
    async def light(item_id: int) -> dict:
        return {"item": item_id}

    @app.get("/slow")
    async def slow(ms: int = 200) -> dict:
        await asyncio.sleep(ms / 1000.0)
        return {"slept": ms}

    @app.get("/pid")
    async def pid() -> dict:
        return {"pid": os.getpid()}

    return app


def make_profiled_app() -> ProfilingMiddleware:
    """Configured from the environment, as users do."""
    return ProfilingMiddleware(make_app(), env_file=None)
