"""The output directory (``PROFILING_OUTPUT_DIR``): sampled reports written
as files, within a byte budget, never filling the file system.

Each report is a pair ``<stem>.json`` + ``<stem>.html`` written as one
unit: both halves go to temporary files first and are renamed into place
only when both are complete (JSON first, so a visible HTML means a complete
pair). Stems start with the UTC time, so name order is age order across
processes. Before each write, the oldest reports are removed until the new
one fits: at most :data:`OUTPUT_KEEP` reports, at most
``PROFILING_OUTPUT_MAX_MB`` in all, and the file system keeps
:data:`FREE_FRACTION` of its size free (or :data:`FREE_FLOOR_BYTES`, the
smaller). Only reqprof's own files (``reqprof-*``) are ever removed.
Runs in the reporter thread, never in a request.
"""
from __future__ import annotations

import errno
import os
import time
from typing import Iterable, Sequence

#: Reports kept in the output directory, at most (the byte budget may keep
#: fewer).
OUTPUT_KEEP = 100
#: Free space left on the output directory's file system: this fraction of
#: its size, or FREE_FLOOR_BYTES, whichever is smaller.
FREE_FRACTION = 0.05
FREE_FLOOR_BYTES = 100 << 20
#: A temporary file or a lone half of a pair older than this is left over
#: from a crash (or a full disk) and is removed.
STALE_SECONDS = 60.0
#: The suffixes of one report, in the order they are put in place.
SUFFIXES = (".json", ".html")
_PREFIX = "reqprof-"
_TMP = ".tmp"


class Dropped(Exception):
    """The report was not written; the message says why (for the log)."""


class OutputDir:
    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def write(self, stem: str, parts: Sequence[bytes]) -> str:
        """Writes one report (``parts`` in :data:`SUFFIXES` order) and returns
        the HTML file's path. Raises :class:`Dropped` when it cannot fit, or
        OSError for any other failure; nothing is left half-written."""
        size = sum(len(p) for p in parts)
        if size > self.max_bytes:
            raise Dropped(f"the report takes {_mb(size)}, more than PROFILING_OUTPUT_MAX_MB "
                          f"({_mb(self.max_bytes)})")
        os.makedirs(self.path, exist_ok=True)    # again: it may have been removed
        for attempt in (1, 2):
            self._make_room(size)
            try:
                return self._write_pair(stem, parts)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                if attempt == 2 or not self._prune_bytes(size):
                    raise Dropped(f"the file system is full ({exc.strerror})") from None
        raise AssertionError("unreachable")

    # -- the directory's content ---------------------------------------------

    def _reports(self) -> list[tuple[str, int]]:
        """(stem, bytes) of every report, oldest first. Removes leftovers: old
        temporary files and old lone halves."""
        halves: dict[str, list[os.DirEntry]] = {}
        now = time.time()
        with os.scandir(self.path) as entries:
            for entry in entries:
                name = entry.name
                if not name.startswith(_PREFIX):
                    continue
                if name.endswith(_TMP):
                    if _age(entry, now) > STALE_SECONDS:
                        _unlink(entry.path)
                    continue
                for suffix in SUFFIXES:
                    if name.endswith(suffix):
                        halves.setdefault(name[:-len(suffix)], []).append(entry)
        reports = []
        for stem, found in sorted(halves.items()):
            if len(found) < len(SUFFIXES) and all(_age(e, now) > STALE_SECONDS for e in found):
                for entry in found:     # a lone half, long enough to not be in progress
                    _unlink(entry.path)
                continue
            reports.append((stem, sum(_size(e) for e in found)))
        return reports

    def _make_room(self, size: int) -> None:
        """Removes the oldest reports until one of ``size`` bytes fits every
        bound; raises Dropped when even an empty directory would not do."""
        reports = self._reports()
        used = sum(n for _, n in reports)
        while reports and (len(reports) >= OUTPUT_KEEP or used + size > self.max_bytes
                           or not self._fits(size)):
            stem, n = reports.pop(0)
            self._remove(stem)
            used -= n
        if not self._fits(size):
            raise Dropped(f"the file system would have less than "
                          f"{_mb(self._floor())} free")

    def _prune_bytes(self, size: int) -> bool:
        """Removes the oldest reports until ``size`` bytes are freed (after
        a write found the disk full). False when there was none."""
        freed = 0
        reports = self._reports()
        for stem, n in reports:
            if freed >= size:
                break
            self._remove(stem)
            freed += n
        return bool(reports)

    def _fits(self, size: int) -> bool:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize - size >= self._floor(st)

    def _floor(self, st: "os.statvfs_result | None" = None) -> int:
        st = st or os.statvfs(self.path)
        return int(min(FREE_FRACTION * st.f_blocks * st.f_frsize, FREE_FLOOR_BYTES))

    def _remove(self, stem: str) -> None:
        for suffix in reversed(SUFFIXES):   # the HTML first: no visible half pair
            _unlink(os.path.join(self.path, stem + suffix))

    def _write_pair(self, stem: str, parts: Sequence[bytes]) -> str:
        base = os.path.join(self.path, stem)
        tmps = [f"{base}{suffix}.{os.getpid()}{_TMP}" for suffix in SUFFIXES]
        placed: list[str] = []
        try:
            for tmp, data in zip(tmps, parts):
                with open(tmp, "wb") as f:
                    f.write(data)
            for tmp, suffix in zip(tmps, SUFFIXES):
                os.replace(tmp, base + suffix)
                placed.append(base + suffix)
        except BaseException:
            _unlink_all(tmps)
            _unlink_all(placed)
            raise
        return base + ".html"


def _age(entry: os.DirEntry, now: float) -> float:
    try:
        return now - entry.stat().st_mtime
    except OSError:
        return 0.0


def _size(entry: os.DirEntry) -> int:
    try:
        return entry.stat().st_size
    except OSError:
        return 0


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _unlink_all(paths: Iterable[str]) -> None:
    for path in paths:
        try:
            _unlink(path)
        except OSError:
            pass


def _mb(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB"
