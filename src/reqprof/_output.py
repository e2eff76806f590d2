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
    """Writes report pairs into ``path``, with few system calls a report:
    each lets the GIL go, and taking it back beside a busy event loop costs
    up to the interpreter's switch interval (5 ms). The engine lists the
    directory and places a report's files, letting the GIL go once for each
    (:meth:`_scan`, :meth:`_put`)."""

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
        for attempt in (1, 2):
            try:
                doomed = self._make_room(size)
            except FileNotFoundError:   # the directory was removed: made again
                os.makedirs(self.path, exist_ok=True)
                doomed = self._make_room(size)
            try:
                return self._write_pair(stem, parts, doomed)
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
        halves: dict[str, list[tuple[str, int, float]]] = {}
        now = time.time()
        for entry in self._scan():
            name = entry[0]
            if name.endswith(_TMP):
                if now - entry[2] > STALE_SECONDS:
                    _unlink(os.path.join(self.path, name))
                continue
            for suffix in SUFFIXES:
                if name.endswith(suffix):
                    halves.setdefault(name[:-len(suffix)], []).append(entry)
        reports = []
        for stem, found in sorted(halves.items()):
            if len(found) < len(SUFFIXES):
                # In progress (another process places its halves one by one)
                # or left over: only an old one is removed.
                if all(now - e[2] > STALE_SECONDS for e in found):
                    for e in found:
                        _unlink(os.path.join(self.path, e[0]))
                continue
            reports.append((stem, sum(e[1] for e in found)))
        return reports

    def _make_room(self, size: int) -> list[str]:
        """The oldest reports to remove so that one of ``size`` bytes fits
        every bound; raises Dropped when even an empty directory would not
        do."""
        reports = self._reports()
        used = sum(n for _, n in reports)
        st = os.statvfs(self.path)
        free, floor = st.f_bavail * st.f_frsize, _floor(st)
        doomed = []
        while reports and (len(reports) >= OUTPUT_KEEP or used + size > self.max_bytes
                           or free - size < floor):
            stem, n = reports.pop(0)
            doomed.append(stem)
            used -= n
            free += n       # (about: blocks, not bytes, are freed)
        if free - size < floor:
            raise Dropped(f"the file system would have less than {_mb(floor)} free")
        return doomed

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

    def _paths(self, stem: str) -> list[str]:
        """A report's files, the HTML first: removed in this order, no
        visible pair is ever half gone."""
        return [os.path.join(self.path, stem + suffix) for suffix in reversed(SUFFIXES)]

    def _remove(self, stem: str) -> None:
        _unlink_all(self._paths(stem))

    def _write_pair(self, stem: str, parts: Sequence[bytes], doomed: Sequence[str]) -> str:
        """Removes the reports ``doomed``, then writes this one: each half to
        a temporary file, then both renamed into place, JSON first."""
        base = os.path.join(self.path, stem)
        remove = [path for old in doomed for path in self._paths(old)]
        self._put(remove, [(f"{base}{suffix}.{os.getpid()}{_TMP}", base + suffix, bytes(data))
                           for suffix, data in zip(SUFFIXES, parts)])
        return base + ".html"

    # -- the system calls, each group made by the engine with the GIL let go once --

    def _scan(self) -> list[tuple[str, int, float]]:
        """(name, bytes, mtime) of reqprof's files in the directory."""
        from . import _core     # when first needed: with profiling off, no engine is loaded
        return _core.scan_dir(self.path, _PREFIX)

    def _put(self, remove: Sequence[str], files: Sequence[tuple[str, str, bytes]]) -> None:
        """Removes the paths ``remove``, then writes each (tmp, path, data)
        of ``files`` to tmp and renames it to path, all or nothing."""
        from . import _core
        _core.put_files(remove, files)


def _floor(st: os.statvfs_result) -> int:
    """Bytes the file system keeps free: FREE_FRACTION of its size, at most
    FREE_FLOOR_BYTES."""
    return int(min(FREE_FRACTION * st.f_blocks * st.f_frsize, FREE_FLOOR_BYTES))


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
