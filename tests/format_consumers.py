"""Helpers for tests/test_formats.py and tests/test_cli.py: profiles with a
known hot function and with hostile names, and the real consumers of the
formats: ``go tool pprof`` and speedscope's own importer (the npm release,
run in headless Chromium).

A missing consumer is a test failure, never a skip: these tests are the
proof that the files are what the tools read.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEEDSCOPE_SPEC = ROOT / "tests" / "speedscope"
SPEEDSCOPE_DIR = ROOT / "build" / "speedscope"
SPEEDSCOPE_VERSION = json.loads((SPEEDSCOPE_SPEC / "package.json").read_text())["dependencies"]["speedscope"]
CHROMIUM = os.environ.get("REQPROF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

HOT = "reqprof_hot_loop"
CAFE = "caf\u00e9"
SURROGATE = "bad\udcffname"
#: How reports show it: a lone surrogate is not UTF-8; its three bytes
#: (surrogatepass) each become U+FFFD, as Python's "replace" does.
SURROGATE_SHOWN = "bad\ufffd\ufffd\ufffdname"
FFFD3 = "\ufffd" * 3
XSS = "</script><script>alert(1)</script>"
REQUEST = {"method": "GET", "path": "/items/42", "route": "/items/{item_id}", "status": 200}


def reqprof_hot_loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def _cold_wait() -> None:
    time.sleep(0.03)


def _workload() -> None:
    reqprof_hot_loop(1_500_000)
    _cold_wait()


def workload_report() -> Any:
    """A report whose hot function (by self time) is reqprof_hot_loop, with
    request metadata."""
    from reqprof import Profiler

    with Profiler(interval=0.001) as prof:
        _workload()
    report = prof.report
    report.meta.update(REQUEST)
    top = report.top_functions(1)
    assert top and top[0][0].startswith(HOT + " "), f"the workload's hot function is not {HOT}: {top}"
    return report


def _renamed(name: str, filename: str) -> Callable[[int], int]:
    """A CPU-bound function whose code object is named `name` (any str,
    lone surrogates included) and comes from `filename`."""
    src = "def spin(n):\n    t = 0\n    for i in range(n):\n        t += i\n    return t\n"
    ns: dict[str, Any] = {}
    exec(compile(src, filename, "exec"), ns)
    code = ns["spin"].__code__
    replace: dict[str, Any] = {"co_name": name}
    if sys.version_info >= (3, 11):
        replace["co_qualname"] = name
    return types.FunctionType(code.replace(**replace), ns, name)


def hostile_report() -> Any:
    """A report with non-ASCII, surrogate-escaped and script-closing names
    in functions, a file name and the request metadata."""
    from reqprof import Profiler

    funcs = [
        _renamed(CAFE, f"/srv/{CAFE}/app.py"),
        _renamed(SURROGATE, "/srv/\udcff/odd.py"),
        _renamed(XSS, "/srv/x\"'<>.py"),
    ]
    with Profiler(interval=0.001) as prof:
        for f in funcs:
            f(400_000)
    report = prof.report
    report.meta.update({"method": "GET", "path": f"/{CAFE}/{XSS}", "note": "\udcff\u2028"})
    names = " ".join(name for name, _ in report.top_functions(10))
    for name in (CAFE, SURROGATE_SHOWN, XSS):
        assert name in names, f"{name!r} was not sampled: {names!r}"
    return report


def consumer_env() -> dict[str, str]:
    """The environment for go, npm and Chromium: no sanitizer preloaded."""
    return {k: v for k, v in os.environ.items()
            if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC")}


# ---------------------------------------------------------------- go tool pprof


def go_pprof(*args: str) -> str:
    """`go tool pprof ARGS`, its standard output (fails the test when go is
    missing or pprof refuses the file)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("the pprof tests need Go ('go tool pprof'): apt-get install -y golang-go", pytrace=False)
    env = consumer_env()
    env.setdefault("HOME", str(ROOT / "build"))
    proc = subprocess.run([go, "tool", "pprof", *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"go tool pprof {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def pprof_top(path: Path, *extra: str) -> list[tuple[str, str]]:
    """Rows of `go tool pprof -top`: (flat, name), in pprof's order."""
    out = go_pprof("-top", *extra, str(path))
    rows, started = [], False
    for line in out.splitlines():
        if line.strip().startswith("flat"):
            started = True
            continue
        if started and line.strip():
            parts = line.split(None, 5)
            rows.append((parts[0], parts[5]))
    return rows


# ---------------------------------------------------------------- speedscope


def speedscope_release() -> Path:
    """speedscope's release directory, installed from tests/speedscope (the
    pinned package and lockfile) into build/speedscope by `make speedscope`
    (a prerequisite of `make test`). Fails when it is missing or was
    installed from another lockfile."""
    lock = SPEEDSCOPE_SPEC / "package-lock.json"
    installed_lock = SPEEDSCOPE_DIR / "package-lock.json"
    index = SPEEDSCOPE_DIR / "node_modules" / "speedscope" / "dist" / "release" / "index.html"
    if not (index.exists() and (SPEEDSCOPE_DIR / ".installed").exists()
            and installed_lock.exists() and installed_lock.read_bytes() == lock.read_bytes()):
        pytest.fail("the speedscope tests need speedscope installed from tests/speedscope: "
                    "run `make speedscope` (npm ci into build/speedscope)", pytrace=False)
    installed = json.loads((index.parents[2] / "package.json").read_text())["version"]
    assert installed == SPEEDSCOPE_VERSION, f"speedscope {installed} installed, {SPEEDSCOPE_VERSION} pinned"
    return index.parent


def start_chromium(who: str = "the speedscope tests") -> tuple[Any, Any]:
    """(playwright, browser): headless Chromium driven by Playwright. A
    sanitizer preloaded into the test run must reach neither Playwright's
    driver process nor the browser. Fails (never skips) when either is
    missing, naming `who` needs them."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"{who} need the 'playwright' package: pip install -e '.[test]'", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{who} need Chromium at {CHROMIUM}: apt-get install -y chromium", pytrace=False)
    saved = {k: os.environ.pop(k) for k in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS") if k in os.environ}
    try:
        pw = sync_playwright().start()
        return pw, pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    finally:
        os.environ.update(saved)


def speedscope_import(browser: Any, release: Path, tmp: Path, filename: str, data: bytes) -> dict[str, Any]:
    """Opens speedscope's own index.html with `data` as if run as
    `speedscope FILE` (its CLI writes a script calling
    speedscope.loadFileFromBase64 and opens #localProfilePath=), in the
    sandwich view. Returns the table rows (total, self, name; heaviest
    self first, speedscope's default order), the page title, the console
    lines and any alert (speedscope alerts on a file it cannot import)."""
    script = tmp / f"load-{hashlib.sha256(data).hexdigest()[:12]}.js"
    script.write_text(
        f"speedscope.loadFileFromBase64({json.dumps(filename)}, {json.dumps(base64.b64encode(data).decode())})"
    )
    page = browser.new_page()
    console: list[str] = []
    alerts: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    try:
        page.goto(f"{(release / 'index.html').as_uri()}#localProfilePath={script}&view=sandwich")
        try:
            page.wait_for_selector("tr td", timeout=30000)
        except Exception:
            pytest.fail(f"speedscope showed no profile table; alerts={alerts} console={console}", pytrace=False)
        rows = page.eval_on_selector_all("tr", "rs => rs.map(r => Array.from(r.cells).map(c => c.textContent))")
        title = page.title()
    finally:
        page.close()
    return {"rows": [r for r in rows if r and r[0] != "Total"], "title": title, "console": console, "alerts": alerts}
