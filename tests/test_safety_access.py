"""Who may profile: PROFILING_TOKEN, PROFILING_MANUAL, PROFILING_MAX_CONCURRENT,
the warning when manual profiling is open beyond loopback, and what reports
and logs may show of a request (path and reqprof's own query values only)."""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

import httpx
import pytest

from apps import make_app, profiled
from reqprof import ProfilingMiddleware, Settings
from reqprof import _profiling as profiling_module
from reqprof._meta import redact_query

TOKEN = "T0ken-for-the-tests_0123456789abcdef"
HTML = "text/html; charset=utf-8"


def with_token(**settings: Any) -> ProfilingMiddleware:
    return profiled(token=TOKEN, **settings)


# -- PROFILING_TOKEN --------------------------------------------------------------

def test_token_header_gives_the_report(serve):
    server = serve(with_token())
    response = server.client.get("/json?profile=1", headers={"X-Profiling-Token": TOKEN})
    assert response.status_code == 200 and response.headers["content-type"] == HTML


@pytest.mark.parametrize("headers", [
    {},                                                         # no header
    {"X-Profiling-Token": "wrong"},
    {"X-Profiling-Token": TOKEN[:-1]},                          # a prefix
    {"X-Profiling-Token": TOKEN + "x"},                         # longer
    {"X-Profiling-Token": TOKEN.lower()},                       # case matters
    {"X-Profiling-Token": ""},
    {"X-Profiling-Token": "x" * 8000},                          # huge
    {"X-Profiling-Token": f"{TOKEN}, {TOKEN}"},                 # a list
    {"X-Profiling-Tokens": TOKEN},                              # another header
    {"Authorization": f"Bearer {TOKEN}"},
])
def test_request_without_the_token_is_served_normally(serve, headers):
    bare = serve(make_app())
    server = serve(with_token())
    for target in ["/json?profile=1", "/items/3?profile=yes&profile_format=json",
                   "/stream?profile=1"]:
        assert server.raw(target, headers=headers) == bare.raw(target, headers=headers), target


def test_token_in_the_query_string_does_not_count(serve):
    bare = serve(make_app())
    server = serve(with_token())
    target = f"/json?profile=1&x-profiling-token={TOKEN}&token={TOKEN}"
    assert server.raw(target) == bare.raw(target)


def test_token_header_twice_does_not_count(serve):
    server = serve(with_token())
    response = server.client.get("/json?profile=1", headers=[
        ("X-Profiling-Token", TOKEN), ("X-Profiling-Token", TOKEN)])
    assert response.headers["content-type"] == "application/json"
    response = server.client.get("/json?profile=1", headers=[
        ("X-Profiling-Token", "nope"), ("X-Profiling-Token", TOKEN)])
    assert response.headers["content-type"] == "application/json"


def test_token_header_with_surrounding_spaces_counts(serve):
    server = serve(with_token())
    target = "/json?profile=1"
    raw = server.raw(target, headers={"X-Profiling-Token": f"  {TOKEN}\t"})
    assert b"content-type: text/html" in raw.lower()


def test_unauthorised_requests_may_still_be_auto_sampled(serve, reqprof_logs):
    server = serve(with_token(sample_rate=1.0))
    response = server.client.get("/items/5?profile=1")
    assert response.json() == {"item": 5}
    server.wait_idle()
    [record] = reqprof_logs.summaries()
    assert record.reqprof_trigger == "auto"


def test_the_app_never_sees_the_token(serve):
    server = serve(with_token())
    response = server.client.get("/seen/tok?profile=1&profile_format=json",
                                 headers={"X-Profiling-Token": TOKEN, "x-test": "kept"})
    assert response.headers["content-type"] == "application/json"
    assert TOKEN not in response.text
    seen = dict(server.client.get("/received/tok").json()["headers"])
    assert seen["x-test"] == "kept"
    assert "x-profiling-token" not in seen and TOKEN not in json.dumps(seen)


def test_rejected_attempts_log_one_warning_without_values(serve, reqprof_logs):
    server = serve(with_token())
    for i in range(20):
        server.client.get("/json?profile=1", headers={"X-Profiling-Token": f"guess-{i}"})
    warnings = [m for m in reqprof_logs.messages(logging.WARNING) if "X-Profiling-Token" in m]
    assert len(warnings) == 1
    assert "guess" not in warnings[0]


def test_token_is_compared_in_constant_time(serve, monkeypatch):
    calls = []
    real = profiling_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(profiling_module.hmac, "compare_digest", spy)
    server = serve(with_token())
    server.client.get("/json?profile=1", headers={"X-Profiling-Token": "short"})
    server.client.get("/json?profile=1", headers={"X-Profiling-Token": TOKEN})
    # Digests of equal length: neither the content nor the length leaks.
    assert calls == [(32, 32), (32, 32)]


def test_token_never_logged_at_startup(reqprof_logs):
    ProfilingMiddleware(make_app(), settings=Settings(enabled=True, token=TOKEN))
    [record] = [r for r in reqprof_logs.records if r.levelno == logging.INFO]
    assert TOKEN not in record.getMessage()
    assert "manual=token" in record.getMessage()
    assert "X-Profiling-Token" in record.getMessage()
    assert record.reqprof_token is True
    assert all(TOKEN not in repr(v) for v in vars(record).values())


def test_token_from_the_environment(serve_process):
    server = serve_process("apps:make_eager_app",
                           env={"ENABLE_PROFILING": "1", "PROFILING_TOKEN": TOKEN})
    server.wait_started()
    assert server.client.get("/json?profile=1").headers["content-type"] == "application/json"
    response = server.client.get("/json?profile=1", headers={"X-Profiling-Token": TOKEN})
    assert response.headers["content-type"] == HTML
    assert TOKEN not in server.log()


def test_bad_token_stops_the_server_without_showing_it(serve_process):
    server = serve_process("apps:make_eager_app",
                           env={"ENABLE_PROFILING": "1", "PROFILING_TOKEN": "tooShort1"})
    assert server.wait_exit() != 0
    log = server.log()
    assert "PROFILING_TOKEN=<hidden, 9 characters>" in log
    assert "tooShort1" not in log


# -- PROFILING_MANUAL -------------------------------------------------------------

def test_manual_off_ignores_profile_param(serve, reqprof_logs):
    bare = serve(make_app())
    server = serve(profiled(manual=False))
    for target in ["/json?profile=1", "/items/2?profile=true&profile_format=json",
                   "/json?profile=1&profile_format=bogus"]:
        assert server.raw(target) == bare.raw(target), target
    assert reqprof_logs.messages(logging.WARNING) == []     # not even the bad format


def test_manual_off_even_with_a_token(serve):
    server = serve(profiled(manual=False, token=TOKEN))
    response = server.client.get("/json?profile=1", headers={"X-Profiling-Token": TOKEN})
    assert response.headers["content-type"] == "application/json"


def test_manual_off_keeps_automatic_sampling(serve, reqprof_logs):
    server = serve(profiled(manual=False, sample_rate=1.0))
    assert server.client.get("/items/9?profile=1").json() == {"item": 9}
    server.wait_idle()
    assert [r.reqprof_trigger for r in reqprof_logs.summaries()] == ["auto"]


def test_manual_off_startup_line(reqprof_logs):
    ProfilingMiddleware(make_app(), settings=Settings(enabled=True, manual=False))
    [record] = [r for r in reqprof_logs.records if r.levelno == logging.INFO]
    assert "manual profiling is off" in record.getMessage()
    assert "?profile=1" not in record.getMessage()


# -- PROFILING_MAX_CONCURRENT -------------------------------------------------------

def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def free_slots(middleware: ProfilingMiddleware) -> int:
    return middleware.profiling.slots.free


@pytest.mark.parametrize("limit", [1, 2])
def test_manual_requests_above_the_cap_get_the_normal_response_marked_busy(serve, limit):
    middleware = profiled(max_concurrent=limit)
    server = serve(middleware)
    bare = serve(make_app())
    key = f"busy-{limit}-{time.monotonic_ns()}"
    with ThreadPoolExecutor(limit) as pool:
        held = [pool.submit(server.client.get, f"/gated/{key}?profile=1&profile_format=json")
                for _ in range(limit)]
        wait_for(lambda: free_slots(middleware) == 0, "the gated requests did not start")
        response = server.client.get("/items/4?profile=1")
        assert response.status_code == 200
        assert response.json() == {"item": 4}                   # the app's own response
        assert response.headers["x-profiling-skipped"] == "busy"
        expected = bare.client.get("/items/4")
        assert {k: v for k, v in response.headers.items() if k != "x-profiling-skipped"
                and k != "date"} == {k: v for k, v in expected.headers.items() if k != "date"}
        stream = server.client.get("/stream?profile=1")          # streamed through, marked
        assert stream.content == bare.client.get("/stream").content
        assert stream.headers["x-profiling-skipped"] == "busy"
        server.client.get(f"/release/{key}")
        reports = [f.result() for f in held]
    for report in reports:
        assert report.headers["content-type"] == "application/json"
        assert report.json()["meta"]["path"] == f"/gated/{key}"
    wait_for(lambda: free_slots(middleware) == limit, "slots were not given back")
    # Free again: profiled as usual.
    assert server.client.get("/items/4?profile=1").headers["content-type"] == HTML


def test_busy_is_only_said_to_authorised_callers(serve):
    middleware = profiled(max_concurrent=1, token=TOKEN)
    server = serve(middleware)
    bare = serve(make_app())
    key = f"busy-token-{time.monotonic_ns()}"
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(server.client.get, f"/gated/{key}?profile=1",
                           headers={"X-Profiling-Token": TOKEN})
        wait_for(lambda: free_slots(middleware) == 0, "the gated request did not start")
        assert server.raw("/json?profile=1") == bare.raw("/json?profile=1")   # no hint
        busy = server.client.get("/json?profile=1", headers={"X-Profiling-Token": TOKEN})
        assert busy.headers["x-profiling-skipped"] == "busy"
        server.client.get(f"/release/{key}")
        assert held.result().headers["content-type"] == HTML


def test_auto_sampling_above_the_cap_is_skipped_silently(serve, reqprof_logs):
    middleware = profiled(max_concurrent=2, sample_rate=1.0)     # one slot for sampling
    server = serve(middleware)
    bare = serve(make_app())
    key = f"busy-auto-{time.monotonic_ns()}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("GET", f"/gated/{key}") as held:
            chunks = held.iter_raw()
            assert next(chunks) == b"first chunk\n"
            assert free_slots(middleware) == 1       # the one kept for ?profile=1
            for target in ["/json", "/items/8", "/stream"]:
                assert server.raw(target) == bare.raw(target), target
            server.client.get(f"/release/{key}")
            assert b"".join(chunks) == b"second chunk\n"
    server.wait_idle()
    paths = sorted(r.reqprof_path for r in reqprof_logs.summaries())
    # The held request and the release call (after the slot was free again,
    # or not: it ran while the stream still held it) are the only candidates.
    assert f"/gated/{key}" in paths
    assert not {"/json", "/items/8", "/stream"} & set(paths)
    info = [m for m in reqprof_logs.messages(logging.INFO) if "PROFILING_MAX_CONCURRENT" in m]
    assert len(info) == 1


def test_slots_come_back_after_failures_and_cancellation(serve):
    middleware = profiled(max_concurrent=2, sample_rate=1.0)
    server = serve(middleware)
    for target in ["/fail", "/fail?profile=1", "/nope?profile=1", "/json?profile=1&profile_format=text"]:
        server.client.get(target, headers={"connection": "close"})
    # A client that goes away in the middle of a profiled stream.
    key = f"gone-{time.monotonic_ns()}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("GET", f"/gated/{key}") as held:
            assert next(held.iter_raw()) == b"first chunk\n"
    server.client.get(f"/release/{key}")
    server.wait_idle()
    assert free_slots(middleware) == 2


def test_concurrent_flood_never_exceeds_the_cap(serve):
    from reqprof import _core

    middleware = profiled(max_concurrent=3, sample_rate=1.0)
    server = serve(middleware)
    seen = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(_core.stats()["active_sessions"])
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(
                lambda i: server.client.get(f"/await?ms=20&profile={i % 2}").status_code,
                range(160)))
    finally:
        stop.set()
        watcher.join()
    assert results == [200] * 160
    assert max(seen) <= 3 and max(seen) >= 1
    server.wait_idle()
    assert free_slots(middleware) == 3


# -- open manual profiling beyond loopback ----------------------------------------------

async def _plain_app(scope: dict, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def call(middleware: ProfilingMiddleware, server: Optional[tuple], query: bytes = b"",
         headers: Optional[list] = None) -> list:
    """One request through the middleware, with this scope["server"]."""
    sent: list = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
             "root_path": "", "query_string": query, "headers": headers or [],
             "client": ("127.0.0.1", 50000), "server": server}
    asyncio.run(middleware(scope, receive, send))
    return sent


def open_warnings(logs: Any) -> list[str]:
    return [m for m in logs.messages(logging.WARNING) if "manual profiling is open" in m]


@pytest.mark.parametrize("server", [("127.0.0.1", 8000), ("127.5.6.7", 80), ("::1", 8000),
                                    ("::ffff:127.0.0.1", 8000), ("localhost", 8000),
                                    ("/run/app.sock", None), None])
def test_no_warning_on_loopback_or_unix_socket(reqprof_logs, server):
    middleware = ProfilingMiddleware(_plain_app, settings=Settings(enabled=True, sample_rate=0))
    for _ in range(3):
        call(middleware, server)
    assert open_warnings(reqprof_logs) == []


@pytest.mark.parametrize("server", [("10.1.2.3", 8000), ("192.0.2.10", 443), ("0.0.0.0", 8000),
                                    ("2001:db8::1", 8000), ("fe80::1%eth0", 8000),
                                    ("app.internal", 8000)])
def test_warning_once_when_served_beyond_loopback(reqprof_logs, server):
    middleware = ProfilingMiddleware(_plain_app, settings=Settings(enabled=True, sample_rate=0))
    call(middleware, ("127.0.0.1", 8000))
    assert open_warnings(reqprof_logs) == []
    for _ in range(3):
        call(middleware, server)
    call(middleware, ("10.9.9.9", 1))
    [warning] = open_warnings(reqprof_logs)
    assert f"{server[0]}:{server[1]}" in warning
    assert "PROFILING_TOKEN" in warning and "PROFILING_MANUAL=false" in warning


@pytest.mark.parametrize("settings", [dict(token=TOKEN), dict(manual=False)])
def test_no_warning_when_manual_profiling_is_closed(reqprof_logs, settings):
    middleware = ProfilingMiddleware(_plain_app, settings=Settings(enabled=True, sample_rate=0,
                                                                   **settings))
    call(middleware, ("10.1.2.3", 8000))
    call(middleware, ("127.0.0.1", 8000), b"profile=1", [(b"x-forwarded-for", b"203.0.113.9")])
    assert open_warnings(reqprof_logs) == []


def test_warning_when_a_manual_request_comes_through_a_proxy(serve, reqprof_logs):
    server = serve(profiled())
    server.client.get("/json", headers={"X-Forwarded-For": "203.0.113.9"})   # not manual
    assert open_warnings(reqprof_logs) == []
    for _ in range(2):
        server.client.get("/json?profile=1", headers={"X-Forwarded-For": "203.0.113.9"})
    [warning] = open_warnings(reqprof_logs)
    assert "proxy" in warning and "x-forwarded-for header" in warning
    assert "203.0.113.9" not in warning                   # a header's value is never logged


def test_odd_server_values_are_harmless(reqprof_logs):
    middleware = ProfilingMiddleware(_plain_app, settings=Settings(enabled=True, sample_rate=0))
    for server in [("", 0), (b"10.0.0.1", 80), ("x" * 10_000, 1), ("\n\x00evil", 2), ()]:
        assert call(middleware, server)[-1]["body"] == b"ok"
    for warning in open_warnings(reqprof_logs):
        assert "\n" not in warning and "\x00" not in warning and len(warning) < 11_000


# -- what reports and logs show of a request -------------------------------------------

SECRETS = {
    "query": "QuerySecret-1a2b3c",
    "email": "someone%40example.org",
    "auth": "Bearer HeaderSecret-4d5e6f",
    "cookie": "session=CookieSecret-7a8b9c",
    "custom": "CustomHeaderSecret-0d0e0f",
}
SECRET_WORDS = ["QuerySecret", "someone", "example.org", "HeaderSecret", "CookieSecret",
                "CustomHeaderSecret", TOKEN]


def secret_request(server: Any, target: str, extra: str = "", token: bool = True) -> httpx.Response:
    headers = {"Authorization": SECRETS["auth"], "Cookie": SECRETS["cookie"],
               "X-Custom": SECRETS["custom"]}
    if token:
        headers["X-Profiling-Token"] = TOKEN
    return server.client.get(
        f"{target}?api_key={SECRETS['query']}&email={SECRETS['email']}&profile_id=77"
        f"&profile=1{extra}", headers=headers)


@pytest.mark.parametrize("fmt", ["html", "json", "text", "collapsed", "speedscope", "pprof"])
def test_reports_hold_no_query_or_header_values(serve, fmt):
    middleware = with_token()
    assert fmt in middleware.profiling.formats
    server = serve(middleware)
    response = secret_request(server, "/items/31", f"&profile_format={fmt}")
    assert response.status_code == 200
    body = response.content
    if fmt == "pprof":
        import gzip
        body = gzip.decompress(body)
    for word in SECRET_WORDS:
        assert word.encode() not in body, (fmt, word)
    if fmt == "json":
        assert response.json()["meta"]["query"] == \
            f"api_key=*&email=*&profile_id=*&profile=1&profile_format={fmt}"


def test_logs_and_saved_reports_hold_no_query_or_header_values(serve, reqprof_logs, tmp_path):
    server = serve(with_token(sample_rate=1.0, output_dir=str(tmp_path)))
    secret_request(server, "/items/32", token=False)         # auto-sampled, not manual
    secret_request(server, "/fail", token=False)
    server.wait_idle()
    assert len(reqprof_logs.summaries()) == 2
    for record in reqprof_logs.records:
        text = record.getMessage() + " " + repr(vars(record))
        for word in SECRET_WORDS:
            assert word not in text, word
    files = list(tmp_path.iterdir())
    assert len(files) == 4
    for path in files:
        data = path.read_text()
        for word in SECRET_WORDS:
            assert word not in data and word not in path.name, (path.name, word)


def test_only_reqprofs_own_parameters_keep_their_values():
    assert redact_query(
        b"a=1&profile=1&profile_format=json&profile_id=5&profiler=x&PROFILE=2&b") == \
        "a=*&profile=1&profile_format=json&profile_id=*&profiler=*&PROFILE=*&b=*"
    assert redact_query(b"") == ""
    assert redact_query(b"%70rofile=%31&t=%FF") == "profile=1&t=*"
    huge = redact_query(b"&".join(b"k%d=v" % i for i in range(100_000)))
    assert len(huge) <= 500 and "v" not in huge.replace("k", "")


def test_output_dir_that_cannot_be_made_is_reported_briefly(tmp_path):
    middleware = ProfilingMiddleware(
        make_app(), settings=Settings(enabled=True, output_dir=str(tmp_path / ("d" * 5000))))
    assert "PROFILING_OUTPUT_DIR" in middleware.config_error
    assert len(middleware.config_error) < 600
