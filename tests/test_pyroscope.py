"""Pushing to a real Grafana Pyroscope server (2.2.1): real traffic through
an app under uvicorn (and gunicorn -w 2), then Pyroscope's own query API
says what arrived. Fault tests with the same server (stopped mid-run, a
slow proxy in front of it) and a stand-in server for the 413/429/500
answers. OpenTelemetry with the real SDK.

The server is found through REQPROF_PYROSCOPE_DIR (the directory holding
`run-pyroscope`; the Makefile and .ci/run point it at the shared tools next
to the checkout; tests using it get the `server` marker, as do the
others that run a server). Without it these tests are skipped, and fail under CI
(``REQPROF_REQUIRE_SERVERS`` set: .ci/run sets it when the server is there)."""
from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from conftest import DEADLINE, CommandServer, ThreadServer, free_port
from pyroscope_app import make_app
from reqprof import ProfilingMiddleware, Settings
from reqprof import _push
from reqprof._logging import RateLimited

PY = sys.executable
HOT = "pyroscope_hot"
WALL = "wall:wall:nanoseconds:wall:nanoseconds"
CPU = "wall:cpu:nanoseconds:wall:nanoseconds"


# -- the server ------------------------------------------------------------------

#: What `make test-asan` sets for the tested Python processes only.
SANITIZER_ENV = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC")


class Pyroscope:
    """A Pyroscope server started by `run-pyroscope` in a data directory."""

    def __init__(self, tools: Path, data: Path) -> None:
        self.tools = tools
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.started_ms = int(time.time() * 1000)

    def start(self) -> None:
        # Without the sanitizer runtime a sanitized test run preloads: the
        # start script's curl never answered under it.
        env = {k: v for k, v in os.environ.items() if k not in SANITIZER_ENV}
        out = subprocess.run([str(self.tools / "run-pyroscope"), str(self.data), str(self.port)],
                             capture_output=True, text=True, timeout=180, env=env)
        assert out.returncode == 0, f"pyroscope did not start:\n{out.stderr}\n{self.log()}"

    def stop(self) -> None:
        pid = int((self.data / "pyroscope.pid").read_text())
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + DEADLINE
        while self.listening():
            assert time.monotonic() < deadline, "pyroscope did not stop"
            time.sleep(0.1)

    def listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def log(self) -> str:
        path = self.data / "pyroscope.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def query(self, method: str, body: dict) -> dict:
        body = {"start": self.started_ms - 60_000, "end": int(time.time() * 1000) + 60_000,
                **body}
        request = urllib.request.Request(f"{self.url}/querier.v1.QuerierService/{method}",
                                         json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=DEADLINE) as response:
            return json.loads(response.read())

    def label_values(self, name: str, service: str) -> set:
        got = self.query("LabelValues", {"name": name,
                                         "matchers": [f'{{service_name="{service}"}}']})
        return set(got.get("names", []))

    def flame(self, service: str, profile_type: str = WALL, **labels: str) -> "Flame":
        selector = ",".join([f'service_name="{service}"']
                            + [f'{k}="{v}"' for k, v in labels.items()])
        got = self.query("SelectMergeStacktraces", {"profileTypeID": profile_type,
                                                    "labelSelector": "{" + selector + "}"})
        return Flame(got.get("flamegraph", {}))


    def span_flame(self, service: str, span_id: str) -> "Flame":
        got = self.query("SelectMergeSpanProfile", {
            "profileTypeID": WALL, "labelSelector": f'{{service_name="{service}"}}',
            "spanSelector": [span_id]})
        return Flame(got.get("flamegraph", {}))


class Flame:
    """Pyroscope's merged flame graph: the total, and a function's share."""

    def __init__(self, graph: dict) -> None:
        self.names = graph.get("names", [])
        self.levels = [[int(v) for v in level.get("values", [])]
                       for level in graph.get("levels", [])]

    @property
    def total(self) -> int:
        return self.levels[0][1] if self.levels and self.levels[0] else 0

    def function_total(self, name: str) -> int:
        # Nodes are [offset, total, self, name index] quadruples.
        return sum(level[i + 1] for level in self.levels for i in range(0, len(level), 4)
                   if self.names[level[i + 3]] == name)


@pytest.fixture(scope="session")
def pyroscope(tmp_path_factory: pytest.TempPathFactory) -> Any:
    where = os.environ.get("REQPROF_PYROSCOPE_DIR", "")
    tools = Path(where)
    if not where or not (tools / "run-pyroscope").is_file():
        why = (f"no Pyroscope server: REQPROF_PYROSCOPE_DIR={where!r} must name the directory "
               "holding run-pyroscope (make and .ci/run set it)")
        if os.environ.get("REQPROF_REQUIRE_SERVERS"):
            pytest.fail(why)
        pytest.skip(why)
    server = Pyroscope(tools, tmp_path_factory.mktemp("pyroscope"))
    server.start()
    yield server
    server.stop()


def wait_for(what: str, check: Callable[[], Any], deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < end, f"{what}: not within {deadline:.0f} s"
        time.sleep(0.5)


# -- an app whose own profiles are the oracle ---------------------------------------

class Oracle:
    """Every profiled request's folded stacks (the report's own writer),
    taken when the pusher records it: what Pyroscope should hold."""

    def __init__(self, app: ProfilingMiddleware) -> None:
        self.total_us = 0
        self.hot_us = 0
        self.lock = threading.Lock()
        pusher = app.profiling.pusher
        record = pusher.record

        def recording(report: Any, kept: bool) -> None:
            folded = report.to_bytes("collapsed").decode()
            with self.lock:
                for line in folded.splitlines():
                    stack, _, us = line.rpartition(" ")
                    self.total_us += int(us)
                    if f"{HOT} (" in stack:
                        self.hot_us += int(us)
            record(report, kept)

        pusher.record = recording

    @property
    def hot_share(self) -> float:
        return self.hot_us / self.total_us


def pushing_app(url: str, service: str, **settings: Any) -> ProfilingMiddleware:
    options = dict(enabled=True, sample_rate=1.0, max_concurrent=16, pyroscope_url=url,
                   service_name=service, push_interval=1, env_file=None)
    options.update(settings)
    return ProfilingMiddleware(make_app(), **options)


def traffic(server: ThreadServer, rounds: int) -> None:
    for i in range(rounds):
        for target in ("/hot?ms=15", f"/light/{i}", "/slow?ms=30"):
            assert server.client.get(target).status_code == 200


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- what arrives ------------------------------------------------------------------

def test_every_route_arrives_once_with_the_hot_functions_share(pyroscope, reqprof_logs):
    service = unique("routes")
    app = pushing_app(pyroscope.url, service, slow_ms=150, labels="env=test")
    oracle = Oracle(app)
    server = ThreadServer(app)
    traffic(server, 25)
    for _ in range(3):      # kept (slow): pushed with their own request_id
        assert server.client.get("/slow?ms=200").status_code == 200
    server.wait_idle()
    server.close()          # the lifespan's shutdown pushes the last interval
    pusher = app.profiling.pusher
    assert pusher.queued == 0 and not pusher.dropped and pusher.pushed_profiles > 0

    expected_ns = oracle.total_us * 1000
    flame = wait_for("everything in Pyroscope", lambda: (
        f := pyroscope.flame(service)).total >= 0.99 * expected_ns and f)
    # Nothing twice: the merged routes and the kept requests add up to what
    # the requests took (folded stacks round each line to a microsecond).
    assert flame.total == pytest.approx(expected_ns, rel=0.01)
    share = flame.function_total(HOT) / flame.total
    assert share == pytest.approx(oracle.hot_share, abs=0.05)
    assert oracle.hot_share > 0.1   # the check means something
    assert pyroscope.label_values("route", service) == {"/hot", "/light/{item_id}", "/slow"}
    assert pyroscope.label_values("status_class", service) == {"2xx"}
    assert pyroscope.label_values("env", service) == {"test"}
    # The kept requests: their ids in the log lines, the same in Pyroscope.
    logged = {r.reqprof_request_id for r in reqprof_logs.summaries()
              if getattr(r, "reqprof_request_id", None)}
    assert len(logged) == 3
    assert pyroscope.label_values("request_id", service) == logged
    slow_one = pyroscope.flame(service, request_id=sorted(logged)[0])
    assert 0 < slow_one.total < expected_ns / 2
    cpu = pyroscope.flame(service, CPU, route="/hot")
    assert cpu.function_total(HOT) / cpu.total > 0.5


def test_gunicorn_workers_each_push_their_own(pyroscope, tmp_path):
    service = unique("gunicorn")
    # --preload: the app (and its pusher) is built in the parent, then
    # forked: each worker pushes its own requests, the parent none.
    server = CommandServer(
        [PY, "-m", "gunicorn", "--bind", "fd://{fd}", "-w", "2", "--preload", "-k",
         "uvicorn_worker.UvicornWorker", "pyroscope_app:make_profiled_app()"],
        {"ENABLE_PROFILING": "1", "PROFILING_SAMPLE_RATE": "1", "PROFILING_MAX_CONCURRENT": "16",
         "PROFILING_PYROSCOPE_URL": pyroscope.url, "PROFILING_SERVICE_NAME": service,
         "PROFILING_PUSH_INTERVAL": "1"}, tmp_path).wait_ready("/pid")
    per_worker: dict[int, int] = {}
    hot_ms: list[float] = []
    client = httpx.Client(base_url=server.url, timeout=DEADLINE,
                          limits=httpx.Limits(max_keepalive_connections=0))

    def hot(_: int) -> None:
        r = client.get("/hot?ms=40")
        assert r.status_code == 200
        pid = r.json()["pid"]
        hot_ms.append(r.json()["ms"])
        per_worker[pid] = per_worker.get(pid, 0) + 1

    with ThreadPoolExecutor(4) as pool, client:
        for _ in range(10):     # until both workers have served enough
            list(pool.map(hot, range(12)))
            if len(per_worker) == 2 and min(per_worker.values()) >= 8:
                break
    server.close()
    assert server.proc.returncode == 0, server.log()
    assert len(per_worker) == 2, per_worker
    expected_ns = sum(hot_ms) * 1e6
    got: list = []
    try:
        wait_for("both workers' data", lambda: got.append(
            pyroscope.flame(service, WALL, route="/hot").function_total(HOT))
            or got[-1] >= 0.9 * expected_ns)
    except AssertionError:
        raise AssertionError(f"{got[-1]} of {expected_ns} ns: {per_worker}\n{server.log()}")
    # The hot function's time as each request measured it: Pyroscope holds
    # all of it once (one worker missing, or the parent's copy pushed too,
    # is far off).
    assert got[-1] == pytest.approx(expected_ns, rel=0.1)
    assert pyroscope.label_values("route", service) == {"/hot", "/pid"}


# -- never hurt the app ---------------------------------------------------------------

class StandIn(http.server.ThreadingHTTPServer):
    """Answers every POST with one status code; records the bodies."""

    def __init__(self, code: int, text: bytes) -> None:
        self.code = code
        self.bodies: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append(hashlib.sha256(body).hexdigest())
                self.send_response(outer.code)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.mark.server
@pytest.mark.parametrize("code,text", [
    (413, b"profile too large: limit 4 MiB"), (429, b"try later"), (500, b"try later"),
    # Pyroscope's answer while its ring forms after a restart: its own failure.
    (400, b'{"code":"unknown","message":"push failed: unknown: empty ring"}'),
])
def test_refusals_are_logged_once_and_retried_unless_final(code, text, reqprof_logs):
    stand_in = StandIn(code, text)
    app = pushing_app(stand_in.url, unique("refused"))
    server = ThreadServer(app)
    try:
        traffic(server, 5)
        pusher = app.profiling.pusher
        if code == 413:     # not retried: each profile posted once, dropped
            wait_for("a refusal", lambda: pusher.dropped["rejected"] >= 2)
            traffic(server, 3)
            wait_for("more refusals", lambda: pusher.dropped["rejected"] >= 4)
            assert len(set(stand_in.bodies)) == len(stand_in.bodies)
            assert pusher.dropped["rejected"] == len(stand_in.bodies)
            errors = [m for m in reqprof_logs.messages(logging.ERROR) if "refused" in m]
            assert len(errors) == 1 and "HTTP 413 profile too large: limit 4 MiB" in errors[0]
        else:               # retried with backoff, the same profile again
            wait_for("a retry", lambda: len(stand_in.bodies) > len(set(stand_in.bodies)))
            wait_for("another retry", lambda: len(stand_in.bodies) >= 3)
            assert pusher.pushed_profiles == 0 and pusher.queued > 0
            warnings = [m for m in reqprof_logs.messages(logging.WARNING)
                        if "pushing to Pyroscope" in m]
            assert len(warnings) == 1 and f"HTTP {code} {text.decode()}" in warnings[0]
        traffic(server, 2)  # requests unaffected throughout
    finally:
        server.close()
        stand_in.shutdown()


class SlowProxy:
    """A TCP proxy that holds every connection for `delay` seconds before
    passing it on."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = 0

        async def start() -> None:
            server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()

        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(start(), self.loop)
        assert ready.wait(DEADLINE)
        self.url = f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await asyncio.sleep(self.delay)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer),
                             return_exceptions=True)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_a_slow_server_delays_pushes_not_requests(pyroscope):
    proxy = SlowProxy(pyroscope.port, 5.0)
    service = unique("slow")
    app = pushing_app(proxy.url, service)
    oracle = Oracle(app)
    server = ThreadServer(app)
    try:
        traffic(server, 5)
        wait_for("a push through the proxy", lambda: proxy.connections >= 1)
        traffic(server, 5)      # while the reporter waits on the proxy
        pusher = app.profiling.pusher
        wait_for("everything pushed", lambda: pusher.pushed_profiles > 0 and pusher.queued == 0
                 and oracle.total_us and not pusher._aggs, deadline=60)
    finally:
        server.close()
        proxy.close()
    wait_for("the profiles in Pyroscope", lambda: pyroscope.flame(service).total
             >= 0.99 * oracle.total_us * 1000)


def test_the_queue_is_bounded_and_drops_the_oldest():
    pusher = _push.Pusher(Settings(pyroscope_url="http://127.0.0.1:9", push_max_mb=1,
                                   push_interval=3600), RateLimited(60.0))
    try:
        made = time.time()
        profiles = [_push.Profile(bytes([i]) * 300_000, made, f"p{i}") for i in range(10)]
        for profile in profiles:
            pusher._enqueue([profile], made)
            assert pusher.queued_bytes <= 1 << 20
        assert pusher.dropped["queue"] == 7
        assert list(pusher._queue) == profiles[7:]
        pusher._enqueue([], made + _push.MAX_AGE_SECONDS + 1)   # too old for the server
        assert pusher.queued == 0 and pusher.dropped["queue"] == 10
    finally:
        pusher._closed = True


def test_no_opentelemetry_import_without_it(tmp_path):
    # A bare ASGI app, called directly: nothing else imports OpenTelemetry.
    code = """
import asyncio, sys
from reqprof import ProfilingMiddleware

async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

profiled = ProfilingMiddleware(app, enabled=True, sample_rate=1.0, env_file=None,
                               pyroscope_url="http://127.0.0.1:9", push_interval=3600)

async def main():
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    for _ in range(3):
        await profiled({"type": "http", "method": "GET", "path": "/", "query_string": b"",
                        "headers": [], "server": ("127.0.0.1", 80)}, receive, send)
    assert sent[0]["status"] == 200, sent

asyncio.run(main())
assert profiled.profiling.pusher is not None
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=DEADLINE,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


# -- traces ---------------------------------------------------------------------------

def test_trace_and_span_ids_are_the_sdks(pyroscope, reqprof_logs, tmp_path):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    service = unique("traces")
    store = tmp_path / "profiles.db"
    profiled = pushing_app(pyroscope.url, service, slow_ms=0, store=str(store))

    async def traced(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await profiled(scope, receive, send)
            return
        with tracer.start_as_current_span(f"GET {scope['path']}"):
            await profiled(scope, receive, send)

    server = ThreadServer(traced)
    for i in range(3):
        assert server.client.get(f"/light/{i}").status_code == 200
    server.wait_idle()
    server.close()
    spans = {format(s.context.span_id, "016x"): s for s in exporter.get_finished_spans()}
    assert len(spans) == 3
    records = [r for r in reqprof_logs.summaries() if r.reqprof_route == "/light/{item_id}"]
    assert len(records) == 3
    for record in records:
        span = spans[record.reqprof_span_id]
        assert record.reqprof_trace_id == format(span.context.trace_id, "032x")
        assert span.attributes["pyroscope.profile.id"] == record.reqprof_span_id
        assert f"trace {record.reqprof_trace_id} span {record.reqprof_span_id}" \
            in record.getMessage()
    trace_ids = {format(s.context.trace_id, "032x") for s in spans.values()}
    from reqprof.store import Store
    stored = Store(str(store), readonly=True).requests(route="/light/{item_id}")
    assert {r["trace_id"] for r in stored} == trace_ids
    # Pyroscope keeps span_id per sample (not as a series label): its span
    # profile query finds each request's samples by it.
    for span_id in spans:
        wait_for("the span's profile in Pyroscope",
                 lambda: pyroscope.span_flame(service, span_id).total > 0)
    assert pyroscope.span_flame(service, "00000000000000ff").total == 0
    assert trace.get_current_span().get_span_context().is_valid is False


# -- stopped mid-run (last: it restarts the session's server) ----------------------------

def test_a_stopped_server_costs_nothing_and_is_caught_up_after_restart(pyroscope, reqprof_logs):
    service = unique("stopped")
    app = pushing_app(pyroscope.url, service)
    oracle = Oracle(app)
    server = ThreadServer(app)
    pusher = app.profiling.pusher
    try:
        traffic(server, 3)
        pyroscope.stop()
        traffic(server, 10)     # every request answered while nothing is pushed
        wait_for("profiles waiting", lambda: pusher.queued > 0)
        assert pusher.queued_bytes <= pusher.max_bytes
        assert pusher._attempts > 0
        pyroscope.start()
        traffic(server, 3)
        wait_for("the queue sent", lambda: pusher.queued == 0 and pusher._attempts == 0,
                 deadline=60)
    finally:
        server.close()
    assert not pusher.dropped, reqprof_logs.messages(logging.WARNING)
    wait_for("everything in Pyroscope", lambda: pyroscope.flame(service).total
             >= 0.99 * oracle.total_us * 1000)


# -- the pusher's pieces, without a server ------------------------------------------------

def profiled_report(functions: int) -> Any:
    """A report whose tree has about ``functions`` leaves, each with time."""
    from reqprof.profiler import Profiler

    namespace: dict = {}
    exec("\n".join(f"def leaf_{i}(spin):\n    spin(0.003)" for i in range(functions)), namespace)
    with Profiler(interval=0.0005) as prof:
        for i in range(functions):
            namespace[f"leaf_{i}"](lambda s: pyroscope_hot_spin(s))
    return prof.report


def pyroscope_hot_spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_profile_over_the_sample_limit_loses_its_lightest_samples(monkeypatch, reqprof_logs):
    from reqprof import _core

    report = profiled_report(12)
    agg = _core.Aggregate(10, 5000, 1 << 20)
    agg.add(report._session, "GET", "/many", 0.05, 0.05, False)
    pusher = _push.Pusher(Settings(pyroscope_url="http://127.0.0.1:9", push_interval=3600),
                          RateLimited(60.0))
    try:
        body, raw, all_trimmed, _ = agg.route_push(0, time.time(), 15.0, [("route", "/many")])
        assert all_trimmed == 0
        monkeypatch.setattr(_push, "MAX_SAMPLES", 4)
        profile = pusher._write(agg, 0, time.time(), 15.0, [("route", "/many")], "GET /many")
        assert profile is not None and len(profile.body) < len(body)
        assert pusher.trimmed_samples > 0
        warnings = [m for m in reqprof_logs.messages(logging.WARNING) if "left out" in m]
        assert len(warnings) == 1 and f"its {pusher.trimmed_samples} lightest samples" \
            in warnings[0]
    finally:
        pusher._closed = True


def test_status_classes_and_connect_codes():
    assert _push.status_class({"status": 204}) == "2xx"
    assert _push.status_class({"status": 404}) == "4xx"
    assert _push.status_class({"status": None, "exception": "ValueError: x"}) == "5xx"
    assert _push.status_class({}) == "unknown"
    assert _push._connect_code('{"code":"unavailable","message":"x"}') == "unavailable"
    assert _push._connect_code("profile too large") is None
    assert _push._connect_code("{not json") is None


def test_service_name_defaults_to_the_servers_app_module(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["gunicorn", "-w", "2", "shop.main:app"])
    assert _push.default_service_name() == "shop.main"
    monkeypatch.setattr(sys, "argv", ["uvicorn", "--factory", "api:create_app()"])
    assert _push.default_service_name() == "api"
