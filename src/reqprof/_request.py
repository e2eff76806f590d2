"""One request's profile, whatever the framework: the slot it holds, its
session, and the one place where it ends.

A profile ends when the request's code returns or when its deadline comes
(``PROFILING_MANUAL_TIMEOUT`` for ``?profile=1``, :data:`AUTO_MAX_DURATION`
for sampled requests), whichever is first: the deadline is watched by the
reporter thread, so a request that streams for hours gives its slot back
and has its report logged on time. Ending happens once, under a lock, in
whichever thread gets there first.
"""
from __future__ import annotations

import logging
import threading
import time
from types import FrameType
from typing import Any, Callable, Optional

from ._logging import RateLimited
from ._reporter import Watch, reporter

#: Seconds after which an automatically sampled request's profile ends (its
#: response goes on untouched); the engine's own session cap.
AUTO_MAX_DURATION = 300.0


class Slots:
    """At most ``total`` profiles at once (``PROFILING_MAX_CONCURRENT``), of
    which automatic sampling may hold at most ``total - reserved``: the
    reserved ones are kept for ``?profile=1``. Never blocks."""

    def __init__(self, total: int, reserved: int) -> None:
        self.total = total
        self.auto_limit = max(0, total - reserved)
        self._lock = threading.Lock()
        self._used = 0
        self._auto = 0

    @property
    def free(self) -> int:
        return self.total - self._used

    def take(self, manual: bool) -> bool:
        with self._lock:
            if self._used >= self.total or (not manual and self._auto >= self.auto_limit):
                return False
            self._used += 1
            if not manual:
                self._auto += 1
            return True

    def give(self, manual: bool) -> None:
        with self._lock:
            self._used -= 1
            if not manual:
                self._auto -= 1

    def reset(self) -> None:
        """All free (in a forked child, which runs none of the parent's
        profiles)."""
        self._lock = threading.Lock()
        self._used = self._auto = 0


def reserved_slots(total: int, manual: bool) -> int:
    """Slots automatic sampling never takes: a quarter, at least one, when
    ``?profile=1`` is allowed; none otherwise."""
    return max(1, total // 4) if manual else 0


def _label(profiler: Any, describe: Callable[[], dict]) -> None:
    """Names a started profile after its request (``GET /export``): what
    other requests' reports call it when it holds the event loop."""
    set_label = getattr(profiler, "set_label", None)
    if set_label is None:
        return
    try:
        meta = describe()
        set_label(f"{meta.get('method') or ''} {meta.get('path') or ''}".strip() or "request")
    except Exception:   # unnamed, it shows as [no request] elsewhere: never fail a request
        pass


class RequestProfile:
    """A started profile holding a slot. ``describe()`` gives the report's
    metadata (called when the profile ends, from either thread);
    ``finished(report, manual)`` is told of every report (the request core
    aggregates it, and takes an automatic one over: it returns True then);
    ``on_deadline`` runs in the reporter thread after the profile ended at
    its deadline."""

    def __init__(self, profiler: Any, slots: Slots, manual: bool, failures: RateLimited,
                 describe: Callable[[], dict],
                 finished: Callable[[Any, bool], bool]) -> None:
        self.profiler = profiler
        self.slots = slots
        self.manual = manual
        self.failures = failures
        self.describe = describe
        self.finished = finished
        self.report: Any = None
        self.ended_by: Optional[str] = None     # the deadline's name, when it came first
        self.on_deadline: Optional[Callable[[], None]] = None
        self._lock = threading.Lock()
        self._ended = False
        self._watch: Optional[Watch] = None

    @classmethod
    def begin(cls, profiler_class: Any, options: dict, root: FrameType, slots: Slots,
              manual: bool, failures: RateLimited, describe: Callable[[], dict],
              timeout: float, finished: Callable[[Any, bool], bool]) -> Any:
        """A started RequestProfile, :data:`BUSY` when no slot is free, or
        None when the profiler could not start (logged; no slot held)."""
        if not slots.take(manual):
            return BUSY
        try:
            profiler = profiler_class(**options)
            _label(profiler, describe)      # named before any tick sees it
            profiler.start(root_frame=root)
        except Exception as exc:
            slots.give(manual)
            failures.log("start", logging.ERROR,
                         "reqprof: profiling could not start (%s: %s); the request is served "
                         "unprofiled", type(exc).__name__, exc)
            return None
        run = cls(profiler, slots, manual, failures, describe, finished)
        try:
            run._watch = reporter.watch(timeout, run._deadline)
        except Exception as exc:    # no thread to watch it: it ends with the request
            failures.log("watch", logging.ERROR,
                         "reqprof: could not watch a profile's deadline (%s: %s)",
                         type(exc).__name__, exc)
        return run

    def end(self, cut: Optional[str] = None) -> Any:
        """Ends the profile now if its deadline has not (stops the session,
        gives the slot back; an automatic one's report goes to the
        reporter). Returns the report (None when stopping failed); one that
        ended at its deadline is described again, now the request is over.
        ``cut``: why the app's response was cut short (``time limit``,
        ``size limit``), which the report says."""
        if not self._end(None) and self.report is not None:
            try:
                self.report.meta.update(self.describe())
                _name_request(self.report)
            except Exception:   # logged when it first failed
                pass
        if self.report is not None and cut is not None:
            self.report.meta.update(ended=cut, response_cut=True)
        return self.report

    def _deadline(self) -> None:
        if self._end("time limit" if self.manual else "max duration"):
            callback = self.on_deadline
            if callback is not None:
                callback()

    def _end(self, reason: Optional[str]) -> bool:
        with self._lock:
            if self._ended:
                return False
            self._ended = True
            self.ended_by = reason
            watch, self._watch = self._watch, None
            if watch is not None and reason is None:
                watch.cancel()
            try:
                self.report = self._stop()
            finally:
                self.slots.give(self.manual)
        if self.report is not None and self.finished(self.report, self.manual):
            self.report = None      # the reporter has it: hold no profile here
        return True

    def _stop(self) -> Any:
        try:
            report = self.profiler.stop()
        except Exception as exc:
            self.failures.log("stop", logging.ERROR, "reqprof: profiling could not stop (%s: %s)",
                              type(exc).__name__, exc)
            return None
        finally:
            self.profiler = None
        try:
            report.meta.update(self.describe())
            _name_request(report)
            if self.ended_by is not None:
                report.meta["ended"] = self.ended_by
        except Exception as exc:
            self.failures.log("meta", logging.ERROR, "reqprof: report metadata failed (%s: %s)",
                              type(exc).__name__, exc)
        try:
            lost = "memory" in (getattr(report, "truncated_reasons", None) or ())
        except Exception:
            lost = False
        if lost:
            self.failures.log("sample", logging.WARNING,
                              "reqprof: the engine could not record some samples (out of "
                              "memory); the report is incomplete")
        return report


def _name_request(report: Any) -> None:
    """The report's root names the request (``GET /books/{book_id}``)."""
    name = getattr(report, "name_request", None)
    if name is not None:
        name()


class CountedRequest:
    """A sampled request that found every slot taken while per-route
    aggregates are kept: not profiled, only counted and timed (from its
    start to :meth:`end`) in its route's aggregate, so route counts and
    latencies cover every sampled request. Ends like a RequestProfile."""

    def __init__(self, describe: Callable[[], dict],
                 record: Callable[[dict, float], None]) -> None:
        self.describe = describe
        self.record = record
        self.on_deadline: Optional[Callable[[], None]] = None
        self.report = None
        self._started = time.perf_counter()
        self._ended = False

    def end(self, cut: Optional[str] = None) -> None:
        if self._ended:
            return None
        self._ended = True
        try:
            self.record(self.describe(), time.perf_counter() - self._started)
        except Exception:   # counting must not fail a request
            pass
        return None


BUSY = object()
"""RequestProfile.begin(): every slot (that this kind of request may take)
is held."""
