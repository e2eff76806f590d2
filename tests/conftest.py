"""Shared fixtures: real uvicorn servers on 127.0.0.1 (in a thread or in a
subprocess), a raw HTTP/1.1 client for byte-for-byte comparisons, and a
capture of the `reqprof` log records.

Test tiers: the markers registered in pyproject.toml (`browser`, `consumer`,
`server`, `soak`) say what a test needs beyond the package; `make
test-quick` runs the tests that have none of them. A test that uses one of
the fixtures below gets the marker that fixture implies (see
FIXTURE_MARKERS); other tests carry theirs explicitly."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import httpx
import pytest

TESTS_DIR = Path(__file__).resolve().parent
DEADLINE = 30.0     # seconds to wait for anything that should happen "soon"

#: Fixture -> the marker every test using it gets.
FIXTURE_MARKERS = {
    "serve": "server",
    "serve_process": "server",
    "browser": "browser",
    "speedscope": "consumer",       # tests/test_formats.py: speedscope's release, from npm
    "production_store": "server",   # tests/test_dashboard.py: an app under uvicorn fills a store
    "dashboard": "server",          # tests/test_dashboard.py: the dashboard's HTTP server
    "pyroscope": "server",          # tests/test_pyroscope.py: a real Pyroscope server
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


def listening_socket() -> socket.socket:
    """A TCP socket listening on 127.0.0.1 on a free port (no port race)."""
    # proto=TCP, as getaddrinfo gives it: asyncio sets TCP_NODELAY only then.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def raw_request(port: int, target: str, method: str = "GET", body: bytes = b"",
                headers: Optional[dict] = None) -> bytes:
    """Sends one HTTP/1.1 request on a fresh connection and returns the
    response exactly as received, minus the `date` header."""
    lines = [f"{method} {target} HTTP/1.1", "Host: testserver", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as conn:
        conn.sendall(request)
        while True:
            data = conn.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, sep, rest = raw.partition(b"\r\n\r\n")
    kept = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]
    return b"\r\n".join(kept) + sep + rest


#: uvicorn's keep-alive timeout in test servers: longer than the clients'
#: (httpx closes a connection idle for 5 s). With both at 5 s, a slow run
#: (sanitizers) lost requests sent on a connection the server was closing.
KEEP_ALIVE_S = 60


class ThreadServer:
    """uvicorn serving an ASGI app from a thread of this process."""

    def __init__(self, app: Any, **config: Any) -> None:
        import uvicorn

        self.sock = listening_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options = dict(lifespan="on", log_config=None, access_log=False,
                       timeout_keep_alive=KEEP_ALIVE_S)
        options.update(config)
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + DEADLINE
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self.client = httpx.Client(base_url=self.url, timeout=DEADLINE)

    def raw(self, target: str, **kw: Any) -> bytes:
        return raw_request(self.port, target, **kw)

    def wait_idle(self) -> None:
        """Waits until no request is being handled and every auto-sampled
        report handed over has been logged."""
        from reqprof._reporter import reporter

        deadline = time.monotonic() + DEADLINE
        while self.server.server_state.tasks:
            assert time.monotonic() < deadline, "requests still running"
            time.sleep(0.01)
        assert reporter.drain(DEADLINE), "reports still queued"

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(DEADLINE)
        self.sock.close()


@pytest.fixture(autouse=True)
def fresh_process_state() -> Iterator[None]:
    """Each test starts as a fresh process would: the middlewares it builds
    share no slots, rate-limited logs or startup line with earlier tests'
    (reqprof keeps those per process and configuration)."""
    yield
    profiling = sys.modules.get("reqprof._profiling")
    if profiling is not None:
        profiling._shared.clear()
        profiling._warned_unknown.clear()


@pytest.fixture
def serve() -> Iterator[Callable[..., ThreadServer]]:
    """serve(app, **uvicorn_config) -> a started ThreadServer (stopped at teardown)."""
    servers: list[ThreadServer] = []

    def start(app: Any, **config: Any) -> ThreadServer:
        server = ThreadServer(app, **config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


_DRIVER = """
import json, socket, sys
sys.path.insert(0, sys.argv[3])
if sys.argv[4] == "no-core":
    sys.modules["reqprof._core"] = None     # as if the extension failed to load
import uvicorn
sock = socket.socket(fileno=int(sys.argv[1]))
options = dict(factory=True, log_level="info", timeout_keep_alive=%d)
options.update(json.loads(sys.argv[5]))
config = uvicorn.Config(sys.argv[2], **options)
uvicorn.Server(config).run(sockets=[sock])
""" % KEEP_ALIVE_S


class ProcessServer:
    """uvicorn in a subprocess, configured like the `uvicorn` command (its
    default logging config), serving an app factory ``module:function``
    from the tests directory."""

    def __init__(self, factory: str, env: dict, cwd: Path, no_core: bool = False,
                 config: Optional[dict] = None) -> None:
        self.sock = listening_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"server-{self.port}.log"
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("PROFILING_") and k != "ENABLE_PROFILING"}
        full_env.update(env)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _DRIVER, str(self.sock.fileno()), factory,
                 str(TESTS_DIR), "no-core" if no_core else "-", json.dumps(config or {})],
                pass_fds=[self.sock.fileno()], env=full_env, cwd=cwd,
                stdout=log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=DEADLINE)

    def wait_started(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while "Application startup complete" not in self.log():
            assert self.proc.poll() is None, f"server exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"server did not start:\n{self.log()}"
            time.sleep(0.02)

    def wait_for_log(self, text: str, count: int = 1) -> str:
        deadline = time.monotonic() + DEADLINE
        while self.log().count(text) < count:
            assert self.proc.poll() is None, f"server exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"{text!r} x{count} not logged:\n{self.log()}"
            time.sleep(0.02)
        return self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kb(self) -> int:
        """The server process's resident set size, in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def wait_exit(self) -> int:
        return self.proc.wait(DEADLINE)

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CommandServer:
    """A server started by its own command line in a subprocess, on a
    listening socket it inherits (``{fd}``) or a free port (``{port}``)."""

    def __init__(self, argv: list[str], env: dict, cwd: Path) -> None:
        self.sock: Optional[socket.socket] = None
        fds: list[int] = []
        if any("{fd}" in a for a in argv):
            self.sock = listening_socket()
            self.port = self.sock.getsockname()[1]
            fds = [self.sock.fileno()]
        else:
            self.port = free_port()
        argv = [a.format(fd=fds[0] if fds else "", port=self.port) for a in argv]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"server-{self.port}.log"
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PROFILING_", "ENABLE_PROF"))}
        full_env.update(PYTHONPATH=str(TESTS_DIR), REQPROF_TEST_DB=str(cwd / "books.sqlite3"),
                        PYTHONUNBUFFERED="1")
        full_env.update(env)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, env=full_env, cwd=cwd, pass_fds=fds,
                                         stdout=log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=DEADLINE)

    def wait_ready(self, probe: str) -> "CommandServer":
        deadline = time.monotonic() + DEADLINE
        while True:
            assert self.proc.poll() is None, f"server exited:\n{self.log()}"
            try:
                self.client.get(probe)
                return self
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"server did not start:\n{self.log()}"
                time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str) -> str:
        deadline = time.monotonic() + DEADLINE
        while text not in self.log():
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{self.log()}"
            time.sleep(0.05)
        return self.log()

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.sock is not None:
            self.sock.close()



@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., ProcessServer]]:
    """serve_process("module:factory", env={...}, no_core=False, config={uvicorn
    options}) -> ProcessServer."""
    servers: list[ProcessServer] = []

    def start(factory: str, env: Optional[dict] = None, no_core: bool = False,
              cwd: Optional[Path] = None, config: Optional[dict] = None) -> ProcessServer:
        server = ProcessServer(factory, env or {}, cwd or tmp_path, no_core, config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class LogCapture(logging.Handler):
    """Collects the records of the `reqprof` logger tree."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock2:
            self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        with self._lock2:
            return [r.getMessage() for r in self.records if r.levelno >= level]

    def summaries(self) -> list[logging.LogRecord]:
        """The per-request records of auto-sampled requests."""
        with self._lock2:
            return [r for r in self.records if hasattr(r, "reqprof_samples")]


@pytest.fixture
def reqprof_logs() -> Iterator[LogCapture]:
    from reqprof._reporter import reporter

    # Reports an earlier test handed over are logged first, not into this
    # test's capture (the reporter logs in batches, a little later).
    assert reporter.drain(DEADLINE), "reports still queued"
    logger = logging.getLogger("reqprof")
    handler = LogCapture()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for the tests whose consumer is a browser (the
    viewer, speedscope's importer). Module-scoped: Playwright's sync API
    allows one at a time in a process and keeps an event loop on this thread
    while it runs, which later tests' asyncio.run() must not meet."""
    from format_consumers import start_chromium

    pw, b = start_chromium("the browser tests")
    yield b
    b.close()
    pw.stop()
