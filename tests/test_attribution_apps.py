"""Attribution through real apps and servers: a Django async view, FastAPI
behind uvicorn (the request as the root, [unsampled], work after the
response), SQLAlchemy's asyncio mode on greenlets, an ASGI app on
hypercorn's trio worker. The situations themselves are in
test_attribution.py, tested at the engine."""
from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import pytest
from fastapi import BackgroundTasks

from profile_tree import find, functions, path_to, total_wall, walk
from test_attribution import background_job, reqprof_nodes, score_reviews


DJANGO_APP = '''
import asyncio
import time

import django
from django.conf import settings

settings.configure(DEBUG=False, SECRET_KEY="test", ROOT_URLCONF=__name__,
                   ALLOWED_HOSTS=["*"], MIDDLEWARE=[], INSTALLED_APPS=[])
django.setup()
from django.http import JsonResponse
from django.urls import path


async def sleeping_view(request):
    await asyncio.sleep(0.3)
    return JsonResponse({"ok": True})


def blocking_query():
    end = time.perf_counter() + 0.2
    while time.perf_counter() < end:
        pass
    return 1


async def orm_view(request):
    # What Django's async ORM does: the query runs in a thread.
    from asgiref.sync import sync_to_async

    rows = await sync_to_async(blocking_query)()
    return JsonResponse({"rows": rows})


urlpatterns = [path("sleep/", sleeping_view), path("orm/", orm_view)]

from django.core.asgi import get_asgi_application
from reqprof import ProfilingMiddleware, Settings

application = ProfilingMiddleware(get_asgi_application(),
                                  settings=Settings(enabled=True, sample_rate=0.0))
'''



def test_django_async_view_shows_its_sleep_with_the_requests_wall_time(serve, tmp_path):
    pytest.importorskip("django")
    (tmp_path / "django_attr_app.py").write_text(DJANGO_APP)
    sys.path.insert(0, str(tmp_path))
    try:
        import django_attr_app
        server = serve(django_attr_app.application, lifespan="off")
        response = server.client.get("/sleep/?profile=1&profile_format=json")
    finally:
        sys.path.remove(str(tmp_path))
    assert response.status_code == 200
    doc = response.json()
    root = doc["root"]
    assert root["kind"] == "request" and root["function"] == "GET /sleep/"
    view = find(root, "sleeping_view")
    assert view, functions(root)
    path = path_to(view[0], "[await]")
    assert path == ["sleeping_view", "sleep", "[await]"], path
    # The view only sleeps: it holds (nearly) all of the request's time.
    assert view[0]["wall_s"] >= 0.9 * 0.3
    assert total_wall(root, "sleeping_view") >= 0.9 * root["wall_s"] - 0.01


def test_django_async_view_shows_the_work_it_hands_to_a_thread(serve, tmp_path):
    pytest.importorskip("django")
    from reqprof import _core

    (tmp_path / "django_attr_app.py").write_text(DJANGO_APP)
    sys.path.insert(0, str(tmp_path))
    try:
        import django_attr_app
        server = serve(django_attr_app.application, lifespan="off")
        response = server.client.get("/orm/?profile=1&profile_format=json")
    finally:
        sys.path.remove(str(tmp_path))
    assert response.status_code == 200
    root = response.json()["root"]
    path = path_to(root, "blocking_query")
    assert path is not None, functions(root)
    assert total_wall(root, "blocking_query") >= 0.1
    if _core.MODE.startswith("fast"):
        # Under the view, in its thread: not under Django's handler alone.
        # (A tick before the view's task has handed the work over and is
        # suspended can only hang it under the handler.)
        under_view = sum(total_wall(v, "blocking_query") for v in find(root, "orm_view"))
        assert under_view >= 0.8 * total_wall(root, "blocking_query"), path
        view_path = path_to(find(root, "orm_view")[0], "blocking_query")
        assert any(p.startswith("[thread ") for p in view_path), view_path



def make_app():
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/books/{book_id}")
    async def book(book_id: int) -> dict:
        score_reviews(0.03)
        return {"book": book_id}

    @app.get("/quick")
    async def quick() -> dict:
        return {}

    @app.get("/sync")
    def sync_book() -> dict:
        score_reviews(0.03)
        return {}

    return app



def middleware(app: Any, **settings: Any) -> Any:
    from reqprof import ProfilingMiddleware, Settings

    settings.setdefault("enabled", True)
    settings.setdefault("sample_rate", 0.0)
    return ProfilingMiddleware(app, settings=Settings(**settings))



def test_a_requests_tree_is_rooted_at_the_request_and_holds_no_reqprof_frame(serve):
    server = serve(middleware(make_app()))
    docs = []
    for target in ["/books/7", "/books/8", "/quick", "/sync"] * 3:
        response = server.client.get(f"{target}?profile=1&profile_format=json")
        assert response.status_code == 200
        docs.append(response.json())
    for doc in docs:
        root = doc["root"]
        assert root["kind"] == "request"
        assert root["function"] in ("GET /books/{book_id}", "GET /quick", "GET /sync"), root["function"]
        assert root["self_wall_s"] == 0, root
        assert reqprof_nodes(root) == [], reqprof_nodes(root)
    books = [d for d in docs if d["root"]["function"] == "GET /books/{book_id}"]
    assert all("score_reviews" in functions(d["root"]) for d in books)



def test_time_no_tick_saw_is_unsampled_and_the_report_says_it_is_undersampled(serve):
    # One tick a second: no tick lands in the request.
    server = serve(middleware(make_app(), interval=1.0))
    doc = server.client.get("/books/7?profile=1&profile_format=json").json()
    root = doc["root"]
    assert root["kind"] == "request" and reqprof_nodes(root) == []
    # At most one tick (a session's first may come at once, when the
    # sampler starts or wakes); what no tick saw is [unsampled], not lost
    # and not given to a frame.
    assert doc["samples"] <= 1
    unsampled = sum(n["wall_s"] for n in find(root, "[unsampled]"))
    sampled = sum(n["wall_s"] for n in root["children"] if n["kind"] != "unsampled")
    assert unsampled + sampled == pytest.approx(root["wall_s"], abs=1e-6)
    assert unsampled >= 0.5 * root["wall_s"]
    assert doc["undersampled"] is True and doc["undersampled_reason"] == "short request"



def test_background_work_after_the_response_is_marked_and_timed_apart(serve, tmp_path, reqprof_logs):
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/orders")
    async def orders(tasks: BackgroundTasks) -> dict:
        tasks.add_task(background_job)
        return {"ok": True}

    server = serve(middleware(app, sample_rate=1.0, output_dir=str(tmp_path)))
    started = time.perf_counter()
    assert server.client.post("/orders").status_code == 200
    client_ms = (time.perf_counter() - started) * 1000
    from reqprof._reporter import reporter

    # The client has its answer before the app returns: wait for the report.
    deadline = time.monotonic() + 30
    while not reqprof_logs.summaries() and time.monotonic() < deadline:
        reporter.drain(30)
        time.sleep(0.01)
    [record] = reqprof_logs.summaries()
    assert record.reqprof_duration_ms >= 100
    assert record.reqprof_response_ms is not None
    assert record.reqprof_response_ms < record.reqprof_duration_ms - 80
    assert record.reqprof_response_ms <= client_ms + 5
    assert "response sent at" in record.getMessage()
    [path] = tmp_path.glob("*.json")
    doc = json.loads(path.read_text())
    assert doc["response_s"] == pytest.approx(record.reqprof_response_ms / 1000, abs=1e-6)
    [after] = find(doc["root"], "[after response]")
    assert after["kind"] == "after-response"
    assert total_wall(after, "background_job") >= 0.07
    assert "background_job" not in functions({**doc["root"], "children": [
        c for c in doc["root"]["children"] if c["kind"] != "after-response"]})



def test_an_asgi_app_on_hypercorns_trio_worker_is_profiled_per_request():
    trio = pytest.importorskip("trio")
    pytest.importorskip("hypercorn")
    import httpx
    from fastapi import FastAPI
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    from conftest import listening_socket

    app = FastAPI()

    @app.get("/trio/{n}")
    async def trio_endpoint(n: int) -> dict:
        score_reviews(0.02)
        await trio.sleep(0.1)
        return {"n": n}

    sock = listening_socket()
    port = sock.getsockname()[1]
    sock.close()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = config.errorlog = None
    stop = threading.Event()

    async def shutdown_trigger() -> None:
        while not stop.is_set():
            await trio.sleep(0.01)

    thread = threading.Thread(target=trio.run, args=(
        lambda: hypercorn_serve(middleware(app), config, shutdown_trigger=shutdown_trigger),),
        daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    response = client.get("/trio/3?profile=1&profile_format=json")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "hypercorn did not start"
                    time.sleep(0.05)
        assert response.status_code == 200
        doc = response.json()
    finally:
        stop.set()
        thread.join(30)
    root = doc["root"]
    assert root["kind"] == "request" and root["function"] == "GET /trio/{n}"
    assert reqprof_nodes(root) == []
    endpoint = find(root, "test_an_asgi_app_on_hypercorns_trio_worker_is_profiled_per_request.<locals>.trio_endpoint"
                    if sys.version_info >= (3, 11) else "trio_endpoint")
    assert endpoint, functions(root)
    assert total_wall(endpoint[0], "score_reviews") >= 0.01
    assert sum(n["wall_s"] for n in find(endpoint[0], "[await]")) >= 0.08



SQLALCHEMY_ROWS = 3000



def test_sqlalchemy_asyncio_on_greenlets_keeps_every_tree_in_order(serve, tmp_path):
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("aiosqlite")
    import sqlite3

    from fastapi import FastAPI
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    db = tmp_path / "books.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table books (id integer primary key, title text)")
        conn.executemany("insert into books (title) values (?)",
                         [(f"book {i}",) for i in range(SQLALCHEMY_ROWS)])
    engines: list = []
    app = FastAPI()

    @app.get("/books")
    async def list_books() -> dict:
        if not engines:
            engines.append(create_async_engine(f"sqlite+aiosqlite:///{db}"))
        async with AsyncSession(engines[0]) as session:
            total = 0
            for _ in range(5):
                rows = (await session.execute(text("select id, title from books"))).all()
                total += len(rows)
        return {"rows": total}

    server = serve(middleware(app))
    # The server's own stack (below the request) never shows in a request.
    outside = {"Server.run", "Server.serve", "Server._serve", "run_until_complete",
               "run_forever", "BaseEventLoop.run_until_complete", "BaseEventLoop.run_forever",
               "BaseEventLoop._run_once", "Handle._run", "Runner.run", "Thread.run"}
    executes = 0
    for _ in range(20):
        response = server.client.get("/books?profile=1&profile_format=json")
        assert response.status_code == 200
        root = response.json()["root"]
        assert root["kind"] == "request" and root["function"] == "GET /books"
        names = functions(root)
        assert not names & outside, names & outside
        assert reqprof_nodes(root) == []
        for node, _ in walk(root):
            for child in node["children"]:
                if child["function"] == "Session.execute":
                    executes += 1
                    path = path_to(root, "Session.execute")
                    assert "greenlet_spawn" in path and "AsyncSession.execute" in path, path
        # Nothing but the app's endpoint (and [unsampled]) right under the root.
        top = {c["function"] for c in root["children"]} - {"[unsampled]", "[after response]"}
        assert all("list_books" in name or "ServerErrorMiddleware" in name or "FastAPI" in name
                   or "Starlette" in name for name in top), top
    assert executes > 0     # the ORM's greenlet work was seen at all
