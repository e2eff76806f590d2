"""A middleware class given the wrong kind of app fails at construction,
before it serves anything, with a TypeError naming the class to use: the
ASGI middleware in Django's MIDDLEWARE, the WSGI one around an ASGI app,
and so on. Told apart by the callable's signature: ASGI apps take
``(scope, receive, send)``, WSGI apps ``(environ, start_response)``, Django
middleware gets ``get_response(request)``."""
from __future__ import annotations

import inspect
from typing import Any, Optional

_USE = {
    "asgi": "reqprof.ProfilingMiddleware (reqprof.asgi), around an ASGI app or with "
            "app.add_middleware(ProfilingMiddleware)",
    "wsgi": "reqprof.wsgi.ProfilingMiddleware around a WSGI app (Flask: "
            "reqprof.flask.init_app(app))",
    "django": "reqprof.django.ProfilingMiddleware in Django's MIDDLEWARE setting",
}
_WHAT = {
    "asgi": "an ASGI app (scope, receive, send)",
    "wsgi": "a WSGI app (environ, start_response)",
    "django": "Django's get_response (request)",
}


def kind_of(app: Any) -> Optional[str]:
    """``asgi``, ``wsgi``, ``django``, or None when the signature does not
    say (a callable taking ``*args``, or none that can be inspected)."""
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return None
    positional = 0
    for param in signature.parameters.values():
        if param.kind == param.VAR_POSITIONAL:
            return None
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD) \
                and param.default is param.empty:
            positional += 1
    return {3: "asgi", 2: "wsgi", 1: "django"}.get(positional)


def expect(app: Any, kind: str) -> None:
    """Raises TypeError when ``app`` is clearly another kind of app than
    the middleware for ``kind`` wraps."""
    found = kind_of(app)
    if found is None or found == kind:
        return
    raise TypeError(
        f"{_USE[kind].split(' ', 1)[0]} wraps {_WHAT[kind]}, but was given {_WHAT[found]} "
        f"({app!r:.80}): use {_USE[found]}")
