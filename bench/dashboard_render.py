"""Dashboard child: ``dashboard_render.py [--routes 500] [--hours 24] [--runs 3]``.

Builds a store the size of a busy day: ROUTES routes, each with a window
every minute for HOURS hours (written with ``reqprof.store.Store.write``,
as the middleware's reporter does). Each window's counts and latency
histogram come from a real ``_core.Aggregate`` fed that minute's requests
(1 to 8 a route, log-normal durations); its profile is the Aggregate's
merged tree of real profiled sessions (each route has its own functions:
8 call paths 10 to 40 frames deep). The route the benchmark opens has a profile in every
one of its windows; the others in one window an hour (a profile in every
window of every route would make a store of several GB, past the 512 MB
PROFILING_STORE_MAX_MB default).

Then serves it with ``reqprof dashboard`` (``make_server``, a thread of
this process) and opens it in headless Chromium (Playwright) RUNS times,
measuring with the page's own marks (dashboard.js):

- the route table over the last 24 h: the API's answer (fetch: the
  server reads every window and merges each route's histograms), the
  first rows on screen (the first 60: DOM, layout and the frame drawn) and
  all 500 (the rest come in chunks, one after each frame);
- re-sorting the table by another column (click to the first rows drawn);
- the route's merged flame graph over 24 h: the API's answer (the server
  merges the route's 1,440 profiles in C) and the render (index, call
  tree, flame graph layout and first draw), then switching to the call tree.

Prints progress on stderr and one JSON line on stdout (medians, and every
run).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import types
from typing import Any, Callable
from urllib.parse import quote, quote_plus

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import emit  # noqa: E402

CHROMIUM = os.environ.get("REQPROF_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHAPES = 25             # distinct sets of functions; route i uses shape i % SHAPES
SESSIONS = 8            # real profiled sessions per shape
PATHS = 8               # call paths of a shape
HOT = 0                 # the route the benchmark opens


def log(msg: str) -> None:
    sys.stderr.write(f"[dashboard] {msg}\n")
    sys.stderr.flush()


def _leaf() -> int:
    end = time.perf_counter() + 0.0004
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def _shape_functions(shape: int, count: int) -> list[Callable[[list, int], int]]:
    """`count` distinct functions of one shape: each calls the next one of
    the chain it is given, the last spins."""
    src = ("def step(chain, i):\n"
           "    if i + 1 < len(chain):\n"
           "        return chain[i + 1](chain, i + 1)\n"
           "    return leaf()\n")
    out = []
    for k in range(count):
        ns: dict[str, Any] = {"leaf": _leaf}
        exec(compile(src, f"/srv/app/routes/shape_{shape:02d}.py", "exec"), ns)
        name = f"shape{shape:02d}_step{k:02d}"
        code = ns["step"].__code__.replace(co_name=name, co_qualname=name,
                                          co_firstlineno=10 * k + 1)
        out.append(types.FunctionType(code, ns, name))
    return out


def profiled_sessions(interval: float = 0.0005) -> list[list[Any]]:
    """SESSIONS real stopped sessions per shape. A shape is a route's code:
    PATHS call paths 10 to 40 deep through its 40 functions (a request
    goes down some of them); each session runs a random mix for 20 ms."""
    from reqprof import Profiler

    pool = []
    for shape in range(SHAPES):
        funcs = _shape_functions(shape, 40)
        rng = random.Random(shape)
        paths = [[funcs[0]] + rng.sample(funcs[1:], rng.randint(9, 39)) for _ in range(PATHS)]
        sessions = []
        for _ in range(SESSIONS):
            with Profiler(interval=interval) as prof:
                end = time.perf_counter() + 0.02
                while time.perf_counter() < end:
                    chain = rng.choice(paths)
                    chain[0](chain, 0)
            sessions.append(prof.report._session)
        pool.append(sessions)
    return pool


def build_store(path: str, routes: int, hours: int) -> dict[str, Any]:
    from reqprof import __version__, _core
    from reqprof.store import RouteWindow, Store

    t0 = time.monotonic()
    pool = profiled_sessions()
    log(f"{SHAPES * SESSIONS} profiled sessions in {time.monotonic() - t0:.1f} s")
    names = [("GET" if i % 3 else "POST", f"/api/v1/resource_{i:03d}/{{item_id}}") for i in range(routes)]
    medians = [random.Random(i).uniform(0.002, 0.2) for i in range(routes)]
    store = Store(path)
    rng = random.Random(1)
    now = int(time.time() // 60 * 60)
    first = now - hours * 3600 + 60
    profiles = 0
    profile_bytes = 0
    t0 = time.monotonic()
    for minute, window in enumerate(range(first, now + 60, 60)):
        agg = _core.Aggregate(routes + 1, 5000, 256 << 20)
        with_profile = set()
        for i, (method, route) in enumerate(names):
            for _ in range(rng.randint(1, 8)):
                duration = rng.lognormvariate(0.0, 0.5) * medians[i]
                agg.add(None, method, route, duration, duration * 0.6, rng.random() < 0.01)
            if i == HOT or minute % 60 == i % 60:
                for session in rng.sample(pool[i % SHAPES], 2):
                    agg.merge(session, method, route)
                with_profile.add(route)
        rows = []
        for index, (method, route, count, errors, wall_s, cpu_s, max_ms, latency,
                    has_profile) in enumerate(agg.routes()):
            profile = None
            if has_profile and route in with_profile:
                profile = agg.route_json(index, float(window), __version__).encode("utf-8")
                profiles += 1
                profile_bytes += len(profile)
            rows.append(RouteWindow(window, method, route, count, errors, wall_s, cpu_s, max_ms,
                                    latency, profile))
        store.write(rows, [])
        if minute % 240 == 0:
            log(f"  {minute}/{hours * 60} minutes written ({time.monotonic() - t0:.0f} s)")
    hot_profile = names[HOT]
    size = store.size_bytes()
    store.close()
    return {"routes": routes, "hours": hours, "windows": routes * hours * 60, "profiles": profiles,
            "profile_json_kb": round(profile_bytes / max(1, profiles) / 1024, 1),
            "store_mb": round(size / 2**20, 1), "build_s": round(time.monotonic() - t0, 1),
            "hot": hot_profile}


SWITCH = """(tab) => {
    const t = performance.now();
    document.getElementById('rd-tab-' + tab).click();
    return new Promise((resolve) => requestAnimationFrame(() => resolve(performance.now() - t)));
}"""

SORT = """(col) => {
    const html = document.documentElement;
    html.removeAttribute('data-routes-shown-ms');
    const t = performance.now();
    document.querySelector('#rd-routes-table th button[data-col="' + col + '"]').click();
    return new Promise((resolve) => {
        const poll = () => html.hasAttribute('data-routes-shown-ms')
            ? resolve(performance.now() - t) : setTimeout(poll, 0);
        poll();
    });
}"""


def _nodes(base: str, fragment: str) -> int:
    """Nodes of the route's merged profile, as the API gives it."""
    import json
    import urllib.request
    from urllib.parse import parse_qs

    q = parse_qs(fragment[1:])
    url = base + "api/profile?" + "&".join(f"{k}={quote_plus(q[k][0])}" for k in ("method", "route"))
    url += f"&since={int(time.time() - 86400)}"
    with urllib.request.urlopen(url, timeout=300) as r:
        stack, n = [json.load(r)["root"]], 0
    while stack:
        node = stack.pop()
        n += 1
        stack.extend(node.get("children", ()))
    return n


def measure(path: str, hot: tuple[str, str], runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    from reqprof.dashboard import make_server

    server = make_server(path, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    results: dict[str, list[float]] = {k: [] for k in (
        "routes_fetch_ms", "routes_render_ms", "routes_all_ms", "sort_ms", "profile_fetch_ms", "profile_render_ms",
        "tree_switch_ms")}
    route_fragment = f"#range=24h&method={hot[0]}&route={quote(hot[1], safe='')}&tab=flame"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for run in range(runs):
                page = browser.new_page(viewport={"width": 1400, "height": 860})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(base + "#range=24h")
                page.wait_for_selector("html[data-routes-all-ms]", timeout=300_000)
                rows = page.locator("#rd-routes-table tbody tr").count()
                if rows != len(set(page.eval_on_selector_all(
                        "#rd-routes-table .rd-route-link", "as => as.map(a => a.textContent)"))):
                    raise RuntimeError("route table rows are not distinct routes")
                results["routes_fetch_ms"].append(float(page.get_attribute("html", "data-routes-fetch-ms")))
                results["routes_render_ms"].append(float(page.get_attribute("html", "data-routes-shown-ms")))
                results["routes_all_ms"].append(float(page.get_attribute("html", "data-routes-all-ms")))
                results["sort_ms"].append(page.evaluate(SORT, "p99_ms"))
                page.goto(base + route_fragment)
                page.wait_for_selector("html[data-profile-ms]", timeout=300_000)
                results["profile_fetch_ms"].append(float(page.get_attribute("html", "data-profile-fetch-ms")))
                results["profile_render_ms"].append(float(page.get_attribute("html", "data-profile-ms")))
                results["tree_switch_ms"].append(page.evaluate(SWITCH, "tree"))
                note = page.locator(".rd-profile-note").inner_text()
                if errors:
                    raise RuntimeError(f"the page failed: {errors[0]}")
                log(f"  run {run + 1}: table {rows} rows, fetch {results['routes_fetch_ms'][-1]:.0f} ms, "
                    f"first rows {results['routes_render_ms'][-1]:.0f} ms, all {results['routes_all_ms'][-1]:.0f} ms, sort {results['sort_ms'][-1]:.0f} ms; "
                    f"flame fetch {results['profile_fetch_ms'][-1]:.0f} ms, "
                    f"render {results['profile_render_ms'][-1]:.0f} ms; {note}")
                page.close()
            browser.close()
        results["nodes"] = [float(_nodes(base, route_fragment))]
    finally:
        server.shutdown()
        server.server_close()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", type=int, default=500)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reqprof-dashboard-") as tmp:
        path = os.path.join(tmp, "store.db")
        log(f"building a store of {opts.routes} routes x {opts.hours} h")
        built = build_store(path, opts.routes, opts.hours)
        log(f"store: {built['store_mb']} MB, {built['windows']:,} windows, {built['profiles']:,} profiles "
            f"({built['profile_json_kb']} kB of JSON each), built in {built['build_s']} s")
        results = measure(path, built["hot"], opts.runs)
    out: dict[str, Any] = {k: v for k, v in built.items() if k != "hot"}
    out["profile_nodes"] = int(results.pop("nodes")[0])
    out.update({k: round(statistics.median(v), 1) for k, v in results.items()})
    out["runs"] = {k: [round(x, 1) for x in v] for k, v in results.items()}
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
