"""Bad input through the middleware: odd ``profile=`` and ``profile_format=``
values, and hostile function names, file names and request paths through
every report format the middleware serves, its log lines and its saved
reports. Every writer must stay valid (parseable) and inert (no markup or
log line of the attacker's making)."""
from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
import time
from html.parser import HTMLParser
from typing import Any, Optional

import pytest
from fastapi import FastAPI

from apps import make_app, profiled
from profile_tree import walk
from reqprof import ProfilingMiddleware, Settings

HTML = "text/html; charset=utf-8"

# Long request heads stay under the server's 16 KiB limit (h11's): a longer
# one is refused, or the connection reset, before it reaches any app,
# depending on how its bytes happen to arrive.


# -- ?profile= ------------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "%70rofile=1",                          # percent-encoded name: the same parameter
    "%70%72%6F%66%69%6C%65=yes",
    "profile=%31",
    "profile=%54RUE",
    "profile=%79%45%73",
    "profile=0&profile=1",                  # the last one wins
    "&".join(["profile=0"] * 1200) + "&profile=1",
    "a=1&&&profile=1&&",
    "profile=1&x=%FF%FE%00",                # another parameter with non-UTF-8 and NUL
    "x=" + "y" * 12_000 + "&profile=1",      # a long query string
])
def test_profile_param_odd_spellings_that_mean_yes(serve, query):
    server = serve(profiled())
    response = server.client.get(f"/json?{query}")
    assert response.status_code == 200
    assert response.headers["content-type"] == HTML, query


@pytest.mark.parametrize("query", [
    "profile=1%00", "profile=%00", "profile=%FF", "profile=%EF%BC%91",   # NUL, non-UTF-8, "１"
    "profile=+1", "profile=1+", "profile=%201", "profile=yes%0A", "profile=%0D%0A1",
    "profile=%", "profile=%zz", "profile=%2", "profile=1;profile_format=json",
    "profile[]=1", "profile.=1", "profile%00=1", "%00profile=1", " profile=1",
    "profile=1&profile=", "profile=true&profile=nope", "profile=" + "1" * 10_000,
    "profile=1%26profile_format=json", "profile%3D1", "Profile=1", "profile_format=json",
])
def test_profile_param_odd_spellings_that_mean_no(serve, query):
    bare = serve(make_app())
    server = serve(profiled())
    target = f"/json?{query}"
    assert server.raw(target) == bare.raw(target), query


@pytest.mark.parametrize("body,content_type", [
    (b"profile=1", "application/x-www-form-urlencoded"),
    (b"profile=1&profile_format=json", "application/x-www-form-urlencoded"),
    (b'--b\r\nContent-Disposition: form-data; name="profile"\r\n\r\n1\r\n--b--\r\n',
     "multipart/form-data; boundary=b"),
    (b'{"profile": 1}', "application/json"),
])
def test_profile_in_a_request_body_does_not_count(serve, body, content_type):
    bare = serve(make_app())
    server = serve(profiled())
    headers = {"Content-Type": content_type}
    assert server.raw("/echo/body", method="POST", body=body, headers=headers) == \
        bare.raw("/echo/body", method="POST", body=body, headers=headers)


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "DELETE", "PATCH"])
def test_profile_with_other_methods(serve, method):
    server = serve(profiled())
    raw = server.raw("/json?profile=1", method=method)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: text/html" in head
    if method == "HEAD":
        assert body == b""
    else:
        assert body.lstrip().lower().startswith(b"<!doctype html")


def test_non_ascii_request_target_is_the_servers_business(serve):
    bare = serve(make_app())
    server = serve(profiled())
    for target in ["/json?profile=1&x=\xff\xfe", "/json/\xff?profile=1", "/json?profile=\xff"]:
        assert server.raw(target) == bare.raw(target), target


# -- ?profile_format= ------------------------------------------------------------------

@pytest.mark.parametrize("fmt,content_type", [
    ("JSON", "application/json"), ("Json", "application/json"), ("%6Ason", "application/json"),
    ("", HTML), ("text&profile_format=json", "application/json"),    # the last one wins
    ("json&profile_format=", HTML),
])
def test_profile_format_spellings(serve, fmt, content_type):
    server = serve(profiled())
    response = server.client.get(f"/json?profile=1&profile_format={fmt}")
    assert response.headers["content-type"] == content_type


@pytest.mark.parametrize("fmt", [
    "bogus", "json%00", "html%0A", "%FF", "json%20", "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "x" * 12_000, "%0D%0AINFO:%20fake%20line", "pprof2", "to_json", "__class__",
])
def test_unknown_profile_format_is_the_normal_response_and_one_bounded_warning(
        serve, reqprof_logs, fmt):
    bare = serve(make_app())
    server = serve(profiled())
    for _ in range(3):
        target = f"/json?profile=1&profile_format={fmt}"
        assert server.raw(target) == bare.raw(target)
    [warning] = [m for m in reqprof_logs.messages(logging.WARNING) if "profile_format" in m]
    assert len(warning) < 400
    assert "\n" not in warning and "\r" not in warning and "\x00" not in warning
    assert "serving the normal response" in warning and "html, json" in warning


# -- hostile names, files and paths through every format --------------------------------

HOSTILE_NAME = ('</script><script>alert("name")</script>\n\r\'"&amp;<!--\x00;|\t'
                '\u2028\u202e\udcff \x1b[31m end')
HOSTILE_FILE = '/srv/<img src=x onerror=alert(1)>\n";\x00\udcfe/evil file%s.py'
HOSTILE_PATH = ("/h/%3Cscript%3Ealert('path')%3C/script%3E%22%27%0A%0D%00%FF%E2%80%A8"
                "%1B%5B31m;%7C%26amp;")
DECODED_PATH = "/h/<script>alert('path')</script>\"'\n\r\x00\ufffd\u2028\x1b[31m;|&amp;"


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _hostile(seconds: float) -> None:
    spin(seconds)


def _hostile_caller(seconds: float) -> None:
    _hostile(seconds)


_hostile.__code__ = _hostile.__code__.replace(
    co_name=HOSTILE_NAME, co_qualname=HOSTILE_NAME, co_filename=HOSTILE_FILE % "")
_hostile_caller.__code__ = _hostile_caller.__code__.replace(
    co_filename=HOSTILE_FILE % "2")


async def hostile_app(scope: dict, receive: Any, send: Any) -> None:
    """Any path (a router would not match a newline in one): the hostile
    frames for /h/..., plain work otherwise."""
    if scope["type"] != "http":
        return
    if scope["path"].startswith("/h/"):
        _hostile_caller(0.04)
    else:
        spin(0.04)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


def hostile(**settings: Any) -> ProfilingMiddleware:
    settings.setdefault("enabled", True)
    settings.setdefault("sample_rate", 0.0)
    return ProfilingMiddleware(hostile_app, settings=Settings(**settings))


class Page(HTMLParser):
    """The element structure of an HTML page and the text of its scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple] = []
        self.scripts: list[tuple[dict, str]] = []
        self._script: Optional[dict] = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(("start", tag, tuple(attrs)))
        if tag == "script":
            self._script, self._text = dict(attrs), []

    def handle_endtag(self, tag: str) -> None:
        self.tags.append(("end", tag))
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)

    def handle_comment(self, data: str) -> None:
        self.tags.append(("comment", data))


def parse_page(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def hostile_nodes(root: dict) -> list[dict]:
    return [n for n, _ in walk(root) if 'alert("name")' in n["function"]]


@pytest.fixture(scope="module")
def hostile_reports():
    """Every format of one hostile request's report (and a benign page to
    compare the HTML's structure with), fetched once through uvicorn."""
    from conftest import ThreadServer

    middleware = hostile()
    server = ThreadServer(middleware)
    try:
        out: dict[str, Any] = {}
        for fmt in middleware.profiling.formats:
            for _ in range(5):      # a report with the hostile frame sampled
                response = server.client.get(f"{HOSTILE_PATH}?profile=1&profile_format={fmt}")
                assert response.status_code == 200, fmt
                if fmt != "json" or hostile_nodes(response.json()["root"]):
                    break
            out[fmt] = response
        out["benign_html"] = server.client.get("/plain?profile=1").text
        return out
    finally:
        server.close()


def test_hostile_json_is_valid_and_holds_the_names_as_data(hostile_reports):
    data = hostile_reports["json"].json()
    assert data["meta"]["path"] == DECODED_PATH
    assert data["meta"]["route"] is None and data["meta"]["status"] == 200
    [node] = hostile_nodes(data["root"])
    assert node["function"].startswith('</script><script>alert("name")</script>\n\r\'"&amp;<!--')
    assert "\x00" in node["function"] and "\u2028" in node["function"]
    assert node["file"].startswith("/srv/<img src=x onerror=alert(1)>\n\";\x00")
    # The raw bytes: valid UTF-8, no raw control characters, no markup.
    raw = hostile_reports["json"].content
    text = raw.decode("utf-8")
    assert not re.search("[\x00-\x1f\u2028\u2029]", text)
    assert "<" not in text and ">" not in text        # escaped as \u003c / \u003e


def test_hostile_html_keeps_its_structure_and_data(hostile_reports):
    text = hostile_reports["html"].content.decode("utf-8")
    page = parse_page(text)
    benign = parse_page(hostile_reports["benign_html"])
    assert page.tags == benign.tags          # not one element or comment more
    [(attrs, payload)] = [(a, t) for a, t in page.scripts if a.get("id") == "profile-data"]
    assert attrs.get("type") == "application/json"
    data = json.loads(payload)
    assert data["meta"]["path"] == DECODED_PATH
    assert hostile_nodes(data["root"])
    assert "</script" not in payload.lower() and "<!--" not in payload
    assert "alert('path')" not in text.replace(payload, "")      # only inside the data


def test_hostile_text_report_keeps_one_line_per_frame(hostile_reports):
    response = hostile_reports["text"]
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    text = response.content.decode("utf-8")
    assert not re.search("[\x00\r\x0b\x0c\x1b\u2028\u2029]", text)
    lines = [line for line in text.splitlines() if 'alert("name")' in line]
    assert len(lines) == 1 and " end (" in lines[0] and "evil file.py:" in lines[0]
    for line in text.splitlines():
        assert not line.startswith(("<script", "'\"", " end (", "/evil")), line


def test_hostile_collapsed_stacks_stay_one_stack_per_line(hostile_reports):
    text = hostile_reports["collapsed"].content.decode("utf-8")
    assert not re.search("[\x00\r\x1b\u2028\u2029]", text)
    lines = text.splitlines()
    assert lines and all(re.fullmatch(r"[^\n]+ \d+", line) for line in lines)
    hostile_lines = [line for line in lines if 'alert("name")' in line]
    assert hostile_lines
    for line in hostile_lines:
        frames = line.rsplit(" ", 1)[0].split(";")
        # The name's own ";" must not split its frame in two.
        assert sum('alert("name")' in f for f in frames) == 1
        assert any(f.startswith("spin (") for f in frames)


@pytest.mark.parametrize("fmt", ["speedscope", "pprof"])
def test_hostile_other_writers(hostile_reports, fmt):
    assert fmt in hostile_reports
    body = hostile_reports[fmt].content
    if fmt == "speedscope":
        data = json.loads(body)
        names = [f["name"] for f in data["shared"]["frames"]]
        assert any('alert("name")' in n for n in names)
    else:
        raw = gzip.decompress(body)
        assert 'alert("name")'.encode() in raw


def test_hostile_names_in_log_lines_and_saved_reports(serve, reqprof_logs, tmp_path):
    server = serve(hostile(sample_rate=1.0, output_dir=str(tmp_path)))
    for _ in range(3):
        assert server.client.get(HOSTILE_PATH).status_code == 200
    server.wait_idle()
    records = reqprof_logs.summaries()
    assert len(records) == 3
    for record in records:
        message = record.getMessage()
        first, *tree = message.split("\n")
        assert first.startswith("reqprof: GET /h/<script>alert('path')</script>\"'\\n\\r\\x00")
        assert " -> 200 in " in first
        assert not re.search("[\x00\r\x1b\u2028\u2029\u0085]", message)
        for line in tree:
            # Every tree line is "<ms> ms <pct>%  <name>" behind the tree glyphs.
            assert re.match(r"^[│├└─ ]*\d+\.\d ms \d+%  ", line), line
        assert record.reqprof_path == DECODED_PATH      # the structured field keeps it exact
    assert any('alert("name")' in r.getMessage() for r in records)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 6
    for path in files:
        assert re.fullmatch(r"reqprof-[A-Za-z0-9._-]+\.(html|json)", path.name), path.name
        if path.suffix == ".json":
            assert json.loads(path.read_text(encoding="utf-8"))["meta"]["path"] == DECODED_PATH
        else:
            assert parse_page(path.read_text(encoding="utf-8")).tags == \
                parse_page(files[0].with_suffix(".html").read_text(encoding="utf-8")).tags


# -- what servers other than uvicorn may put in a scope ----------------------------------

def run_asgi(app: Any, path: str, query: bytes = b"profile=1&profile_format=json",
             method: str = "GET", raw_path: Optional[bytes] = None) -> tuple[int, dict, bytes]:
    sent: list = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path,
             "raw_path": raw_path if raw_path is not None else path.encode("utf-8", "surrogateescape"),
             "root_path": "", "query_string": query, "headers": [(b"host", b"x")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


async def _small_app(scope: dict, receive: Any, send: Any) -> None:
    _hostile_caller(0.03)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"small"})


@pytest.mark.parametrize("path,expected", [
    ("/\udcff\udcfe/x", "/\\udcff\\udcfe/x"),               # surrogateescape'd bytes
    ("/nul\x00/\n\r", "/nul\x00/\n\r"),
    ("/" + "a" * 10_000, "/" + "a" * 1998 + "…"),           # bounded
    ("", ""),
])
def test_scope_paths_from_any_server(path, expected):
    middleware = ProfilingMiddleware(_small_app, settings=Settings(enabled=True, sample_rate=0.0))
    for fmt in middleware.profiling.formats:
        status, headers, body = run_asgi(middleware, path,
                                         query=f"profile=1&profile_format={fmt}".encode())
        assert status == 200 and headers[b"content-type"] != b"text/plain", fmt
        assert int(headers[b"content-length"]) == len(body)
        if fmt == "json":
            assert json.loads(body)["meta"]["path"] == expected
        elif fmt in ("html", "text", "collapsed"):
            body.decode("utf-8")


def test_scope_with_odd_method_and_version():
    middleware = ProfilingMiddleware(_small_app, settings=Settings(enabled=True, sample_rate=0.0))
    status, _, body = run_asgi(middleware, "/", method="GE\nT\udcff" + "X" * 500)
    data = json.loads(body)
    assert data["meta"]["method"].startswith("GE\nT\\udcff") and len(data["meta"]["method"]) <= 40


def test_hostile_exception_message_in_report_and_log(serve, reqprof_logs):
    app = FastAPI()

    @app.get("/raise")
    def raise_endpoint() -> None:
        raise ValueError("bad\n</script><script>alert(1)</script>\x00\udcff" + "x" * 5000)

    server = serve(ProfilingMiddleware(app, settings=Settings(enabled=True, sample_rate=1.0)))
    response = server.client.get("/raise?profile=1&profile_format=json")
    data = response.json()
    assert data["meta"]["exception"].startswith("ValueError: bad\n</script>")
    assert len(data["meta"]["exception"]) <= 1000
    page = server.client.get("/raise?profile=1").text
    assert parse_page(page).tags == parse_page(
        server.client.get("/raise?profile=1&profile_format=html&x=1").text).tags
    server.client.get("/raise", headers={"connection": "close"})
    server.wait_idle()
    [record] = reqprof_logs.summaries()
    first = record.getMessage().split("\n")[0]
    assert "raised ValueError: bad\\n</script>" in first and "\x00" not in first
