"""The reporter: one daemon thread per process that logs sampled reports,
writes them to the output directory, and ends profiles that reach their
deadline, so that none of this runs in a request.

Reports are handed over through a bounded deque and handled in batches
(:data:`REPORT_BATCH_DELAY`). Deadlines (:meth:`Reporter.watch`) are kept in
a heap; a cancelled one is dropped lazily. The thread starts with the first
report or deadline, and again in a forked child (whose copy of the parent's
state is thrown away).

Running profiles (:meth:`Reporter.track`) cost a request no lock and no
wake-up: they are kept in a set, and the thread, whenever it waits, wakes
by the earliest of their deadlines and at least once every shortest
timeout any profile was tracked with. A profile tracked while it sleeps
therefore has a deadline later than its wake-up: then it sees the profile,
and sleeps until its deadline at the latest.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import logging
import os
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import _logging
from ._logging import RateLimited, logger
from ._output import Dropped, OutputDir
from ._render import render

if TYPE_CHECKING:
    from .report import Report

#: Reports waiting to be logged/written; beyond it new ones are dropped (and
#: that is logged).
REPORT_QUEUE = 64
#: The thread, woken by a report, waits up to this long before logging, so
#: that a server wakes it once for a batch of reports rather than once for
#: each (every wake-up is a GIL hand-over with the request threads, and
#: costs more than logging one report)...
REPORT_BATCH_DELAY = 0.1
#: ...or until this many reports wait, so the queue never fills at high rates.
REPORT_BATCH_SIZE = 16
#: Cancelled deadlines kept in the heap before it is rebuilt without them.
_CANCELLED_SLACK = 64
#: The thread wakes at least this often while profiles may run, however
#: short their timeout (the shortest a setting allows is 0.1 s).
_MIN_PERIOD = 0.05
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class Watch:
    """A deadline handed to :meth:`Reporter.watch`."""

    __slots__ = ("callback", "cancelled", "_owner")

    def __init__(self, callback: Callable[[], None], owner: "Reporter") -> None:
        self.callback: Optional[Callable[[], None]] = callback
        self.cancelled = False
        self._owner = owner

    def cancel(self) -> None:
        """The callback will not run (if it has not started yet)."""
        if not self.cancelled:
            self.cancelled = True
            self.callback = None
            self._owner._cancelled()


class Reporter:
    def __init__(self) -> None:
        self._seq = itertools.count()
        self._reset()

    def _reset(self) -> None:
        """A fresh state: at creation and in a forked child (the parent's
        thread does not exist there and its locks may be held)."""
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)    # the thread waits for work
        self._done = threading.Condition(self._lock)    # drain() waits for none pending
        self._jobs: "collections.deque[tuple]" = collections.deque()
        self._pending = 0       # handed over, not yet handled
        self._watches: list[tuple[float, int, Watch]] = []
        self._n_cancelled = 0
        # Running profiles (each with .deadline and ._deadline()); changed
        # by request threads without the lock (one set operation, atomic),
        # read by the thread from a copy.
        self._active: set = set()
        self._period: Optional[float] = None    # the shortest timeout tracked
        self._idle = False      # the thread waits on _work: new work must wake it
        self._batching = False  # it waits for more reports: a full batch wakes it
        self._batch_end = 0.0   # ... until then
        self._wake_at: Optional[float] = None   # when it will wake by itself
        self._thread: Optional[threading.Thread] = None
        self._pid = 0
        self._running_pid = 0   # the pid whose thread runs _run (0: none)

    @property
    def pending(self) -> int:
        """Reports handed over and not yet logged or written."""
        return self._pending

    @property
    def watching(self) -> int:
        """Deadlines waiting: watches (cancelled ones included until
        dropped) and running profiles."""
        return len(self._watches) + len(self._active)

    def submit(self, report: Any, output: Optional[OutputDir], failures: RateLimited,
               store: Any = None, log: bool = True) -> None:
        """Hands a report over: logged (``log``), written to ``output``, and
        given to ``store`` (``store.keep(report)``), in the reporter thread."""
        try:
            self._ensure_thread()
            with self._lock:
                full = self._pending >= REPORT_QUEUE
                if not full:
                    self._jobs.append((report, output, failures, store, log))
                    self._pending += 1
                    if self._batching:
                        if self._pending >= REPORT_BATCH_SIZE:
                            self._batching = False
                            self._work.notify()
                    else:
                        self._wake(0.0)
            if full:
                failures.log("backlog", logging.WARNING,
                             "reqprof: %d sampled reports are waiting to be logged; dropping "
                             "new ones (lower PROFILING_SAMPLE_RATE)", REPORT_QUEUE)
        except Exception as exc:
            failures.log("submit", logging.ERROR, "reqprof: could not hand over a report (%s)",
                         exc)

    def watch(self, delay: float, callback: Callable[[], None]) -> Watch:
        """Runs ``callback()`` in the reporter thread ``delay`` seconds from
        now, unless the returned Watch is cancelled first."""
        entry = Watch(callback, self)
        self._ensure_thread()
        deadline = time.monotonic() + delay
        with self._lock:
            heapq.heappush(self._watches, (deadline, next(self._seq), entry))
            self._wake(deadline)
        return entry

    def track(self, run: Any, timeout: float) -> None:
        """Ends ``run`` (its ``_deadline()``, in the reporter thread) once
        ``run.deadline`` (monotonic seconds, ``timeout`` seconds from now)
        has come, unless it is :meth:`untrack`-ed first."""
        if self._running_pid != os.getpid():
            self._ensure_thread()
        self._active.add(run)
        period = timeout if timeout > _MIN_PERIOD else _MIN_PERIOD
        if self._period is None or period < self._period:
            with self._lock:
                if self._period is None or period < self._period:
                    self._period = period
                self._wake(run.deadline)

    def untrack(self, run: Any) -> None:
        """``run`` has ended: its deadline no longer matters."""
        self._active.discard(run)

    def _wake(self, deadline: float) -> None:
        """(Lock held.) Wakes the thread if it sleeps past ``deadline``."""
        if self._idle and (self._wake_at is None or deadline < self._wake_at):
            self._idle = False
            self._work.notify()
        elif self._batching and deadline < self._batch_end:
            self._batching = False
            self._work.notify()

    def _cancelled(self) -> None:
        with self._lock:
            self._n_cancelled += 1
            if self._n_cancelled > _CANCELLED_SLACK and \
                    self._n_cancelled * 2 > len(self._watches):
                self._watches = [w for w in self._watches if not w[2].cancelled]
                heapq.heapify(self._watches)
                self._n_cancelled = 0

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._running_pid == pid:
            return
        with self._lock:
            if self._pid != pid:
                if self._pid:   # a fork the at-fork handler missed: the parent's work is stale
                    self._jobs.clear()
                    self._pending = 0
                    self._watches.clear()
                    self._active.clear()
                    self._idle = False
                self._pid = pid
                self._thread = None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="reqprof-reporter",
                                                daemon=True)
                self._thread.start()
                self._running_pid = pid

    def _due(self) -> list[Any]:
        """(Lock held.) The deadlines that have come: the watches', removed
        from the heap, and the running profiles past theirs. Sets
        ``_wake_at``, when to look again (None: when woken)."""
        now = time.monotonic()
        due: list[Any] = []
        while self._watches and self._watches[0][0] <= now:
            entry = heapq.heappop(self._watches)[2]
            if entry.cancelled:
                self._n_cancelled = max(0, self._n_cancelled - 1)
            else:
                due.append(entry)
        wake_at = self._watches[0][0] if self._watches else None
        if self._period is not None:
            # Ahead of any deadline of a profile tracked from now on.
            soon = now + self._period
            wake_at = soon if wake_at is None else min(wake_at, soon)
            for run in list(self._active):
                if run.deadline <= now:
                    due.append(run)
                elif run.deadline < wake_at:
                    wake_at = run.deadline
        self._wake_at = wake_at
        return due

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    due = self._due()
                    while not self._jobs and not due:
                        self._idle = True
                        self._work.wait(None if self._wake_at is None
                                        else max(0.0, self._wake_at - time.monotonic()))
                        self._idle = False
                        due = self._due()
                for entry in due:
                    self._expire(entry)
                # Hold no profile (nor its report) while waiting.
                entry = due = None
                if self._jobs:
                    self._wait_for_batch()
                    self._handle_jobs()
        finally:
            self._running_pid = 0

    def _wait_for_batch(self) -> None:
        """Lets reports gather: until REPORT_BATCH_SIZE wait, the batch
        delay has passed, or a deadline comes."""
        with self._lock:
            end = time.monotonic() + REPORT_BATCH_DELAY
            if self._wake_at is not None and self._wake_at < end:
                end = self._wake_at
            self._batching = True
            self._batch_end = end
            while self._batching and self._pending < REPORT_BATCH_SIZE:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._work.wait(left)
            self._batching = False

    def _expire(self, entry: Any) -> None:
        """Runs a watch's callback, or ends a running profile."""
        if isinstance(entry, Watch):
            callback = entry.callback
            entry.callback = None
            if callback is None or entry.cancelled:
                return
        else:
            self._active.discard(entry)
            callback = entry._deadline
        try:
            callback()
        except Exception as exc:
            logger.error("reqprof: ending a profile at its deadline failed (%s: %s)",
                         type(exc).__name__, exc)

    def _handle_jobs(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    return
                report, output, failures, store, log = self._jobs.popleft()
            try:
                if store is not None:
                    store.keep(report)
                if log or output is not None:
                    self.handle(report, output, failures)
            except Exception as exc:
                failures.log("report", logging.ERROR,
                             "reqprof: a sampled report could not be logged (%s: %s)",
                             type(exc).__name__, exc)
            finally:
                del report
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._done.notify_all()

    def drain(self, timeout: float) -> bool:
        """Waits until every report handed over so far is logged and written;
        False when that takes longer than ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._batching:      # no reason to wait for more
                self._batching = False
                self._work.notify()
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True

    def handle(self, report: Report, output: Optional[OutputDir], failures: RateLimited) -> None:
        path = self.write(report, report.meta, output, failures) if output is not None else None
        if not logger.isEnabledFor(logging.INFO):
            return      # nobody would see it: skip the summary and the tree
        meta = report.meta
        line, extra, tree = _logging.log_record(report, meta, str(meta.get("trigger", "auto")))
        if path is not None:
            extra["reqprof_report_path"] = path
            line += f"; report: {path}"
        logger.info("reqprof: %s%s", line, _logging.Lines("\n" + tree if tree else ""),
                    extra=extra)

    def write(self, report: Report, meta: dict, output: OutputDir,
              failures: RateLimited) -> Optional[str]:
        """Writes ``<name>.json`` and ``<name>.html``; returns the HTML path,
        or None when the report could not be written (logged, rate-limited)."""
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        target = _UNSAFE_NAME.sub("_", str(meta.get("path") or "/")).strip("_")[:60] or "root"
        stem = (f"reqprof-{stamp}-{os.getpid()}-{next(self._seq)}-"
                f"{_UNSAFE_NAME.sub('_', str(meta.get('method') or 'HTTP'))[:10]}-{target}-"
                f"{meta.get('status') or 'none'}")
        try:
            return output.write(stem, (render(report, "json"), render(report, "html", failures)))
        except Dropped as why:
            failures.log("dropped", logging.WARNING,
                         "reqprof: a report was not written to %s: %s", output.path, why)
        except Exception as exc:    # a failing writer or file system: still log the request
            failures.log("write", logging.ERROR,
                         "reqprof: could not write a report to %s (%s: %s)", output.path,
                         type(exc).__name__, exc)
        return None


reporter = Reporter()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reporter._reset)
