"""reqprof for Flask:

    from reqprof.flask import init_app
    init_app(app)                      # = app.wsgi_app = ProfilingMiddleware(app.wsgi_app)

The WSGI middleware around ``app.wsgi_app``, plus the route template of
each request (``request.url_rule.rule``: ``/books/<int:book_id>``) for
reports, log lines and aggregates. Wrapping ``app.wsgi_app`` by hand does
the same.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional, Union

from ._logging import logger
from .config import Settings
from ._meta import describe_exception
from .wsgi import EXCEPTION_KEY, ROUTE_KEY, ProfilingMiddleware

__all__ = ["init_app", "ProfilingMiddleware"]


def init_app(app: Any, *, settings: Optional[Settings] = None,
             env_file: Union[str, "os.PathLike[str]", None] = ".env",
             **overrides: Any) -> ProfilingMiddleware:
    """Profiles the requests of the Flask ``app``: settings as for
    :class:`reqprof.wsgi.ProfilingMiddleware`. Returns the middleware."""
    middleware = ProfilingMiddleware(app.wsgi_app, settings=settings, env_file=env_file,
                                     **overrides)
    app.wsgi_app = middleware
    return middleware


def _record_route() -> None:
    from flask import request

    rule = request.url_rule
    if rule is not None:
        request.environ[ROUTE_KEY] = rule.rule


def _record_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
    """got_request_exception: the exception Flask turns into a 500 page,
    described (not kept: it would hold the request's frames)."""
    from flask import request

    request.environ[EXCEPTION_KEY] = describe_exception(exception)


def record_routes(app: Any) -> None:
    """Puts each request's route template (and the exception Flask handled)
    where the WSGI middleware reads them (once per app)."""
    extensions = getattr(app, "extensions", None)
    if not isinstance(extensions, dict) or "reqprof" in extensions:
        return
    try:
        from flask import got_request_exception

        app.before_request(_record_route)
        got_request_exception.connect(_record_exception, app, weak=False)
        extensions["reqprof"] = True
    except Exception as exc:    # (Flask refuses hooks once it has served a request)
        logger.log(logging.WARNING,
                   "reqprof: could not ask Flask for route templates (%s); reports show "
                   "paths only. Wrap app.wsgi_app before the app serves requests.", exc)
