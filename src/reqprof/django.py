"""reqprof for Django, under WSGI (gunicorn, ``runserver``) and ASGI
(uvicorn, daphne), sync and async views:

    MIDDLEWARE = [
        "reqprof.django.ProfilingMiddleware",    # first: the outermost
        ...
    ]

Settings come from the environment and `.env` as everywhere; a ``REQPROF``
dict in Django's settings overrides them (keys: ``sample_rate`` or
``PROFILING_SAMPLE_RATE`` alike). The route template is the URL pattern
that matched (``request.resolver_match.route``: ``/books/<int:pk>/``); the
exception of a view that raised (which Django turns into a 500 page) is
taken from Django's ``got_request_exception`` signal.

With profiling off and no token set, the middleware removes itself
(``MiddlewareNotUsed``): no cost at all. A bad setting is logged at ERROR
(Django runs no ASGI lifespan for its middleware) and requests are served
unprofiled.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import time
from typing import Any, Callable, Optional

from . import _aio, _logging, _misuse
from ._meta import describe_exception, request_label, request_meta
from ._profiling import AUTO, PROXY_HEADERS, Profiling, configure, hide
from ._render import REPLACED_HEADERS, report_headers
from ._request import BUSY
from .config import Settings

__all__ = ["ProfilingMiddleware"]

#: request.META key of the ``X-Profiling-Token`` header.
TOKEN_KEY = "HTTP_X_PROFILING_TOKEN"
CAPTURE_BYTES = 32 * 1024 * 1024
CAPTURE_CHUNKS = 50_000
CAPTURE_CHUNK_OVERHEAD = 512
_PROXY_KEYS = tuple("HTTP_" + h.upper().replace("-", "_") for h in PROXY_HEADERS)
_EXCEPTION_ATTR = "_reqprof_exception"


def _overrides() -> dict:
    """``settings.REQPROF`` as keyword overrides (field or variable names)."""
    from django.conf import settings as django_settings

    given = getattr(django_settings, "REQPROF", None) or {}
    by_env = {env: field for field, env in Settings.variables().items()}
    return {by_env.get(str(key), str(key)): value for key, value in dict(given).items()}


def _record_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    """got_request_exception: the view's exception, described for the report
    (not kept: it would hold the request's frames)."""
    exc = sys.exc_info()[1]
    if request is not None and exc is not None:
        try:
            setattr(request, _EXCEPTION_ATTR, describe_exception(exc))
        except Exception:
            pass


class ProfilingMiddleware:
    """Django middleware: per-request profiling with reqprof's settings and
    behaviour (``?profile=1`` reports, sampling, token, slots)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        _misuse.expect(get_response, "django")
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction
        from django.core.exceptions import MiddlewareNotUsed
        from django.core.signals import got_request_exception

        self.get_response = get_response
        self.profiling: Profiling = configure(None, ".env", _overrides())
        self.settings = self.profiling.settings
        if self.profiling.off and self.profiling.config_error is None \
                and not self.profiling.token_set:
            raise MiddlewareNotUsed("reqprof: profiling is off")
        got_request_exception.connect(_record_exception, dispatch_uid="reqprof")
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    @property
    def config_error(self) -> Optional[str]:
        return self.profiling.config_error

    def _decide(self, request: Any) -> Optional[str]:
        """None, AUTO or a report format for this request (the token header
        taken out of it first)."""
        profiling = self.profiling
        meta = request.META
        tokens: Optional[list] = None
        if profiling.token_set:
            value = meta.pop(TOKEN_KEY, None)
            request.__dict__.pop("headers", None)    # (a cached view of META, made again)
            tokens = [] if value is None else [value]
        if profiling.off:
            profiling.unprofiled()
            return None
        if profiling.watch_bind:
            profiling.check_bind(meta.get("SERVER_NAME"), meta.get("SERVER_PORT"))
        decision = profiling.decide(meta.get("QUERY_STRING", ""), tokens)
        if decision is not None and decision is not AUTO and profiling.watch_bind:
            profiling.check_proxy(next((k[5:].replace("_", "-").title() for k in _PROXY_KEYS
                                        if k in meta), None))
        return decision

    # -- WSGI (sync) -----------------------------------------------------------

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        decision = self._decide(request)
        if decision is None:
            return self.get_response(request)
        # A context of its own: the session's marker lives and dies with it.
        if decision is AUTO:
            return contextvars.copy_context().run(self._auto, request)
        return contextvars.copy_context().run(self._manual, request, decision)

    def _auto(self, request: Any) -> Any:
        box = _Box(request)
        run = self.profiling.begin(sys._getframe(), False, functools.partial(box.meta, "auto"),
                                   box.label())
        if run is None or run is BUSY:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            box.exception = exc
            run.end()
            box.exception = None
            raise
        return box.hand_over(response, run)

    def _manual(self, request: Any, fmt: str) -> Any:
        box = _Box(request, capture_for=self.settings.manual_timeout)
        run = self.profiling.begin(sys._getframe(), True, functools.partial(box.meta, "manual"),
                                   box.label())
        if run is BUSY:
            return _skipped(self.get_response(request))
        if run is None:
            return self.get_response(request)
        try:
            try:
                box.response = self.get_response(request)
                box.read(box.response)
            except Exception as exc:
                box.exception = exc
            except BaseException:
                run.end()
                raise
            report = run.end(box.cut)
            del run
            return box.answer(self.profiling.render(report, fmt) if report is not None else None)
        finally:
            box.release()

    # -- ASGI (async) ------------------------------------------------------------

    async def __acall__(self, request: Any) -> Any:
        decision = self._decide(request)
        if decision is None:
            return await self.get_response(request)
        if decision is AUTO:
            return await self._auto_async(request)
        return await self._manual_async(request, decision)

    async def _auto_async(self, request: Any) -> Any:
        box = _Box(request)
        run = self.profiling.begin(sys._getframe(), False, functools.partial(box.meta, "auto"),
                                   box.label())
        if run is None or run is BUSY:
            return await self.get_response(request)
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            box.exception = exc
            run.end()
            box.exception = None
            raise
        return box.hand_over(response, run)

    async def _manual_async(self, request: Any, fmt: str) -> Any:
        box = _Box(request, capture_for=self.settings.manual_timeout)
        run = self.profiling.begin(sys._getframe(), True, functools.partial(box.meta, "manual"),
                                   box.label())
        if run is BUSY:
            return _skipped(await self.get_response(request))
        if run is None:
            return await self.get_response(request)
        try:
            try:
                box.response = await self.get_response(request)
                await box.read_async(box.response)
            except Exception as exc:
                box.exception = exc
            except BaseException:
                run.end()
                raise
            report = run.end(box.cut)
            del run
            rendered = None
            if report is not None:
                rendered = await _aio.run_in_thread(
                    _aio.library(), functools.partial(self.profiling.render, report, fmt))
            return box.answer(rendered)
        finally:
            box.release()


class _Box:
    """One request's response as the profile sees it: status, type, size,
    the exception, and the bounds of a captured stream."""

    __slots__ = ("request", "response", "response_bytes", "deadline", "cut", "exception",
                 "kept")

    def __init__(self, request: Any, capture_for: float = 0.0) -> None:
        self.request = request
        self.response: Any = None
        self.response_bytes = 0
        self.deadline = time.monotonic() + capture_for
        self.cut: Optional[str] = None
        self.exception: Optional[BaseException] = None
        self.kept = 0

    def label(self) -> Optional[str]:
        """What the profile is called while it runs (``GET /export``)."""
        request = self.request
        return request_label(getattr(request, "method", None), getattr(request, "path", None))

    def meta(self, trigger: str) -> dict:
        request, response = self.request, self.response
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        if route is not None and not str(route).startswith(("/", "^")):
            route = "/" + str(route)
        status = getattr(response, "status_code", None)
        size = self.response_bytes
        if response is not None and not getattr(response, "streaming", False):
            size = len(getattr(response, "content", b""))
        content_type = response.get("Content-Type") if response is not None else None
        exception = self.exception or getattr(request, _EXCEPTION_ATTR, None)
        meta = request.META
        return request_meta(trigger, request.method, request.path, route,
                            meta.get("QUERY_STRING", ""), status, content_type, size,
                            str(meta.get("SERVER_PROTOCOL", "")).rpartition("/")[2], exception)

    def hand_over(self, response: Any, run: Any) -> Any:
        """A sampled response goes on untouched: a streamed one is counted,
        its profile ending when the server closes it."""
        self.response = response
        if not getattr(response, "streaming", False):
            run.end()
            return response
        content = response.streaming_content
        if getattr(response, "is_async", False):
            response.streaming_content = self._counted_async(content, run)
        else:
            response.streaming_content = self._counted(content, run)
        return response

    def _counted(self, content: Any, run: Any) -> Any:
        try:
            for chunk in content:
                self.response_bytes += len(chunk)
                yield chunk
        except BaseException as exc:
            self.exception = exc
            raise
        finally:
            run.end()
            self.exception = None

    async def _counted_async(self, content: Any, run: Any) -> Any:
        try:
            async for chunk in content:
                self.response_bytes += len(chunk)
                yield chunk
        except BaseException as exc:
            self.exception = exc
            raise
        finally:
            run.end()
            self.exception = None

    def _keep(self, chunk: Any) -> bool:
        """Counts a chunk of a captured stream; False once it is cut."""
        self.response_bytes += len(chunk)
        self.kept += 1
        if self.response_bytes + self.kept * CAPTURE_CHUNK_OVERHEAD > CAPTURE_BYTES \
                or self.kept >= CAPTURE_CHUNKS:
            self.cut = "size limit"
        elif time.monotonic() >= self.deadline:
            self.cut = "time limit"
        return self.cut is None

    def read(self, response: Any) -> None:
        """Reads a streamed response to its end (or its cut) and closes it:
        its content is replaced by the report."""
        if not getattr(response, "streaming", False):
            return
        try:
            for chunk in response.streaming_content:
                if not self._keep(chunk):
                    break
        finally:
            response.close()

    async def read_async(self, response: Any) -> None:
        if not getattr(response, "streaming", False):
            return
        try:
            content = response.streaming_content
            if not getattr(response, "is_async", False):
                for chunk in content:
                    if not self._keep(chunk):
                        break
                return
            iterator = content.__aiter__()
            while True:
                left = self.deadline - time.monotonic()
                try:
                    chunk = await asyncio.wait_for(iterator.__anext__(), max(left, 0.001))
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    self.cut = "time limit"     # a stream silent past the limit
                    break
                if not self._keep(chunk):
                    break
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            response.close()

    def answer(self, rendered: Any) -> Any:
        """The report as Django's response (the app's other headers and its
        cookies kept), or the app's own response when there is no report."""
        from django.http import HttpResponse

        if rendered is None:
            if self.exception is not None:
                exc, self.exception = self.exception, None
                raise exc
            if self.cut is not None or self.response is None:
                return HttpResponse(b"reqprof: the profiling report failed; see the server log\n",
                                    status=500, content_type="text/plain; charset=utf-8")
            return self.response
        if self.exception is not None:
            _logging.log_manual_exception(self.request.method, self.request.path, self.exception)
        body, spec = rendered
        answer = HttpResponse(body, status=200)
        if self.response is not None:
            for name, value in self.response.items():
                if name.lower() not in REPLACED_HEADERS:
                    answer[name] = value
            answer.cookies = self.response.cookies
        for name, value in report_headers(spec, len(body)):
            answer[name] = value
        return answer

    def release(self) -> None:
        self.response = None
        self.exception = None


def _skipped(response: Any) -> Any:
    response["X-Profiling-Skipped"] = "busy"
    return response


hide(_Box.hand_over, _Box._counted, _Box._counted_async, _Box._keep, _Box.read,
     _Box.read_async, _record_exception)
