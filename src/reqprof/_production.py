"""The production view's data in one process: every finished request
merged into its route's aggregate (C), minute by minute, and the reports
worth keeping; the reporter thread writes both to the store at most once a
second and prunes it once a minute.

Only the C merge (:meth:`Production.record`) runs on a request's thread;
it does no I/O and takes a lock for a moment. Everything waiting for the
store is bounded: finished minutes (MAX_PENDING_WINDOWS) and kept reports
(MAX_KEPT, MAX_KEPT_BYTES); past a bound the oldest is dropped and counted.
A busy database (another worker writing) leaves the batch for the next
flush; a store that cannot be used is said once at ERROR and profiling goes
on without it. A forked child starts with nothing of its parent's.
"""
from __future__ import annotations

import atexit
import collections
import logging
import os
import sys
import threading
import time
from typing import Any, Optional

from . import _core
from ._logging import RateLimited, logger
from ._reporter import reporter
from ._version import __version__
from .config import Settings
from .store import KeptRequest, RouteWindow, Store, StoreError, busy

#: Seconds in an aggregate's window.
WINDOW_SECONDS = 60
#: Nodes of one route's merged tree, at most, and bytes of one process's
#: aggregates (both windows being built and finished ones waiting).
ROUTE_MAX_NODES = 5000
AGGREGATE_MAX_BYTES = 64 << 20
#: Finished windows and kept reports waiting for the store, at most.
MAX_PENDING_WINDOWS = 5
MAX_KEPT = 1000
MAX_KEPT_BYTES = 32 << 20
#: How often the reporter writes to the store, and prunes it (seconds).
FLUSH_SECONDS = 1.0
PRUNE_SECONDS = 60.0
#: At exit, the time given to writing what is left (seconds).
EXIT_FLUSH_SECONDS = 2.0


def route_of(meta: dict) -> tuple[str, str]:
    """(method, route) of a report: its route template, else its path."""
    return str(meta.get("method") or "?"), str(meta.get("route") or meta.get("path") or "?")


class Production:
    def __init__(self, settings: Settings, failures: RateLimited) -> None:
        self.settings = settings
        self.failures = failures
        self.store: Optional[Store] = None
        try:
            self.store = Store(settings.store or "")
        except StoreError as exc:
            logger.error("reqprof: %s; profiling goes on without the store", exc)
        self._lock = threading.Lock()           # the aggregates and the queues
        self._flush_lock = threading.Lock()     # the store's connection
        self._reset()
        self._last_prune = 0.0
        self._schedule()
        _at_exit_of_any_process(self._at_exit)
        _instances.append(self)

    def _reset(self) -> None:
        """A fresh state: at creation and in a forked child."""
        self._window = self._window_of(time.time())
        self._agg = self._new_aggregate()
        self._finished: "collections.deque[tuple[int, Any]]" = collections.deque()
        self._kept: "collections.deque[KeptRequest]" = collections.deque()
        self._kept_bytes = 0
        self.dropped = collections.Counter()
        self._pid = os.getpid()

    def _new_aggregate(self) -> Any:
        return _core.Aggregate(self.settings.max_routes, ROUTE_MAX_NODES,
                               AGGREGATE_MAX_BYTES // 2)

    @staticmethod
    def _window_of(now: float) -> int:
        return int(now // WINDOW_SECONDS * WINDOW_SECONDS)

    # -- request threads -------------------------------------------------------

    def record(self, report: Any) -> None:
        """Merges a finished request into its route's aggregate (C, no I/O)."""
        self._add(report._session, report.meta, float(report.duration_s or 0.0),
                  float(report.cpu_s or 0.0))

    def record_unprofiled(self, meta: dict, duration_s: float) -> None:
        """Counts and times a sampled request that was not profiled (every
        slot was taken)."""
        self._add(None, meta, duration_s, 0.0)

    def _add(self, session: Any, meta: dict, duration_s: float, cpu_s: float) -> None:
        method, route = route_of(meta)
        status = meta.get("status")
        error = bool(meta.get("exception")) or (isinstance(status, int) and status >= 500)
        window = self._window_of(time.time())
        with self._lock:
            if window != self._window:
                self._rotate(window)
            self._agg.add(session, method, route, duration_s, cpu_s, error)

    def _rotate(self, window: int) -> None:
        """(Lock held.) The current window is finished: it waits for the
        store (the oldest is dropped past MAX_PENDING_WINDOWS)."""
        self._finished.append((self._window, self._agg))
        while len(self._finished) > MAX_PENDING_WINDOWS:
            self._finished.popleft()
            self.dropped["window"] += 1
        self._window = window
        self._agg = self._new_aggregate()

    # -- the reporter thread ---------------------------------------------------

    def keep(self, report: Any) -> None:
        """A report to store in full (slow, failed, sampled or asked for)."""
        if self.store is None:
            return
        meta = report.meta
        method, route = route_of(meta)
        status = meta.get("status")
        kept = KeptRequest(
            started=float(report.started_at), method=method, route=route,
            path=str(meta.get("path") or ""), status=status if isinstance(status, int) else None,
            duration_ms=float(report.duration_s) * 1000.0,
            kept_because=str(meta.get("kept_because") or "asked"),
            report_json=report.to_bytes("json"), trace_id=meta.get("trace_id"))
        with self._lock:
            self._kept.append(kept)
            self._kept_bytes += len(kept.report_json)
            while len(self._kept) > MAX_KEPT or self._kept_bytes > MAX_KEPT_BYTES:
                self._kept_bytes -= len(self._kept.popleft().report_json)
                self.dropped["report"] += 1

    def _schedule(self) -> None:
        if self.store is not None:
            reporter.watch(FLUSH_SECONDS, self.flush)

    def flush(self, final: bool = False) -> None:
        """Writes finished windows and kept reports to the store (the
        current window too when ``final``); prunes once a minute."""
        try:
            with self._flush_lock:
                self._flush(final)
        except Exception as exc:
            self.failures.log("store", logging.ERROR,
                              "reqprof: writing to the store failed (%s: %s)",
                              type(exc).__name__, exc)
        finally:
            if not final:
                self._schedule()

    def _flush(self, final: bool) -> None:
        store = self.store
        if store is None:
            return
        now = time.time()
        with self._lock:
            if final or self._window_of(now) != self._window:
                self._rotate(self._window_of(now))
            finished = list(self._finished)
            kept = list(self._kept)
        if not finished and not kept:
            self._prune(store, now)
            return
        rows = [row for window, agg in finished for row in _rows(window, agg)]
        try:
            store.write(rows, kept)
        except StoreError as exc:
            logger.error("reqprof: %s; profiling goes on without the store", exc)
            self.store = None
            return
        except Exception as exc:
            if not busy(exc):
                raise
            self.dropped["busy"] += 1       # another worker writes: next time
            return
        with self._lock:    # written: let go of it (more may have come meanwhile)
            for _ in finished:
                self._finished.popleft()
            for _ in kept:
                self._kept_bytes -= len(self._kept.popleft().report_json)
        self._prune(store, now)

    def _prune(self, store: Store, now: float) -> None:
        if now - self._last_prune < PRUNE_SECONDS:
            return
        self._last_prune = now
        try:
            store.prune(self.settings.store_max_mb << 20, self.settings.store_days, now)
        except Exception as exc:
            if not busy(exc):
                self.failures.log("prune", logging.WARNING,
                                  "reqprof: pruning the store failed (%s: %s)",
                                  type(exc).__name__, exc)

    def close(self) -> None:
        """What is left goes to the store, within EXIT_FLUSH_SECONDS: at the
        ASGI lifespan's shutdown, or when the process exits."""
        self._at_exit()

    def _at_exit(self) -> None:
        if self.store is None or os.getpid() != self._pid:
            return
        deadline = time.monotonic() + EXIT_FLUSH_SECONDS
        reporter.drain(max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline:
            self.flush(final=True)
            if not self._finished and not self._kept:
                return
            time.sleep(0.05)


def _rows(window: int, agg: Any) -> list[RouteWindow]:
    """A finished window's rows: one per route, with its merged profile."""
    rows = []
    for index, (method, route, count, errors, wall_s, cpu_s, max_ms, latency,
                has_profile) in enumerate(agg.routes()):
        profile = agg.route_json(index, float(window), __version__).encode("utf-8") \
            if has_profile else None
        rows.append(RouteWindow(window, method, route, count, errors, wall_s, cpu_s, max_ms,
                                latency, profile))
    return rows


_instances: list = []


def _at_exit_of_any_process(fn: Any) -> None:
    """Runs ``fn`` when the process exits: atexit, and also multiprocessing's
    exit hook, since a worker spawned by multiprocessing (uvicorn
    --workers) ends with os._exit, which skips atexit."""
    atexit.register(fn)
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(None, fn, exitpriority=10)


def _after_fork() -> None:
    for production in _instances:
        production._lock = threading.Lock()
        production._flush_lock = threading.Lock()
        production._reset()
        production._schedule()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
