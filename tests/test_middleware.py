"""ProfilingMiddleware through a real server (uvicorn on 127.0.0.1) and a
real HTTP client: passthrough, manual reports, automatic sampling, logging,
attribution, output files, startup behaviour."""
from __future__ import annotations

import gc
import json
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps import CONC_NAMES, SERVED_FILE, make_app, profiled, sync_cpu_work
from profile_tree import find, functions, total_wall, walk
from reqprof import ProfilingMiddleware, Report, Settings
from reqprof import _output as output_module
from reqprof import _logging


def report_json(server: Any, target: str) -> dict:
    sep = "&" if "?" in target else "?"
    response = server.client.get(f"{target}{sep}profile=1&profile_format=json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()


# -- disabled ------------------------------------------------------------------

PASSTHROUGH_TARGETS = ["/json", "/items/7?x=1", "/stream", "/file", "/headers", "/empty",
                       "/redirect", "/nope", "/fail", "/json?profile=1", "/json?profile=0"]


def test_disabled_responses_are_identical_to_the_bare_app(serve):
    bare = serve(make_app())
    off = serve(ProfilingMiddleware(make_app(), settings=Settings(enabled=False)))
    for target in PASSTHROUGH_TARGETS:
        assert off.raw(target) == bare.raw(target), target
    body = b"a=1&b=2"
    assert off.raw("/echo/k?profile=1", method="POST", body=body) == \
        bare.raw("/echo/k?profile=1", method="POST", body=body)


def test_disabled_is_the_default(serve, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENABLE_PROFILING", raising=False)
    middleware = ProfilingMiddleware(make_app())
    assert middleware.settings.enabled is False
    server = serve(middleware)
    response = server.client.get("/json?profile=1")
    assert response.headers["content-type"] == "application/json"


def test_disabled_starts_no_thread_and_loads_no_engine(serve_process):
    bare = serve_process("apps:make_app")
    off = serve_process("apps:make_profiled_app")           # ENABLE_PROFILING unset
    on = serve_process("apps:make_profiled_app", env={"ENABLE_PROFILING": "true"})
    states = {}
    for name, server in (("bare", bare), ("off", off), ("on", on)):
        server.wait_started()
        for _ in range(3):
            assert server.client.get("/json?profile=1").status_code == 200
        states[name] = server.client.get("/_process").json()
    assert states["off"]["threads"] == states["bare"]["threads"]
    assert "reqprof._core" not in states["off"]["modules"]
    assert "reqprof.profiler" not in states["off"]["modules"]
    # The same probe sees the engine when profiling is on.
    assert "reqprof._core" in states["on"]["modules"]
    assert states["on"]["threads"] > states["bare"]["threads"]


def test_disabled_logs_at_debug_only(reqprof_logs):
    ProfilingMiddleware(make_app(), settings=Settings(enabled=False))
    assert [r.levelno for r in reqprof_logs.records] == [logging.DEBUG]
    assert "profiling disabled" in reqprof_logs.records[0].getMessage()


# -- manual profiling ----------------------------------------------------------

def test_manual_html_report_for_a_json_endpoint(serve):
    server = serve(profiled())
    response = server.client.get("/items/12345?profile=1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["cache-control"] == "no-store"
    assert response.text.lstrip().lower().startswith("<!doctype html")
    assert "/items/{item_id}" in response.text      # the request is described
    assert '"item":12345' not in response.text      # the app's body is not


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "True", "yes", "YES", "Yes", "%59es"])
def test_profile_param_accepts_its_spellings(serve, value):
    server = serve(profiled())
    response = server.client.get(f"/json?profile={value}")
    assert response.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("value", ["0", "", "no", "false", "2", "on", "y", "t", "1 ", "yes please"])
def test_profile_param_other_values_mean_no(serve, value):
    bare = serve(make_app())
    server = serve(profiled())
    target = f"/json?profile={value}"
    assert server.raw(target) == bare.raw(target)


def test_profile_param_without_value_or_elsewhere_means_no(serve):
    bare = serve(make_app())
    server = serve(profiled())
    for target in ["/json?profile", "/json?PROFILE=1", "/json?profiles=1", "/json?x=profile"]:
        assert server.raw(target) == bare.raw(target), target
    # In a POST form body it is not a query parameter.
    assert server.raw("/echo/form", method="POST", body=b"profile=1") == \
        bare.raw("/echo/form", method="POST", body=b"profile=1")


def test_profile_param_last_value_wins(serve):
    server = serve(profiled())
    assert server.client.get("/json?profile=0&profile=1").headers["content-type"] == \
        "text/html; charset=utf-8"
    assert server.client.get("/json?profile=1&profile=0").headers["content-type"] == \
        "application/json"


def test_manual_report_describes_the_request(serve):
    server = serve(profiled())
    bare_body = server.client.get("/items/42").content
    before = time.time()
    data = report_json(server, "/items/42?secret=hunter2")
    meta = data["meta"]
    assert meta["method"] == "GET"
    assert meta["path"] == "/items/42"
    assert meta["route"] == "/items/{item_id}"
    assert meta["status"] == 200
    assert meta["content_type"] == "application/json"
    assert meta["response_bytes"] == len(bare_body)
    assert meta["trigger"] == "manual"
    assert "hunter2" not in json.dumps(data)
    assert meta["query"] == "secret=*&profile=1&profile_format=json"
    assert before - 3600 < data["started_at"] < time.time() + 3600
    assert data["duration_s"] >= 0 and data["samples"] >= 0
    assert data["root"]["samples"] == data["samples"]


def test_manual_report_for_a_streaming_endpoint(serve):
    server = serve(profiled())
    streamed = server.client.get("/stream").content
    html = server.client.get("/stream?profile=1")
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert b"chunk 9" not in html.content         # the app's body was discarded
    meta = report_json(server, "/stream")["meta"]
    assert meta["response_bytes"] == len(streamed) == 10 * 800
    assert meta["content_type"].startswith("text/plain")


def test_manual_report_for_a_failing_endpoint(serve, reqprof_logs):
    server = serve(profiled())
    response = server.client.get("/fail?profile=1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "boom from the app" in response.text
    data = report_json(server, "/fail")
    assert data["meta"]["exception"] == "RuntimeError: boom from the app"
    assert data["meta"]["status"] in (None, 500)     # whatever the app sent before raising
    assert "failing_work" in functions(data["root"])
    errors = [r.getMessage() for r in reqprof_logs.records if r.levelno == logging.ERROR]
    assert errors and "GET /fail" in errors[0]
    assert errors[0].endswith("\nRuntimeError: boom from the app")    # the traceback, escaped
    assert ", in fail\n" in errors[0]


def test_manual_report_for_a_file_response(serve):
    server = serve(profiled())
    meta = report_json(server, "/file")["meta"]
    assert meta["response_bytes"] == SERVED_FILE.stat().st_size
    assert meta["content_type"].startswith("text/x-python")


def test_manual_report_replaces_body_headers(serve):
    server = serve(profiled())
    response = server.client.get("/headers?profile=1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-custom"] == "kept"
    assert response.cookies.get("session") == "s1"
    for dropped in ("etag", "content-security-policy", "content-disposition"):
        assert dropped not in response.headers


@pytest.mark.parametrize("target,status", [("/redirect", 307), ("/empty", 204), ("/nope", 404)])
def test_manual_report_for_any_status(serve, target, status):
    server = serve(profiled())
    response = server.client.get(f"{target}?profile=1")
    assert response.status_code == 200
    assert "location" not in response.headers
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert report_json(server, target)["meta"]["status"] == status


@pytest.mark.parametrize("fmt,content_type", [("json", "application/json"),
                                              ("text", "text/plain; charset=utf-8"),
                                              ("collapsed", "text/plain; charset=utf-8"),
                                              ("html", "text/html; charset=utf-8"),
                                              ("JSON", "application/json"),
                                              ("", "text/html; charset=utf-8")])
def test_profile_format(serve, fmt, content_type):
    server = serve(profiled())
    response = server.client.get(f"/sync?ms=30&profile=1&profile_format={fmt}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    if fmt.lower() == "json":
        assert response.json()["version"] == 1
    elif fmt == "text":
        assert "sync_cpu_work" in response.text
    elif fmt == "collapsed":
        line = next(l for l in response.text.splitlines() if "sync_cpu_work" in l)
        assert re.fullmatch(r".+ \d+", line)


def test_unknown_profile_format_serves_the_normal_response_and_warns(serve, reqprof_logs):
    bare = serve(make_app())
    server = serve(profiled())
    target = "/json?profile=1&profile_format=bogus"
    assert server.raw(target) == bare.raw(target)
    warnings = [m for m in reqprof_logs.messages(logging.WARNING) if "profile_format" in m]
    assert len(warnings) == 1 and "'bogus'" in warnings[0] and "json" in warnings[0]


def test_manual_works_with_sample_rate_zero_and_logs_nothing(serve, reqprof_logs):
    server = serve(profiled(sample_rate=0.0))
    assert server.client.get("/json?profile=1").headers["content-type"].startswith("text/html")
    server.wait_idle()
    assert reqprof_logs.summaries() == []


def test_app_receives_the_request_unchanged(serve):
    server = serve(profiled())
    response = server.client.post("/echo/k1?profile=1&profile_format=json&a=b%20c",
                                  content=b"payload \x00\xff", headers={"x-test": "yes"})
    assert response.headers["content-type"] == "application/json"
    assert server.client.get("/received/k1").json() == {
        "method": "POST", "query": "profile=1&profile_format=json&a=b%20c",
        "body": "payload \x00\xff", "x_test": "yes"}


# -- the pathsend extension (servers that offer it: granian, hypercorn) -------------

class PathsendServer:
    """Offers `http.response.pathsend` to the app and turns it into body
    messages, as a server supporting the extension does."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = dict(scope, extensions={**scope.get("extensions", {}),
                                            "http.response.pathsend": {}})

        async def server_send(message: dict) -> None:
            if message["type"] == "http.response.pathsend":
                message = {"type": "http.response.body",
                           "body": Path(message["path"]).read_bytes()}
            await send(message)

        await self.app(scope, receive, server_send)


def test_pathsend_file_responses(serve):
    bare = serve(PathsendServer(make_app()))
    auto = serve(PathsendServer(profiled(sample_rate=1.0)))
    assert auto.raw("/file") == bare.raw("/file")
    assert SERVED_FILE.read_bytes() in bare.raw("/file")
    meta = report_json(auto, "/file")["meta"]
    assert meta["response_bytes"] == SERVED_FILE.stat().st_size


# -- automatic sampling ----------------------------------------------------------

STANDARD_RECORD_KEYS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
IDENTICAL_TARGETS = PASSTHROUGH_TARGETS + ["/sync?ms=5", "/await?ms=5", "/json?profile=1&x=2"]


def test_sampled_responses_are_byte_identical(serve, reqprof_logs):
    bare = serve(make_app())
    auto = serve(profiled(sample_rate=1.0))
    targets = [t for t in IDENTICAL_TARGETS if "profile=1" not in t]    # not manual
    for target in targets:
        assert auto.raw(target) == bare.raw(target), target
    body = b"x" * 100_000
    assert auto.raw("/echo/big", method="POST", body=body) == \
        bare.raw("/echo/big", method="POST", body=body)
    auto.wait_idle()
    assert len(reqprof_logs.summaries()) == len(targets) + 1


def test_sampled_streaming_is_not_buffered(serve):
    auto = serve(profiled(sample_rate=1.0))
    with httpx.Client(base_url=auto.url, timeout=10) as client:
        with client.stream("GET", "/gated/stream1") as response:
            chunks = response.iter_raw()
            # Arrives while the app is still waiting: nothing held back.
            assert next(chunks) == b"first chunk\n"
            auto.client.get("/release/stream1")
            assert b"".join(chunks) == b"second chunk\n"


def test_rate_one_logs_every_request(serve, reqprof_logs):
    auto = serve(profiled(sample_rate=1.0))
    targets = ["/json", "/items/3", "/sync?ms=20", "/await?ms=20", "/stream", "/fail",
               "/nope"] * 3
    for target in targets:
        # uvicorn closes the connection after an app error: use a new one each time.
        auto.client.get(target, headers={"connection": "close"})
    auto.wait_idle()
    records = reqprof_logs.summaries()
    assert len(records) == len(targets)
    assert all(r.levelno == logging.INFO and r.name == "reqprof" for r in records)
    by_route = {r.reqprof_route or r.reqprof_path: r for r in records}
    item = by_route["/items/{item_id}"]
    first_line = item.getMessage().splitlines()[0]
    assert "GET /items/{item_id} -> 200 in " in first_line and " ms, " in first_line
    assert item.reqprof_method == "GET" and item.reqprof_status == 200
    assert item.reqprof_path == "/items/3"
    assert item.reqprof_duration_ms > 0 and isinstance(item.reqprof_samples, int)
    assert item.reqprof_trigger == "auto"
    failed = by_route["/fail"]
    assert failed.reqprof_exception == "RuntimeError: boom from the app"
    assert "raised RuntimeError" in failed.getMessage().splitlines()[0]
    sync = by_route["/sync"]
    assert 1 <= len(sync.reqprof_top) <= 3
    assert all(isinstance(name, str) and ms >= 0 for name, ms in sync.reqprof_top)
    assert "top: " in sync.getMessage().splitlines()[0]
    assert "sync_cpu_work" in sync.getMessage()           # the tree follows the summary
    for record in records:
        assert len(record.getMessage().splitlines()) <= 2 + _logging.TREE_MAX_LINES
        extra = set(vars(record)) - STANDARD_RECORD_KEYS
        assert extra and all(k.startswith("reqprof_") for k in extra), extra


def test_a_failing_request_leaves_no_profile_behind(serve, reqprof_logs):
    # Frameworks keep exceptions in reference cycles (anyio's task groups
    # do), and an exception's traceback holds the middleware's frames: they
    # must not keep a profile (up to PROFILING_MAX_BYTES of call tree) alive
    # until the cyclic GC happens to run.
    middleware = profiled(sample_rate=1.0)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await middleware(scope, receive, send)
        except RuntimeError as exc:     # the app sent its 500 before raising
            cycle: list = [exc]
            cycle.append(cycle)

    server = serve(app)
    gc.collect()
    gc.disable()
    try:
        for target in ("/fail", "/fail?profile=1", "/fail?profile=1&profile_format=nope"):
            assert server.client.get(target).status_code in (200, 500)
        server.wait_idle()
        left = [o for o in gc.get_objects() if isinstance(o, Report)]
        held = sum(1 for o in gc.get_objects() if isinstance(o, list) and o and o[-1] is o)
    finally:
        gc.enable()
    assert held == 2            # the app's exception, in its cycle, twice
    assert left == []
    assert len(reqprof_logs.summaries()) == 2


def test_rate_zero_logs_nothing(serve, reqprof_logs):
    auto = serve(profiled(sample_rate=0.0))
    for _ in range(50):
        auto.client.get("/json")
    auto.wait_idle()
    assert reqprof_logs.summaries() == []


def test_rate_point_three_samples_about_thirty_percent(serve, reqprof_logs):
    auto = serve(profiled(sample_rate=0.3))
    for _ in range(500):
        assert auto.client.get("/json").status_code == 200
    auto.wait_idle()
    sampled = len(reqprof_logs.summaries())
    # Binomial(500, 0.3): mean 150, sd ~10; this band is about 5 sd wide.
    assert 100 <= sampled <= 200, sampled


def test_output_dir_keeps_the_newest_reports(serve, tmp_path, monkeypatch, reqprof_logs):
    monkeypatch.setattr(output_module, "OUTPUT_KEEP", 3)
    out = tmp_path / "profiles"
    (out).mkdir()
    (out / "notes.txt").write_text("not ours")
    auto = serve(profiled(sample_rate=1.0, output_dir=str(out)))
    for i in range(6):
        auto.client.get(f"/items/{i}")
        auto.wait_idle()        # one at a time, so "newest" is well defined
    html = sorted(out.glob("reqprof-*.html"))
    js = sorted(out.glob("reqprof-*.json"))
    assert len(html) == 3 and len(js) == 3
    assert (out / "notes.txt").exists()
    kept_paths = [json.loads(p.read_text())["meta"]["path"] for p in js]
    assert kept_paths == ["/items/3", "/items/4", "/items/5"]
    assert html[-1].read_text().lstrip().lower().startswith("<!doctype html")
    assert [p.stem for p in html] == [p.stem for p in js]
    last = reqprof_logs.summaries()[-1]
    assert last.reqprof_report_path == str(html[-1])
    assert not list(out.glob("*.tmp"))


def test_output_dir_is_created_or_rejected(tmp_path):
    target = tmp_path / "a" / "b"
    ok = ProfilingMiddleware(make_app(), settings=Settings(enabled=True, output_dir=str(target)))
    assert target.is_dir() and ok.config_error is None
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = ProfilingMiddleware(make_app(),
                              settings=Settings(enabled=True, output_dir=str(blocker / "x")))
    assert "PROFILING_OUTPUT_DIR" in bad.config_error and "Not a directory" in bad.config_error


# -- what a report shows (through the real server) -----------------------------------

def test_sync_endpoint_function_appears_with_its_time(serve):
    server = serve(profiled())
    data = report_json(server, "/sync?ms=300")
    wall = total_wall(data["root"], "sync_cpu_work")
    assert 0.15 <= wall <= data["duration_s"] + 0.05, wall


def test_async_endpoint_shows_await(serve):
    server = serve(profiled())
    data = report_json(server, "/await?ms=300")
    [endpoint] = find(data["root"], "make_app.<locals>.await_endpoint")
    waits = [n for n, _ in walk(endpoint) if n["kind"] == "await"]
    assert waits, "no [await] under the endpoint"
    assert sum(n["wall_s"] for n in waits) >= 0.15


def test_tree_starts_at_the_app_not_the_server(serve):
    server = serve(profiled())
    names = functions(report_json(server, "/sync?ms=50")["root"])
    assert not [n for n in names if "uvicorn" in n or "h11_impl" in n or "run_asgi" in n]
    assert not [n for n in names if n.startswith("_Exchange.")]


def functions_outside_loop_busy(root: dict) -> set:
    out, stack = set(), [root]
    while stack:
        n = stack.pop()
        if n["kind"] != "loop-busy":
            out.add(n["function"])
            stack.extend(n["children"])
    return out


def test_concurrent_manual_reports_hold_only_their_own_work(serve):
    server = serve(profiled(max_concurrent=len(CONC_NAMES)))
    key = f"conc-{time.monotonic_ns()}"

    def get(name: str) -> dict:
        response = server.client.get(f"/conc/{name}", params={
            "gate_key": key, "n": len(CONC_NAMES), "profile": "1", "profile_format": "json"})
        assert response.status_code == 200
        return response.json()

    with ThreadPoolExecutor(len(CONC_NAMES)) as pool:
        reports = dict(zip(CONC_NAMES, pool.map(get, CONC_NAMES)))
    for name, data in reports.items():
        # (Another request's work shows only as what kept this one waiting
        # for the event loop: [event loop busy].)
        names = functions_outside_loop_busy(data["root"])
        assert name in names, name
        others = [other for other in CONC_NAMES if other != name and other in names]
        assert not others, f"{name}'s report holds {others}"


def test_settings_reach_the_engine(serve):
    server = serve(profiled(async_mode="strict", interval=0.002, max_depth=4,
                            overhead_budget=50))
    data = report_json(server, "/cpu?ms=50")
    assert data["async_mode"] == "strict"
    assert data["interval_s"] == pytest.approx(0.002)
    assert data["overhead_budget_percent"] == 50
    assert data["sampler_cpu_s"] >= 0 and data["sampler_cpu_percent"] >= 0
    assert data["max_depth"] == 4
    assert max(d for _, d in walk(data["root"])) <= 5
    assert data["truncated"] and "depth" in data["truncated_reasons"]


# -- other scopes ----------------------------------------------------------------------

def test_websocket_and_lifespan_pass_through(serve):
    from websockets.sync.client import connect

    server = serve(profiled(sample_rate=1.0))
    assert server.client.get("/ready").json() == {"ready": True}       # lifespan ran
    for path in ("/ws", "/ws?profile=1"):
        with connect(f"ws://127.0.0.1:{server.port}{path}", open_timeout=30) as ws:
            ws.send("hello")
            assert ws.recv(timeout=30) == "echo: hello"


# -- startup ---------------------------------------------------------------------------

def test_startup_line_with_effective_settings(reqprof_logs, tmp_path):
    ProfilingMiddleware(make_app(), settings=Settings(enabled=True, sample_rate=0.25,
                                                      max_depth=30, output_dir=str(tmp_path)))
    [record] = [r for r in reqprof_logs.records if r.levelno == logging.INFO]
    message = record.getMessage()
    assert "profiling enabled" in message
    for part in ("sample_rate=0.25", "max_depth=30", "async_mode=enabled", "interval=0.001s",
                 f"output_dir={tmp_path}"):
        assert part in message
    assert record.reqprof_sample_rate == 0.25


def test_keyword_settings_win_over_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENABLE_PROFILING", "true")
    monkeypatch.setenv("PROFILING_SAMPLE_RATE", "0.5")
    middleware = ProfilingMiddleware(make_app(), sample_rate=1.0, max_depth=9)
    assert middleware.settings == Settings(enabled=True, sample_rate=1.0, max_depth=9)
    assert "sample_rate=1.5" in ProfilingMiddleware(make_app(), sample_rate=1.5).config_error


def test_dotenv_and_uvicorn_logging(serve_process, tmp_path):
    (tmp_path / ".env").write_text("ENABLE_PROFILING=yes\nPROFILING_SAMPLE_RATE=1.0\n"
                                   "PROFILING_MAX_DEPTH=7\n")
    server = serve_process("apps:make_profiled_app", cwd=tmp_path,
                           env={"PROFILING_MAX_DEPTH": "9"})       # the environment wins
    server.wait_started()
    log = server.log()
    assert "INFO:     reqprof: profiling enabled (sample_rate=1 max_depth=9 " in log
    assert server.client.get("/items/5").json() == {"item": 5}
    log = server.wait_for_log("reqprof: GET /items/{item_id} -> 200 in ")
    assert "INFO:     reqprof: GET /items/{item_id}" in log


def test_bad_setting_stops_the_server_at_startup(serve_process):
    server = serve_process("apps:make_eager_app",
                           env={"ENABLE_PROFILING": "1", "PROFILING_SAMPLE_RATE": "abc"})
    assert server.wait_exit() != 0
    log = server.log()
    assert "Application startup failed" in log
    assert "PROFILING_SAMPLE_RATE='abc'" in log and "0.0 to 1.0" in log


def test_missing_extension_logs_error_and_passes_through(serve_process):
    server = serve_process("apps:make_profiled_app", no_core=True,
                           env={"ENABLE_PROFILING": "true", "PROFILING_SAMPLE_RATE": "1"})
    server.wait_started()
    assert "reqprof._core could not be loaded" in server.log()
    assert "ERROR" in server.log()
    response = server.client.get("/json?profile=1")
    assert response.headers["content-type"] == "application/json"
    assert response.json()["hello"] == "world"
    assert "reqprof: GET" not in server.log()


# -- any ASGI app ------------------------------------------------------------------------

async def plain_asgi_app(scope: dict, receive: Any, send: Any) -> None:
    """No framework: no route template in the scope."""
    assert scope["type"] == "http"
    sync_cpu_work(0.02)
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"plain", "more_body": True})
    await send({"type": "http.response.body", "body": b" asgi"})


def test_plain_asgi_app(serve):
    server = serve(ProfilingMiddleware(plain_asgi_app, settings=Settings(enabled=True,
                                                                         sample_rate=0.0)),
                   lifespan="off")
    assert server.client.get("/x").content == b"plain asgi"
    data = report_json(server, "/x/y")
    assert data["meta"]["route"] is None and data["meta"]["path"] == "/x/y"
    assert data["meta"]["status"] == 201 and data["meta"]["response_bytes"] == 10
    assert "plain_asgi_app" in functions(data["root"])


# -- failures inside reqprof never reach the request --------------------------------------
# Fault injection through the middleware's engine hook (the engine's own fault
# switches are exercised by the safety tests).

class ProfilerThatCannotStart:
    def __init__(self, **options: Any) -> None:
        pass

    def start(self, root_frame: Any = None) -> None:
        raise RuntimeError("injected: cannot start")


def test_profiler_start_failure_serves_normally_and_logs_once(serve, reqprof_logs):
    bare = serve(make_app())
    middleware = profiled(sample_rate=1.0)
    middleware.profiling._profiler_class = ProfilerThatCannotStart
    server = serve(middleware)
    for target in ["/json", "/json?profile=1", "/stream?profile=1", "/items/3"]:
        assert server.raw(target) == bare.raw(target), target
    errors = [m for m in reqprof_logs.messages(logging.ERROR) if "could not start" in m]
    assert len(errors) == 1 and "injected: cannot start" in errors[0]


def test_report_failure_sends_the_apps_own_response(serve, reqprof_logs):
    from reqprof.profiler import Profiler

    class ReportThatCannotRender:
        def __init__(self, report: Any) -> None:
            self.meta = report.meta

        def to_bytes(self, fmt: str) -> bytes:
            raise MemoryError("injected: cannot render")

    class ProfilerWithBrokenReport(Profiler):
        def stop(self) -> Any:
            return ReportThatCannotRender(super().stop())

    bare = serve(make_app())
    middleware = profiled()
    middleware.profiling._profiler_class = ProfilerWithBrokenReport
    server = serve(middleware)
    for target in ["/json", "/stream", "/headers", "/empty"]:
        profiled_target = f"{target}?profile=1&profile_format=json"
        assert server.raw(profiled_target) == bare.raw(profiled_target), target
    # The app's exception comes back as the server's own 500, as without reqprof.
    assert server.raw("/fail?profile=1&profile_format=json") == \
        bare.raw("/fail?profile=1&profile_format=json")
    errors = [m for m in reqprof_logs.messages(logging.ERROR) if "could not be written" in m]
    assert len(errors) == 1 and "injected: cannot render" in errors[0]


# -- logging -----------------------------------------------------------------------------

def test_fallback_handler_until_the_app_configures_logging(tmp_path):
    import subprocess
    import sys
    code = (
        "import logging, sys\n"
        "from reqprof import _logging\n"
        "log = logging.getLogger('reqprof')\n"
        "print(_logging.ensure_handler(), _logging.ensure_handler(), flush=True)\n"
        "log.info('first line')\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format='ROOT %(message)s')\n"
        "log.info('second line')\n"
        "log.warning('third line')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["True False", "ROOT third line"]
    assert out.stderr == "INFO:     first line\n"


def test_no_fallback_handler_when_logging_is_configured(tmp_path):
    import subprocess
    import sys
    code = ("import logging, sys\n"
            "logging.basicConfig(stream=sys.stdout, level=logging.INFO, format='ROOT %(message)s')\n"
            "from reqprof import _logging\n"
            "print(_logging.ensure_handler(), flush=True)\n"
            "logging.getLogger('reqprof').info('one')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.stdout.splitlines() == ["False", "ROOT one"] and out.stderr == ""


def node(name: str, wall: float, children: list = (), file: str = "", kind: str = "frame",
         self_wall: float = 0.0) -> dict:
    """A JSON-schema node (times in seconds)."""
    short = "fw/routing.py" if file else "app.py"
    return {"name": f"{name} ({short}:1)", "function": name, "file": file or "/srv/app.py",
            "short_file": short, "line": 1, "kind": kind, "wall_s": wall, "cpu_s": 0.0,
            "self_wall_s": self_wall, "self_cpu_s": 0.0, "samples": 1, "lines": {},
            "children": list(children)}


def test_a_request_shorter_than_the_interval_logs_no_call_tree(serve, reqprof_logs):
    # One tick a second: no tick lands in a quick request, whose time is
    # all [unsampled] (the engine saw none of it).
    auto = serve(profiled(sample_rate=1.0, interval=1.0))
    assert auto.client.get("/json").status_code == 200
    auto.wait_idle()
    [record] = reqprof_logs.summaries()
    message = record.getMessage()
    assert record.reqprof_samples == 0 and record.reqprof_top == []
    assert record.reqprof_undersampled == "short request"
    assert message.splitlines() == [message]                # the line, no tree
    assert ", 0 samples (auto), " in message
    assert message.endswith(", undersampled (short request); shorter than the sampling "
                            "interval (PROFILING_INTERVAL): no call tree")


def test_log_tree_folds_library_runs_and_keeps_app_frames():
    from reqprof.report import LIBRARY_DIRS, Report
    lib = "/usr/lib/python3/site-packages/fw/routing.py"
    stdlib = os.path.join(LIBRARY_DIRS[0], "asyncio", "events.py")
    tree = node("root", 1.0, [
        node("fw_a", 1.0, [node("fw_b", 1.0, [node("fw_c", 1.0, [
            node("endpoint", 0.9, [node("helper", 0.9, self_wall=0.9)]),
            node("fw_tail", 0.095, file=lib, self_wall=0.095),
            node("tiny", 0.005, self_wall=0.005),
        ], file=lib)], file=stdlib)], file=lib),
    ])
    report = Report.from_dict({"version": 1, "root": tree})
    lines = report.to_log_text(max_lines=40, min_percent=1.0).splitlines()
    assert lines == [
        "1000.0 ms 100%  root (app.py:1)",
        "└─ 1000.0 ms 100%  fw_a → … → fw_b [2 frames]",
        "   └─ 1000.0 ms 100%  fw_c (fw/routing.py:1)",
        "      ├─ 900.0 ms 90%  endpoint (app.py:1)",
        "      │  └─ 900.0 ms 90%  helper (app.py:1)",
        "      └─ 95.0 ms 10%  fw_tail (fw/routing.py:1)",
    ]
    assert report.to_log_text(max_lines=2).splitlines()[2:] == ["…"]    # 2 lines + "…"
    # Without a threshold nothing is folded nor hidden.
    assert len(report.to_log_text(max_lines=0, min_percent=0.0).splitlines()) == 8


def test_log_tree_folds_a_run_at_any_depth_and_keeps_a_lone_library_frame():
    from reqprof.report import Report
    lib = "/venv/lib/python3.11/site-packages/fw/mod.py"
    tree = node("root", 1.0, [
        node("app_a", 0.6, [node("lib_1", 0.6, [node("lib_2", 0.6, [node("lib_3", 0.6, [
            node("app_b", 0.6, self_wall=0.6)], file=lib)], file=lib)], file=lib)]),
        node("app_c", 0.4, [node("lib_only", 0.4, [node("app_d", 0.4, self_wall=0.4)],
                                 file=lib)]),
    ])
    lines = Report.from_dict({"version": 1, "root": tree}).to_log_text().splitlines()
    assert lines == [
        "1000.0 ms 100%  root (app.py:1)",
        "├─ 600.0 ms 60%  app_a (app.py:1)",
        "│  └─ 600.0 ms 60%  lib_1 → … → lib_3 [3 frames]",
        "│     └─ 600.0 ms 60%  app_b (app.py:1)",
        "└─ 400.0 ms 40%  app_c (app.py:1)",
        "   └─ 400.0 ms 40%  lib_only (fw/routing.py:1)",
        "      └─ 400.0 ms 40%  app_d (app.py:1)",
    ]
