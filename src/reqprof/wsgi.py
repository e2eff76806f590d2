"""ProfilingMiddleware for any WSGI app (Flask, Django's WSGI handler,
Falcon, Bottle, ...): the settings and behaviour of the ASGI middleware.

    app.wsgi_app = ProfilingMiddleware(app.wsgi_app)     # Flask (or reqprof.flask.init_app)
    application = ProfilingMiddleware(application)       # any WSGI app

- ``?profile=1``: the app runs profiled (in a context of its own, so work
  it hands to threads with ``contextvars.copy_context().run`` is followed),
  its response is read to the end (the iterable closed, as PEP 3333 asks),
  bounded in chunks, bytes and time (``PROFILING_MANUAL_TIMEOUT``: a
  response still streaming then is cut and its iterable closed), and the
  report is sent instead. ``start_response`` with ``exc_info`` replaces the
  captured status and headers; an iterable that raises ends in the report,
  which shows the exception.
- Sampled requests: the response goes to the server untouched (the app's
  own list or ``wsgi.file_wrapper`` object when it returned one); a body
  the server has to iterate is wrapped only to end the profile when the
  server closes it.
- The route template: ``environ["reqprof.route"]``, which the framework
  integrations set (Flask: this middleware around ``app.wsgi_app`` records
  ``request.url_rule`` by itself).

A synchronous request cannot be interrupted: a stream's time limit is
checked each time the app yields a chunk.
"""
from __future__ import annotations

import contextvars
import functools
import sys
import time
from typing import Any, Callable, Iterable, Optional

from . import _logging
from ._meta import request_label, request_meta
from ._profiling import AUTO, PROXY_HEADERS, Middleware, hide
from ._render import REPLACED_HEADERS, report_headers
from ._request import BUSY

__all__ = ["ProfilingMiddleware", "ROUTE_KEY", "EXCEPTION_KEY"]

StartResponse = Callable[..., Callable[[bytes], Any]]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]

#: The environ keys where a framework integration puts the route template
#: and the description of an exception it turned into an error page.
ROUTE_KEY = "reqprof.route"
EXCEPTION_KEY = "reqprof.exception"
#: The environ key of the ``X-Profiling-Token`` header.
TOKEN_KEY = "HTTP_X_PROFILING_TOKEN"
#: A manually profiled response is captured up to this many bytes (each
#: chunk counting CAPTURE_CHUNK_OVERHEAD more) or CAPTURE_CHUNKS chunks;
#: past either it is cut ("size limit"), as in the ASGI middleware.
CAPTURE_BYTES = 32 * 1024 * 1024
CAPTURE_CHUNKS = 50_000
CAPTURE_CHUNK_OVERHEAD = 512
_PROXY_KEYS = tuple("HTTP_" + h.upper().replace("-", "_") for h in PROXY_HEADERS)


class ProfilingMiddleware(Middleware):
    """Profile the requests of the wrapped WSGI app: the settings of
    :class:`reqprof.ProfilingMiddleware` (environment, `.env`, keyword
    arguments, ``settings=``). Never raises for a bad setting: it is logged
    at ERROR (again once a minute while requests come) and every request is
    served unprofiled. Raises TypeError, naming the class to use, when
    ``app`` is not a WSGI app."""

    kind = "wsgi"
    app: WSGIApp

    def __init__(self, app: WSGIApp, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        if not self.profiling.off:
            flask_app = getattr(app, "__self__", None)     # Flask's app.wsgi_app
            if type(flask_app).__module__.split(".")[0] == "flask":
                from .flask import record_routes
                record_routes(flask_app)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        profiling = self.profiling
        tokens: Optional[list] = None
        if profiling.token_set:
            value = environ.pop(TOKEN_KEY, None)
            tokens = [] if value is None else [value]
        if profiling.off:
            profiling.unprofiled()
            return self.app(environ, start_response)
        if profiling.watch_bind:
            profiling.check_bind(environ.get("SERVER_NAME"), environ.get("SERVER_PORT"))
        decision = profiling.decide(environ.get("QUERY_STRING", ""), tokens)
        if decision is None:
            return self.app(environ, start_response)
        # A context of its own: the session's marker lives and dies with it.
        context = contextvars.copy_context()
        if decision is AUTO:
            return context.run(self._auto, environ, start_response)
        if profiling.watch_bind:
            profiling.check_proxy(next((k[5:].replace("_", "-").title() for k in _PROXY_KEYS
                                        if k in environ), None))
        return context.run(self._manual, environ, start_response, decision)

    def _auto(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        exchange = _Exchange(environ)
        run = self.profiling.begin(sys._getframe(), False,
                                   functools.partial(exchange.meta, "auto"),
                                   request_label(environ.get("REQUEST_METHOD"), _path(environ)))
        if run is None or run is BUSY:
            return self.app(environ, start_response)
        try:
            result = self.app(environ, exchange.forwarding(start_response))
        except BaseException as exc:
            exchange.exception = exc
            run.end()
            exchange.exception = None
            raise
        if isinstance(result, (list, tuple)) or _is_file(result, environ):
            if isinstance(result, (list, tuple)):
                exchange.response_bytes += sum(len(chunk) for chunk in result)
            run.end()
            return result
        return _Body(result, run, exchange)

    def _manual(self, environ: dict, start_response: StartResponse,
                fmt: str) -> Iterable[bytes]:
        profiling = self.profiling
        exchange = _Exchange(environ, capture_for=self.settings.manual_timeout)
        run = profiling.begin(sys._getframe(), True, functools.partial(exchange.meta, "manual"),
                              request_label(environ.get("REQUEST_METHOD"), _path(environ)))
        if run is BUSY:
            return self.app(environ, _skipped(start_response))
        if run is None:
            return self.app(environ, start_response)
        try:
            try:
                result = self.app(environ, exchange.start_response)
                try:
                    for chunk in result:
                        if not exchange.keep(chunk):
                            break
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            except Exception as exc:
                exchange.exception = exc
            except BaseException:
                run.end()
                raise
            report = run.end(exchange.cut)
            del run
            rendered = profiling.render(report, fmt) if report is not None else None
            del report
            if rendered is None:
                return exchange.replay(start_response)
            if exchange.exception is not None:
                _logging.log_manual_exception(environ.get("REQUEST_METHOD"), _path(environ),
                                              exchange.exception)
            body, spec = rendered
            headers = [(k, v) for k, v in exchange.headers if k.lower() not in REPLACED_HEADERS]
            start_response("200 OK", headers + report_headers(spec, len(body)))
            return [body]
        finally:
            exchange.release()


class _Exchange:
    """One request's view of the response: its status, headers and size,
    and (manual profiling) the chunks kept to be sent as they were if no
    report can be built, within the capture's bounds."""

    __slots__ = ("environ", "status", "headers", "response_bytes", "chunks", "kept_bytes",
                 "deadline", "cut", "exception")

    def __init__(self, environ: dict, capture_for: float = 0.0) -> None:
        self.environ = environ
        self.status: Optional[str] = None
        self.headers: list = []
        self.response_bytes = 0
        self.chunks: list = []
        self.kept_bytes = 0
        self.deadline = time.monotonic() + capture_for
        self.cut: Optional[str] = None      # why the capture was cut short
        self.exception: Optional[BaseException] = None

    def start_response(self, status: str, headers: list, exc_info: Any = None) -> Callable:
        """The app's start_response while its response is captured: a later
        call (with exc_info, an error page) replaces the first."""
        self.status = status
        self.headers = list(headers)
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy write() callable: kept like a yielded chunk."""
        self.keep(data)

    def keep(self, chunk: bytes) -> bool:
        """Keeps a chunk of the captured response; False once it is cut
        (the caller stops reading and closes the app's iterable)."""
        self.response_bytes += len(chunk)
        if self.cut is not None:
            return False
        self.chunks.append(bytes(chunk))
        self.kept_bytes += len(chunk) + CAPTURE_CHUNK_OVERHEAD
        if self.kept_bytes > CAPTURE_BYTES or len(self.chunks) >= CAPTURE_CHUNKS:
            self.cut = "size limit"
        elif time.monotonic() >= self.deadline:
            self.cut = "time limit"     # still streaming past the limit
        if self.cut is not None:
            self.chunks.clear()
            return False
        return True

    def forwarding(self, start_response: StartResponse) -> StartResponse:
        """The server's start_response, recording what the app answers."""
        def recorded(status: str, headers: list, exc_info: Any = None) -> Callable:
            self.status = status
            self.headers = list(headers)
            write = start_response(status, headers, exc_info) if exc_info is not None \
                else start_response(status, headers)

            def counted(data: bytes) -> Any:
                self.response_bytes += len(data)
                return write(data)
            return counted
        return recorded

    def replay(self, start_response: StartResponse) -> Iterable[bytes]:
        """The captured response as the app sent it (re-raising the app's
        exception, as without reqprof)."""
        if self.cut is not None:
            body = b"reqprof: the profiling report failed; see the server log\n"
            start_response("500 Internal Server Error", [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body)))])
            return [body]
        exc, self.exception = self.exception, None
        if exc is not None:
            try:
                raise exc
            finally:
                del exc
        start_response(self.status or "500 Internal Server Error", self.headers)
        return list(self.chunks)

    def release(self) -> None:
        self.chunks = []
        self.exception = None

    def meta(self, trigger: str) -> dict:
        """What the report says about the request."""
        status = self.status
        try:
            code = int(status.split(" ", 1)[0]) if status else None
        except ValueError:
            code = None
        content_type = next((v for k, v in self.headers if k.lower() == "content-type"), None)
        environ = self.environ
        return request_meta(trigger, environ.get("REQUEST_METHOD"), _path(environ),
                            environ.get(ROUTE_KEY), environ.get("QUERY_STRING", ""), code,
                            content_type, self.response_bytes,
                            str(environ.get("SERVER_PROTOCOL", "")).rpartition("/")[2],
                            self.exception or environ.get(EXCEPTION_KEY))


class _Body:
    """A sampled response's body on its way to the server: what it yields
    is counted, and its profile ends when the server closes it (PEP 3333;
    past AUTO_MAX_DURATION it has ended anyway)."""

    __slots__ = ("result", "run", "exchange")

    def __init__(self, result: Iterable[bytes], run: Any, exchange: _Exchange) -> None:
        self.result = result
        self.run = run
        self.exchange = exchange

    def __iter__(self) -> Any:
        try:
            for chunk in self.result:
                self.exchange.response_bytes += len(chunk)
                yield chunk
        except BaseException as exc:
            self.exchange.exception = exc
            raise

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.run.end()
            self.exchange.exception = None


def _skipped(start_response: StartResponse) -> StartResponse:
    """start_response adding ``X-Profiling-Skipped: busy``."""
    def busy(status: str, headers: list, exc_info: Any = None) -> Callable:
        headers = [*headers, ("X-Profiling-Skipped", "busy")]
        return start_response(status, headers, exc_info) if exc_info is not None \
            else start_response(status, headers)
    return busy


def _is_file(result: Any, environ: dict) -> bool:
    wrapper = environ.get("wsgi.file_wrapper")
    return isinstance(wrapper, type) and isinstance(result, wrapper)


def _path(environ: dict) -> str:
    """SCRIPT_NAME + PATH_INFO as text (WSGI gives them as latin-1 strings
    of the raw bytes)."""
    raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:
        return raw.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeError:
        return raw


hide(_Exchange.start_response, _Exchange.write, _Exchange.keep, _Exchange.forwarding,
     _Body.__iter__, _Body.close)
