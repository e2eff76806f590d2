"""Smoke test of an installed reqprof: what a user gets from `pip install`.

Run by `make test-install` (tests/install/smoke.sh) in fresh venvs, one with
the repaired wheel and one built from the sdist, and by cibuildwheel as its
test-command (pyproject.toml): with the interpreter of an environment where
reqprof and the test requirements (fastapi, uvicorn, httpx) are installed,
from outside the source tree. It checks:

- reqprof imports from that environment, with its compiled engine; the
  installed package has py.typed, the stub and the viewer assets and no C
  sources; the version of the distribution is reqprof.__version__;
- `python -m reqprof --help` and the `reqprof` command work;
- a FastAPI app under uvicorn (a subprocess, 127.0.0.1), profiled with
  `?profile=1`, answers with an HTML report of the request that shows the
  endpoint's own function, and answers normally without it.

Prints one line per check; exits non-zero at the first failure.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

APP = textwrap.dedent('''
    import time

    from fastapi import FastAPI

    from reqprof import ProfilingMiddleware

    app = FastAPI()
    app.add_middleware(ProfilingMiddleware)


    def smoke_cpu_work(seconds):
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            n += 1
        return n


    @app.get("/work")
    def work():
        smoke_cpu_work(0.2)
        return {"ok": True}
''')
DEADLINE = 60.0


def check(what: str, ok: bool, detail: object = "") -> None:
    if not ok:
        sys.exit(f"smoke: FAILED: {what}\n{detail}")
    print(f"smoke: ok: {what}")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=DEADLINE)


def check_package() -> None:
    import reqprof
    import reqprof._core

    pkg = Path(reqprof.__file__).resolve().parent
    check(f"reqprof {reqprof.__version__} imports from {pkg}",
          sys.prefix != sys.base_prefix and Path(sys.prefix).resolve() in pkg.parents, pkg)
    check("its engine reqprof._core loads", Path(reqprof._core.__file__).parent == pkg)
    check("the distribution's version is reqprof.__version__",
          importlib.metadata.version("reqprof") == reqprof.__version__)
    files = {p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file()}
    wanted = {"py.typed", "_core.pyi", "viewer/template.html", "viewer/viewer.css",
              "viewer/model.js", "viewer/app.js"}
    check("py.typed, the stub and the viewer assets are installed", wanted <= files, wanted - files)
    sources = sorted(f for f in files if f.endswith((".c", ".h")))
    check("no C sources are installed", not sources, sources)


def check_commands(tmp: Path) -> None:
    import reqprof

    proc = run(sys.executable, "-m", "reqprof", "--help", cwd=tmp)
    check("python -m reqprof --help", proc.returncode == 0 and "render" in proc.stdout,
          proc.stdout + proc.stderr)
    script = shutil.which("reqprof", path=os.path.dirname(sys.executable))
    proc = run(script or "reqprof", "--version", cwd=tmp)
    check("the reqprof command", proc.returncode == 0
          and proc.stdout.strip() == f"reqprof {reqprof.__version__}", proc.stdout + proc.stderr)


def check_server(tmp: Path) -> None:
    (tmp / "smoke_app.py").write_text(APP)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROFILING_")}
    env.update(ENABLE_PROFILING="true", PROFILING_SAMPLE_RATE="0")
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--fd", str(sock.fileno()), "smoke_app:app"],
            cwd=tmp, env=env, pass_fds=[sock.fileno()], stdout=log, stderr=subprocess.STDOUT)
    sock.close()
    try:
        deadline = time.monotonic() + DEADLINE
        while (b"Application startup complete" not in log_path.read_bytes()
               and server.poll() is None and time.monotonic() < deadline):
            time.sleep(0.05)
        check("the app starts under uvicorn", b"Application startup complete" in log_path.read_bytes(),
              log_path.read_text(errors="replace"))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=DEADLINE) as client:
            plain = client.get("/work")
            check("a request without ?profile=1 gets the app's response",
                  plain.status_code == 200 and plain.json() == {"ok": True}, plain.text[:500])
            report = client.get("/work?profile=1")
            check("?profile=1 gets an HTML report",
                  report.status_code == 200
                  and report.headers["content-type"] == "text/html; charset=utf-8"
                  and report.text.lstrip().lower().startswith("<!doctype html"),
                  (report.status_code, report.headers, report.text[:500]))
            check("the report shows the endpoint's work", "smoke_cpu_work" in report.text)
            data = client.get("/work?profile=1&profile_format=json").json()
            check("the JSON profile has samples and the request",
                  data["samples"] > 0 and data["meta"]["path"] == "/work",
                  json.dumps(data)[:500])
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    log = log_path.read_text(errors="replace")
    # uvicorn shuts down gracefully, then exits 0 or re-raises the SIGINT.
    check("uvicorn stops cleanly with no error logged", server.returncode in (0, -signal.SIGINT)
          and "ERROR" not in log and "Traceback" not in log, log)


def main() -> None:
    print(f"smoke: {sys.executable} (Python {sys.version.split()[0]})")
    check_package()
    with tempfile.TemporaryDirectory(prefix="reqprof-smoke-") as tmp:
        check_commands(Path(tmp))
        check_server(Path(tmp))
    print("smoke: all checks passed")


if __name__ == "__main__":
    main()
