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
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from .report import Report

logger = logging.getLogger("reqprof")

#: The text tree logged under a summary line: at most this many lines, and
#: only frames with at least this share of the request's time.
TREE_MAX_LINES = 40
TREE_MIN_PERCENT = 1.0


class _Formatter(logging.Formatter):
    """``INFO:     message``, the way uvicorn prints its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        if self._fmt == "%(message)s" and not (record.exc_info or record.exc_text
                                                or record.stack_info):
            # What Formatter.format makes of it, without its general steps.
            text = record.message = record.getMessage()
        else:
            text = super().format(record)
        return f"{record.levelname + ':':<10}{text}"


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
        if self.retired:
            return
        # StreamHandler.emit, with the stream looked up once.
        try:
            msg = self.format(record)
            stream = self.stream
            stream.write(msg + self.terminator)
            flush = getattr(stream, "flush", None)
            if flush is not None:
                flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _app_configured(self) -> bool:
        if logging.root.handlers:
            return True
        handlers = logger.handlers
        return len(handlers) > 1 or (len(handlers) == 1 and handlers[0] is not self)

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
    start a line of its own; lone surrogates as ``\\udcxx``. The engine
    escapes the text of the lines it writes the same way
    (``rp_buf_put_printable``; tests/test_log_record.py holds the two
    together)."""
    text = str(text)
    if text.isascii() and text.isprintable():
        return text     # the usual case, without the search below
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
            record.args = tuple([_escaped(a) for a in args])
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
        logger.addFilter(handler)   # a filter object: logging calls its filter()
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


#: The engine's writer of the record and the library directories it folds,
#: once a report needs them (the engine is not loaded with profiling off).
_engine: Optional[tuple[Callable[..., tuple], tuple[str, ...]]] = None


def log_record(report: Report, meta: dict, trigger: str,
               tree: bool = True) -> tuple[str, dict, Optional[str]]:
    """What the reporter logs for a sampled request: the summary line, its
    ``extra`` fields and, when ``tree`` and the report has a call tree, the
    text tree that goes under the line (``Report.to_log_text``), else None.
    The engine builds them in one call (``_core.log_record``), text a
    request controls escaped as :func:`printable` escapes it. A report
    without the engine's data, or whose top functions, breakdown or tree
    cannot be had, gets a line without those parts."""
    global _engine
    if _engine is None:
        from . import _core     # loaded already: the report came from it
        from .report import LIBRARY_DIRS

        _engine = (_core.log_record, LIBRARY_DIRS)
    write, library_dirs = _engine
    return write(report, meta, trigger, TREE_MAX_LINES if tree else -1, TREE_MIN_PERCENT,
                 library_dirs)


def summary(report: Report, meta: dict, trigger: str) -> tuple[str, dict]:
    """The summary line of a profiled request and its ``extra`` fields."""
    line, extra, _tree = log_record(report, meta, trigger, tree=False)
    return line, extra
