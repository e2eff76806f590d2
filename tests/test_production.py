"""The production view through real servers: every request profiled, the
slow and failed ones kept (PROFILING_SLOW_MS), per-route aggregates and
kept reports in one SQLite store shared by worker processes, the
dashboard's API against what the clients saw, and a store that cannot be
used never touching a request."""
from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps import make_app
from conftest import DEADLINE, CommandServer
from reqprof import ProfilingMiddleware, Settings
from reqprof import _production as production_module
from reqprof.dashboard import DashboardData, make_server
from reqprof.store import Store

pytestmark = pytest.mark.server

PY = sys.executable
SANITIZED = os.environ.get("REQPROF_EXPECT_SANITIZED") == "1"


def quantile(values: list[float], q: float) -> float:
    """The ceil(q * n)-th smallest value: the histogram's definition."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def start_workers(kind: str, store: Path, tmp_path: Path, env: dict) -> CommandServer:
    argv = {
        "uvicorn": [PY, "-m", "uvicorn", "--fd", "{fd}", "--workers", "2", "--factory",
                    "apps:make_profiled_app", "--no-access-log"],
        "gunicorn": [PY, "-m", "gunicorn", "--bind", "fd://{fd}", "-w", "2", "-k",
                     "uvicorn_worker.UvicornWorker", "apps:make_profiled_app()"],
    }[kind]
    return CommandServer(argv, {"ENABLE_PROFILING": "1", "PROFILING_SAMPLE_RATE": "1",
                                "PROFILING_STORE": str(store), **env},
                         tmp_path).wait_ready("/json")


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_workers_share_one_store_and_the_api_tells_the_truth(kind, tmp_path):
    store_path = tmp_path / "profiles.db"
    # Slots for every request at once: each is profiled, so each slow one
    # has a report to keep.
    server = start_workers(kind, store_path, tmp_path, {"PROFILING_SLOW_MS": "1650",
                                                        "PROFILING_MAX_CONCURRENT": "32"})
    # 800..2300 ms, none near the slow threshold: the client's own
    # milliseconds (a connection, its threads, a loaded machine) stay well
    # under 2% of each.
    sleeps = [800 + 100 * (i * 7 % 16) for i in range(60)]
    timings: list[float] = []

    # A connection each (no keep-alive): both workers get requests.
    client = httpx.Client(base_url=server.url, timeout=DEADLINE,
                          limits=httpx.Limits(max_keepalive_connections=0))

    def get(ms: int) -> None:
        t = time.perf_counter()
        r = client.get(f"/await?ms={ms}")
        timings.append((time.perf_counter() - t) * 1000.0)
        assert r.status_code == 200

    with ThreadPoolExecutor(8) as pool, client:
        list(pool.map(get, sleeps))
    server.close()      # graceful: each worker writes what it has before it exits
    assert server.proc.returncode == 0, server.log()
    data = DashboardData(Store(str(store_path), readonly=True))
    [route] = [r for r in data.routes() if r["route"] == "/await"]
    assert route["count"] == len(sleeps) and route["errors"] == 0
    # The store's quantiles are histogram buckets about 1% wide (1499.1
    # and 1515.5 ms around 1.5 s), which leaves the client's own time only
    # the rest of the tolerance. Under ASan (make test-asan) the client and
    # the servers run several times slower: the clients' own time is no
    # longer small beside 1 s.
    tolerance = 0.10 if SANITIZED else 0.03
    for q, key in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
        client = quantile(timings, q)
        assert abs(route[key] - client) <= tolerance * client, (key, route[key], client)
    rows = data.store.connection().execute(
        "SELECT DISTINCT pid FROM route_windows WHERE route = '/await'").fetchall()
    assert len(rows) == 2, "both workers' data"
    kept = data.requests(route="/await", limit=1000)
    assert len(kept) == sum(1 for ms in sleeps if ms >= 1650)
    assert all(k["duration_ms"] >= 1650 and k["kept_because"] == "slow" for k in kept)
    report = json.loads(data.report_json(kept[0]["id"]))
    assert report["meta"]["path"] == "/await" and report["duration_s"] >= 1.65
    profile = data.profile("GET", "/await")
    assert profile["meta"]["requests"] == len(sleeps)
    assert profile["root"]["wall_s"] >= sum(sleeps) / 1000.0 * 0.9


def test_slow_capture_keeps_only_slow_and_failed_reports(serve, reqprof_logs, tmp_path):
    server = serve(ProfilingMiddleware(make_app(), settings=Settings(
        enabled=True, sample_rate=1.0, slow_ms=150, store=str(tmp_path / "s.db"))))
    for target in ["/items/1", "/await?ms=10", "/await?ms=200", "/json"]:
        assert server.client.get(target).status_code == 200
    assert server.client.get("/fail", headers={"connection": "close"}).status_code == 500
    server.wait_idle()
    kept = {(r.reqprof_path, r.getMessage().split("(")[1].split(")")[0])
            for r in reqprof_logs.summaries()}
    assert {path for path, _ in kept} == {"/await", "/fail"}
    production = server.server.config.app.profiling.production
    production.flush(final=True)
    store = Store(str(tmp_path / "s.db"), readonly=True)
    because = sorted((r["path"], r["kept_because"]) for r in store.requests())
    assert because == [("/await", "slow"), ("/fail", "error")]
    counted = {r["route"]: r["count"] for r in DashboardData(store).routes()}
    assert counted == {"/items/{item_id}": 1, "/await": 2, "/json": 1, "/fail": 1}


def test_manual_reports_are_stored_as_asked(serve, tmp_path):
    server = serve(ProfilingMiddleware(make_app(), settings=Settings(
        enabled=True, sample_rate=0.0, store=str(tmp_path / "s.db"))))
    assert server.client.get("/items/3?profile=1&profile_format=json").status_code == 200
    server.wait_idle()
    server.server.config.app.profiling.production.flush(final=True)
    [kept] = Store(str(tmp_path / "s.db"), readonly=True).requests()
    assert kept["kept_because"] == "asked" and kept["route"] == "/items/{item_id}"


def test_routes_past_the_cap_share_other_routes(serve, tmp_path):
    async def plain(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = serve(ProfilingMiddleware(plain, settings=Settings(
        enabled=True, sample_rate=1.0, max_routes=3, store=str(tmp_path / "s.db"))),
        lifespan="off")
    for i in range(8):
        assert server.client.get(f"/p{i}").text == "ok"
    server.wait_idle()
    server.server.config.app.profiling.production.flush(final=True)
    routes = {r["route"]: r["count"] for r in DashboardData(
        Store(str(tmp_path / "s.db"), readonly=True)).routes()}
    assert len(routes) == 4 and routes["[other routes]"] == 5
    assert sum(routes.values()) == 8


@pytest.mark.parametrize("bad", ["not-a-db", "missing-dir", "newer"])
def test_a_store_that_cannot_be_used_is_said_once_and_requests_go_on(serve, reqprof_logs,
                                                                      tmp_path, bad):
    path = tmp_path / "s.db"
    if bad == "not-a-db":
        path.write_text("plain text, not SQLite" * 100)
    elif bad == "missing-dir":
        path = tmp_path / "nope" / "s.db"
    else:
        Store(str(path)).close()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 42")
        conn.close()
    server = serve(ProfilingMiddleware(make_app(), settings=Settings(
        enabled=True, sample_rate=1.0, store=str(path))))
    for i in range(5):
        assert server.client.get(f"/items/{i}").json() == {"item": i}
    assert server.client.get("/items/9?profile=1").headers["content-type"].startswith("text/html")
    server.wait_idle()
    errors = [m for m in reqprof_logs.messages(logging.ERROR) if "store" in m]
    assert len(errors) == 1 and str(path) in errors[0], errors
    assert "profiling goes on without the store" in errors[0]
    assert len(reqprof_logs.summaries()) == 5


def test_a_locked_store_drops_nothing_it_can_keep(serve, tmp_path, monkeypatch):
    monkeypatch.setattr(production_module, "FLUSH_SECONDS", 0.05)
    path = tmp_path / "s.db"
    Store(str(path)).close()
    server = serve(ProfilingMiddleware(make_app(), settings=Settings(
        enabled=True, sample_rate=1.0, slow_ms=0, store=str(path))))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")      # another process holds the database
    try:
        started = time.monotonic()
        for i in range(20):
            assert server.client.get(f"/items/{i}").status_code == 200
        assert time.monotonic() - started < 20     # requests never waited for the store
        time.sleep(0.5)
        production = server.server.config.app.profiling.production
        assert production.dropped["busy"] > 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    server.wait_idle()
    production.flush(final=True)
    assert len(Store(str(path), readonly=True).requests(limit=100)) == 20


# -- the dashboard's HTTP API -----------------------------------------------------------

def filled_store(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    mw = ProfilingMiddleware(make_app(), settings=Settings(
        enabled=True, sample_rate=1.0, slow_ms=100, store=str(path)))
    from conftest import ThreadServer

    server = ThreadServer(mw)
    try:
        for target in ["/items/1", "/items/2", "/await?ms=150", "/json"]:
            server.client.get(target)
        server.wait_idle()
        mw.profiling.production.flush(final=True)
    finally:
        server.close()
    return path


def serve_dashboard(path: Path, host: str = "127.0.0.1", token: Any = None) -> Any:
    server = make_server(str(path), host, 0, token)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_dashboard_api(tmp_path):
    server = serve_dashboard(filled_store(tmp_path))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with httpx.Client(base_url=base, timeout=DEADLINE) as client:
            routes = client.get("/api/routes", params={"since": 0}).json()["routes"]
            by_route = {r["route"]: r for r in routes}
            assert by_route["/items/{item_id}"]["count"] == 2
            for key in ("method", "route", "count", "errors", "p50_ms", "p95_ms", "p99_ms",
                        "max_ms", "wall_s", "cpu_s"):
                assert key in by_route["/await"]
            profile = client.get("/api/profile", params={"method": "GET",
                                                         "route": "/items/{item_id}"}).json()
            assert profile["meta"]["requests"] == 2
            awaited = client.get("/api/profile", params={"method": "GET",
                                                         "route": "/await"}).json()
            assert awaited["root"]["wall_s"] >= 0.15 and awaited["root"]["children"]
            [slow] = client.get("/api/requests", params={"min_ms": 100}).json()["requests"]
            assert slow["route"] == "/await" and slow["status"] == 200
            assert client.get(f"/api/requests/{slow['id']}").json()["meta"]["path"] == "/await"
            page = client.get(f"/requests/{slow['id']}")
            assert page.headers["content-type"].startswith("text/html")
            assert '"path":"/await"' in page.text
            assert client.get("/api/requests/999999").status_code == 404
            assert client.get("/api/profile", params={"method": "GET"}).status_code == 400
            assert client.get("/api/routes", params={"since": "soon"}).status_code == 400
            home = client.get("/")
            assert home.status_code == 200 and "default-src 'none'" in \
                home.headers["content-security-policy"]
    finally:
        server.shutdown()
        server.server_close()


def test_dashboard_needs_a_token_beyond_loopback(tmp_path):
    path = filled_store(tmp_path)
    with pytest.raises(ValueError, match="not a loopback address"):
        make_server(str(path), "0.0.0.0", 0)
    token = "dash-token-0123456789"
    server = serve_dashboard(path, "0.0.0.0", token)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert httpx.get(base + "/api/routes").status_code == 401
        assert httpx.get(base + "/").status_code == 303
        assert httpx.get(base + "/api/routes",
                         headers={"Authorization": f"Bearer {token}"}).status_code == 200
        wrong = httpx.post(base + "/login", data={"token": "nope"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        login = httpx.post(base + "/login", data={"token": token})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        with httpx.Client(base_url=base, cookies=login.cookies) as client:
            assert client.get("/api/routes").status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_cli_routes_and_bad_stores(tmp_path):
    import subprocess

    path = filled_store(tmp_path)
    done = subprocess.run([PY, "-m", "reqprof", "routes", "--store", str(path), "--since", "all"],
                          capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["METHOD", "ROUTE", "COUNT"]
    assert any(line.split()[:3] == ["GET", "/items/{item_id}", "2"] for line in lines)
    (tmp_path / "text.db").write_text("not a database" * 50)
    for bad in (tmp_path / "text.db", tmp_path / "missing" / "x.db"):
        for command in (["routes"], ["dashboard", "--port", "0"]):
            done = subprocess.run([PY, "-m", "reqprof", *command, "--store", str(bad)],
                                  capture_output=True, text=True, timeout=DEADLINE)
            assert done.returncode == 2
            assert done.stderr.startswith("reqprof: error: reqprof store ")
            assert str(bad) in done.stderr and done.stderr.count("\n") == 1
