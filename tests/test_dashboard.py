"""The dashboard page and `reqprof diff`, with real parts: a store filled by
real traffic (tests/dashboard_app.py under uvicorn in a subprocess, the
middleware configured from the environment, the store written by the
reporter thread and flushed at exit), the dashboard served for real
(reqprof.dashboard.make_server on 127.0.0.1), opened in headless Chromium
through Playwright.

The traffic comes in two runs of the app, a deploy apart: version 1 of
``GET /report`` renders with ``old_render``, version 2 with ``new_render``
and ``serialize``. The first run's rows are moved two hours back in the
store (as if it had run then), so the compare view has a before and an
after.

Every page must load with no console error, no uncaught exception, no
dialog and no request outside the dashboard's origin. Screenshots go to
test-output/dashboard/ for a person to look at.
"""
from __future__ import annotations

import base64
import collections
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import httpx
import pytest

from conftest import ProcessServer, raw_request
from dashboard_app import SLOW_MS, XSS_FUNCTION, XSS_ROUTE

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "dashboard"
VIEWPORT = {"width": 1400, "height": 860}
ROW = 20    # flame graph row height (flame.js)

#: Requests per route in each run of the app.
TRAFFIC = {"/report": 30, "/items/{item_id}": 40, "/slow": 3, "/fail": 2, XSS_ROUTE: 2}
XSS_PATH = "/nope/<script>window.__xss=1</script>"
#: The first run of the app is moved this far back.
SHIFT_S = 7200


# ---------------------------------------------------------------- the store, the dashboard


class Production:
    def __init__(self, path: Path, sent: collections.Counter, started: float) -> None:
        self.path = path
        self.sent = sent            # (method, route) -> requests sent, both runs
        self.started = started      # when the second run began (the deploy)


def _traffic(server: ProcessServer, sent: collections.Counter) -> None:
    for route, n in TRAFFIC.items():
        for i in range(n):
            if route == "/fail":
                # A fresh connection each: uvicorn closes the one an app error was on.
                status = raw_request(server.port, "/fail").split(b" ", 2)[1]
                assert status == b"500"
            elif route == XSS_ROUTE:
                assert raw_request(server.port, quote(XSS_ROUTE)).startswith(b"HTTP/1.1 200")
            else:
                target = route.replace("{item_id}", str(i))
                assert server.client.get(target).status_code == 200
            sent[("GET", route)] += 1
    assert raw_request(server.port, quote(XSS_PATH)).startswith(b"HTTP/1.1 404")
    sent[("GET", XSS_PATH)] += 1


@pytest.fixture(scope="module")
def production_store(tmp_path_factory: pytest.TempPathFactory) -> Production:
    """A store filled by two runs of the app (a deploy apart), each under
    uvicorn with PROFILING_STORE set, stopped with SIGINT (the middleware
    writes what is left at exit)."""
    tmp = tmp_path_factory.mktemp("dashboard")
    path = tmp / "reqprof.db"
    env = {"ENABLE_PROFILING": "true", "PROFILING_SAMPLE_RATE": "1.0",
           "PROFILING_SLOW_MS": str(SLOW_MS), "PROFILING_STORE": str(path)}
    sent: collections.Counter = collections.Counter()
    started = 0.0
    for version in ("1", "2"):
        started = time.time()
        server = ProcessServer("dashboard_app:make_app", dict(env, APP_VERSION=version), tmp)
        try:
            server.wait_started()
            _traffic(server, sent)
        finally:
            server.close()      # SIGINT: uvicorn shuts down, the middleware flushes at exit
        if version == "1":
            with sqlite3.connect(path) as db:
                db.execute("UPDATE route_windows SET window = window - ?", (SHIFT_S,))
                db.execute("UPDATE requests SET started = started - ?", (SHIFT_S,))
    return Production(path, sent, started)


class Dashboard:
    def __init__(self, url: str, store: Production) -> None:
        self.url = url
        self.store = store

    def api(self, path: str, **params: Any) -> Any:
        r = httpx.get(self.url + path, params=params, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def dashboard(production_store: Production) -> Iterator[Dashboard]:
    from reqprof.dashboard import make_server

    server = make_server(str(production_store.path), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Dashboard(f"http://127.0.0.1:{server.server_address[1]}", production_store)
    server.shutdown()
    server.server_close()
    thread.join(10)


# ---------------------------------------------------------------- the page (no browser)


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_dashboard_page_pins_its_script_and_style_and_reads_only_its_origin() -> None:
    from reqprof.viewer import DASHBOARD_JS_FILES, dashboard_page

    page, csp = dashboard_page()
    assert dashboard_page() == (page, csp), "cached"
    assert "__REQPROF_" not in page
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert directives["img-src"] == "data:"
    assert directives["trusted-types"] == "'none'"
    assert "unsafe" not in csp and "http" not in csp
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    script = re.search(r"<script>(.*)</script>", page, re.S).group(1)
    assert directives["script-src"] == _sha(script)
    assert directives["style-src"] == _sha(style)
    meta = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert meta == csp
    assert "app.js" not in DASHBOARD_JS_FILES, "the report's page would run"
    for name in ("ReqprofModel", "ReqprofTree", "ReqprofFlame", "ReqprofDiff", "ReqprofDiffView",
                 "ReqprofRoutes"):
        assert name in script


def test_diff_page_embeds_both_profiles_as_script_safe_data() -> None:
    import viewer_fixtures as fx
    from reqprof.viewer import diff_page

    hostile = json.dumps(fx.hostile_profile(), ensure_ascii=False)
    page = diff_page(json.dumps(fx.small_profile()), hostile, "a </script>", "b")
    data = re.search(r'<script type="application/json" id="diff-data">(.*?)</script>', page, re.S)
    assert data is not None
    doc = json.loads(data.group(1))
    assert doc["before"] == fx.small_profile()
    assert doc["after"] == fx.hostile_profile()
    assert doc["labels"] == {"before": "a </script>", "after": "b"}
    for bad in ("<", ">", "&"):
        assert bad not in data.group(1)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "connect-src" not in csp and "default-src 'none'" in csp
    script = re.search(r"</script>\s*<script>(.*)</script>", page, re.S).group(1)
    assert _sha(script) in csp


def test_the_server_sends_the_page_with_its_policy(dashboard: Dashboard) -> None:
    from reqprof.viewer import dashboard_page

    r = httpx.get(dashboard.url + "/", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    page, csp = dashboard_page()
    assert r.text == page
    assert r.headers["content-security-policy"] == csp
    assert r.headers["x-frame-options"] == "DENY"


# ---------------------------------------------------------------- the API against what was sent


def test_api_counts_are_the_requests_sent(dashboard: Dashboard) -> None:
    routes = dashboard.api("/api/routes", since=0)["routes"]
    got = {(r["method"], r["route"]): r for r in routes}
    assert {k: r["count"] for k, r in got.items()} == dict(dashboard.store.sent)
    assert got[("GET", "/fail")]["errors"] == 2 * TRAFFIC["/fail"]
    assert got[("GET", "/report")]["errors"] == 0
    kept = dashboard.api("/api/requests", limit=1000)["requests"]
    because = collections.Counter((r["route"], r["kept_because"]) for r in kept)
    assert because[("/slow", "slow")] == 2 * TRAFFIC["/slow"]
    assert because[("/fail", "error")] == 2 * TRAFFIC["/fail"]
    assert sum(because.values()) == 2 * (TRAFFIC["/slow"] + TRAFFIC["/fail"]), because
    # The deploy split: the first run is two hours back.
    recent = dashboard.api("/api/routes", since=dashboard.store.started - 60)["routes"]
    assert {r["route"]: r["count"] for r in recent}["/report"] == TRAFFIC["/report"]


# ---------------------------------------------------------------- in Chromium


class Page:
    """A Chromium page on the dashboard, with what it logged and requested."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, fragment: str = "") -> "Page":
        self.page.goto(self.base + "/" + fragment)
        self.page.wait_for_selector("html[data-dashboard=ready]")
        return self

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs
        outside = [u for u in self.requests if not u.startswith(self.base + "/")]
        assert outside == [], f"requests outside the dashboard's origin: {outside}"

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def wait_for(self, predicate: str, timeout: float = 15.0) -> None:
        """Poll a JS function until it returns true (the page's CSP forbids
        page.wait_for_function's string evaluation)."""
        deadline = time.monotonic() + timeout
        while not self.page.evaluate(predicate):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {predicate}")
            self.page.wait_for_timeout(20)

    def fresh(self, attribute: str) -> None:
        """Forget a timing the page left on <html>, to wait for the next one."""
        self.page.evaluate(f"document.documentElement.removeAttribute('data-{attribute}')")

    def wait_mark(self, attribute: str) -> float:
        self.page.wait_for_selector(f"html[data-{attribute}]")
        return float(self.page.get_attribute("html", f"data-{attribute}"))

    def table(self) -> list[list[str]]:
        return self.page.eval_on_selector_all(
            "#rd-routes-table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")

    def canvas_colours(self, selector: str) -> dict[str, int]:
        """Pixels of a canvas: drawn (not background), reddish, bluish."""
        return self.page.eval_on_selector(selector, """c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const bg = [d[d.length - 4], d[d.length - 3], d[d.length - 2]];
            let drawn = 0, red = 0, blue = 0;
            for (let i = 0; i < d.length; i += 4) {
                const r = d[i], g = d[i + 1], b = d[i + 2];
                if (r !== bg[0] || g !== bg[1] || b !== bg[2]) drawn++;
                if (r > b + 60 && r > g + 40) red++;
                if (b > r + 60) blue++;
            }
            return {drawn, red, blue, total: d.length / 4};
        }""")

    def diff_rows(self) -> list[dict[str, Any]]:
        return self.page.eval_on_selector_all(".rd-tree .rd-row", """rs => rs
            .sort((a, b) => a.offsetTop - b.offsetTop)
            .map(r => ({
                fn: r.querySelector('.rp-fn').textContent,
                level: Number(r.getAttribute('aria-level')),
                change: r.querySelector('.rd-chg-text').textContent,
                badge: (r.querySelector('.rd-badge') || {}).textContent || '',
                before: r.querySelectorAll('.rd-c-side')[0].textContent,
                after: r.querySelectorAll('.rd-c-side')[1].textContent,
            }))""")


@pytest.fixture
def open_dashboard(browser: Any, dashboard: Dashboard) -> Iterator[Any]:
    contexts = []

    def _open(fragment: str = "", color_scheme: str = "light") -> Page:
        ctx = browser.new_context(viewport=VIEWPORT, color_scheme=color_scheme)
        contexts.append(ctx)
        return Page(ctx.new_page(), dashboard.url).open(fragment)

    yield _open
    for ctx in contexts:
        ctx.close()


def _ms(text: str) -> float:
    return float(text.split()[0].replace(",", ""))


def test_route_table_shows_what_the_api_says(open_dashboard: Any, dashboard: Dashboard) -> None:
    p = open_dashboard("#range=all")
    p.wait_mark("routes-ms")
    api = dashboard.api("/api/routes", since=0)["routes"]
    rows = p.table()
    assert [(r[0], r[1]) for r in rows] == [(a["method"], a["route"]) for a in api], "wall time, largest first"
    for row, a in zip(rows, api):
        assert row[2] == f"{a['count']:,}"
        assert row[3] == f"{a['errors']:,}"
        for cell, key in zip(row[4:8], ("p50_ms", "p95_ms", "p99_ms", "max_ms")):
            assert _ms(cell) == pytest.approx(a[key], rel=0.01, abs=0.01), (a["route"], key)
        share = p.page.evaluate("s => ReqprofModel.formatPercent(s)", a["wall_share"])
        assert row[8].endswith(share), (row[8], share)
    summary = p.page.locator(".rd-summary-line").inner_text()
    assert f"{len(api)} routes" in summary
    assert f"{sum(a['count'] for a in api):,} requests" in summary
    assert p.page.locator("#rd-routes-table tr.has-errors").count() == 1
    p.shot("routes")
    p.assert_clean()


def _order(p: Page) -> list[str]:
    return [r[1] for r in p.table()]


def test_route_table_sorts_by_each_column_with_mouse_and_keyboard(open_dashboard: Any,
                                                                   dashboard: Dashboard) -> None:
    p = open_dashboard("#range=all")
    p.wait_mark("routes-ms")
    api = dashboard.api("/api/routes", since=0)["routes"]
    columns = ["method", "route", "count", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms", "wall_s",
               "cpu_s"]
    for key in columns:
        numeric = key not in ("method", "route")
        button = p.page.locator(f"#rd-routes-table th button[data-col={key}]")
        button.click()
        desc = numeric      # a new column: numbers largest first, names A to Z
        want = [a["route"] for a in sorted(
            api, key=lambda a: a[key].lower() if not numeric else a[key], reverse=desc)]
        assert _order(p) == want, key
        th = p.page.locator(f"#rd-routes-table th[data-col={key}]")
        assert th.get_attribute("aria-sort") == ("descending" if desc else "ascending")
        assert f"sort={key}" in p.page.evaluate("location.hash") or key == "wall_s"
    # The keyboard: Tab to a heading's button, Enter sorts, Enter again reverses.
    p.page.locator("#rd-routes-table th button[data-col=count]").focus()
    p.page.keyboard.press("Enter")
    by_count = _order(p)
    p.page.keyboard.press("Enter")
    assert _order(p) == [a["route"] for a in sorted(api, key=lambda a: a["count"])]
    assert by_count == [a["route"] for a in sorted(api, key=lambda a: a["count"], reverse=True)]
    assert p.page.evaluate("document.activeElement.getAttribute('data-col')") == "count"
    # The sort survives a reload (it is in the URL).
    p.page.reload()
    p.wait_mark("routes-ms")
    assert _order(p) == [a["route"] for a in sorted(api, key=lambda a: a["count"])]
    p.assert_clean()


def test_time_ranges_custom_range_and_filter(open_dashboard: Any, dashboard: Dashboard) -> None:
    p = open_dashboard("")
    p.wait_mark("routes-ms")
    assert p.page.locator("#rd-range").input_value() == "1h"
    # The last hour holds the second run only.
    last_hour = {r[1]: int(r[2].replace(",", "")) for r in p.table()}
    assert last_hour["/report"] == TRAFFIC["/report"]
    p.fresh("routes-ms")
    p.page.select_option("#rd-range", "all")
    p.wait_mark("routes-ms")
    assert {r[1]: int(r[2].replace(",", "")) for r in p.table()}["/report"] == 2 * TRAFFIC["/report"]
    assert "range=all" in p.page.evaluate("location.hash")
    p.fresh("routes-ms")
    p.page.select_option("#rd-range", "15m")
    p.wait_mark("routes-ms")
    assert {r[1] for r in p.table()} == {r[1] for r in dashboard.store.sent}
    # A custom range around the first run only.
    p.page.select_option("#rd-range", "custom")
    since = dashboard.store.started - SHIFT_S - 600
    until = dashboard.store.started - SHIFT_S + 600
    local = "d => { const t = new Date(d * 1000); const p = n => String(n).padStart(2, '0'); " \
            "return t.getFullYear() + '-' + p(t.getMonth() + 1) + '-' + p(t.getDate()) + 'T' + " \
            "p(t.getHours()) + ':' + p(t.getMinutes()); }"
    p.page.fill("#rd-since", p.page.evaluate(local, since))
    p.page.fill("#rd-until", p.page.evaluate(local, until))
    p.fresh("routes-ms")
    p.page.get_by_role("button", name="Apply").click()
    p.wait_mark("routes-ms")
    first_run = {r[1]: int(r[2].replace(",", "")) for r in p.table()}
    assert first_run["/report"] == TRAFFIC["/report"]
    assert "range=custom" in p.page.evaluate("location.hash")
    # A range with nothing in it.
    p.page.fill("#rd-since", p.page.evaluate(local, time.time() + 86400))
    p.page.fill("#rd-until", "")
    p.fresh("routes-ms")
    p.page.get_by_role("button", name="Apply").click()
    p.wait_mark("routes-ms")
    assert p.table() == []
    assert p.page.locator(".rd-empty").inner_text() == "No requests in this time range."
    # The filter: method and route, case-insensitively.
    p.page.select_option("#rd-range", "all")
    p.wait_for("document.querySelectorAll('#rd-routes-table tbody tr').length > 3")
    p.page.fill("#rd-filter", "ITEMS")
    p.wait_for("document.querySelectorAll('#rd-routes-table tbody tr').length === 1")
    assert p.table()[0][1] == "/items/{item_id}"
    assert "of" in p.page.locator(".rd-summary-line").inner_text()
    p.assert_clean()


def _open_route(p: Page, route: str) -> None:
    p.page.locator("a.rd-route-link", has_text=route).first.click()
    p.page.locator(".rd-route-screen").wait_for(state="visible")


def test_a_routes_merged_flame_graph_and_call_tree(open_dashboard: Any, dashboard: Dashboard) -> None:
    p = open_dashboard("#range=all")
    p.wait_mark("routes-ms")
    _open_route(p, "/report")
    p.wait_mark("profile-ms")
    assert p.page.locator(".rd-route-head .rp-path").inner_text() == "/report"
    facts = dict(p.page.eval_on_selector_all(
        ".rd-route-head .rp-fact", "fs => fs.map(f => [f.querySelector('dt').textContent, f.querySelector('dd').textContent])"))
    assert facts["requests"] == str(2 * TRAFFIC["/report"])
    assert facts["errors"] == "0"
    assert facts["range"] == "all the store holds"
    assert "Merged profile of 60 requests" in p.page.locator(".rd-profile-note").inner_text()
    assert p.page.locator("#rd-tab-flame").get_attribute("aria-selected") == "true"
    # The flame graph is drawn: the root spans the width.
    colours = p.canvas_colours("#rd-panel-flame .rp-flame-canvas")
    assert colours["drawn"] > colours["total"] * 0.05, colours
    box = p.page.locator("#rd-panel-flame .rp-flame-canvas").bounding_box()
    p.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + ROW / 2)
    tip = p.page.locator("#rd-panel-flame .rp-tooltip")
    tip.wait_for(state="visible")
    assert tip.inner_text().startswith("GET /report")     # the request is the root
    p.shot("route-flame")
    # Both versions' code is in the merged profile: search finds each.
    for name in ("old_render", "new_render", "load_rows"):
        p.page.fill(".rd-profile-tools .rp-search", name)
        p.page.press(".rd-profile-tools .rp-search", "Enter")
        assert p.page.locator(".rp-search-count").inner_text() == "1 frame", name
    p.page.fill(".rd-profile-tools .rp-search", "")
    p.page.press(".rd-profile-tools .rp-search", "Enter")
    # The call tree opens on the hot path.
    p.page.locator("#rd-tab-tree").click()
    assert "tab=tree" in p.page.evaluate("location.hash")
    p.page.locator("#rd-panel-tree .rp-row.is-hot").first.wait_for()
    hot = p.page.eval_on_selector_all("#rd-panel-tree .rp-row.is-hot .rp-fn", "es => es.map(e => e.textContent)")
    assert "report" in hot, hot
    p.page.locator("#rd-tab-top").click()
    p.page.locator("#rd-panel-top .rp-top-row").first.wait_for()
    assert p.page.locator("#rd-panel-top .rp-top-row").count() > 3
    p.page.locator("#rd-tab-tree").click()
    # Keyboard: arrows move between the route's tabs.
    p.page.locator("#rd-tab-tree").focus()
    p.page.keyboard.press("ArrowRight")
    assert p.page.locator("#rd-tab-flame").get_attribute("aria-selected") == "true"
    p.shot("route-tree")
    # Back to the table, with its range.
    p.page.locator("a.rd-back").click()
    p.page.locator(".rd-routes-screen").wait_for(state="visible")
    assert p.page.evaluate("location.hash") == "#range=all"
    p.assert_clean()


def test_kept_requests_open_their_full_report(open_dashboard: Any, dashboard: Dashboard) -> None:
    p = open_dashboard("#range=all")
    p.wait_mark("routes-ms")
    _open_route(p, "/slow")
    p.page.locator("#rd-tab-requests").click()
    p.wait_mark("requests-ms")
    rows = p.page.locator(".rd-request-row")
    assert rows.count() == 2 * TRAFFIC["/slow"]
    assert p.page.locator("#rd-tab-requests").inner_text() == f"Kept requests ({2 * TRAFFIC['/slow']})"
    first = rows.first.inner_text()
    assert "slow" in first and "200" in first
    durations = [_ms(t) for t in p.page.eval_on_selector_all(
        ".rd-request-row td:first-child", "es => es.map(e => e.textContent)")]
    assert durations == sorted(durations, reverse=True) and durations[-1] >= SLOW_MS
    p.shot("kept-requests")
    link = rows.first.locator("a.rd-report-link")
    href = link.get_attribute("href")
    assert re.fullmatch(r"/requests/\d+", href), href
    link.click()
    p.page.wait_for_selector("html[data-render-ms]")
    assert p.page.url == dashboard.url + href
    header = p.page.locator(".rp-header").inner_text()
    assert "/slow" in header and "200" in header
    p.shot("kept-request-report")
    p.page.go_back()
    p.wait_mark("requests-ms")
    assert p.page.locator("#rd-tab-requests").get_attribute("aria-selected") == "true"
    # An error is kept too, with its exception in the report.
    p.page.goto(dashboard.url + "/#range=all&method=GET&route=%2Ffail&tab=requests")
    p.wait_mark("requests-ms")
    assert p.page.locator(".rd-request-row.has-errors").count() == 2 * TRAFFIC["/fail"]
    p.page.locator(".rd-request-row a.rd-report-link").first.click()
    p.page.wait_for_selector("html[data-render-ms]")
    assert "RuntimeError: boom from the app" in p.page.locator(".rp-exception").inner_text()
    p.assert_clean()


def _local_input(p: Page, t: float) -> str:
    return p.page.evaluate("d => { const t = new Date(d * 1000); const p = n => String(n).padStart(2, '0'); "
                           "return t.getFullYear() + '-' + p(t.getMonth() + 1) + '-' + p(t.getDate()) + 'T' + "
                           "p(t.getHours()) + ':' + p(t.getMinutes()); }", t)


def test_compare_two_time_ranges_shows_the_deploy(open_dashboard: Any, dashboard: Dashboard) -> None:
    p = open_dashboard("#range=all")
    p.wait_mark("routes-ms")
    _open_route(p, "/report")
    p.page.locator("#rd-tab-compare").click()
    assert p.page.locator("#rd-cmp-ranges").is_checked()
    deploy = dashboard.store.started
    for field, t in (("a0", deploy - SHIFT_S - 3600), ("a1", deploy - 3600), ("b0", deploy - 3600),
                     ("b1", time.time() + 120)):
        p.page.fill(f"#rd-cmp-{field}", _local_input(p, t))
    p.page.locator("#rd-cmp-go").click()
    p.wait_mark("diff-ms")
    summary = p.page.locator(".rd-summary").inner_text()
    assert summary.count(f"{TRAFFIC['/report']} requests") == 2, summary
    # The flame graph: the union of both trees, red and blue.
    colours = p.canvas_colours(".rd-diff .rp-flame-canvas")
    assert colours["red"] > 200 and colours["blue"] > 200, colours
    p.shot("compare-ranges-flame")
    # The call tree: the path of the largest change is open; old_render is
    # gone, new_render and serialize are new.
    p.page.locator("#rd-diff-tab-tree").click()
    rows = p.diff_rows()
    by_fn = {r["fn"]: r for r in rows}
    assert by_fn["old_render"]["badge"] == "gone" and by_fn["old_render"]["after"] == "0%"
    assert by_fn["old_render"]["change"].startswith("\u2212")
    for fn in ("new_render", "serialize"):
        assert by_fn[fn]["badge"] == "new" and by_fn[fn]["before"] == "0%", fn
        assert by_fn[fn]["change"].startswith("+"), fn
    # report's children: by absolute change, largest first.
    level = by_fn["report"]["level"] + 1
    at = [r["fn"] for r in rows].index("report")
    kids = []
    for r in rows[at + 1:]:
        if r["level"] < level:
            break
        if r["level"] == level:
            kids.append(r)
    assert kids[0]["fn"] == "old_render", kids
    sizes = [abs(float(k["change"].replace("\u2212", "-").split()[0])) for k in kids]
    assert sizes == sorted(sizes, reverse=True), kids
    p.shot("compare-ranges-tree")
    # In time per request, load_rows (the same code in both) barely moves.
    p.page.locator(".rd-diff [data-basis=time]").click()
    by_fn = {r["fn"]: r for r in p.diff_rows()}
    assert by_fn["old_render"]["change"].endswith("ms")
    # The functions table.
    p.page.locator("#rd-diff-tab-functions").click()
    assert p.page.locator(".rd-functions tbody tr").count() > 3
    # The comparison is in the URL: a reload shows it again.
    assert "a0=" in p.page.evaluate("location.hash")
    p.page.reload()
    p.wait_mark("diff-ms")
    # A range without a sampled request says so.
    p.page.fill("#rd-cmp-a0", _local_input(p, deploy - 40 * 86400))
    p.page.fill("#rd-cmp-a1", _local_input(p, deploy - 39 * 86400))
    p.page.locator("#rd-cmp-go").click()
    message = p.page.locator(".rd-cmp-result .rd-empty")
    message.wait_for()
    assert message.inner_text().startswith("No profile for this route from ")
    # (Chromium logs the API's 404 for that range as a console error.)
    p.errors = [e for e in p.errors if "404 (Not Found)" not in e]
    p.assert_clean()


def test_compare_two_kept_requests(open_dashboard: Any, dashboard: Dashboard) -> None:
    p = open_dashboard("#range=all&method=GET&route=%2Fslow&tab=compare")
    p.page.locator("#rd-cmp-requests").check()
    options = p.page.eval_on_selector_all("#rd-cmp-ra option", "os => os.map(o => o.textContent)")
    assert len(options) == 2 * TRAFFIC["/slow"]
    assert all("/slow" in o for o in options)
    p.page.locator("#rd-cmp-go").click()
    p.wait_mark("diff-ms")
    labels = p.page.locator(".rd-side-label").all_inner_texts()
    assert len(labels) == 2 and all(label.startswith("#") for label in labels)
    assert labels[0] != labels[1]
    p.page.locator("#rd-diff-tab-tree").click()
    assert "slow" in [r["fn"] for r in p.diff_rows()]
    p.shot("compare-requests")
    p.assert_clean()


def test_hostile_route_and_frame_names_are_text(open_dashboard: Any, dashboard: Dashboard) -> None:
    p = open_dashboard("#range=all")
    p.wait_mark("routes-ms")
    routes = [r[1] for r in p.table()]
    assert XSS_ROUTE in routes and XSS_PATH in routes
    assert p.page.evaluate("document.querySelectorAll('#rd-routes-table img, #rd-routes-table svg, "
                           "#rd-routes-table script').length") == 0
    p.page.fill("#rd-filter", "<img")
    p.wait_for("document.querySelectorAll('#rd-routes-table tbody tr').length === 1")
    _open_route(p, XSS_ROUTE)
    p.wait_mark("profile-ms")
    assert p.page.locator(".rd-route-head .rp-path").inner_text() == XSS_ROUTE
    assert XSS_ROUTE in p.page.title()
    p.page.fill(".rd-profile-tools .rp-search", "svg onload")
    p.page.press(".rd-profile-tools .rp-search", "Enter")
    assert p.page.locator(".rp-search-count").inner_text() == "1 frame"
    p.page.locator("#rd-tab-tree").click()
    names = p.page.eval_on_selector_all("#rd-panel-tree .rp-row .rp-fn", "es => es.map(e => e.textContent)")
    assert XSS_FUNCTION in names, names
    p.page.goto(dashboard.url + "/#range=all&method=GET&route=" + quote(XSS_PATH, safe=""))
    p.wait_mark("profile-ms")
    assert p.page.locator(".rd-route-head .rp-path").inner_text() == XSS_PATH
    p.shot("hostile")
    assert p.page.evaluate("window.__xss") is None
    assert p.page.evaluate("document.querySelectorAll('body img, body svg, body script:not([src])').length") == 1, \
        "the page's own script only"
    p.assert_clean()


def test_dark_scheme(open_dashboard: Any) -> None:
    p = open_dashboard("#range=all&method=GET&route=%2Freport&tab=flame", color_scheme="dark")
    p.wait_mark("profile-ms")
    bg = p.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(22, 24, 28)"
    p.shot("route-flame-dark")
    p.assert_clean()


# ---------------------------------------------------------------- reqprof diff


def test_diff_command_page_shows_the_diff_in_chromium(browser: Any, dashboard: Dashboard,
                                                      tmp_path: Path) -> None:
    kept = dashboard.api("/api/requests", route="/slow", limit=10)["requests"]
    a = tmp_path / "before.json"
    a.write_bytes(httpx.get(f"{dashboard.url}/api/requests/{kept[-1]['id']}").content)
    b = tmp_path / "after.html"     # an HTML report as input
    b.write_bytes(httpx.get(f"{dashboard.url}/requests/{kept[0]['id']}").content)
    out = tmp_path / "diff.html"
    proc = subprocess.run([sys.executable, "-m", "reqprof", "diff", str(a), str(b), "-o", str(out)],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"" and proc.stderr == b""
    ctx = browser.new_context(viewport=VIEWPORT)
    try:
        page = Page(ctx.new_page(), out.as_uri())
        page.page.goto(out.as_uri())
        page.wait_mark("diff-ms")
        labels = page.page.locator(".rd-side-label").all_inner_texts()
        assert labels == ["before.json: GET /slow -> 200", "after.html: GET /slow -> 200"]
        assert "reqprof diff" in page.page.title()
        colours = page.canvas_colours(".rp-flame-canvas")
        assert colours["drawn"] > colours["total"] * 0.05
        page.page.locator("#rd-diff-tab-tree").click()
        assert "slow" in [r["fn"] for r in page.diff_rows()]
        page.shot("diff-command")
        assert page.errors == [] and page.dialogs == []
        assert page.requests == [out.as_uri()], page.requests
    finally:
        ctx.close()
