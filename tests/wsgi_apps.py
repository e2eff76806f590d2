"""WSGI apps for the framework tests: a Flask app with a SQLAlchemy query
on SQLite (REQPROF_TEST_DB), and plain WSGI apps for the protocol's corners
(file_wrapper, start_response with exc_info, generators that raise).

Factories for gunicorn and `flask run` (``module:function()``):
``flask_app()`` (init_app), ``flask_wrapped()`` (``app.wsgi_app`` wrapped by
hand), ``plain_app()`` (the WSGI middleware around a bare WSGI app)."""
from __future__ import annotations

import contextvars
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

from apps import spin
from reqprof.wsgi import ProfilingMiddleware

CONC = [f"conc_{i}" for i in range(8)]


def rank_books(rows: list) -> list:
    """CPU work of the book view (its own frame in the report)."""
    spin(0.03)
    return sorted(rows, key=lambda r: -r[1])


def threaded_work() -> int:
    """Run in a pool thread with the request's context."""
    return spin(0.05)


def conc_0() -> None: spin(0.05)
def conc_1() -> None: spin(0.05)
def conc_2() -> None: spin(0.05)
def conc_3() -> None: spin(0.05)
def conc_4() -> None: spin(0.05)
def conc_5() -> None: spin(0.05)
def conc_6() -> None: spin(0.05)
def conc_7() -> None: spin(0.05)


_POOL = ThreadPoolExecutor(4)


def make_flask() -> Any:
    from flask import Flask, Response, jsonify, request, stream_with_context
    from sqlalchemy import create_engine, text

    app = Flask(__name__)
    engine = create_engine(f"sqlite:///{os.environ.get('REQPROF_TEST_DB', 'books.sqlite3')}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS books (id INTEGER PRIMARY KEY, "
                          "title TEXT, score INTEGER)"))
        if not conn.execute(text("SELECT COUNT(*) FROM books")).scalar():
            conn.execute(text("INSERT INTO books (title, score) VALUES (:t, :s)"),
                         [{"t": f"Book {i}", "s": i * 7 % 13} for i in range(50)])

    def query_books() -> list:
        """SQLAlchemy queries against SQLite (many small ones)."""
        rows: list = []
        with engine.connect() as conn:
            for _ in range(200):
                rows = conn.execute(text("SELECT id, score FROM books WHERE score >= 0 "
                                         "ORDER BY id LIMIT 20")).fetchall()
        return rows

    @app.route("/books/<int:book_id>")
    def book(book_id: int) -> Any:
        rows = rank_books(query_books())
        return jsonify(book=book_id, count=len(rows))

    @app.route("/stream")
    def stream() -> Any:
        def chunks() -> Iterable[str]:
            for i in range(20):
                yield f"chunk {i}\n"
        return Response(stream_with_context(chunks()), mimetype="text/plain")

    @app.route("/fail")
    def fail() -> Any:
        spin(0.02)
        raise RuntimeError("boom from the view")

    @app.route("/headers")
    def headers() -> Any:
        return jsonify(headers=sorted(k.lower() for k in request.headers.keys()))

    @app.route("/threads")
    def threads() -> Any:
        done = _POOL.submit(contextvars.copy_context().run, threaded_work).result()
        return jsonify(done=done > 0)

    @app.route("/conc/<name>")
    def conc(name: str) -> Any:
        getattr(sys.modules[__name__], name)()
        return name

    return app


def flask_app() -> Any:
    from reqprof.flask import init_app

    app = make_flask()
    init_app(app)
    return app


def flask_wrapped() -> Any:
    app = make_flask()
    app.wsgi_app = ProfilingMiddleware(app.wsgi_app)
    return app


def flask_bare() -> Any:
    return make_flask()


# -- plain WSGI -------------------------------------------------------------------------

CLOSED: list = []


class FileBody:
    """What `wsgi.file_wrapper` would wrap."""


def bare_wsgi(environ: dict, start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/plain")])
        wrapper = environ.get("wsgi.file_wrapper")
        f = open(__file__, "rb")
        return wrapper(f, 8192) if wrapper else iter(lambda: f.read(8192), b"")
    if path == "/exc-info":
        try:
            raise ValueError("while rendering")
        except ValueError:
            start_response("200 OK", [("Content-Type", "text/plain")])
            start_response("500 Internal Server Error", [("Content-Type", "text/plain"),
                                                         ("X-Error", "1")], sys.exc_info())
        return [b"error page"]
    if path == "/raising-generator":
        def body() -> Iterable[bytes]:
            yield b"first\n"
            spin(0.02)
            raise RuntimeError("boom in the body")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body()
    if path == "/endless":
        def forever() -> Iterable[bytes]:
            try:
                while True:
                    time.sleep(0.01)
                    yield b"data: tick\n\n"
            finally:
                CLOSED.append("endless")
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return forever()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written, ")
        return [b"then returned"]
    spin(0.02)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def plain_app() -> Any:
    return ProfilingMiddleware(bare_wsgi)
