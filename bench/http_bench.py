"""HTTP benchmark driver: the FastAPI app of ``http_app.py`` under uvicorn
(one worker, 127.0.0.1), loaded by ``wrk`` (closed loop: each connection
sends its next request when the last one is answered).

Each configuration gets a fresh server; a round runs every configuration
once, in a shuffled order (a one-second warm-up at concurrency 1, then
concurrency 1, then 16). Where a
configuration profiles requests that return their report (``?profile=1``),
probe requests to ``/probe`` are also sent, idle and under load, and the
report each gets back is examined: its duration, samples, and the share of
its time in frames that belong to *other* requests."""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Callable, Optional

from common import BENCH, ROOT

# key, description, environment, query added to every request, probe kind
Config = tuple[str, str, dict[str, str], str, Optional[str]]
# Rows (a)-(e), the same for the ASGI and the WSGI app.
BASE_CONFIGS: list[Config] = [
    ("a", "no middleware", {"BENCH_MIDDLEWARE": "none"}, "", None),
    ("b", "reqprof, ENABLE_PROFILING=false",
     {"BENCH_MIDDLEWARE": "reqprof", "ENABLE_PROFILING": "false"}, "", None),
    ("c", "reqprof, rate 0.0",
     {"BENCH_MIDDLEWARE": "reqprof", "ENABLE_PROFILING": "true", "PROFILING_SAMPLE_RATE": "0.0"}, "", None),
    ("d", "reqprof, rate 0.1",
     {"BENCH_MIDDLEWARE": "reqprof", "ENABLE_PROFILING": "true", "PROFILING_SAMPLE_RATE": "0.1"}, "", None),
    ("e", "reqprof, rate 1.0 (every request profiled, report logged)",
     {"BENCH_MIDDLEWARE": "reqprof", "ENABLE_PROFILING": "true", "PROFILING_SAMPLE_RATE": "1.0"}, "", None),
]
CONFIGS: list[Config] = BASE_CONFIGS + [
    ("g", "reqprof, `?profile=1` on every request (report returned)",
     {"BENCH_MIDDLEWARE": "reqprof", "ENABLE_PROFILING": "true", "PROFILING_SAMPLE_RATE": "0.0"},
     "&profile=1", "reqprof"),
    ("h", "reqprof always on: rate 1.0, `PROFILING_SLOW_MS=500` (no request that slow), "
          "store on",
     {"BENCH_MIDDLEWARE": "reqprof", "ENABLE_PROFILING": "true", "PROFILING_SAMPLE_RATE": "1.0",
      "PROFILING_SLOW_MS": "500", "PROFILING_STORE": "{tmpdir}/store.db",
      "PROFILING_MAX_CONCURRENT": "32"}, "", None),
    ("i", "(h) and every profile pushed to a real Pyroscope (15 s interval)",
     {"BENCH_MIDDLEWARE": "reqprof", "ENABLE_PROFILING": "true", "PROFILING_SAMPLE_RATE": "1.0",
      "PROFILING_SLOW_MS": "500", "PROFILING_STORE": "{tmpdir}/store.db",
      "PROFILING_MAX_CONCURRENT": "32", "PROFILING_PYROSCOPE_URL": "{pyroscope}",
      "PROFILING_SERVICE_NAME": "bench"}, "", None),
    ("f0", "pyinstrument's documented middleware, no `?profile`",
     {"BENCH_MIDDLEWARE": "pyinstrument"}, "", None),
    ("f", "pyinstrument's documented middleware, `?profile=1` on every request (report returned)",
     {"BENCH_MIDDLEWARE": "pyinstrument"}, "&profile=1", "pyinstrument"),
]
# The same rows for a WSGI app: Flask (``wsgi_app.py``) under gunicorn.
WSGI_CONFIGS: list[Config] = BASE_CONFIGS + [
    ("g", "reqprof, `?profile=1` on every request (report returned)",
     {"BENCH_MIDDLEWARE": "reqprof", "ENABLE_PROFILING": "true", "PROFILING_SAMPLE_RATE": "0.0"},
     "&profile=1", None),
    ("f", "pyinstrument's documented Flask recipe, `?profile` on every request (report returned)",
     {"BENCH_MIDDLEWARE": "pyinstrument"}, "&profile=1", None),
]
UVICORN = [sys.executable, "-m", "uvicorn", "--app-dir", BENCH, "http_app:app",
           "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
           "--log-level", "warning", "--no-access-log"]
GUNICORN_GTHREAD = [sys.executable, "-m", "gunicorn", "--chdir", BENCH, "--bind",
                    "127.0.0.1:{port}", "-w", "1", "-k", "gthread", "--threads", "4",
                    "--log-level", "warning", "wsgi_app:app"]
CONCURRENCY = (1, 16)
PATH = "/items?q=a&limit=20"
# Frames that a /probe request never runs itself: the load's endpoint and
# the report rendering of other profiled requests.
FOREIGN = frozenset({"list_items", "output_html", "_render", "render_html"})


def wrk_path() -> str | None:
    return shutil.which("wrk")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server (uvicorn, or ``command``) in a process group of its own,
    stopped by its id."""

    def __init__(self, env: dict[str, str], command: list[str] | None = None) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="reqprof-bench-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        for name in list(full_env):
            if name.startswith("PROFILING_") or name in ("ENABLE_PROFILING", "REQPROF_PORTABLE"):
                del full_env[name]
        self.tmpdir = tempfile.TemporaryDirectory(prefix="reqprof-bench-")
        pyroscope = os.environ.get("REQPROF_BENCH_PYROSCOPE", "")
        full_env.update({k: v.replace("{tmpdir}", self.tmpdir.name).replace("{pyroscope}", pyroscope)
                         for k, v in env.items()})
        self.proc = subprocess.Popen(
            [a.format(port=self.port) for a in (command or UVICORN)],
            cwd=ROOT, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url(PATH), timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not answer in time: " + self.log_tail())

    def log_text(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def log_tail(self) -> str:
        return " | ".join(self.log_text().strip().splitlines()[-5:])

    def cpu_seconds(self) -> float:
        """CPU time the server's processes (its process group: gunicorn's
        master and worker) used so far, all threads."""
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid:     # its process group
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> dict[str, Any]:
        """Stops the server; returns counts of what its log says."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        text = self.log_text()
        os.unlink(self.log.name)
        self.tmpdir.cleanup()
        first = text.find("Traceback (most recent call last)")
        pushed = re.search(r"reqprof: pushed (\d+) profiles \((\d+) bytes\) to Pyroscope in (\d+) s",
                           text)
        return {
            "pushed_profiles": int(pushed.group(1)) if pushed else None,
            "pushed_bytes": int(pushed.group(2)) if pushed else None,
            "push_seconds": int(pushed.group(3)) if pushed else None,
            "tracebacks": text.count("Traceback (most recent call last)"),
            "first_traceback": text[first:first + 3000] if first >= 0 else None,
            "error_lines": sum(1 for line in text.splitlines() if "ERROR" in line),
            "log_bytes": len(text.encode()),
        }


def wrk(url: str, connections: int, seconds: int) -> dict[str, Any]:
    cmd = [wrk_path() or "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
           "-s", os.path.join(BENCH, "wrk_report.lua"), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            r = json.loads(line[len("WRKJSON "):])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
            r["errors"] = sum(r[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
            return r
    raise RuntimeError(f"wrk gave no result: {out.stderr.strip()[-300:]}")


# -- probes: what a profiled request's report holds ---------------------------

def _tree_share(root: Any, name: Callable[[Any], str], wall: Callable[[Any], float],
                children: Callable[[Any], list]) -> float:
    total = wall(root)
    foreign = 0.0
    stack = [root]
    while stack:
        node = stack.pop()
        if name(node) in FOREIGN:
            foreign += wall(node)
            continue
        stack.extend(children(node))
    return foreign / total if total else 0.0


def read_report(kind: str, body: bytes) -> dict[str, Any]:
    if kind == "reqprof":
        doc = json.loads(body)
        root = doc["root"]
        share = _tree_share(root, lambda n: n["function"], lambda n: n["wall_s"], lambda n: n["children"])
        return {"duration_s": doc["duration_s"], "samples": doc["samples"], "foreign": share}
    text = body.decode("utf-8", "replace")
    start = text.index("const sessionData = ") + len("const sessionData = ")
    doc, _ = json.JSONDecoder().raw_decode(text[start:])
    share = _tree_share(doc["frame_tree"], lambda n: n["identifier"].split("\x00")[0],
                        lambda n: n["time"], lambda n: n.get("children", []))
    return {"duration_s": doc["session"]["duration"], "samples": doc["session"]["sample_count"],
            "foreign": share}


def probe(server: Server, kind: str, n: int) -> list[dict[str, Any]]:
    query = "?profile=1&profile_format=json" if kind == "reqprof" else "?profile=1"
    out = []
    for _ in range(n):
        t = time.perf_counter()
        with urllib.request.urlopen(server.url("/probe" + query), timeout=30) as r:
            body = r.read()
        latency = time.perf_counter() - t
        try:
            rec = read_report(kind, body)
        except (ValueError, KeyError) as exc:
            rec = {"error": f"unreadable report: {exc}"}
        rec["latency_s"] = latency
        out.append(rec)
    return out


def probe_under_load(server: Server, kind: str, url: str, n: int) -> list[dict[str, Any]]:
    """Probes while 15 other connections keep the server busy."""
    load = subprocess.Popen([wrk_path() or "wrk", "-t1", "-c15", f"-d{n + 3}s", "--timeout", "10s", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        return probe(server, kind, n)
    finally:
        load.terminate()
        load.wait(10)


def run(rounds: int, seconds: int, progress: Callable[[str], None],
        configs: list = CONFIGS, command: list[str] | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {key: {"runs": {c: [] for c in CONCURRENCY}, "probes": {}, "log": [],
                                     "error": None} for key, *_ in configs}
    rng = random.Random(3)
    for r in range(rounds):
        order = list(configs)
        rng.shuffle(order)
        for key, desc, env, query, probe_kind in order:
            res = results[key]
            if res["error"]:
                continue
            if any("{pyroscope}" in v for v in env.values()) \
                    and not os.environ.get("REQPROF_BENCH_PYROSCOPE"):
                res["error"] = "no Pyroscope server (REQPROF_PYROSCOPE_DIR is not set)"
                continue
            progress(f"http round {r + 1}/{rounds}: ({key}) {desc}")
            server = Server(env, command)
            try:
                server.wait_ready()
                url = server.url(PATH + query)
                wrk(url, 1, 1)                        # warm-up
                for conc in CONCURRENCY:
                    cpu = server.cpu_seconds()
                    out = wrk(url, conc, seconds)
                    out["server_cpu_s"] = server.cpu_seconds() - cpu
                    res["runs"][conc].append(out)
                if probe_kind and r == 0:
                    res["probes"]["idle"] = probe(server, probe_kind, 5)
                    res["probes"]["c16"] = probe_under_load(server, probe_kind, url, 5)
            except Exception as exc:  # the row says why it has no figures
                res["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                res["log"].append(server.stop())
    return results


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
