"""Logging for the middlewares: the `reqprof` logger, its fallback handler,
rate-limited warnings and the per-report summary.

reqprof never calls ``basicConfig``. Servers like uvicorn configure only
their own loggers, so the root logger often has no handler and INFO records
would vanish: when neither `reqprof` nor the root logger has a handler,
:func:`ensure_handler` attaches one stderr handler to `reqprof` (and lets
INFO through). That handler stands aside as soon as the application
configures logging itself (a handler on the root logger or on `reqprof`).
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Optional

logger = logging.getLogger("reqprof")

#: The text tree logged under a summary line: at most this many lines, and
#: only frames with at least this share of the request's time.
TREE_MAX_LINES = 40
TREE_MIN_PERCENT = 1.0


class _Formatter(logging.Formatter):
    """``INFO:     message``, the way uvicorn prints its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname + ':':<10}{super().format(record)}"


class _FallbackHandler(logging.StreamHandler):
    """stderr handler used only while nobody else configured logging."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)
        self.setFormatter(_Formatter("%(message)s"))
        self.retired = False

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr   # whatever sys.stderr is now (like logging.lastResort)

    def emit(self, record: logging.LogRecord) -> None:
        if self.retired or self._app_configured():
            self._retire()
            return
        super().emit(record)

    def _app_configured(self) -> bool:
        if logging.getLogger().handlers:
            return True
        return any(h is not self for h in logger.handlers)

    def _retire(self) -> None:
        # Stays attached but inert: removing a handler while the logger
        # iterates over its handlers would skip the next one.
        global _level_set
        if self.retired:
            return
        self.retired = True
        with _lock:
            if _level_set and logger.level == logging.INFO:
                logger.setLevel(logging.NOTSET)
            _level_set = False


_lock = threading.Lock()
_level_set = False      # the `reqprof` level was raised to INFO by us


def ensure_handler() -> bool:
    """Attach the fallback stderr handler when no handler would show the
    `reqprof` INFO records. Returns True when it attached one."""
    global _level_set
    with _lock:
        if logger.handlers or logging.getLogger().handlers:
            return False
        logger.addHandler(_FallbackHandler())
        if logger.level == logging.NOTSET and logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
            _level_set = True
        return True


class RateLimited:
    """Logs a given kind of message at most once per ``period`` seconds,
    saying how many were suppressed in between. Thread-safe."""

    def __init__(self, period: float = 60.0) -> None:
        self.period = period
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, key: str, level: int, msg: str, *args: Any, exc_info: Any = None) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            msg += f" ({suppressed} similar message(s) suppressed)"
        logger.log(level, msg, *args, exc_info=exc_info)
        return True


def summary(report: Any, meta: dict, trigger: str) -> tuple[str, dict]:
    """The summary line of a profiled request and its ``extra`` fields."""
    top = []
    try:
        top = [(str(name), float(secs)) for name, secs in report.top_functions(3)]
    except Exception:   # a summary without the top list beats no summary
        pass
    duration_ms = float(getattr(report, "duration_s", 0.0) or 0.0) * 1000.0
    samples = int(getattr(report, "samples", 0) or 0)
    status = meta.get("status")
    target = meta.get("route") or meta.get("path") or "?"
    line = (f"{meta.get('method', '?')} {target} -> {status if status is not None else '-'} "
            f"in {duration_ms:.1f} ms, {samples} samples ({trigger})")
    if meta.get("exception"):
        line += f", raised {meta['exception']}"
    if getattr(report, "truncated", False):
        line += ", truncated"
    if top:
        line += "; top: " + ", ".join(f"{name} {secs * 1000.0:.1f} ms" for name, secs in top)
    extra = {
        "reqprof_trigger": trigger,
        "reqprof_method": meta.get("method"),
        "reqprof_path": meta.get("path"),
        "reqprof_route": meta.get("route"),
        "reqprof_status": status,
        "reqprof_duration_ms": round(duration_ms, 3),
        "reqprof_cpu_ms": round(float(getattr(report, "cpu_s", 0.0) or 0.0) * 1000.0, 3),
        "reqprof_samples": samples,
        "reqprof_truncated": bool(getattr(report, "truncated", False)),
        "reqprof_top": [[name, round(secs * 1000.0, 3)] for name, secs in top],
        "reqprof_exception": meta.get("exception"),
    }
    return line, extra


def tree_text(report: Any, max_lines: int = TREE_MAX_LINES,
              min_percent: float = TREE_MIN_PERCENT) -> Optional[str]:
    """The bounded text tree logged under the summary line (None if the
    writer fails)."""
    try:
        text = report.to_text(min_percent=min_percent, max_lines=max_lines)
    except Exception:
        return None
    lines = text.rstrip("\n").splitlines()
    if len(lines) > max_lines:      # the writer's own cap, enforced here too
        lines = lines[:max_lines] + ["…"]
    return "\n".join(lines)
