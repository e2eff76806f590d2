"""What the ASGI middleware needs from the async library it runs on
(asyncio, or trio under hypercorn's trio worker), without importing trio
where it is not already loaded.

- :class:`Cutter`: ends the app's part of a manually profiled request early
  (at its time limit, or when its captured response is full) by cancelling
  the request's own task or scope, and tells its own cancellation from
  anybody else's.
- :func:`checkpoint`: lets a pending cancellation through.
- :func:`run_in_thread`: runs a blocking call (rendering a large report) in
  a reqprof thread, so the event loop keeps serving other requests.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")

#: Threads that render reports for manually profiled requests.
RENDER_THREADS = 2


def library() -> str:
    """``asyncio``, ``trio``, or ``""`` when neither runs this code."""
    if asyncio._get_running_loop() is not None:
        return "asyncio"
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
            return "trio"
        except RuntimeError:
            pass
    return ""


async def checkpoint(lib: str) -> None:
    """Yields to the event loop once, so that a cancellation requested by a
    :class:`Cutter` reaches the code that awaits this."""
    if lib == "asyncio":
        await asyncio.sleep(0)
    elif lib == "trio":
        await sys.modules["trio"].lowlevel.checkpoint()


class Cutter:
    """``with cutter: await app(...)`` runs the app until it returns, or
    until :meth:`cut` is called (on the event loop): then the app is
    cancelled and the ``with`` block ends normally, with :attr:`reason`
    saying why. A cancellation from elsewhere (the server cancelling the
    request) goes through untouched. :meth:`call_soon` runs a function on
    the event loop from another thread (the reporter's, at a deadline). On
    an unknown async library nothing is cancelled or called."""

    def __init__(self, lib: str) -> None:
        self.lib = lib
        self.reason: Optional[str] = None
        self._task: Any = None
        self._scope: Any = None
        self._soon: Optional[Callable[[Callable[[], None]], Any]] = None

    def __enter__(self) -> "Cutter":
        if self.lib == "asyncio":
            loop = asyncio.get_running_loop()
            self._task = asyncio.current_task(loop)
            self._soon = loop.call_soon_threadsafe
        elif self.lib == "trio":
            trio = sys.modules["trio"]
            self._soon = trio.lowlevel.current_trio_token().run_sync_soon
            self._scope = trio.CancelScope()
            self._scope.__enter__()
        return self

    def cut(self, reason: str) -> None:
        """Cancels the app now (the first reason given is kept)."""
        if self.reason is not None:
            return
        self.reason = reason
        if self._task is not None:
            self._task.cancel()
        elif self._scope is not None:
            self._scope.cancel()

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Runs ``fn()`` on the event loop soon; from any thread. Nothing
        happens once the app's part is over or the loop is closed."""
        soon = self._soon
        if soon is None:
            return
        try:
            soon(fn)
        except RuntimeError:    # the loop is closed (trio: RunFinishedError)
            pass

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        self._soon = None
        if self._scope is not None:
            scope, self._scope = self._scope, None
            return bool(scope.__exit__(kind, exc, tb))
        task, self._task = self._task, None
        if task is None or self.reason is None:
            return False
        # Our cancel() was called, and was delivered inside the app (the
        # loop runs cut() while the app awaits, or the capture awaits a
        # checkpoint right after it): take it back (3.11+ counts
        # cancellations), and swallow the CancelledError unless somebody
        # else cancelled the task too.
        uncancel = getattr(task, "uncancel", None)
        others = uncancel() if uncancel is not None else 0
        return kind is not None and issubclass(kind, asyncio.CancelledError) and others == 0


class _RenderPool:
    """A small thread pool of reqprof's own (not the loop's default
    executor, which the app may have filled), made again after a fork."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._pid = 0

    def submit(self, fn: Callable[[], T]) -> "concurrent.futures.Future[T]":
        pid = os.getpid()
        with self._lock:
            if self._pool is None or self._pid != pid:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    RENDER_THREADS, thread_name_prefix="reqprof-render")
                self._pid = pid
            return self._pool.submit(fn)


_render_pool = _RenderPool()


async def run_in_thread(lib: str, fn: Callable[[], T]) -> T:
    """``fn()`` run in one of reqprof's render threads, awaited without
    blocking the event loop (called inline on an unknown library)."""
    if lib == "asyncio":
        return await asyncio.wrap_future(_render_pool.submit(fn))
    if lib == "trio":
        return await sys.modules["trio"].to_thread.run_sync(fn)
    return fn()
