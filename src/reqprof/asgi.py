"""ProfilingMiddleware: per-request profiling for any ASGI app.

Pure ASGI (no BaseHTTPMiddleware: it breaks context variables and
streaming), meant to be the outermost middleware. The instance holds only
configuration and thread-safe helpers; everything about one request lives
in ``__call__`` and the per-request :class:`_Exchange`.

- Disabled (or the C extension missing): one attribute check, then the app.
- ``?profile=1`` (``true``, ``yes``, any case), when manual profiling is on
  and, with a token set, the request carries it in ``X-Profiling-Token``:
  the app runs profiled, its response is captured and discarded, and the
  report is sent instead. Without the token the parameter is ignored.
- Otherwise, with probability ``sample_rate``: the app runs profiled, every
  response message is forwarded untouched as it comes, and the report goes to
  a background thread that logs it (and writes it to ``output_dir``).

At most ``max_concurrent`` requests are profiled at once; the others are
served unprofiled (a manual one with ``X-Profiling-Skipped: busy``).

A profiler failure never fails or changes a request: it is logged (at most
once a minute per kind) and the request is served as if profiling were off.
Reports and log lines carry the path and a redacted query string (values of
reqprof's own parameters only), never request header values.
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import html
import ipaddress
import itertools
import logging
import os
import random
import re
import sys
import threading
import time
from types import FrameType
from typing import Any, Awaitable, Callable, MutableMapping, Optional, Union
from urllib.parse import parse_qsl

from . import _logging
from ._logging import RateLimited, logger
from ._logging import printable as _printable
from .config import ConfigError, Settings

__all__ = ["ProfilingMiddleware", "FORMATS", "OUTPUT_KEEP", "TOKEN_HEADER", "SKIPPED_HEADER"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: ``profile_format`` -> (Report method, content type, content-disposition).
#: A format is served only when the installed Report has its method.
FORMATS: dict[str, tuple[str, str, Optional[str]]] = {
    "html": ("to_html", "text/html; charset=utf-8", None),
    "json": ("to_json", "application/json", None),
    "text": ("to_text", "text/plain; charset=utf-8", None),
    "collapsed": ("to_collapsed", "text/plain; charset=utf-8", None),
    "speedscope": ("to_speedscope", "application/json",
                   'attachment; filename="profile.speedscope.json"'),
    "pprof": ("to_pprof", "application/octet-stream", 'attachment; filename="profile.pb.gz"'),
}
#: Auto-sampled reports kept in ``output_dir`` (HTML + JSON each); older
#: ones are removed.
OUTPUT_KEEP = 100
#: Auto-sampled reports waiting to be logged/written; beyond it new ones are
#: dropped (and that is logged).
REPORT_QUEUE = 64
#: The reporter thread, woken by a report, waits this long before logging,
#: so that a busy server wakes it once for a batch of reports rather than
#: once for each (every wake-up is a GIL hand-over with the request thread).
REPORT_BATCH_DELAY = 0.01
#: A manually profiled response is kept up to this size so it can be sent
#: as it was if the report cannot be built.
REPLAY_LIMIT = 32 * 1024 * 1024

#: The request header that carries ``PROFILING_TOKEN`` (ASGI header names
#: are lower case).
TOKEN_HEADER = b"x-profiling-token"
#: Response header of a manual request served unprofiled because
#: ``PROFILING_MAX_CONCURRENT`` sessions were running.
SKIPPED_HEADER = b"x-profiling-skipped"
#: Query parameters that belong to reqprof: the only ones whose values a
#: report or a log line shows.
OWN_PARAMS = frozenset({"profile", "profile_format"})
#: Request headers that say a proxy forwarded the request.
_PROXY_HEADERS = frozenset({b"forwarded", b"x-forwarded-for", b"x-real-ip"})

_YES = frozenset({"1", "true", "yes"})
_BUSY = object()    # _begin(): every profiling slot is taken
# App headers that describe the replaced body, or would stop a browser from
# showing the report (redirects, downloads, scripts blocked by a CSP).
_DROP_HEADERS = frozenset({
    b"content-type", b"content-length", b"content-encoding", b"transfer-encoding",
    b"etag", b"last-modified", b"location", b"refresh", b"content-disposition",
    b"content-range", b"accept-ranges", b"content-security-policy",
    b"content-security-policy-report-only", b"cache-control", b"expires",
    b"x-content-type-options", b"trailer", b"content-md5", b"digest",
})
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ProfilingMiddleware:
    """Profile HTTP requests of the wrapped ASGI app.

    ``ProfilingMiddleware(app)`` or ``app.add_middleware(ProfilingMiddleware)``
    reads the settings from the environment and ``.env``; keyword arguments
    named like :class:`~reqprof.Settings` fields (``enabled=True``,
    ``sample_rate=0.0``, ...) win over both, ``settings=`` gives them all at
    once and ``env_file=None`` skips the `.env` file.

    Raises :class:`~reqprof.ConfigError` for a bad setting (and logs it).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Optional[Settings] = None,
        env_file: Union[str, "os.PathLike[str]", None] = ".env",
        **overrides: Any,
    ) -> None:
        self.app = app
        self._off = True
        try:
            if settings is None:
                settings = Settings.from_env(env_file=env_file, **overrides)
            elif overrides:
                settings = settings.replace(**overrides)
            output_dir = _prepare_output_dir(settings) if settings.enabled else None
        except ConfigError as exc:
            _logging.ensure_handler()
            logger.error("reqprof: invalid configuration: %s", exc)
            raise
        self.settings = settings
        self._output_dir = output_dir
        self._failures = RateLimited(60.0)
        self._manual_on = settings.manual
        self._token_digest = (hashlib.sha256(settings.token.encode("ascii")).digest()
                              if settings.token is not None else None)
        self._slots = threading.BoundedSemaphore(settings.max_concurrent)
        # Manual profiling open to anyone: warn once it is reachable from
        # outside (the first request that came in on a non-loopback address).
        self._watch_bind = settings.manual and settings.token is None
        self._local_hosts: set = set()
        if not settings.enabled:
            logger.debug("reqprof: profiling disabled (ENABLE_PROFILING is false); "
                         "requests pass through")
            return
        _logging.ensure_handler()
        engine = _load_engine()
        if engine is None:
            return
        self._profiler_class, report_class = engine
        self._formats = {name: spec for name, spec in FORMATS.items()
                         if hasattr(report_class, spec[0])}
        self._off = False
        if not settings.manual:
            hint = "manual profiling is off"
        elif settings.token is not None:
            hint = "add ?profile=1 and the X-Profiling-Token header to a request for its report"
        else:
            hint = "add ?profile=1 to a request for its report"
        logger.info(
            "reqprof: profiling enabled (%s); %s", settings.describe(), hint,
            extra={"reqprof_" + name: value for name, value in settings.public().items()},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._off or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._watch_bind:
            self._check_bind(scope)
        manual = self._manual_request(scope) if self._manual_on else None
        if manual is not None:
            await self._manual(manual[1], receive, send, manual[0])
        elif self.settings.sample_rate > 0.0 and random.random() < self.settings.sample_rate:
            await self._auto(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- the two kinds of profiled request -----------------------------------

    async def _auto(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = _Exchange(scope, send, keep=False)
        profiler = self._begin(sys._getframe())
        if profiler is None or profiler is _BUSY:
            await self.app(scope, receive, send)
            return
        exchange.profiler = profiler    # marks the end of the response
        try:
            await self.app(scope, receive, exchange.forward)
        except BaseException as exc:
            exchange.exception = exc
            raise
        finally:
            report = self._finish(profiler, exchange, "auto")
            self._slots.release()
            exchange.profiler = None
            if report is not None:
                _reporter.submit(report, self._output_dir, self._failures)
            # An exception leaving here holds this frame in its traceback,
            # and frameworks keep exceptions in reference cycles (task
            # groups): let the frame hold neither the profile nor the
            # exception itself.
            exchange.exception = None
            del report, profiler

    async def _manual(self, scope: Scope, receive: Receive, send: Send, fmt: str) -> None:
        exchange = _Exchange(scope, send, keep=True)
        profiler = self._begin(sys._getframe())
        if profiler is _BUSY:
            await self.app(scope, receive, _SkippedSend(send))
            return
        if profiler is None:
            await self.app(scope, receive, send)
            return
        try:
            try:
                await self.app(scope, receive, exchange.capture)
            except Exception as exc:
                exchange.exception = exc
            except BaseException:   # cancelled: nobody is waiting for a report
                self._finish(profiler, exchange, "manual")
                del profiler        # (the exception's traceback holds this frame)
                raise
            report = self._finish(profiler, exchange, "manual")
            rendered = self._render(report, fmt) if report is not None else None
            del report, profiler
        finally:
            self._slots.release()   # the session is over; sending the report is not profiling
        if rendered is None:
            await exchange.replay(send)
            return
        if exchange.exception is not None:
            logger.error("reqprof: exception in ASGI application (manually profiled "
                         "request: the report, which shows it, was sent instead)",
                         exc_info=exchange.exception)
            exchange.exception = None   # its traceback holds this frame: no cycle
        body, content_type, disposition = rendered
        headers = [(k, v) for k, v in exchange.headers if k.lower() not in _DROP_HEADERS]
        headers += [
            (b"content-type", content_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if disposition:
            headers.append((b"content-disposition", disposition.encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    # -- helpers (never raise) ------------------------------------------------

    def _manual_request(self, scope: Scope) -> Optional[tuple[str, Scope]]:
        """(report format, scope for the app) when the request asks for a
        report and may have one, else None (served like any other request).

        ``profile`` and ``profile_format`` are read from the query string as
        Starlette reads them (percent-decoded, the last one wins). With a
        token set, the request must carry exactly one ``X-Profiling-Token``
        header with that value; the app sees the request without it."""
        query = scope.get("query_string") or b""
        if b"profile" not in query and b"%" not in query:
            return None
        profile = fmt = None
        for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if key == "profile":
                profile = value          # the last one wins, as in Starlette
            elif key == "profile_format":
                fmt = value
        if profile is None or profile.lower() not in _YES:
            return None
        if self._token_digest is not None:
            scope = self._authorised(scope)
            if scope is None:
                self._failures.log(
                    "token", logging.WARNING,
                    "reqprof: a ?profile= request without a valid X-Profiling-Token header "
                    "was served as a normal request")
                return None
        elif self._watch_bind:
            self._check_proxy(scope)
        fmt = (fmt or "html").lower()
        if fmt not in self._formats:
            self._failures.log(
                "format", logging.WARNING,
                "reqprof: profile_format=%r is not available (use one of: %s); "
                "serving the normal response", fmt[:40], ", ".join(self._formats))
            return None
        return fmt, scope

    def _authorised(self, scope: Scope) -> Optional[Scope]:
        """The scope without the token header when the request carries the
        token (exactly one header, compared in constant time), else None."""
        given = []
        kept = []
        for name, value in scope.get("headers") or ():
            if bytes(name).lower() == TOKEN_HEADER:
                given.append(bytes(value))
            else:
                kept.append((name, value))
        if len(given) != 1:
            return None
        digest = hashlib.sha256(given[0].strip()).digest()
        if not hmac.compare_digest(digest, self._token_digest or b""):
            return None
        return dict(scope, headers=kept)

    def _check_bind(self, scope: Scope) -> None:
        """Warns once when manual profiling is open (no token) and a request
        came in on an address other than loopback: the server is reachable
        from elsewhere. Cheap once a host is known to be local."""
        server = scope.get("server")
        if not server:
            return
        host = server[0]
        if host in self._local_hosts:
            return
        if _is_local(host, server[1] if len(server) > 1 else None):
            if len(self._local_hosts) < 64:
                self._local_hosts.add(host)
            return
        self._warn_open(f"requests reach this app on {_printable(str(host))}:{server[1]}, "
                        "not a loopback address")

    def _check_proxy(self, scope: Scope) -> None:
        for name, _ in scope.get("headers") or ():
            if bytes(name).lower() in _PROXY_HEADERS:
                self._warn_open("a ?profile= request came through a proxy "
                                f"({bytes(name).decode('latin-1')} header)")
                return

    def _warn_open(self, why: str) -> None:
        if not self._watch_bind:
            return
        self._watch_bind = False
        logger.warning(
            "reqprof: manual profiling is open to anyone: %s, and PROFILING_TOKEN is not set, "
            "so any client can ask for a report with ?profile=1. Set PROFILING_TOKEN (or "
            "PROFILING_MANUAL=false) for any deployment that is not local.", why)

    def _log_busy(self) -> None:
        self._failures.log(
            "busy", logging.INFO,
            "reqprof: %d requests are being profiled (PROFILING_MAX_CONCURRENT); more are "
            "served unprofiled until one ends", self.settings.max_concurrent)

    def _begin(self, root: FrameType) -> Any:
        """A started profiler holding one of the ``max_concurrent`` slots
        (the caller releases it), ``_BUSY`` when every slot is taken, or None
        when the profiler could not start (logged; no slot held)."""
        if not self._slots.acquire(blocking=False):
            self._log_busy()
            return _BUSY
        profiler = self._start(root)
        if profiler is None:
            self._slots.release()
        return profiler

    def _start(self, root: FrameType) -> Any:
        try:
            profiler = self._profiler_class(
                interval=self.settings.interval,
                max_depth=self.settings.max_depth,
                async_mode=self.settings.async_mode,
            )
            profiler.start(root_frame=root)
            return profiler
        except Exception as exc:
            self._failures.log("start", logging.ERROR,
                               "reqprof: profiling could not start (%s: %s); the request "
                               "is served unprofiled", type(exc).__name__, exc)
            return None

    def _finish(self, profiler: Any, exchange: "_Exchange", trigger: str) -> Any:
        """Stops the profiler and fills the report's metadata."""
        try:
            report = profiler.stop()
        except Exception as exc:
            self._failures.log("stop", logging.ERROR,
                               "reqprof: profiling could not stop (%s: %s)",
                               type(exc).__name__, exc)
            return None
        try:
            report.meta.update(exchange.meta(trigger))
            report.name_request()   # the tree's root: "GET /books/{book_id}"
        except Exception as exc:
            self._failures.log("meta", logging.ERROR, "reqprof: report metadata failed (%s: %s)",
                               type(exc).__name__, exc)
        try:
            lost = "memory" in (getattr(report, "truncated_reasons", None) or ())
        except Exception:
            lost = False
        if lost:
            self._failures.log("sample", logging.WARNING,
                               "reqprof: the engine could not record some samples (out of "
                               "memory); the report is incomplete")
        return report

    def _render(self, report: Any, fmt: str) -> Optional[tuple[bytes, str, Optional[str]]]:
        method, content_type, disposition = self._formats[fmt]
        try:
            if fmt == "html":
                data: Any = render_html(report, self._failures)
            else:
                data = getattr(report, method)()
            if isinstance(data, str):
                data = data.encode("utf-8", "replace")
            return bytes(data), content_type, disposition
        except Exception as exc:
            self._failures.log("render", logging.ERROR,
                               "reqprof: the %s report could not be written (%s: %s); "
                               "the normal response was sent", fmt, type(exc).__name__, exc)
            return None


class _Exchange:
    """One request's view of the response: what the app sent, and (manual
    profiling) the messages kept to be sent as they were if no report can
    be built. Its send functions are hidden from the call trees."""

    __slots__ = ("scope", "send", "keep", "method", "path", "root_path", "query",
                 "status", "headers", "content_type", "response_bytes",
                 "messages", "kept_bytes", "overflow", "exception", "profiler")

    def __init__(self, scope: Scope, send: Send, keep: bool) -> None:
        self.scope = scope
        self.send = send
        self.keep = keep
        # Read now: the app may change the scope as it routes.
        self.method = str(scope.get("method", ""))
        self.path = str(scope.get("path", ""))
        self.root_path = str(scope.get("root_path", ""))
        self.query = scope.get("query_string") or b""
        self.status: Optional[int] = None
        self.headers: list = []
        self.content_type: Optional[str] = None
        self.response_bytes = 0
        self.messages: list = []
        self.kept_bytes = 0
        self.overflow = False
        self.exception: Optional[BaseException] = None
        self.profiler: Any = None

    async def forward(self, message: Message) -> None:
        self._record(message)
        await self.send(message)
        if self.profiler is not None and _ends_response(message):
            self.profiler.mark_response_end()

    async def capture(self, message: Message) -> None:
        self._record(message)
        if self.overflow:
            return
        kept = dict(message)
        body = kept.get("body")
        if body is not None and not isinstance(body, bytes):
            kept["body"] = bytes(body)
        self.kept_bytes += len(kept.get("body") or b"")
        if self.kept_bytes > REPLAY_LIMIT:
            self.overflow = True
            self.messages.clear()
        else:
            self.messages.append(kept)

    def _record(self, message: Message) -> None:
        try:
            kind = message.get("type")
            if kind == "http.response.start":
                self.status = int(message.get("status", 0))
                self.headers = list(message.get("headers") or ())
                for key, value in self.headers:
                    if bytes(key).lower() == b"content-type":
                        self.content_type = bytes(value).decode("latin-1")
            elif kind == "http.response.body":
                self.response_bytes += len(message.get("body") or b"")
            elif kind == "http.response.pathsend":
                self.response_bytes += os.stat(message["path"]).st_size
            elif kind == "http.response.zerocopy":
                count = message.get("count")
                if count is None:
                    count = os.fstat(message["file"]).st_size - int(message.get("offset") or 0)
                self.response_bytes += int(count)
        except Exception:   # a malformed message is the server's to reject
            pass

    async def replay(self, send: Send) -> None:
        """Sends the captured response as the app sent it (re-raising the
        app's exception, if any, afterwards)."""
        if self.overflow:
            body = b"reqprof: the profiling report failed; see the server log\n"
            await send({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("latin-1"))]})
            await send({"type": "http.response.body", "body": body})
            return
        for message in self.messages:
            await send(message)
        exc, self.exception = self.exception, None
        if exc is not None:
            try:
                raise exc
            finally:
                del exc     # the traceback holds this frame: no cycle through it

    def meta(self, trigger: str) -> dict:
        """What the report says about the request (scalars only; strings
        valid UTF-8 and bounded, whatever the client or the server sent)."""
        meta: dict = {
            "trigger": trigger,
            "method": _clean(self.method, 40),
            "path": _clean(self.path, MAX_PATH),
            "route": _clean(self._route(), MAX_PATH),
            "query": redact_query(self.query),
            "status": self.status,
            "content_type": _clean(self.content_type, 200),
            "response_bytes": self.response_bytes,
            "http_version": _clean(str(self.scope.get("http_version", "")), 10),
        }
        if self.exception is not None:
            meta["exception"] = _clean(f"{type(self.exception).__name__}: {self.exception}",
                                       1000)
        return meta

    def _route(self) -> Optional[str]:
        """The route template (``/items/{item_id}``) when the framework put
        its route in the scope (Starlette, FastAPI), else None."""
        template = getattr(self.scope.get("route"), "path", None)
        if not isinstance(template, str):
            return None
        root_path = str(self.scope.get("root_path", ""))
        prefix = root_path[len(self.root_path):] if root_path.startswith(self.root_path) else ""
        return prefix + template


#: Longest path (and route) kept in a report's metadata, in characters.
MAX_PATH = 2000


def _clean(value: Optional[str], limit: int) -> Optional[str]:
    """``value`` as valid UTF-8 text (lone surrogates, which some servers use
    for undecodable bytes, spelled ``\\udcxx``) of at most ``limit``
    characters (cut ones end with ``…``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    value = value[:limit + 1]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(value) > limit:
        value = value[:limit - 1] + "…"
    return value


def redact_query(query: bytes) -> str:
    """The query string with every value replaced by ``*`` except those of
    reqprof's own parameters (``profile``, ``profile_format``), so reports
    and logs never hold the app's query values (tokens, emails, ...)."""
    parts = []
    for key, value in parse_qsl(bytes(query).decode("latin-1"), keep_blank_values=True):
        parts.append(f"{key}={value}" if key in OWN_PARAMS else f"{key}=*")
        if sum(len(p) + 1 for p in parts) > 500:
            break
    return _clean("&".join(parts)[:500], 500) or ""


def _ends_response(message: Message) -> bool:
    """Whether `message` is the last of a response (its last body byte)."""
    kind = message.get("type")
    return ((kind == "http.response.body" and not message.get("more_body"))
            or kind == "http.response.pathsend")


class _SkippedSend:
    """The send of a manual request served unprofiled because too many
    sessions run: adds ``X-Profiling-Skipped: busy`` to the response."""

    __slots__ = ("send",)

    def __init__(self, send: Send) -> None:
        self.send = send

    async def __call__(self, message: Message) -> None:
        if message.get("type") == "http.response.start":
            message = dict(message)
            message["headers"] = [*(message.get("headers") or ()), (SKIPPED_HEADER, b"busy")]
        await self.send(message)


def _is_local(host: Any, port: Any) -> bool:
    """Whether a request's ``scope["server"]`` is a loopback address (or a
    Unix socket, ``(path, None)``)."""
    if port is None:
        return True
    if not isinstance(host, str):
        return False
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def render_html(report: Any, failures: Optional[RateLimited] = None) -> str:
    """The interactive HTML report, or a plain page around the text tree when
    the viewer is not available."""
    try:
        return str(report.to_html())
    except NotImplementedError:
        pass
    except Exception as exc:
        if failures is not None:
            failures.log("html", logging.ERROR,
                         "reqprof: the HTML viewer failed (%s: %s); sending the text report "
                         "as HTML", type(exc).__name__, exc)
    meta = dict(getattr(report, "meta", {}) or {})
    title = f"reqprof: {meta.get('method', '')} {meta.get('path', '')}".strip()
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in meta.items())
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>"
            "<style>body{font:14px sans-serif;margin:1.5em}th{text-align:left;padding-right:1em}"
            "pre{font:13px monospace}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><table>{rows}</table>"
            f"<pre>{html.escape(report.to_text())}</pre></body></html>\n")


# -- engine loading -----------------------------------------------------------

def _load_engine() -> Optional[tuple[Any, Any]]:
    """(Profiler, Report) from the C engine, or None (logged at ERROR) when
    it cannot be imported."""
    try:
        from . import profiler as engine
        from .report import Report
        for func in (_Exchange.forward, _Exchange.capture, _Exchange._record, _ends_response,
                     ProfilingMiddleware._begin, ProfilingMiddleware._start,
                     ProfilingMiddleware._finish):
            engine.hide(func)
        return engine.Profiler, Report
    except Exception as exc:
        logger.error(
            "reqprof: the C extension reqprof._core could not be loaded (%s: %s); profiling "
            "is off and requests pass through. Reinstall reqprof for this Python (%s).",
            type(exc).__name__, exc, sys.version.split()[0])
        return None


def _prepare_output_dir(settings: Settings) -> Optional[str]:
    if settings.output_dir is None:
        return None
    path = os.path.abspath(settings.output_dir)
    try:
        os.makedirs(path, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except OSError as exc:
        raise ConfigError("PROFILING_OUTPUT_DIR", settings.output_dir,
                          f"a writable directory ({exc.strerror or exc})") from None
    return path


# -- background reporting (auto-sampled requests) ------------------------------

class _Reporter:
    """One daemon thread per process that logs auto-sampled reports and
    writes them to the output directory, so neither slows a request. Started
    with the first report (again in a forked child). Reports are handled in
    batches (REPORT_BATCH_DELAY)."""

    def __init__(self) -> None:
        self._seq = itertools.count()
        self._reset()

    def _reset(self) -> None:
        """A fresh state: at creation and in a forked child (the parent's
        thread does not exist there and its locks may be held)."""
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)    # the thread waits for reports
        self._done = threading.Condition(self._lock)    # drain() waits for none pending
        self._jobs: "collections.deque[tuple[Any, Optional[str], RateLimited]]" = \
            collections.deque()
        self._pending = 0       # handed over, not yet handled
        self._idle = False      # the thread waits on _work: a report must wake it
        self._thread: Optional[threading.Thread] = None
        self._pid = 0

    @property
    def pending(self) -> int:
        """Reports handed over and not yet logged or written."""
        return self._pending

    def submit(self, report: Any, output_dir: Optional[str], failures: RateLimited) -> None:
        try:
            self._ensure_thread()
            with self._lock:
                full = self._pending >= REPORT_QUEUE
                if not full:
                    self._jobs.append((report, output_dir, failures))
                    self._pending += 1
                    if self._idle:
                        self._idle = False
                        self._work.notify()
            if full:
                failures.log("backlog", logging.WARNING,
                             "reqprof: %d sampled reports are waiting to be logged; dropping "
                             "new ones (lower PROFILING_SAMPLE_RATE)", REPORT_QUEUE)
        except Exception as exc:
            failures.log("submit", logging.ERROR, "reqprof: could not hand over a report (%s)",
                         exc)

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._thread is not None and self._pid == pid and self._thread.is_alive():
            return
        with self._lock:
            if self._pid != pid:
                if self._pid:   # a fork the at-fork handler missed: the parent's jobs are stale
                    self._jobs.clear()
                    self._pending = 0
                    self._idle = False
                self._pid = pid
                self._thread = None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="reqprof-reporter",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._idle = True
                    self._work.wait()
            time.sleep(REPORT_BATCH_DELAY)
            while True:
                with self._lock:
                    if not self._jobs:
                        break
                    report, output_dir, failures = self._jobs.popleft()
                try:
                    self.handle(report, output_dir, failures)
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
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True

    def handle(self, report: Any, output_dir: Optional[str], failures: RateLimited) -> None:
        if output_dir is None and not logger.isEnabledFor(logging.INFO):
            return      # nobody would see it: skip the summary and the tree
        meta = dict(report.meta)
        line, extra = _logging.summary(report, meta, str(meta.get("trigger", "auto")))
        if output_dir is not None:
            try:
                path = self.write(report, meta, output_dir, failures)
                extra["reqprof_report_path"] = path
                line += f"; report: {path}"
            except Exception as exc:    # a full disk or a failing writer: still log it
                failures.log("write", logging.ERROR,
                             "reqprof: could not write a report to %s (%s: %s)", output_dir,
                             type(exc).__name__, exc)
        tree = _logging.tree_text(report) if _logging.has_call_tree(report) else None
        logger.info("reqprof: %s%s", line, "\n" + tree if tree else "", extra=extra)

    def write(self, report: Any, meta: dict, output_dir: str, failures: RateLimited) -> str:
        """Writes ``<name>.html`` and ``<name>.json``, removes the oldest
        beyond :data:`OUTPUT_KEEP`, returns the HTML path."""
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        target = _UNSAFE_NAME.sub("_", str(meta.get("path") or "/")).strip("_")[:60] or "root"
        name = (f"reqprof-{stamp}-{os.getpid()}-{next(self._seq)}-"
                f"{_UNSAFE_NAME.sub('_', str(meta.get('method') or 'HTTP'))[:10]}-{target}-"
                f"{meta.get('status') or 'none'}")
        base = os.path.join(output_dir, name)
        _write_atomic(base + ".json", report.to_json().encode("utf-8", "replace"))
        _write_atomic(base + ".html", render_html(report, failures).encode("utf-8", "replace"))
        _prune(output_dir, OUTPUT_KEEP)
        return base + ".html"


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _prune(directory: str, keep: int) -> None:
    """Removes all but the newest ``keep`` reports (only reqprof's own files)."""
    stems = sorted({entry[:-5] for entry in os.listdir(directory)
                    if entry.startswith("reqprof-") and entry.endswith((".html", ".json"))})
    for stem in stems[:max(0, len(stems) - keep)]:
        for ext in (".html", ".json"):
            try:
                os.unlink(os.path.join(directory, stem + ext))
            except FileNotFoundError:
                pass


_reporter = _Reporter()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reporter._reset)

