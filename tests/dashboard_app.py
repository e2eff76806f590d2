"""The app whose traffic fills the store the dashboard tests read: a
Starlette app behind the middleware, configured from the environment as in
production (``PROFILING_STORE``, ``PROFILING_SLOW_MS``...), served by
uvicorn in a subprocess (``dashboard_app:make_app``).

``APP_VERSION`` picks the code of ``GET /report``: version 1 spends its time
in ``old_render``, version 2 in ``new_render`` and ``serialize`` (a deploy
for the compare view to find). ``/slow`` is slower than the tests'
``PROFILING_SLOW_MS``, ``/fail`` raises: both are kept in full. One route
template and one function name are markup, as hostile data would be.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from apps import spin
from reqprof import ProfilingMiddleware

#: A route template that would run script if it were ever inserted as HTML.
XSS_ROUTE = "/x/<img src=x onerror=window.__xss=1>"
#: A function name likewise (the code object of ``hostile_work``).
XSS_FUNCTION = "<svg onload=window.__xss=1>"
#: Milliseconds: /slow takes longer, the others less.
SLOW_MS = 40


def load_rows() -> None:
    spin(0.004)


def old_render() -> None:
    spin(0.012)


def new_render() -> None:
    spin(0.003)


def serialize() -> None:
    spin(0.002)


def _named(name: str) -> Callable[[], int]:
    """A function whose code object is called `name`."""
    namespace: dict[str, Any] = {"spin": spin}
    exec(compile("def work():\n    return spin(0.004)\n", __file__, "exec"), namespace)
    work = namespace["work"]
    work.__code__ = work.__code__.replace(co_name=name, co_qualname=name) \
        if hasattr(work.__code__, "co_qualname") else work.__code__.replace(co_name=name)
    return work


hostile_work = _named(XSS_FUNCTION)


async def report(request: Request) -> JSONResponse:
    load_rows()
    if os.environ.get("APP_VERSION", "1") == "1":
        old_render()
    else:
        new_render()
        serialize()
    return JSONResponse({"version": os.environ.get("APP_VERSION", "1")})


async def item(request: Request) -> JSONResponse:
    spin(0.001)
    return JSONResponse({"item": request.path_params["item_id"]})


async def slow(request: Request) -> JSONResponse:
    spin(SLOW_MS * 1.5 / 1000)
    return JSONResponse({"slow": True})


async def fail(request: Request) -> JSONResponse:
    spin(0.003)
    raise RuntimeError("boom from the app")


async def hostile(request: Request) -> JSONResponse:
    hostile_work()
    return JSONResponse({"ok": True})


def make_app() -> Any:
    app = Starlette(routes=[
        Route("/report", report), Route("/items/{item_id}", item), Route("/slow", slow),
        Route("/fail", fail), Route(XSS_ROUTE, hostile),
    ])
    return ProfilingMiddleware(app)
