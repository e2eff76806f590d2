"""ProfilingMiddleware: per-request profiling for any ASGI app.

Pure ASGI (no BaseHTTPMiddleware: it breaks context variables and
streaming), meant to be the outermost middleware. The instance holds only
configuration and thread-safe helpers; everything about one request lives
in ``__call__``, the per-request :class:`_Exchange` and its
:class:`~reqprof._request.RequestProfile`.

- Disabled (or the C extension missing): one attribute check, then the app.
- ``?profile=1`` (``true``, ``yes``, any case), when manual profiling is on
  and, with a token set, the request carries it in ``X-Profiling-Token``:
  the app runs profiled, its response is captured and discarded, and the
  report is sent instead. Without the token the parameter is ignored. The
  capture is bounded in messages, bytes and time
  (``PROFILING_MANUAL_TIMEOUT``): past a bound the app is cancelled (a
  stream is cut) and the report of what was recorded is sent.
- Otherwise, with probability ``sample_rate``: the app runs profiled, every
  response message is forwarded untouched as it comes, and the report goes to
  the reporter thread that logs it (and writes it to ``output_dir``).

At most ``max_concurrent`` requests are profiled at once, and automatic
sampling never takes the slots kept for ``?profile=1``; the others are
served unprofiled (a manual one with ``X-Profiling-Skipped: busy``). A slot
is given back when its profile ends, even if the response goes on.

A profiler failure never fails or changes a request: it is logged (at most
once a minute per kind) and the request is served as if profiling were off.
A bad setting never fails a request either: it fails the ASGI lifespan
startup (the server refuses to start, saying why), and without lifespan
every request is served unprofiled. Reports and log lines carry the path and
a redacted query string (values of reqprof's own parameters only), never
request header values; with a token set, its header never reaches the app.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import os
import random
import sys
import threading
import time
from types import FrameType
from typing import Any, Awaitable, Callable, MutableMapping, Optional, Union
from urllib.parse import parse_qsl

from . import _aio, _logging
from ._logging import RateLimited, logger
from ._logging import printable as _printable
from ._output import OutputDir
from ._render import FORMATS, Format, render
from . import _request
from ._request import BUSY, RequestProfile, Slots, reserved_slots
from .config import ConfigError, Settings, load

__all__ = ["ProfilingMiddleware", "TOKEN_HEADER", "SKIPPED_HEADER"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: A manually profiled response is captured (to be sent as it was if the
#: report cannot be built) up to this many bytes, each message counting its
#: body plus CAPTURE_MESSAGE_OVERHEAD, and up to CAPTURE_MESSAGES messages.
#: Past either, the capture is full: the app is cancelled and the report
#: sent, saying so ("size limit").
CAPTURE_BYTES = 32 * 1024 * 1024
CAPTURE_MESSAGES = 50_000
CAPTURE_MESSAGE_OVERHEAD = 512
#: Messages an app may send after a cut before the cancellation is forced
#: in (when it has not awaited anything of its own in between).
CUT_GRACE_MESSAGES = 64

#: A report is sent in body messages of at most this many bytes.
REPORT_CHUNK = 256 * 1024

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
# App headers that describe the replaced body, or would stop a browser from
# showing the report (redirects, downloads, scripts blocked by a CSP).
_DROP_HEADERS = frozenset({
    b"content-type", b"content-length", b"content-encoding", b"transfer-encoding",
    b"etag", b"last-modified", b"location", b"refresh", b"content-disposition",
    b"content-range", b"accept-ranges", b"content-security-policy",
    b"content-security-policy-report-only", b"cache-control", b"expires",
    b"x-content-type-options", b"trailer", b"content-md5", b"digest",
})
# Variables that look like reqprof's and are not: warned about once a process.
_warned_unknown: set = set()


class ProfilingMiddleware:
    """Profile HTTP requests of the wrapped ASGI app.

    ``ProfilingMiddleware(app)`` or ``app.add_middleware(ProfilingMiddleware)``
    reads the settings from the environment and ``.env``; keyword arguments
    named like :class:`~reqprof.Settings` fields (``enabled=True``,
    ``sample_rate=0.0``, ...) win over both, ``settings=`` gives them all at
    once and ``env_file=None`` skips the `.env` file.

    Never raises for a bad setting: it is logged at ERROR, the ASGI lifespan
    startup fails with the same message (so the server refuses to start),
    and requests are served unprofiled. A bad setting that only matters
    when profiling is on is a WARNING while ``ENABLE_PROFILING`` is off.
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
        #: Why the configuration cannot be used (ERROR), or None.
        self.config_error: Optional[str] = None
        self._failures = RateLimited(60.0)
        if settings is None:
            loaded = load(env_file=env_file, **overrides)
            settings, errors, unknown = loaded.settings, loaded.errors, loaded.unknown
        else:
            errors, unknown = {}, ()
            try:
                settings = settings.replace(**overrides)
            except ConfigError as exc:
                errors = {"": exc}
            except TypeError as exc:
                errors = {"": ConfigError("keyword argument", ", ".join(sorted(overrides)),
                                          f"names of Settings fields ({exc})")}
        self.settings = settings
        self._output: Optional[OutputDir] = None
        # A token given, even a bad one: its header is never passed on.
        self._token_set = settings.token is not None or "token" in errors
        self._token_digest = (hashlib.sha256(settings.token.encode("ascii")).digest()
                              if settings.token is not None else None)
        self._manual_on = settings.manual
        reserved = reserved_slots(settings.max_concurrent, settings.manual)
        self._slots = Slots(settings.max_concurrent, reserved)
        # Manual profiling open to anyone: warn once it is reachable from
        # outside (the first request that came in on a non-loopback address).
        self._watch_bind = settings.manual and settings.token is None
        self._local_hosts: set = set()
        if errors or unknown or settings.enabled:
            _logging.ensure_handler()
        for item in unknown:
            if item.name not in _warned_unknown:
                _warned_unknown.add(item.name)
                logger.warning("reqprof: %s", item.message())
        if "enabled" in errors or (settings.enabled and errors):
            self._refuse(errors.values())
            return
        if not settings.enabled:
            for exc in errors.values():
                logger.warning("reqprof: %s (ignored while ENABLE_PROFILING is off)", exc)
            logger.debug("reqprof: profiling disabled (ENABLE_PROFILING is false); "
                         "requests pass through")
            return
        try:
            self._output = _prepare_output_dir(settings)
        except ConfigError as exc:
            self._refuse([exc])
            return
        engine = _load_engine()
        if engine is None:
            return
        self._profiler_class, report_class = engine
        self._options = dict(interval=settings.interval, max_depth=settings.max_depth,
                             async_mode=settings.async_mode)
        self._formats = {name: spec for name, spec in FORMATS.items()
                         if hasattr(report_class, spec.method)}
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
        if settings.sample_rate > 0.0 and self._slots.auto_limit == 0:
            logger.warning(
                "reqprof: PROFILING_MAX_CONCURRENT=%d keeps its only slot for ?profile=1, so "
                "automatic sampling (PROFILING_SAMPLE_RATE=%g) never runs; set it to 2 or more",
                settings.max_concurrent, settings.sample_rate)

    def _refuse(self, errors: Any) -> None:
        """Profiling stays off for a bad configuration, said once at ERROR."""
        self.config_error = ("reqprof: invalid configuration: "
                             + "; ".join(str(e) for e in errors))
        logger.error("%s. Profiling is off: the server is asked not to start (ASGI lifespan "
                     "startup fails); without lifespan, requests are served unprofiled.",
                     self.config_error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        tokens: Optional[list] = None
        if self._token_set and kind in ("http", "websocket"):
            scope, tokens = _take_token(scope)
        if self._off or kind != "http":
            if self.config_error is not None:
                if kind == "lifespan":
                    await self._fail_startup(scope, receive, send)
                    return
                if kind == "http":
                    self._failures.log("config", logging.ERROR, "%s; this request is served "
                                       "unprofiled", self.config_error)
            await self.app(scope, receive, send)
            return
        if self._watch_bind:
            self._check_bind(scope)
        fmt = self._manual_request(scope, tokens) if self._manual_on else None
        if fmt is not None:
            await self._manual(scope, receive, send, fmt)
        elif self.settings.sample_rate > 0.0 and random.random() < self.settings.sample_rate:
            await self._auto(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _fail_startup(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answers the lifespan startup with ``lifespan.startup.failed``: the
        server (uvicorn, hypercorn, granian) logs the message and exits."""
        message = await receive()
        if message.get("type") == "lifespan.startup":
            await send({"type": "lifespan.startup.failed", "message": self.config_error})
        else:   # not the protocol we know: let the app have it
            await self.app(scope, _replay_first(message, receive), send)

    # -- the two kinds of profiled request -----------------------------------

    async def _auto(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = _Exchange(scope, send)
        run = self._begin(sys._getframe(), exchange, manual=False)
        if run is None or run is BUSY:
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, exchange.forward)
        except BaseException as exc:
            exchange.exception = exc
            raise
        finally:
            run.end()       # the report goes to the reporter
            # An exception leaving here holds this frame in its traceback,
            # and frameworks keep exceptions in reference cycles (task
            # groups): let the frame hold neither the profile nor the
            # exception itself.
            exchange.exception = None
            del run

    async def _manual(self, scope: Scope, receive: Receive, send: Send, fmt: str) -> None:
        exchange = _Exchange(scope, send, capture_for=self.settings.manual_timeout)
        run = self._begin(sys._getframe(), exchange, manual=True)
        if run is BUSY:
            await self.app(scope, receive, _SkippedSend(send))
            return
        if run is None:
            await self.app(scope, receive, send)
            return
        lib = _aio.library()
        cutter = exchange.cutter = _aio.Cutter(lib)
        run.on_deadline = functools.partial(cutter.call_soon, exchange.time_limit)
        try:
            try:
                with cutter:
                    await self.app(scope, receive, exchange.capture)
            except Exception as exc:
                exchange.exception = exc
            except BaseException:   # cancelled: nobody is waiting for a report
                run.end()
                raise
            report = run.end()
            del run                 # (it holds the deadline's callback)
            if report is not None and cutter.reason is not None:
                report.meta.update(ended=cutter.reason, response_cut=True)
            rendered = None
            if report is not None:
                rendered = await _aio.run_in_thread(
                    lib, functools.partial(self._render, report, fmt))
            del report
            if rendered is None:
                await exchange.replay(send)
                return
            if exchange.exception is not None:
                logger.error("reqprof: exception in the app during a manually profiled "
                             "request (%s %s); its report, which shows it, was sent instead of "
                             "the response\n%s", exchange.method, exchange.path,
                             _logging.exception_text(exchange.exception))
            body, spec = rendered
            headers = [(k, v) for k, v in exchange.headers if k.lower() not in _DROP_HEADERS]
            headers += [
                (b"content-type", spec.content_type.encode("latin-1")),
                (b"content-length", str(len(body)).encode("latin-1")),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
            ]
            if spec.disposition:
                headers.append((b"content-disposition", spec.disposition.encode("latin-1")))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            # In pieces: the server writes (and buffers) each one on the
            # event loop, and waits for the client between them.
            for start in range(0, max(len(body), 1), REPORT_CHUNK):
                await send({"type": "http.response.body", "body": body[start:start + REPORT_CHUNK],
                            "more_body": start + REPORT_CHUNK < len(body)})
        finally:
            # Whatever holds this frame (an exception's traceback, in a
            # framework's reference cycle) holds no captured response.
            exchange.release()

    # -- helpers (never raise) ------------------------------------------------

    def _begin(self, root: FrameType, exchange: "_Exchange", manual: bool) -> Any:
        run = RequestProfile.begin(
            self._profiler_class, self._options, root, self._slots, manual, self._failures,
            functools.partial(exchange.meta, "manual" if manual else "auto"),
            self.settings.manual_timeout if manual else _request.AUTO_MAX_DURATION,
            None if manual else self._output)
        if run is BUSY:
            self._failures.log(
                "busy", logging.INFO,
                "reqprof: %d requests are being profiled (PROFILING_MAX_CONCURRENT; %d of the "
                "slots are kept for ?profile=1); more are served unprofiled until one ends",
                self.settings.max_concurrent, self._slots.total - self._slots.auto_limit)
        return run

    def _render(self, report: Any, fmt: str) -> Optional[tuple[bytes, Format]]:
        """(In a render thread.) The report's bytes, or None (logged)."""
        try:
            return render(report, fmt, self._failures), self._formats[fmt]
        except Exception as exc:
            self._failures.log("render", logging.ERROR,
                               "reqprof: the %s report could not be written (%s: %s); "
                               "the normal response was sent", fmt, type(exc).__name__, exc)
            return None

    def _manual_request(self, scope: Scope, tokens: Optional[list]) -> Optional[str]:
        """The report format when the request asks for a report and may have
        one, else None (served like any other request).

        ``profile`` and ``profile_format`` are read from the query string as
        Starlette reads them (percent-decoded, the last one wins). With a
        token set, the request must have carried exactly one
        ``X-Profiling-Token`` header (``tokens``) with that value."""
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
            if not self._authorised(tokens or []):
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
        return fmt

    def _authorised(self, tokens: list) -> bool:
        """Whether exactly one token header came, with the token (compared in
        constant time)."""
        if len(tokens) != 1:
            return False
        digest = hashlib.sha256(tokens[0].strip()).digest()
        return hmac.compare_digest(digest, self._token_digest or b"")

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


def _take_token(scope: Scope) -> tuple[Scope, list]:
    """The scope without any ``X-Profiling-Token`` header, and the values of
    those headers: whenever a token is configured, the app never sees it."""
    headers = scope.get("headers") or ()
    if not any(bytes(name).lower() == TOKEN_HEADER for name, _ in headers):
        return scope, []
    tokens = [bytes(v) for n, v in headers if bytes(n).lower() == TOKEN_HEADER]
    return dict(scope, headers=[(n, v) for n, v in headers
                                if bytes(n).lower() != TOKEN_HEADER]), tokens


def _replay_first(first: Message, receive: Receive) -> Receive:
    """A receive that gives ``first`` again, then what ``receive`` gives."""
    pending = [first]

    async def again() -> Message:
        return pending.pop() if pending else await receive()

    return again


class _Exchange:
    """One request's view of the response: what the app sent, and (manual
    profiling) the messages kept to be sent as they were if no report can
    be built, within the capture's bounds. Its send functions are hidden
    from the call trees."""

    __slots__ = ("scope", "send", "method", "path", "root_path", "query",
                 "status", "headers", "content_type", "response_bytes", "complete",
                 "messages", "kept_bytes", "deadline", "cut", "after_cut", "cutter",
                 "exception")

    def __init__(self, scope: Scope, send: Send, capture_for: float = 0.0) -> None:
        self.scope = scope
        self.send = send
        # Read now: the app may change the scope as it routes.
        self.method = str(scope.get("method", ""))
        self.path = str(scope.get("path", ""))
        self.root_path = str(scope.get("root_path", ""))
        self.query = scope.get("query_string") or b""
        self.status: Optional[int] = None
        self.headers: list = []
        self.content_type: Optional[str] = None
        self.response_bytes = 0
        self.complete = False       # the last body message was sent
        self.messages: list = []
        self.kept_bytes = 0
        self.deadline = time.monotonic() + capture_for
        self.cut = False            # the capture was cut short: nothing kept
        self.after_cut = 0          # messages sent since
        self.cutter: Optional[_aio.Cutter] = None
        self.exception: Optional[BaseException] = None

    async def forward(self, message: Message) -> None:
        self._record(message)
        await self.send(message)

    async def capture(self, message: Message) -> None:
        self._record(message)
        if self.cut:
            # The cancellation is delivered at the app's next await: in
            # its generator's own await, which closes the generator, if it
            # has one. An app that sends on without ever awaiting gets it
            # here, after a few messages.
            self.after_cut += 1
            if self.after_cut >= CUT_GRACE_MESSAGES and self.cutter is not None:
                await _aio.checkpoint(self.cutter.lib)
            return
        kept = dict(message)
        body = kept.get("body")
        if body is not None and not isinstance(body, bytes):
            kept["body"] = bytes(body)
        self.kept_bytes += len(kept.get("body") or b"") + CAPTURE_MESSAGE_OVERHEAD
        self.messages.append(kept)
        if self.kept_bytes > CAPTURE_BYTES or len(self.messages) >= CAPTURE_MESSAGES:
            self.time_limit("size limit")
        elif kept.get("more_body") and time.monotonic() >= self.deadline:
            # Still streaming past the time limit, in an app that may never
            # let the loop run the deadline's callback.
            self.time_limit()

    def time_limit(self, reason: str = "time limit") -> None:
        """(On the event loop.) The capture's bound was reached: a response
        that is still streaming (or any response, for the size limit) is
        cut, the app cancelled. A response not started yet goes on: it ends
        by itself, and its profile has already ended."""
        if self.cut or self.complete or (reason == "time limit" and self.status is None):
            return
        self.cut = True
        self.messages.clear()
        self.kept_bytes = 0
        if self.cutter is not None:
            self.cutter.cut(reason)

    def release(self) -> None:
        """Drops what the request no longer needs (the captured response,
        the exception, the cutter)."""
        self.messages = []
        self.exception = None
        self.cutter = None

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
                if not message.get("more_body"):
                    self.complete = True
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
        if self.cut:
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


# -- engine loading -----------------------------------------------------------

def _load_engine() -> Optional[tuple[Any, Any]]:
    """(Profiler, Report) from the C engine, or None (logged at ERROR) when
    it cannot be imported."""
    try:
        from . import profiler as engine
        from .report import Report
        for func in (_Exchange.forward, _Exchange.capture, _Exchange._record,
                     _Exchange.time_limit, _aio.checkpoint, _aio.Cutter.__enter__,
                     _aio.Cutter.__exit__, _aio.Cutter.cut, ProfilingMiddleware._begin,
                     _request.RequestProfile.begin, _request.RequestProfile.end,
                     _request.RequestProfile._end, _request.RequestProfile._stop,
                     _request.Slots.take, _request.Slots.give):
            engine.hide(func)
        return engine.Profiler, Report
    except Exception as exc:
        logger.error(
            "reqprof: the C extension reqprof._core could not be loaded (%s: %s); profiling "
            "is off and requests pass through. Reinstall reqprof for this Python (%s).",
            type(exc).__name__, exc, sys.version.split()[0])
        return None


def _prepare_output_dir(settings: Settings) -> Optional[OutputDir]:
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
    return OutputDir(path, settings.output_max_mb << 20)
