"""The embedded store (``PROFILING_STORE``): one SQLite file that every
worker process of an app writes to, and that ``reqprof dashboard`` and
``reqprof routes`` read.

Two tables:

- ``route_windows``: per process, route and minute, the requests' count,
  errors, wall and CPU sums, the slowest, the latency histogram (the C
  engine's stored form) and the route's merged profile (gzipped JSON in
  the report schema);
- ``requests``: the kept requests (slow, failed, or asked for) with their
  full report (gzipped JSON).

Writers use WAL mode and short busy timeouts: a locked database makes a
write fail (the caller keeps or drops its batch), never wait long.
Retention: ``PROFILING_STORE_MAX_MB`` and ``PROFILING_STORE_DAYS``, oldest
first. The file is marked as reqprof's (SQLite's application_id) with a
schema version (user_version), so a foreign or newer file is refused with
a one-line :class:`StoreError` naming the path.
"""
from __future__ import annotations

import gzip
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

__all__ = ["Store", "StoreError", "RouteWindow", "KeptRequest", "SCHEMA_VERSION"]

#: The schema this reqprof writes and reads.
SCHEMA_VERSION = 1
#: SQLite application_id of a reqprof store: "rqpf".
APPLICATION_ID = 0x72717066
#: How long a writer waits for another process's write, in seconds.
WRITE_TIMEOUT = 0.25

_SCHEMA = """
CREATE TABLE IF NOT EXISTS route_windows (
    id INTEGER PRIMARY KEY,
    window INTEGER NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    count INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    wall_s REAL NOT NULL,
    cpu_s REAL NOT NULL,
    max_ms REAL NOT NULL,
    latency BLOB NOT NULL,
    profile BLOB
);
CREATE INDEX IF NOT EXISTS route_windows_by_window ON route_windows (window);
CREATE INDEX IF NOT EXISTS route_windows_by_route ON route_windows (method, route, window);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER,
    duration_ms REAL NOT NULL,
    kept_because TEXT NOT NULL,
    trace_id TEXT,
    report BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_started ON requests (started);
CREATE INDEX IF NOT EXISTS requests_by_route ON requests (method, route, duration_ms);
"""


class StoreError(Exception):
    """The store cannot be used: the message is one line naming the path."""


def busy(exc: BaseException) -> bool:
    """Whether a failed write may succeed later (another process holds the
    database for a moment), as opposed to a store that cannot be used."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


@dataclass
class RouteWindow:
    """A route's minute in one process."""

    window: int
    method: str
    route: str
    count: int
    errors: int
    wall_s: float
    cpu_s: float
    max_ms: float
    latency: bytes
    profile_json: Optional[bytes]


@dataclass
class KeptRequest:
    """A request whose full report is kept."""

    started: float
    method: str
    route: str
    path: str
    status: Optional[int]
    duration_ms: float
    kept_because: str
    report_json: bytes
    trace_id: Optional[str] = None


def _compress(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=5, mtime=0)


class Store:
    """A reqprof store at ``path``. ``readonly``: for the dashboard and the
    CLI (the file must exist). Raises StoreError when the file cannot be
    used."""

    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.readonly = readonly
        self.host = socket.gethostname()
        self._conn: Optional[sqlite3.Connection] = None
        self._pid = 0
        self.connection()       # checks the file now

    # -- opening -------------------------------------------------------------

    def _fail(self, what: str) -> StoreError:
        return StoreError(f"reqprof store {self.path}: {what}")

    def connection(self) -> sqlite3.Connection:
        """This process's connection (a forked child opens its own)."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            raise self._fail("its directory does not exist")
        if self.readonly and not os.path.exists(self.path):
            raise self._fail("no such file")
        if not self.readonly and not os.access(directory, os.W_OK):
            raise self._fail("its directory is not writable")
        try:
            if self.readonly:
                uri = "file:" + self.path.replace("?", "%3f").replace("#", "%23") + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=5.0, check_same_thread=False)
            else:
                conn = sqlite3.connect(self.path, timeout=WRITE_TIMEOUT, isolation_level=None,
                                       check_same_thread=False)
            self._check(conn)
        except sqlite3.DatabaseError as exc:
            raise self._fail(f"not a usable SQLite database ({exc})") from None
        self._conn = conn
        self._pid = os.getpid()
        return conn

    def _check(self, conn: sqlite3.Connection) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id == 0 and tables == 0:
            if self.readonly:
                raise self._fail("an empty database, not a reqprof store")
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            return
        if app_id != APPLICATION_ID:
            raise self._fail("not a reqprof store (another application's database)")
        if version > SCHEMA_VERSION:
            raise self._fail(f"written by a newer reqprof (schema {version}; this one reads "
                             f"up to {SCHEMA_VERSION})")
        conn.execute("PRAGMA quick_check(1)").fetchone()
        if not self.readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    # -- writing (the reporter thread) ---------------------------------------

    def write(self, windows: Sequence[RouteWindow], requests: Sequence[KeptRequest]) -> None:
        """Writes a batch in one transaction; nothing of it when it fails:
        sqlite3.OperationalError when the database is busy (:func:`busy`:
        try later), StoreError when the store cannot be used (read-only,
        full, corrupt)."""
        try:
            self._write(windows, requests)
        except sqlite3.Error as exc:
            if busy(exc):
                raise
            raise self._fail(str(exc)) from None

    def _write(self, windows: Sequence[RouteWindow], requests: Sequence[KeptRequest]) -> None:
        conn = self.connection()
        pid = os.getpid()
        rows_w = [(w.window, self.host, pid, w.method, w.route, w.count, w.errors, w.wall_s,
                   w.cpu_s, w.max_ms, w.latency,
                   _compress(w.profile_json) if w.profile_json is not None else None)
                  for w in windows]
        rows_r = [(r.started, self.host, pid, r.method, r.route, r.path, r.status,
                   r.duration_ms, r.kept_because, r.trace_id, _compress(r.report_json))
                  for r in requests]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO route_windows (window, host, pid, method, route, count, errors, "
                "wall_s, cpu_s, max_ms, latency, profile) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                rows_w)
            conn.executemany(
                "INSERT INTO requests (started, host, pid, method, route, path, status, "
                "duration_ms, kept_because, trace_id, report) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows_r)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def size_bytes(self) -> int:
        """The database's size on disk, its write-ahead log included."""
        conn = self.connection()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        try:
            wal = os.path.getsize(self.path + "-wal")
        except OSError:
            wal = 0
        return (pages - free) * page + wal

    def prune(self, max_bytes: int, days: float, now: Optional[float] = None) -> int:
        """Removes rows older than ``days``, then the oldest until the store
        takes at most ``max_bytes``. Returns the rows removed."""
        conn = self.connection()
        now = time.time() if now is None else now
        removed = 0
        cutoff = now - days * 86400.0
        removed += self._delete(conn, "DELETE FROM route_windows WHERE window < ?", cutoff)
        removed += self._delete(conn, "DELETE FROM requests WHERE started < ?", cutoff)
        for _ in range(64):
            if self.size_bytes() <= max_bytes:
                break
            oldest = conn.execute(
                "SELECT min(t) FROM (SELECT min(window) AS t FROM route_windows "
                "UNION ALL SELECT min(started) FROM requests)").fetchone()[0]
            newest = conn.execute(
                "SELECT max(t) FROM (SELECT max(window) AS t FROM route_windows "
                "UNION ALL SELECT max(started) FROM requests)").fetchone()[0]
            if oldest is None:
                break
            # A tenth of the time covered at a time (at least a minute).
            step = max(60.0, (newest - oldest) / 10.0)
            gone = self._delete(conn, "DELETE FROM route_windows WHERE window < ?",
                                oldest + step)
            gone += self._delete(conn, "DELETE FROM requests WHERE started < ?", oldest + step)
            removed += gone
            conn.execute("PRAGMA incremental_vacuum")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if not gone:
                break
        return removed

    @staticmethod
    def _delete(conn: sqlite3.Connection, sql: str, before: float) -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = conn.execute(sql, (before,)).rowcount
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return max(n, 0)

    # -- reading (dashboard, CLI) ----------------------------------------------

    def route_windows(self, since: float = 0.0, until: Optional[float] = None,
                      method: Optional[str] = None, route: Optional[str] = None,
                      with_profiles: bool = False) -> Iterable[tuple]:
        """Rows (method, route, count, errors, wall_s, cpu_s, max_ms,
        latency[, profile JSON]) of the windows in [since, until). Raises
        StoreError for a store that cannot be read."""
        try:
            yield from self._route_windows(since, until, method, route, with_profiles)
        except sqlite3.Error as exc:
            raise self._fail(str(exc)) from None

    def _route_windows(self, since: float, until: Optional[float], method: Optional[str],
                       route: Optional[str], with_profiles: bool) -> Iterable[tuple]:
        sql = ("SELECT method, route, count, errors, wall_s, cpu_s, max_ms, latency"
               + (", profile" if with_profiles else "") + " FROM route_windows WHERE window >= ?")
        args: list[Any] = [int(since // 60 * 60)]
        if until is not None:
            sql += " AND window < ?"
            args.append(until)
        if method is not None:
            sql += " AND method = ? AND route = ?"
            args += [method, route]
        for row in self.connection().execute(sql, args):
            if with_profiles:
                yield (*row[:8], gzip.decompress(row[8]) if row[8] is not None else None)
            else:
                yield row

    def route_totals(self, since: float = 0.0,
                     until: Optional[float] = None) -> list[tuple]:
        """Per route over the windows in [since, until): (method, route,
        count, errors, wall_s, cpu_s, max_ms, has_profile, latency
        histograms). The sums are SQLite's; the histograms are listed for
        the caller to merge (``_core.hist_merge``). Raises StoreError for a
        store that cannot be read."""
        where = "window >= ?" + (" AND window < ?" if until is not None else "")
        args: list[Any] = [int(since // 60 * 60)] + ([until] if until is not None else [])
        try:
            conn = self.connection()
            totals = conn.execute(
                "SELECT method, route, sum(count), sum(errors), sum(wall_s), sum(cpu_s), "
                "max(max_ms), max(profile IS NOT NULL) FROM route_windows WHERE " + where +
                " GROUP BY method, route", args).fetchall()
            latencies: dict[tuple[str, str], list] = {}
            for method, route, latency in conn.execute(
                    "SELECT method, route, latency FROM route_windows WHERE " + where, args):
                latencies.setdefault((method, route), []).append(latency)
        except sqlite3.Error as exc:
            raise self._fail(str(exc)) from None
        return [(*row[:7], bool(row[7]), latencies.get((row[0], row[1]), []))
                for row in totals]

    def requests(self, method: Optional[str] = None, route: Optional[str] = None,
                 min_ms: float = 0.0, limit: int = 100, since: float = 0.0) -> list[dict]:
        """The kept requests, slowest first. Raises StoreError for a store
        that cannot be read."""
        try:
            return self._requests(method, route, min_ms, limit, since)
        except sqlite3.Error as exc:
            raise self._fail(str(exc)) from None

    def _requests(self, method: Optional[str], route: Optional[str], min_ms: float,
                  limit: int, since: float) -> list[dict]:
        sql = ("SELECT id, method, route, path, status, duration_ms, started, kept_because, "
               "host, pid, trace_id FROM requests WHERE started >= ? AND duration_ms >= ?")
        args: list[Any] = [since, min_ms]
        if method:
            sql += " AND method = ?"
            args.append(method)
        if route:
            sql += " AND route = ?"
            args.append(route)
        sql += " ORDER BY duration_ms DESC LIMIT ?"
        args.append(max(1, min(int(limit), 10_000)))
        keys = ("id", "method", "route", "path", "status", "duration_ms", "started",
                "kept_because", "host", "pid", "trace_id")
        return [dict(zip(keys, row)) for row in self.connection().execute(sql, args)]

    def request_report(self, request_id: int) -> Optional[bytes]:
        """A kept request's report JSON, or None."""
        try:
            row = self.connection().execute("SELECT report FROM requests WHERE id = ?",
                                            (int(request_id),)).fetchone()
        except sqlite3.Error as exc:
            raise self._fail(str(exc)) from None
        return gzip.decompress(row[0]) if row is not None else None
