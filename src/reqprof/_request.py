"""One request's profile, whatever the framework: the slot it holds, its
session, and the one place where it ends.

A profile ends when the request's code returns or when its deadline comes
(``PROFILING_MANUAL_TIMEOUT`` for ``?profile=1``, :data:`AUTO_MAX_DURATION`
for sampled requests), whichever is first: the reporter thread keeps the
running profiles (:meth:`~reqprof._reporter.Reporter.track`) and ends those
past their deadline, so a request that streams for hours gives its slot
back and has its report logged on time. Ending happens once, under a lock,
in whichever thread gets there first.

With the engine's own Profiler class (not a test's stand-in), a profile is
the engine's session itself, started and stopped through
:mod:`reqprof.profiler`'s functions without a Profiler around it.
"""
from __future__ import annotations

import logging
import threading
import time
from types import FrameType
from typing import Any, Callable, Optional

from ._logging import RateLimited
from ._meta import request_label
from ._reporter import reporter

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


def _label_of(label: Optional[str], describe: Callable[[], dict]) -> Optional[str]:
    """What a started profile is called (``GET /export``): the name other
    requests' reports give it when it holds the event loop. ``label`` when
    given, else from ``describe()``; None when that fails (unnamed, it shows
    as [no request] elsewhere: never fail a request)."""
    if label is not None:
        return label
    try:
        meta = describe()
        return request_label(meta.get("method"), meta.get("path"))
    except Exception:
        return None


def _label(profiler: Any, label: Optional[str]) -> None:
    """Names a started Profiler (when its class can be named)."""
    set_label = getattr(profiler, "set_label", None)
    if set_label is None or label is None:
        return
    try:
        set_label(label)
    except Exception:   # unnamed: never fail a request
        pass


class RequestProfile:
    """A started profile holding a slot. ``describe()`` gives the report's
    metadata (called when the profile ends, from either thread);
    ``finished(report, manual)`` is told of every report (the request core
    aggregates it, and takes an automatic one over: it returns True then);
    ``on_deadline`` runs in the reporter thread after the profile ended at
    its deadline (:attr:`deadline`, monotonic seconds).

    ``profiler`` has ``mark_response_end()``: the engine's session itself
    (``engine``, the :mod:`reqprof.profiler` module, stops it), or the
    Profiler class's instance (``engine`` None: its ``stop()`` does)."""

    __slots__ = ("profiler", "engine", "slots", "manual", "failures", "describe", "finished",
                 "report", "ended_by", "on_deadline", "deadline", "_lock", "_ended")

    def __init__(self, profiler: Any, engine: Any, slots: Slots, manual: bool,
                 failures: RateLimited, describe: Callable[[], dict],
                 finished: Callable[[Any, bool], bool], deadline: float) -> None:
        self.profiler = profiler
        self.engine = engine
        self.slots = slots
        self.manual = manual
        self.failures = failures
        self.describe = describe
        self.finished = finished
        self.report: Any = None
        self.ended_by: Optional[str] = None     # the deadline's name, when it came first
        self.on_deadline: Optional[Callable[[], None]] = None
        self.deadline = deadline
        self._lock = threading.Lock()
        self._ended = False

    @classmethod
    def begin(cls, engine: Any, profiler_class: Any, options: dict, root: FrameType,
              slots: Slots, manual: bool, failures: RateLimited, describe: Callable[[], dict],
              label: Optional[str], timeout: float,
              finished: Callable[[Any, bool], bool]) -> Any:
        """A started RequestProfile, :data:`BUSY` when no slot is free, or
        None when the profiler could not start (logged; no slot held).
        ``engine``: the :mod:`reqprof.profiler` module; ``options``: the
        Profiler's (``options["session"]``: the same for its session)."""
        if not slots.take(manual):
            return BUSY
        try:
            if profiler_class is engine.Profiler:
                profiler = engine.start_session(options["session"], root,
                                                _label_of(label, describe))
            else:
                profiler = profiler_class(**options["profiler"])
                # Named before any tick sees it.
                _label(profiler, _label_of(label, describe))
                profiler.start(root_frame=root)
                engine = None
        except Exception as exc:
            slots.give(manual)
            failures.log("start", logging.ERROR,
                         "reqprof: profiling could not start (%s: %s); the request is served "
                         "unprofiled", type(exc).__name__, exc)
            return None
        run = cls(profiler, engine, slots, manual, failures, describe, finished,
                  time.monotonic() + timeout)
        try:
            reporter.track(run, timeout)
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
        """(The reporter thread.) The deadline has come."""
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
            reporter.untrack(self)
            try:
                self.report = self._stop()
            finally:
                self.slots.give(self.manual)
        if self.report is not None and self.finished(self.report, self.manual):
            self.report = None      # the reporter has it: hold no profile here
        return True

    def _stop(self) -> Any:
        try:
            engine = self.engine
            report = engine.stop_session(self.profiler) if engine is not None \
                else self.profiler.stop()
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
