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
import re
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
    """stderr handler used only while nobody else configured logging.

    It is also a filter on the `reqprof` logger: the first record after the
    app configured logging retires it and puts the logger's level back, and
    that record is dropped if the app's configuration would not show it."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)
        self.setFormatter(_Formatter("%(message)s"))
        self.retired = False
        self.raised_level = False   # we set `reqprof` to INFO

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr   # whatever sys.stderr is now (like logging.lastResort)

    def filter(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if not self.retired and self._app_configured():
            self._retire()
        return record.levelno >= logger.getEffectiveLevel()

    def emit(self, record: logging.LogRecord) -> None:
        if not self.retired:
            super().emit(record)

    def _app_configured(self) -> bool:
        if logging.getLogger().handlers:
            return True
        return any(h is not self for h in logger.handlers)

    def _retire(self) -> None:
        # Stays attached but inert: removing a handler while the logger
        # iterates over its handlers would skip the next one.
        with _lock:
            if self.retired:
                return
            self.retired = True
            if self.raised_level and logger.level == logging.INFO:
                logger.setLevel(logging.NOTSET)


_lock = threading.Lock()

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: what
# could start a fake log line or rewrite a terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: Any) -> str:
    """``text`` for a log line: control characters (newlines included)
    written as escapes, so a request path or a function name can never
    start a line of its own; lone surrogates as ``\\udcxx``."""
    text = str(text)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}")
                            if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class Lines(str):
    """Text reqprof wrote itself, one line per ``\n`` on purpose (a call tree
    whose names the C writer escaped): logged as it is."""


class _EscapeArguments(logging.Filter):
    """Every argument of a `reqprof` record is made :func:`printable` (an
    exception by its type and message), except :class:`Lines`: text a
    request controls (paths, exception messages, names) can never start a
    log line of its own or reach a terminal raw."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(_escaped(a) for a in args)
        elif isinstance(args, dict) and args:
            record.args = {k: _escaped(v) for k, v in args.items()}
        return True


def _escaped(value: Any) -> Any:
    if isinstance(value, Lines) or isinstance(value, (int, float)):
        return value
    if isinstance(value, BaseException):
        return printable(str(value))
    if isinstance(value, str):
        return printable(value)
    return value


logger.addFilter(_EscapeArguments())


def exception_text(exc: BaseException, limit: int = 30) -> Lines:
    """A traceback of ``exc`` for a log record, with every piece a request
    can control (the messages, the source lines) escaped onto its own line:
    at most ``limit`` frames per exception in the chain."""
    import traceback

    out: list[str] = []
    seen: set = set()
    chain: Optional[BaseException] = exc
    while chain is not None and id(chain) not in seen and len(seen) < 5:
        seen.add(id(chain))
        stack = traceback.extract_tb(chain.__traceback__, limit=-limit)
        block = [f"  File {printable(f.filename)}, line {f.lineno}, in {printable(f.name)}"
                 + (f"\n    {printable(f.line)}" if f.line else "") for f in stack]
        block.append(printable(f"{type(chain).__name__}: {chain}"))
        out[:0] = block if not out else block + ["(which led to the exception below)"]
        chain = chain.__cause__ or (None if chain.__suppress_context__ else chain.__context__)
    return Lines("Traceback (most recent call last):\n" + "\n".join(out))


def log_manual_exception(method: Any, path: Any, exc: BaseException) -> None:
    """The app raised during a ``?profile=1`` request: its report (which
    shows the exception) was sent instead of the response; the traceback
    goes to the log, escaped."""
    logger.error("reqprof: exception in the app during a manually profiled request (%s %s); "
                 "its report, which shows it, was sent instead of the response\n%s",
                 method, path, exception_text(exc))


def ensure_handler() -> bool:
    """Attach the fallback stderr handler when no handler would show the
    `reqprof` INFO records. Returns True when it attached one."""
    with _lock:
        if logger.handlers or logging.getLogger().handlers:
            return False
        handler = _FallbackHandler()
        logger.addHandler(handler)
        logger.addFilter(handler.filter)
        if logger.level == logging.NOTSET and logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
            handler.raised_level = True
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


def has_call_tree(report: Any) -> bool:
    """Whether a sampler tick landed inside the profiled code. A profile
    shorter than the interval has no sample: its time is ``[unsampled]``,
    no tree to show."""
    return int(getattr(report, "samples", 0) or 0) > 0


def summary(report: Any, meta: dict, trigger: str) -> tuple[str, dict]:
    """The summary line of a profiled request and its ``extra`` fields."""
    sampled = has_call_tree(report)
    top = []
    if sampled:
        try:
            top = [(printable(name), float(secs)) for name, secs in report.top_functions(3)]
        except Exception:   # a summary without the top list beats no summary
            pass
    duration_ms = float(getattr(report, "duration_s", 0.0) or 0.0) * 1000.0
    samples = int(getattr(report, "samples", 0) or 0)
    status = meta.get("status")
    target = meta.get("route") or meta.get("path") or "?"
    line = (f"{printable(meta.get('method', '?'))} {printable(target)} -> "
            f"{status if status is not None else '-'} "
            f"in {duration_ms:.1f} ms, {samples} sample{'' if samples == 1 else 's'} "
            f"({trigger})")
    if meta.get("exception"):
        line += f", raised {printable(meta['exception'])}"
    if meta.get("ended"):
        line += f", ended at {printable(meta['ended'])}"
        if meta.get("response_cut"):
            line += " (the response was cut)"
    response_s = getattr(report, "response_s", None)
    gc_ms = float(getattr(report, "gc_s", 0.0) or 0.0) * 1000.0
    undersampled = getattr(report, "undersampled_reason", None)
    if response_s is not None:
        line += f", response sent at {float(response_s) * 1000.0:.1f} ms"
    if gc_ms > 0.0:
        line += f", GC {gc_ms:.1f} ms"
    if undersampled:
        line += f", undersampled ({undersampled})"
    if getattr(report, "truncated", False):
        line += ", truncated"
    breakdown = _breakdown(report) if sampled else None
    busy_ms = awaiting_ms = running_ms = block_ms = 0.0
    blockers: list = []
    block_at = None
    if breakdown:
        busy = breakdown["event_loop_busy"]
        busy_ms = busy["wall_s"] * 1000.0
        awaiting_ms = breakdown["awaiting"]["wall_s"] * 1000.0
        running_ms = breakdown["running"]["wall_s"] * 1000.0
        blockers = [(printable(b["name"]), b["share"]) for b in busy["blockers"]]
        block = breakdown.get("loop_block")
        if block:
            block_ms = block["wall_s"] * 1000.0
            if block.get("short_file") or block.get("file"):
                block_at = f"{printable(block.get('short_file') or block['file'])}:{block['line']}"
    if busy_ms >= 0.5:
        line += f": {busy_ms:.0f} ms waiting for a busy event loop"
        if blockers:
            line += " (blocked by " + ", ".join(f"{name} {share * 100:.0f}%"
                                               for name, share in blockers[:2]) + ")"
        line += f", {awaiting_ms:.0f} ms awaiting, {running_ms:.0f} ms running"
    if block_ms > 0.0:
        line += f", blocked the event loop for {block_ms:.0f} ms"
        if block_at:
            line += f" at {block_at}"
    if meta.get("trace_id"):
        line += f", trace {printable(meta['trace_id'])} span {printable(meta.get('span_id'))}"
    if top:
        line += "; top: " + ", ".join(f"{name} {secs * 1000.0:.1f} ms" for name, secs in top)
    elif not sampled:
        line += "; shorter than the sampling interval (PROFILING_INTERVAL): no call tree"
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
        "reqprof_response_ms": (round(float(response_s) * 1000.0, 3)
                                if response_s is not None else None),
        "reqprof_gc_ms": round(gc_ms, 3),
        "reqprof_undersampled": undersampled,
        "reqprof_loop_busy_ms": round(busy_ms, 3),
        "reqprof_blockers": [[name, round(share, 3)] for name, share in blockers],
        "reqprof_awaiting_ms": round(awaiting_ms, 3),
        "reqprof_running_ms": round(running_ms, 3),
        "reqprof_loop_block_ms": round(block_ms, 3),
        "reqprof_loop_block_at": block_at,
        "reqprof_trace_id": meta.get("trace_id"),
        "reqprof_span_id": meta.get("span_id"),
        "reqprof_request_id": meta.get("request_id"),
    }
    return line, extra


def _breakdown(report: Any) -> Optional[dict]:
    """``report.breakdown``, or None when it cannot be had (a summary
    without it beats no summary)."""
    try:
        return report.breakdown
    except Exception:
        return None


def tree_text(report: Any, max_lines: int = TREE_MAX_LINES,
              min_percent: float = TREE_MIN_PERCENT) -> Optional[str]:
    """The bounded text tree logged under the summary line
    (``Report.to_log_text``), or None when it cannot be written."""
    try:
        return report.to_log_text(max_lines=max_lines, min_percent=min_percent)
    except Exception:
        return None
