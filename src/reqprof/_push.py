"""Pushing profiles to Grafana Pyroscope: every PROFILING_PUSH_INTERVAL,
per (route, method, status class), one pprof profile (written by C) of the
interval's merged samples, and one per kept slow or failed request with its
own ``request_id`` (and ``trace_id``/``span_id``) labels; those are not
merged as well, so a query over a route counts every sample once.

Only the C merge (:meth:`Pusher.record`) runs on a request's thread.
Writing and sending run in the reporter thread, at most PUSH_BUDGET_SECONDS
at a time. What waits to be sent is bounded in bytes (PROFILING_PUSH_MAX_MB,
the oldest dropped and counted); a failure is retried with exponential
backoff and jitter, except a 4xx other than 429 (the server will not take
that profile: logged with its message, dropped). Each kind of failure is
logged once a minute at most. A forked child starts with nothing of its
parent's, so nothing is pushed twice.
"""
from __future__ import annotations

import base64
import collections
import http.client
import json
import logging
import os
import random
import re
import sys
import threading
import time
from typing import Any, Optional
from urllib.parse import quote, urlsplit

from . import _core
from ._logging import RateLimited, logger
from ._production import _at_exit_of_any_process, route_of
from ._reporter import reporter
from ._version import __version__
from .config import Settings

#: Pyroscope's limits per profile (server defaults): samples, and bytes
#: before gzip.
MAX_SAMPLES = 16_000
MAX_PROFILE_BYTES = 4 << 20
#: Nodes of one merged tree, at most (also keeps a profile's samples under
#: MAX_SAMPLES), and bytes of one interval's aggregate.
ROUTE_MAX_NODES = 5000
AGGREGATE_MAX_BYTES = 32 << 20
#: Kept requests pushed with their own labels per interval; the others are
#: merged into their route's profile.
MAX_REQUESTS = 100
#: HTTP timeouts (seconds): to connect, and for a whole push.
CONNECT_TIMEOUT = 2.0
TOTAL_TIMEOUT = 10.0
#: The reporter thread sends for at most this long at a time.
PUSH_BUDGET_SECONDS = 10.0
#: Retries: the first waits about BACKOFF_FIRST s, each next twice as long,
#: up to BACKOFF_MAX (jitter: 0.5 to 1.5 times).
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
#: Pyroscope refuses profiles older than an hour: queued ones past this
#: age are dropped.
MAX_AGE_SECONDS = 50 * 60
#: At exit, the time given to pushing what is left (seconds).
EXIT_FLUSH_SECONDS = 2.0
#: Longest route label value.
ROUTE_LABEL_MAX = 1000

_SERVER_APP = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*):[A-Za-z_][A-Za-z0-9_.()]*")


def default_service_name() -> str:
    """The app's module: the ``module:app`` a server (uvicorn, gunicorn,
    hypercorn) was started with, else the main script's name, else
    ``reqprof``."""
    for arg in sys.argv[1:]:
        m = _SERVER_APP.fullmatch(arg)
        if m:
            return m.group(1)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None) or ""
    if name and name != "__main__" and not name.split(".")[0] in ("uvicorn", "gunicorn",
                                                                   "hypercorn", "granian"):
        return name.removesuffix(".__main__")
    return "reqprof"


def status_class(meta: dict) -> str:
    """``2xx`` ... ``5xx`` (a request that raised without answering: 5xx)."""
    status = meta.get("status")
    if isinstance(status, int) and 100 <= status <= 599:
        return f"{status // 100}xx"
    return "5xx" if meta.get("exception") else "unknown"


class Profile:
    """A profile waiting to be sent."""

    __slots__ = ("body", "made", "what")

    def __init__(self, body: bytes, made: float, what: str) -> None:
        self.body = body        # gzipped pprof
        self.made = made        # time.time() when written
        self.what = what        # for log lines: "GET /items 2xx"


class Rejected(Exception):
    """The server will not take this profile (4xx other than 429)."""


class Pusher:
    def __init__(self, settings: Settings, failures: RateLimited) -> None:
        self.settings = settings
        self.failures = failures
        url = urlsplit(settings.pyroscope_url or "")
        self._https = url.scheme == "https"
        self._host = url.hostname or ""
        self._port = url.port
        service = settings.service_name or default_service_name()
        name = service
        if settings.labels:
            name += "{" + ",".join(f"{k}={v}" for k, v in settings.labels) + "}"
        self._path = (url.path.rstrip("/") + "/ingest?name=" + quote(name, safe="")
                      + "&format=pprof&spyName=reqprof")
        self._headers = {"Content-Type": "application/octet-stream",
                         "User-Agent": f"reqprof/{__version__}"}
        auth = settings.pyroscope_auth
        if auth is not None:
            self._headers["Authorization"] = (
                "Basic " + base64.b64encode(auth.encode("ascii")).decode("ascii")
                if ":" in auth else "Bearer " + auth)
        if settings.pyroscope_tenant is not None:
            self._headers["X-Scope-OrgID"] = settings.pyroscope_tenant
        self.max_bytes = settings.push_max_mb << 20
        self._lock = threading.Lock()        # the interval's data and the queue
        self._send_lock = threading.Lock()   # one sender at a time
        self._reset()
        self._schedule(settings.push_interval)
        _at_exit_of_any_process(self._process_exit)
        _instances.append(self)

    def _reset(self) -> None:
        """A fresh state: at creation and in a forked child."""
        self._started = time.time()
        self._aggs: dict[str, Any] = {}
        self._requests: list[tuple[Any, dict]] = []
        self._queue: "collections.deque[Profile]" = collections.deque()
        self._queue_bytes = 0
        self._attempts = 0
        self._retry_at = 0.0
        self.dropped: "collections.Counter[str]" = collections.Counter()
        self.trimmed_samples = 0
        self.pushed_profiles = 0
        self.pushed_bytes = 0
        self._pid = os.getpid()
        self._closed = False
        self._since = time.monotonic()
        self._told = False

    # -- request threads -------------------------------------------------------

    def record(self, report: Any, kept: bool) -> None:
        """A finished request: merged into its (route, method, status class)
        aggregate (C, no I/O), or, when ``kept`` (slow or failed), held to be
        pushed with its own labels; it gets a ``request_id`` then."""
        meta = report.meta
        if kept:
            with self._lock:
                if len(self._requests) < MAX_REQUESTS:
                    meta["request_id"] = os.urandom(8).hex()
                    self._requests.append((report, meta))
                    return
        method, route = route_of(meta)
        cls = status_class(meta)
        with self._lock:
            agg = self._aggs.get(cls)
            if agg is None:
                agg = self._aggs[cls] = _core.Aggregate(self.settings.max_routes,
                                                        ROUTE_MAX_NODES, AGGREGATE_MAX_BYTES)
            agg.add(report._session, method, route, float(report.duration_s or 0.0),
                    float(report.cpu_s or 0.0), cls == "5xx")

    # -- the reporter thread ---------------------------------------------------

    def _schedule(self, delay: float) -> None:
        reporter.watch(max(0.05, delay), self.tick)

    def tick(self) -> None:
        """Every interval: the interval's profiles written and queued, then
        sent (or later, when backing off)."""
        try:
            now = time.time()
            if now - self._started >= self.settings.push_interval - 0.05:
                self._write_interval(now)
            self._send(time.monotonic() + PUSH_BUDGET_SECONDS)
        except Exception as exc:
            self.failures.log("push", logging.ERROR, "reqprof: pushing profiles failed (%s: %s)",
                              type(exc).__name__, exc)
        finally:
            if os.getpid() == self._pid and not self._closed:
                left = self._started + self.settings.push_interval - time.time()
                if self._queue and self._retry_at:
                    left = min(left, self._retry_at - time.monotonic())
                self._schedule(left)

    def _write_interval(self, now: float) -> None:
        with self._lock:
            started, aggs, requests = self._started, self._aggs, self._requests
            self._started, self._aggs, self._requests = now, {}, []
        duration = max(0.001, now - started)
        profiles = []
        for cls, agg in sorted(aggs.items()):
            for index, (method, route, *_, has_profile) in enumerate(agg.routes()):
                if has_profile:
                    profiles.append(self._write(agg, index, started, duration,
                                                _labels(method, route, cls),
                                                f"{method} {route} {cls}"))
        for report, meta in requests:
            method, route = route_of(meta)
            cls = status_class(meta)
            agg = _core.Aggregate(1, ROUTE_MAX_NODES, AGGREGATE_MAX_BYTES)
            agg.add(report._session, method, route, float(report.duration_s or 0.0),
                    float(report.cpu_s or 0.0), cls == "5xx")
            labels = _labels(method, route, cls) + [("request_id", str(meta["request_id"]))]
            for key in ("trace_id", "span_id"):
                if meta.get(key):
                    labels.append((key, str(meta[key])))
            if agg.routes()[0][-1]:
                profiles.append(self._write(agg, 0, float(report.started_at),
                                            max(0.001, float(report.duration_s or 0.0)), labels,
                                            f"{method} {route} request {meta['request_id']}"))
        self._enqueue([p for p in profiles if p is not None], now)

    def _write(self, agg: Any, index: int, started: float, duration: float,
               labels: list, what: str) -> Optional[Profile]:
        """The route's profile, within the server's limits (the lightest
        samples left out, counted and logged)."""
        limit = MAX_SAMPLES
        while True:
            body, raw_len, trimmed, trimmed_s = agg.route_push(
                index, started, duration, labels, limit, __version__, self.settings.interval)
            if raw_len <= MAX_PROFILE_BYTES or limit <= 1:
                break
            limit = max(1, limit // 2 if limit < MAX_SAMPLES else ROUTE_MAX_NODES // 2)
        if raw_len > MAX_PROFILE_BYTES:
            self.dropped["too large"] += 1
            return None
        if trimmed:
            self.trimmed_samples += trimmed
            self.failures.log("push-trim", logging.WARNING,
                              "reqprof: a profile pushed for %s was over Pyroscope's limits; its "
                              "%d lightest samples (%.3f s) were left out", what, trimmed,
                              trimmed_s)
        return Profile(body, time.time(), what)

    def _enqueue(self, profiles: list, now: float) -> None:
        with self._lock:
            self._queue.extend(profiles)
            self._queue_bytes += sum(len(p.body) for p in profiles)
            while self._queue and (self._queue_bytes > self.max_bytes
                                   or now - self._queue[0].made > MAX_AGE_SECONDS):
                old = self._queue.popleft()
                self._queue_bytes -= len(old.body)
                self.dropped["queue"] += 1
            dropped = self.dropped["queue"]
        if dropped:
            self.failures.log("push-queue", logging.WARNING,
                              "reqprof: %d profiles were dropped so far: Pyroscope does not take "
                              "them as fast as they come (PROFILING_PUSH_MAX_MB=%d)", dropped,
                              self.settings.push_max_mb)

    @property
    def queued_bytes(self) -> int:
        return self._queue_bytes

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _send(self, deadline: float) -> None:
        """Sends the oldest first, on one connection, until the queue is
        empty, the deadline passes or a push fails (then retried after the
        backoff)."""
        if time.monotonic() < self._retry_at:
            return
        if not self._send_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return
        conn: Any = None
        try:
            while time.monotonic() < deadline:
                with self._lock:
                    if not self._queue:
                        return
                    profile = self._queue[0]
                try:
                    if conn is None:
                        conn = self._connect(min(CONNECT_TIMEOUT, deadline - time.monotonic()))
                    self._post(conn, profile.body, min(TOTAL_TIMEOUT, deadline - time.monotonic()))
                except Rejected as exc:
                    self.dropped["rejected"] += 1
                    self.failures.log("push-rejected", logging.ERROR,
                                      "reqprof: Pyroscope refused a profile of %s: %s; it is "
                                      "dropped", profile.what, exc)
                except Exception as exc:
                    self._attempts += 1
                    # At most twice the interval: the queue catches up soon after the
                    # server is back.
                    wait = min(BACKOFF_MAX, max(BACKOFF_FIRST, 2 * self.settings.push_interval),
                               BACKOFF_FIRST * 2 ** min(self._attempts - 1, 16))
                    wait *= random.uniform(0.5, 1.5)
                    self._retry_at = time.monotonic() + wait
                    kind = type(exc).__name__
                    self.failures.log("push-" + kind, logging.WARNING,
                                      "reqprof: pushing to Pyroscope (%s) failed (%s: %s); "
                                      "%d profiles wait, retrying in %.1f s",
                                      self.settings.pyroscope_url, kind, exc, len(self._queue),
                                      wait)
                    return
                else:
                    self._attempts = 0
                    self._retry_at = 0.0
                    self.pushed_profiles += 1
                    self.pushed_bytes += len(profile.body)
                with self._lock:
                    if self._queue and self._queue[0] is profile:
                        self._queue.popleft()
                        self._queue_bytes -= len(profile.body)
        finally:
            if conn is not None:
                conn.close()
            self._send_lock.release()

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=max(0.1, timeout))
        try:
            conn.connect()
        except BaseException:
            conn.close()
            raise
        return conn

    def _post(self, conn: http.client.HTTPConnection, body: bytes, timeout: float) -> None:
        """One POST to /ingest within ``timeout`` seconds; raises Rejected
        (4xx but 429) or another exception (retried)."""
        deadline = time.monotonic() + max(0.1, timeout)
        if conn.sock is None:       # the server closed the last one
            conn.timeout = min(CONNECT_TIMEOUT, max(0.1, timeout))
            conn.connect()
        conn.sock.settimeout(max(0.1, deadline - time.monotonic()))
        conn.request("POST", self._path, body=body, headers=self._headers)
        conn.sock.settimeout(max(0.1, deadline - time.monotonic()))
        response = conn.getresponse()
        message = response.read(2000)
        if not response.isclosed():
            if (response.length or 0) <= 65536:
                response.read()     # the rest, so the connection can be used again
            else:
                conn.close()
        if 200 <= response.status < 300:
            return
        text = message.decode("utf-8", "replace").strip()[:300]
        if 400 <= response.status < 500 and response.status != 429 \
                and _connect_code(text) not in TRANSIENT_CODES:
            raise Rejected(f"HTTP {response.status} {text}")
        raise ServerError(f"HTTP {response.status} {text}")

    # -- shutdown ----------------------------------------------------------------

    def close(self) -> None:
        """What is left is pushed, within EXIT_FLUSH_SECONDS: at the ASGI
        lifespan's shutdown, or when the process exits. Pushing stops."""
        self._closed = True
        self._at_exit()

    def _process_exit(self) -> None:
        if not self._closed:    # else the lifespan's shutdown flushed already
            self._closed = True
            self._at_exit()

    def _at_exit(self) -> None:
        if os.getpid() != self._pid:
            return
        deadline = time.monotonic() + EXIT_FLUSH_SECONDS
        try:
            self._write_interval(time.time())
            self._retry_at = 0.0
            self._send(deadline)
        except Exception as exc:
            self.failures.log("push", logging.ERROR, "reqprof: pushing profiles at exit failed "
                              "(%s: %s)", type(exc).__name__, exc)
        if not self._told:      # once a process: what it pushed, for the operator
            self._told = True
            logger.info("reqprof: pushed %d profiles (%d bytes) to Pyroscope in %.0f s; "
                        "%d left unsent, dropped: %s, samples left out: %d",
                        self.pushed_profiles, self.pushed_bytes,
                        time.monotonic() - self._since, self.queued,
                        dict(self.dropped) or "none", self.trimmed_samples)


class ServerError(Exception):
    """The server answered 429, 5xx, or a 4xx it says is its own (retried)."""


#: Connect error codes that say a failure is the server's, not the profile's:
#: Pyroscope answers a 4xx with one of these while its ring forms (after a
#: restart: "unknown: empty ring"); such a push is retried.
TRANSIENT_CODES = frozenset({"unknown", "unavailable", "internal", "deadline_exceeded",
                             "resource_exhausted", "canceled", "aborted"})


def _connect_code(text: str) -> Optional[str]:
    """The ``code`` of a Connect error body (JSON), or None."""
    if not text.startswith("{"):
        return None
    try:
        code = json.loads(text).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None


def _labels(method: str, route: str, cls: str) -> list:
    return [("route", route[:ROUTE_LABEL_MAX]), ("method", method or "?"),
            ("status_class", cls)]


_instances: list = []


def _after_fork() -> None:
    for pusher in _instances:
        pusher._lock = threading.Lock()
        pusher._send_lock = threading.Lock()
        pusher._reset()
        pusher._schedule(pusher.settings.push_interval)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
