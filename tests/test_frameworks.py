"""Every Python web framework, through real servers: Flask under gunicorn
(sync, gthread with 4 threads, 2 workers) and `flask run`, Django under
`runserver`, gunicorn (WSGI) and uvicorn (ASGI), any WSGI app under
gunicorn, Litestar's per-route middleware copies; misuse of a middleware
class raises before serving."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import pytest

from conftest import DEADLINE, TESTS_DIR, CommandServer
from profile_tree import functions, total_wall, walk

pytestmark = pytest.mark.server

PY = sys.executable


@pytest.fixture
def run_server(tmp_path: Path) -> Any:
    servers: list[CommandServer] = []

    def start(kind: str, env: Optional[dict] = None) -> CommandServer:
        argv, probe = SERVERS[kind]
        server = CommandServer(argv, {"ENABLE_PROFILING": "1", "PROFILING_SAMPLE_RATE": "0",
                                      **(env or {})}, tmp_path)
        servers.append(server)
        return server.wait_ready(probe)

    yield start
    for server in servers:
        server.close()


GUNICORN = [PY, "-m", "gunicorn", "--bind", "fd://{fd}", "--graceful-timeout", "5"]
DJANGO_ENV = {"DJANGO_SETTINGS_MODULE": "djangoapp.settings"}
SERVERS = {
    "flask-gunicorn-sync": (GUNICORN + ["-k", "sync", "wsgi_apps:flask_app()"], "/headers"),
    "flask-gunicorn-gthread": (GUNICORN + ["-k", "gthread", "--threads", "4",
                                           "wsgi_apps:flask_app()"], "/headers"),
    "flask-gunicorn-2-workers": (GUNICORN + ["-w", "2", "wsgi_apps:flask_wrapped()"],
                                 "/headers"),
    "flask-run": ([PY, "-m", "flask", "--app", "wsgi_apps:flask_app()", "run", "--port",
                   "{port}", "--no-reload", "--no-debugger"], "/headers"),
    "django-runserver": ([PY, "-m", "django", "runserver", "127.0.0.1:{port}", "--noreload",
                          "--settings", "djangoapp.settings"], "/headers/"),
    "django-gunicorn-gthread": (GUNICORN + ["-k", "gthread", "--threads", "4",
                                            "djangoapp.wsgi:application"], "/headers/"),
    "django-uvicorn": ([PY, "-m", "uvicorn", "--fd", "{fd}", "djangoapp.asgi:application"],
                      "/headers/"),
    "django-gunicorn-uvicorn": (GUNICORN + ["-k", "uvicorn_worker.UvicornWorker",
                                            "djangoapp.asgi:application"], "/headers/"),
    "wsgi-gunicorn": (GUNICORN + ["-k", "gthread", "--threads", "4", "wsgi_apps:plain_app()"],
                      "/"),
}
FLASK = ["flask-gunicorn-sync", "flask-gunicorn-gthread", "flask-gunicorn-2-workers",
         "flask-run"]
DJANGO = ["django-runserver", "django-gunicorn-gthread", "django-uvicorn",
          "django-gunicorn-uvicorn"]
VIEW = {"flask": ("make_flask.<locals>.book", "/books/<int:book_id>", "/books/3"),
        "django": ("book_detail", "/books/<int:pk>/", "/books/3/")}


def framework(kind: str) -> str:
    return kind.split("-", 1)[0]


def named(function: str, short: str) -> bool:
    """Whether a frame's qualified name is ``short`` (nested or not)."""
    return function == short or function.endswith("." + short)


def report(server: CommandServer, target: str, **kw: Any) -> dict:
    sep = "&" if "?" in target else "?"
    response = server.client.get(f"{target}{sep}profile=1&profile_format=json", **kw)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == "application/json", response.headers
    return response.json()


def query_time(root: dict) -> float:
    """Wall time under the view's query function spent in the database
    driver (sqlite3, SQLAlchemy or Django's database layer)."""
    total = 0.0
    for node, _ in walk(root):
        if named(node.get("function") or "", "query_books"):
            for below, _ in walk(node):
                name = below.get("function") or ""
                where = below.get("file") or ""
                if name.endswith("execute") or "sqlite" in where:
                    total = max(total, below.get("wall_s", 0.0))
    return total


# -- reports through every server --------------------------------------------------

@pytest.mark.parametrize("kind", FLASK + DJANGO)
def test_manual_report_shows_the_view_and_its_queries(run_server, kind):
    server = run_server(kind)
    view, route, target = VIEW[framework(kind)]
    data = report(server, target)
    names = functions(data["root"])
    assert view in names and "rank_books" in names, sorted(names)
    assert any(named(n, "query_books") for n in names), sorted(names)
    assert total_wall(data["root"], "rank_books") >= 0.015
    assert query_time(data["root"]) > 0.0, "no database time under query_books"
    assert data["meta"]["route"] == route
    assert data["meta"]["status"] == 200 and data["meta"]["method"] == "GET"
    assert not [n for n in names if n.startswith(("gunicorn", "Worker", "WSGIRequestHandler"))]
    # The server goes on serving normally.
    assert server.client.get(target).status_code == 200


@pytest.mark.parametrize("kind", ["flask-gunicorn-gthread", "django-gunicorn-gthread",
                                  "django-uvicorn"])
def test_concurrent_reports_hold_only_their_own_work(run_server, kind):
    server = run_server(kind, {"PROFILING_MAX_CONCURRENT": "16"})
    slash = "/" if framework(kind) == "django" else ""
    names = [f"conc_{i}" for i in range(8)]

    def get(name: str) -> tuple[str, dict]:
        return name, report(server, f"/conc/{name}{slash}")

    with ThreadPoolExecutor(8) as pool:
        reports = dict(pool.map(get, names))
    for name, data in reports.items():
        own = total_wall(data["root"], name)
        others = sum(total_wall(data["root"], other) for other in names if other != name)
        assert own > 0.02, (name, own)
        assert own / (own + others) >= 0.99, (name, own, others)


@pytest.mark.parametrize("kind", ["flask-gunicorn-gthread", "flask-run", "django-runserver",
                                  "django-uvicorn"])
def test_sampled_requests_log_the_route_template(run_server, kind):
    server = run_server(kind, {"PROFILING_SAMPLE_RATE": "1"})
    _, route, target = VIEW[framework(kind)]
    assert server.client.get(target).status_code == 200
    log = server.wait_for_log(f"reqprof: GET {route} -> 200 in ")
    assert "(auto)" in log
    assert log.count("reqprof: profiling enabled") == 1


def test_both_gunicorn_workers_profile_their_own_requests(run_server):
    server = run_server("flask-gunicorn-2-workers", {"PROFILING_SAMPLE_RATE": "1"})
    for _ in range(20):
        assert server.client.get("/books/2", headers={"connection": "close"}).status_code == 200
    log = server.wait_for_log("reqprof: GET /books/<int:book_id> -> 200")
    assert log.count("reqprof: profiling enabled") >= 1


@pytest.mark.parametrize("kind", ["flask-gunicorn-sync", "django-runserver", "django-uvicorn"])
def test_bad_setting_is_an_error_and_the_app_still_serves(run_server, kind):
    server = run_server(kind, {"PROFILING_SAMPLE_RATE": "abc"})
    _, _, target = VIEW[framework(kind)]
    for query in ("", "?profile=1"):
        response = server.client.get(target + query)
        assert response.status_code == 200 and "json" in response.headers["content-type"]
    log = server.wait_for_log("reqprof: invalid configuration")
    assert "PROFILING_SAMPLE_RATE='abc'" in log and "a number from 0.0 to 1.0" in log


@pytest.mark.parametrize("kind", ["flask-gunicorn-sync", "django-gunicorn-gthread",
                                  "django-uvicorn"])
def test_token_header_never_reaches_the_view(run_server, kind):
    token = "a-token-for-the-tests-0123456789"
    server = run_server(kind, {"PROFILING_TOKEN": token})
    slash = "/" if framework(kind) == "django" else ""
    for query in ("", "?profile=0", "?profile=1&profile_format=nope"):
        seen = server.client.get(f"/headers{slash}{query}",
                                 headers={"X-Profiling-Token": token}).json()["headers"]
        assert "x-profiling-token" not in [h.lower() for h in seen]
    data = report(server, f"/headers{slash}", headers={"X-Profiling-Token": token})
    assert data["meta"]["path"] == f"/headers{slash}"


def test_django_reqprof_dict_overrides_the_environment(run_server):
    server = run_server("django-runserver", {
        "PROFILING_SAMPLE_RATE": "0", "REQPROF_DJANGO_OVERRIDES": json.dumps(
            {"sample_rate": 1.0, "PROFILING_MAX_DEPTH": 40})})
    assert server.client.get("/books/1/").status_code == 200
    log = server.wait_for_log("reqprof: GET /books/<int:pk>/ -> 200")
    assert "sample_rate=1 max_depth=40" in log


def test_django_async_view_under_asgi(run_server):
    server = run_server("django-uvicorn")
    data = report(server, "/abooks/5/")
    assert "abook_detail" in functions(data["root"])
    assert data["meta"]["route"] == "/abooks/<int:pk>/"
    assert data["meta"]["status"] == 200


@pytest.mark.parametrize("kind", ["flask-gunicorn-sync", "django-runserver"])
def test_failing_view_report_shows_the_exception(run_server, kind):
    server = run_server(kind)
    slash = "/" if framework(kind) == "django" else ""
    data = report(server, f"/fail{slash}")
    assert data["meta"]["exception"] == "RuntimeError: boom from the view"
    assert any(named(n, "fail") for n in functions(data["root"]))


@pytest.mark.parametrize("kind", ["flask-gunicorn-sync", "django-gunicorn-gthread",
                                  "django-uvicorn"])
def test_streams_are_reported_and_sampled_untouched(run_server, kind):
    server = run_server(kind, {"PROFILING_SAMPLE_RATE": "1"})
    slash = "/" if framework(kind) == "django" else ""
    expected = "".join(f"chunk {i}\n" for i in range(20))
    assert server.client.get(f"/stream{slash}").text == expected
    data = report(server, f"/stream{slash}")
    assert data["meta"]["response_bytes"] == len(expected)
    server.wait_for_log(f"reqprof: GET /stream{slash} -> 200")


def test_work_handed_to_a_thread_with_the_context_is_followed(run_server):
    server = run_server("flask-gunicorn-gthread")
    data = report(server, "/threads")
    assert total_wall(data["root"], "threaded_work") >= 0.02


# -- the WSGI protocol's corners ------------------------------------------------------

def test_wsgi_protocol_corners(run_server):
    server = run_server("wsgi-gunicorn", {"PROFILING_MANUAL_TIMEOUT": "1"})
    this = (TESTS_DIR / "wsgi_apps.py").read_bytes()
    # file_wrapper: served as is, and profiled.
    assert server.client.get("/file").content == this
    assert report(server, "/file")["meta"]["response_bytes"] == len(this)
    # start_response with exc_info replaces the first answer.
    error = server.client.get("/exc-info")
    assert error.status_code == 500 and error.headers["x-error"] == "1"
    meta = report(server, "/exc-info")["meta"]
    assert meta["status"] == 500 and meta["response_bytes"] == len(b"error page")
    # A body that raises: the report shows it.
    meta = report(server, "/raising-generator")["meta"]
    assert meta["exception"] == "RuntimeError: boom in the body"
    # write(): counted like yielded chunks.
    assert report(server, "/write")["meta"]["response_bytes"] == len(b"written, then returned")
    # An endless stream: cut at the time limit, its generator closed.
    started = time.monotonic()
    meta = report(server, "/endless")["meta"]
    assert meta["ended"] == "time limit" and meta["response_cut"] is True
    assert time.monotonic() - started < 1 + 5
    assert server.client.get("/").text == "hello"


def test_wsgi_sampled_responses_are_untouched(run_server, tmp_path):
    plain = CommandServer(GUNICORN + ["-k", "gthread", "--threads", "4",
                                      "wsgi_apps:bare_wsgi"], {}, tmp_path).wait_ready("/")
    server = run_server("wsgi-gunicorn", {"PROFILING_SAMPLE_RATE": "1"})
    try:
        for target in ("/", "/file", "/exc-info", "/write"):
            a, b = plain.client.get(target), server.client.get(target)
            assert (a.status_code, a.content) == (b.status_code, b.content), target
            assert {k: v for k, v in a.headers.items() if k != "date"} == \
                   {k: v for k, v in b.headers.items() if k != "date"}, target
        server.wait_for_log("reqprof: GET /write -> 200")
    finally:
        plain.close()


# -- misuse -------------------------------------------------------------------------------

def test_each_middleware_class_refuses_the_other_kinds_of_app():
    import reqprof
    import reqprof.django
    import reqprof.wsgi

    def wsgi_app(environ: Any, start_response: Any) -> Any:
        return []

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        pass

    def get_response(request: Any) -> Any:
        return None

    cases = [(reqprof.ProfilingMiddleware, wsgi_app, "reqprof.wsgi.ProfilingMiddleware"),
             (reqprof.ProfilingMiddleware, get_response,
              "use reqprof.django.ProfilingMiddleware in MIDDLEWARE"),
             (reqprof.wsgi.ProfilingMiddleware, asgi_app, "reqprof.ProfilingMiddleware"),
             (reqprof.wsgi.ProfilingMiddleware, get_response,
              "use reqprof.django.ProfilingMiddleware in MIDDLEWARE"),
             (reqprof.django.ProfilingMiddleware, wsgi_app, "reqprof.wsgi.ProfilingMiddleware"),
             (reqprof.django.ProfilingMiddleware, asgi_app, "reqprof.ProfilingMiddleware")]
    for cls, app, hint in cases:
        with pytest.raises(TypeError) as err:
            cls(app)
        assert hint.replace("in MIDDLEWARE", "in Django's MIDDLEWARE") in str(err.value) or \
            hint in str(err.value), (cls, str(err.value))


def test_asgi_class_in_django_middleware_stops_django_at_startup(tmp_path):
    script = (
        "import os, django\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'djangoapp.settings'\n"
        "from django.conf import settings\n"
        "settings.MIDDLEWARE = ['reqprof.ProfilingMiddleware']\n"
        "from django.core.wsgi import get_wsgi_application\n"
        "get_wsgi_application()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROFILING_", "ENABLE_"))}
    env.update(PYTHONPATH=str(TESTS_DIR), ENABLE_PROFILING="0",
               REQPROF_TEST_DB=str(tmp_path / "db.sqlite3"))
    done = subprocess.run([PY, "-c", script], env=env, capture_output=True, text=True,
                          timeout=DEADLINE, cwd=tmp_path)
    assert done.returncode != 0
    assert "TypeError" in done.stderr
    assert "use reqprof.django.ProfilingMiddleware in Django's MIDDLEWARE setting" in done.stderr


def test_django_middleware_removes_itself_when_off(run_server):
    server = run_server("django-runserver", {"ENABLE_PROFILING": "0"})
    assert server.client.get("/books/1/?profile=1").headers["content-type"] == "application/json"
    assert "reqprof" not in server.log()


# -- Litestar: one middleware copy per route ------------------------------------------------

def test_litestar_route_copies_share_one_configuration(serve, reqprof_logs, monkeypatch,
                                                      tmp_path):
    from litestar import Litestar, get

    from reqprof import ProfilingMiddleware

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENABLE_PROFILING", "1")
    monkeypatch.setenv("PROFILING_SAMPLE_RATE", "0")
    monkeypatch.setenv("PROFILING_MAX_CONCURRENT", "3")

    def route(n: int) -> Any:
        @get(f"/r{n}/{{item:int}}", sync_to_thread=False)
        def handler(item: int) -> dict:
            return {"route": n}
        return handler

    built: list = []

    class Counted(ProfilingMiddleware):
        def __init__(self, app: Any) -> None:
            super().__init__(app)
            built.append(self)

    app = Litestar(route_handlers=[route(n) for n in range(12)], middleware=[Counted])
    server = serve(app)
    for n in range(12):
        assert server.client.get(f"/r{n}/5").json() == {"route": n}
    data = server.client.get("/r3/5?profile=1&profile_format=json").json()
    assert data["meta"]["path"] == "/r3/5" and data["meta"]["route"] == "/r3/{item}"
    assert len(built) >= 12                          # one copy per route (at least)
    assert len({id(m.profiling) for m in built}) == 1    # one configuration: one slot pool
    started = [m for m in reqprof_logs.messages() if "profiling enabled" in m]
    assert len(started) == 1, started
