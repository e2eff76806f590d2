"""``reqprof dashboard``: a local, offline page over a store, and its JSON
API for scripts.

    python -m reqprof dashboard --store PATH [--host 127.0.0.1] [--port 8050] [--token T]

API (JSON; times in seconds since the epoch, durations in ms):

- ``GET /api/routes?since=&until=`` -> ``{"routes": [{"method", "route",
  "count", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms", "wall_s",
  "cpu_s", "wall_share", "cpu_share", "has_profile"}], "since", "until"}``
- ``GET /api/profile?method=&route=&since=&until=`` -> the route's merged
  profile in the report schema (docs/json-schema.md); ``meta`` carries
  ``requests`` and ``errors``
- ``GET /api/requests?method=&route=&min_ms=&limit=&since=`` ->
  ``{"requests": [{"id", "method", "route", "path", "status",
  "duration_ms", "started", "kept_because", "host", "pid", "trace_id"}]}``
- ``GET /api/requests/<id>`` -> that request's report JSON;
  ``GET /requests/<id>`` -> its HTML report.

It binds to loopback by default. Any other address needs a token (``--token``
or ``REQPROF_DASHBOARD_TOKEN``), checked on every request: the header
``Authorization: Bearer <token>`` (or ``X-Reqprof-Token``), or the cookie
the login form at ``/login`` sets (HttpOnly, SameSite=Strict).
"""
from __future__ import annotations

import hashlib
import hmac
import http.server
import ipaddress
import json
import os
import sys
import time
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

from . import _core
from .report import Report
from .store import Store, StoreError

__all__ = ["DashboardData", "serve", "make_server"]

QUANTILES = (0.5, 0.95, 0.99)
COOKIE = "reqprof_dashboard"
PROFILE_MAX_NODES = 20_000
PROFILE_MAX_BYTES = 256 << 20


def _number(query: dict, name: str, default: Optional[float]) -> Optional[float]:
    values = query.get(name)
    if not values or values[-1] == "":
        return default
    try:
        return float(values[-1])
    except ValueError:
        raise ValueError(f"{name}: a number, not {values[-1][:40]!r}") from None


def _text(query: dict, name: str) -> Optional[str]:
    values = query.get(name)
    return values[-1] if values else None


class DashboardData:
    """What the API answers, read from a store (no HTTP here)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def routes(self, since: float = 0.0, until: Optional[float] = None) -> list[dict]:
        totals = self.store.route_totals(since, until)
        total_wall = sum(row[4] for row in totals) or 1.0
        total_cpu = sum(row[5] for row in totals) or 1.0
        out = []
        for method, route, count, errors, wall_s, cpu_s, max_ms, has_profile, latency in totals:
            _, values = _core.hist_quantiles(_core.hist_merge(latency), QUANTILES)
            p50, p95, p99 = (round(v / 1000.0, 3) for v in values)
            out.append({"method": method, "route": route, "count": count, "errors": errors,
                        "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": round(max_ms, 3),
                        "wall_s": round(wall_s, 6), "cpu_s": round(cpu_s, 6),
                        "wall_share": round(wall_s / total_wall, 6),
                        "cpu_share": round(cpu_s / total_cpu, 6), "has_profile": has_profile})
        out.sort(key=lambda e: -e["wall_s"])
        return out

    def profile(self, method: str, route: str, since: float = 0.0,
                until: Optional[float] = None) -> Optional[dict]:
        """The route's merged profile (report schema), or None without one."""
        agg = _core.Aggregate(1, PROFILE_MAX_NODES, PROFILE_MAX_BYTES)
        requests = errors = 0
        merged = False
        for row in self.store.route_windows(since, until, method, route, with_profiles=True):
            requests += row[2]
            errors += row[3]
            if row[8] is None:
                continue
            try:
                session, _meta, _version = _core.load_json(row[8])
            except ValueError:
                continue    # a damaged row: the others still count
            agg.merge(session, method, route)
            merged = True
        if not merged:
            return None
        data = json.loads(agg.route_json(0, since))
        data["meta"].update(method=method, route=route, requests=requests, errors=errors,
                            since=since, until=until)
        return data

    def requests(self, **kw: Any) -> list[dict]:
        return self.store.requests(**kw)

    def report_json(self, request_id: int) -> Optional[bytes]:
        return self.store.request_report(request_id)


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "reqprof-dashboard"
    data: DashboardData
    token_digest: Optional[bytes]

    def log_message(self, format: str, *args: Any) -> None:    # quiet: no access log
        pass

    # -- plumbing ----------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str,
              headers: Optional[list] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        for name, value in headers or ():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value: Any, status: int = 200) -> None:
        self._send(status, json.dumps(value, allow_nan=False).encode("utf-8"),
                   "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _authorised(self) -> bool:
        digest = self.token_digest
        if digest is None:
            return True
        given = []
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        if self.headers.get("X-Reqprof-Token"):
            given.append(self.headers["X-Reqprof-Token"].strip())
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                given.append(value)
        return any(hmac.compare_digest(hashlib.sha256(g.encode("utf-8", "replace")).digest(),
                                       digest) for g in given)

    # -- requests ------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query, keep_blank_values=True)
        if path == "/login":
            self._login_page()
            return
        if not self._authorised():
            if path.startswith("/api/"):
                self._error(401, "a token is needed (Authorization: Bearer <token>)")
            else:
                self._send(303, b"", "text/plain", [("Location", "/login")])
            return
        try:
            self._route(path, query)
        except ValueError as exc:
            self._error(400, str(exc))
        except StoreError as exc:
            self._error(503, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, path: str, query: dict) -> None:
        data = self.data
        since = _number(query, "since", 0.0) or 0.0
        until = _number(query, "until", None)
        if path == "/":
            from .viewer import dashboard_page

            page, csp = dashboard_page()
            self._send(200, page.encode("utf-8"), "text/html; charset=utf-8",
                       [("Content-Security-Policy", csp)])
        elif path == "/api/routes":
            self._json({"routes": data.routes(since, until), "since": since, "until": until,
                        "now": time.time()})
        elif path == "/api/profile":
            method, route = _text(query, "method"), _text(query, "route")
            if method is None or route is None:
                raise ValueError("method and route are needed")
            profile = data.profile(method, route, since, until)
            if profile is None:
                self._error(404, "no profile for this route in this time range")
            else:
                self._json(profile)
        elif path == "/api/requests":
            limit = int(_number(query, "limit", 100) or 100)
            self._json({"requests": data.requests(
                method=_text(query, "method") or None, route=_text(query, "route") or None,
                min_ms=_number(query, "min_ms", 0.0) or 0.0, limit=limit, since=since)})
        elif path.startswith("/api/requests/") or path.startswith("/requests/"):
            self._report(path.rsplit("/", 1)[1], html_page=not path.startswith("/api/"))
        else:
            self._error(404, "not found")

    def _report(self, ident: str, html_page: bool) -> None:
        if not ident.isdigit():
            raise ValueError("a request id is a number")
        body = self.data.report_json(int(ident))
        if body is None:
            self._error(404, "no such request")
        elif html_page:
            self._send(200, Report.from_json(body).to_bytes("html"), "text/html; charset=utf-8")
        else:
            self._send(200, body, "application/json")

    def _login_page(self, failed: bool = False) -> None:
        note = "<p class=error>That token is not right.</p>" if failed else ""
        page = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
                "<title>reqprof dashboard</title></head><body>"
                "<h1>reqprof dashboard</h1>" + note +
                "<form method=post action=/login><label>Token "
                "<input type=password name=token autofocus></label> "
                "<button type=submit>Open</button></form></body></html>")
        self._send(401 if failed else 200, page.encode("utf-8"), "text/html; charset=utf-8",
                   [("Content-Security-Policy",
                     "default-src 'none'; form-action 'self'; base-uri 'none'")])

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/login":
            self._error(404, "not found")
            return
        length = min(int(self.headers.get("Content-Length") or 0), 4096)
        fields = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        token = (fields.get("token") or [""])[-1]
        digest = self.token_digest
        if digest is None or not hmac.compare_digest(
                hashlib.sha256(token.encode("utf-8", "replace")).digest(), digest):
            self._login_page(failed=True)
            return
        cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
        self._send(303, b"", "text/plain", [("Location", "/"), ("Set-Cookie", cookie)])


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def make_server(store_path: str, host: str = "127.0.0.1", port: int = 8050,
                token: Optional[str] = None) -> http.server.HTTPServer:
    """The dashboard's HTTP server (not started). Raises StoreError for a
    store that cannot be read, ValueError for a non-loopback host without a
    token."""
    token = token or os.environ.get("REQPROF_DASHBOARD_TOKEN") or None
    if not _is_loopback(host) and token is None:
        raise ValueError(f"--host {host} is not a loopback address: give --token (or set "
                         "REQPROF_DASHBOARD_TOKEN), or the store is open to anyone who "
                         "reaches this machine")
    data = DashboardData(Store(store_path, readonly=True))
    handler = type("Handler", (_Handler,), {
        "data": data,
        "token_digest": hashlib.sha256(token.encode("utf-8")).digest() if token else None,
    })
    return _Server((host, port), handler)


def serve(store_path: str, host: str = "127.0.0.1", port: int = 8050,
          token: Optional[str] = None) -> int:
    """Runs the dashboard until interrupted. Returns the exit status."""
    server = make_server(store_path, host, port, token)
    shown = f"[{host}]" if ":" in host else host
    print(f"reqprof dashboard on http://{shown}:{server.server_address[1]}/ "
          f"(store {os.path.abspath(store_path)}); Ctrl-C stops it", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
