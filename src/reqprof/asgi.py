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
import os
import sys
import time
from typing import Any, Awaitable, Callable, MutableMapping, Optional

from . import _aio, _logging
from ._meta import request_label, request_meta
from ._profiling import AUTO, PROXY_HEADERS, Middleware, hide
from ._render import REPLACED_HEADERS, report_headers
from ._request import BUSY

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
_PROXY_HEADERS = frozenset(h.encode("latin-1") for h in PROXY_HEADERS)


class ProfilingMiddleware(Middleware):
    """Profile HTTP requests of the wrapped ASGI app.

    ``ProfilingMiddleware(app)`` or ``app.add_middleware(ProfilingMiddleware)``
    reads the settings from the environment and ``.env``; keyword arguments
    named like :class:`~reqprof.Settings` fields (``enabled=True``,
    ``sample_rate=0.0``, ...) win over both, ``settings=`` gives them all at
    once and ``env_file=None`` skips the `.env` file. Instances with the same
    settings share their slots and logs (one startup line per process).

    Never raises for a bad setting: it is logged at ERROR, the ASGI lifespan
    startup fails with the same message (so the server refuses to start),
    and requests are served unprofiled. A bad setting that only matters
    when profiling is on is a WARNING while ``ENABLE_PROFILING`` is off.
    Raises TypeError, naming the class to use, when ``app`` is not an ASGI
    app (a WSGI app, Django's ``get_response``).
    """

    kind = "asgi"
    app: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        profiling = self.profiling
        kind = scope["type"]
        tokens: Optional[list] = None
        if profiling.token_set and kind in ("http", "websocket"):
            scope, tokens = _take_token(scope)
        if profiling.off or kind != "http":
            if profiling.config_error is not None:
                if kind == "lifespan":
                    await self._fail_startup(scope, receive, send)
                    return
                if kind == "http":
                    profiling.unprofiled()
            elif kind == "lifespan" and (profiling.production is not None
                                         or profiling.pusher is not None):
                send = _before_shutdown(send, profiling.close)
            await self.app(scope, receive, send)
            return
        if profiling.watch_bind:
            server = scope.get("server")
            if server:
                profiling.check_bind(server[0], server[1] if len(server) > 1 else None)
        decision = profiling.decide(scope.get("query_string") or b"", tokens)
        if decision is None:
            await self.app(scope, receive, send)
        elif decision is AUTO:
            await self._auto(scope, receive, send)
        else:
            if profiling.watch_bind:
                profiling.check_proxy(_proxy_header(scope))
            await self._manual(scope, receive, send, decision)

    async def _fail_startup(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answers the lifespan startup with ``lifespan.startup.failed``: the
        server (uvicorn, hypercorn, granian) logs the message and exits."""
        message = await receive()
        if message.get("type") == "lifespan.startup":
            await send({"type": "lifespan.startup.failed",
                        "message": self.profiling.config_error})
        else:   # not the protocol we know: let the app have it
            await self.app(scope, _replay_first(message, receive), send)

    # -- the two kinds of profiled request -----------------------------------

    async def _auto(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = _Exchange(scope, send)
        run = self.profiling.begin(sys._getframe(), False,
                                   functools.partial(exchange.meta, "auto"),
                                   request_label(exchange.method, exchange.path))
        if run is None or run is BUSY:
            await self.app(scope, receive, send)
            return
        exchange.profiler = getattr(run, "profiler", None)  # marks the end of the response
        try:
            await self.app(scope, receive, exchange.forward)
        except BaseException as exc:
            exchange.exception = exc
            raise
        finally:
            exchange.profiler = None
            run.end()       # the report goes to the reporter
            # An exception leaving here holds this frame in its traceback,
            # and frameworks keep exceptions in reference cycles (task
            # groups): let the frame hold neither the profile nor the
            # exception itself.
            exchange.exception = None
            del run

    async def _manual(self, scope: Scope, receive: Receive, send: Send, fmt: str) -> None:
        exchange = _Exchange(scope, send, capture_for=self.settings.manual_timeout)
        run = self.profiling.begin(sys._getframe(), True,
                                   functools.partial(exchange.meta, "manual"),
                                   request_label(exchange.method, exchange.path))
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
            report = run.end(cutter.reason)
            del run                 # (it holds the deadline's callback)
            rendered = None
            if report is not None:
                rendered = await _aio.run_in_thread(
                    lib, functools.partial(self.profiling.render, report, fmt))
            del report
            if rendered is None:
                await exchange.replay(send)
                return
            if exchange.exception is not None:
                _logging.log_manual_exception(exchange.method, exchange.path,
                                              exchange.exception)
            body, spec = rendered
            headers = [(k, v) for k, v in exchange.headers
                       if bytes(k).decode("latin-1").lower() not in REPLACED_HEADERS]
            headers += [(k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in report_headers(spec, len(body))]
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


def _take_token(scope: Scope) -> tuple[Scope, list]:
    """The scope without any ``X-Profiling-Token`` header, and the values of
    those headers: whenever a token is configured, the app never sees it."""
    headers = scope.get("headers") or ()
    if not any(bytes(name).lower() == TOKEN_HEADER for name, _ in headers):
        return scope, []
    tokens = [bytes(v) for n, v in headers if bytes(n).lower() == TOKEN_HEADER]
    return dict(scope, headers=[(n, v) for n, v in headers
                                if bytes(n).lower() != TOKEN_HEADER]), tokens


def _before_shutdown(send: Send, close: Callable[[], None]) -> Send:
    """The lifespan's send, running ``close()`` (in a thread) before the app
    says its shutdown is complete: the last place a server that ends with
    a signal (uvicorn re-raises SIGTERM: no atexit) lets reqprof write."""
    async def sending(message: Message) -> None:
        if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            await _aio.run_in_thread(_aio.library(), close)
        await send(message)
    return sending


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
                 "exception", "profiler")

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
        self.profiler: Any = None       # a sampled request's: told when the response ends

    async def forward(self, message: Message) -> None:
        self._record(message)
        await self.send(message)
        if self.profiler is not None and _ends_response(message):
            try:
                self.profiler.mark_response_end()
            except Exception:   # a profile that ended at its deadline, say
                pass
            self.profiler = None

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
        """What the report says about the request."""
        return request_meta(trigger, self.method, self.path, self._route(), self.query,
                            self.status, self.content_type, self.response_bytes,
                            self.scope.get("http_version", ""), self.exception)

    def _route(self) -> Optional[str]:
        """The route template (``/items/{item_id}``) when the framework put
        its route in the scope (Starlette and FastAPI: ``route``, Litestar:
        ``path_template``), else None."""
        template = getattr(self.scope.get("route"), "path", None)
        if not isinstance(template, str):
            template = self.scope.get("path_template")
            return template if isinstance(template, str) else None
        root_path = str(self.scope.get("root_path", ""))
        prefix = root_path[len(self.root_path):] if root_path.startswith(self.root_path) else ""
        return prefix + template


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


def _proxy_header(scope: Scope) -> Optional[str]:
    """The name of a header saying a proxy forwarded the request, or None."""
    for name, _ in scope.get("headers") or ():
        if bytes(name).lower() in _PROXY_HEADERS:
            return bytes(name).decode("latin-1")
    return None


hide(_Exchange.forward, _Exchange.capture, _Exchange._record, _Exchange.time_limit, _ends_response,
     _aio.checkpoint, _aio.Cutter.__enter__, _aio.Cutter.__exit__, _aio.Cutter.cut)
