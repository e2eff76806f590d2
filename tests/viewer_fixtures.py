"""Profiles for the HTML viewer's tests and benchmark, built in Python.

Every profile follows docs/json-schema.md (version 1): totals add up
(wall = self + children), children are sorted by wall time, pseudo-frames
have an empty file and line 0.

- ``small_profile()``: a FastAPI-like request with library frames, an
  ``[await]``, a ``[thread …]``, a ``[truncated]`` and hot lines.
- ``large_profile(n)``: a deterministic tree of exactly ``n`` nodes.
- ``hostile_profile()``: names, paths and metadata that would run script or
  break the page if they were ever inserted as HTML.
- ``empty_profile()``: no sample at all.

``page_html(profile)`` builds the report page the way the C writer does:
``head + script-safe JSON + tail`` with ``reqprof.viewer.load_template()``.

Run as a script to write the pages to a directory:
``python tests/viewer_fixtures.py OUTDIR``.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

Node = dict[str, Any]

SITE = "/srv/venv/lib/python3.11/site-packages/"
STDLIB = "/usr/lib/python3.11/"
APP = "/srv/app/"

XSS_NAME = "</script><script>alert(1)</script>"
XSS_IMG = '<img src=x onerror="window.__xss=1">'


# ---------------------------------------------------------------- building


def frame(
    function: str,
    file: str,
    line: int,
    *children: Node,
    self_wall: float = 0.0,
    self_cpu: float | None = None,
    lines: dict[int, float] | None = None,
    short_file: str | None = None,
) -> Node:
    """A frame node; totals are filled in by ``finish``."""
    if short_file is None:
        short_file = _short(file)
    return {
        "name": f"{function} ({short_file}:{line})",
        "function": function,
        "file": file,
        "short_file": short_file,
        "line": line,
        "kind": "frame",
        "self_wall_s": self_wall,
        "self_cpu_s": self_wall if self_cpu is None else self_cpu,
        "lines": {str(k): v for k, v in (lines or ({line + 1: self_wall} if self_wall else {})).items()},
        "children": list(children),
    }


def pseudo(kind: str, label: str, *children: Node, self_wall: float = 0.0, self_cpu: float = 0.0,
           lines: dict[int, float] | None = None) -> Node:
    """An ``[await]``, ``[thread …]``, ``[truncated]`` or ``[out-of-context]`` node."""
    return {
        "name": label,
        "function": label,
        "file": "",
        "short_file": "",
        "line": 0,
        "kind": kind,
        "self_wall_s": self_wall,
        "self_cpu_s": self_cpu,
        "lines": {str(k): v for k, v in (lines or {}).items()},
        "children": list(children),
    }


def _short(file: str) -> str:
    for prefix in (SITE, STDLIB, APP):
        if file.startswith(prefix):
            return file[len(prefix):]
    return file


def finish(root: Node, interval: float = 0.001) -> Node:
    """Fill wall/CPU totals and sample counts bottom-up; sort children by wall
    time. Iterative, so deep trees are fine."""
    order: list[Node] = []
    stack = [root]
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(n["children"])
    for n in reversed(order):
        n["children"].sort(key=lambda c: -c["wall_s"])
        n["wall_s"] = round(n["self_wall_s"] + sum(c["wall_s"] for c in n["children"]), 9)
        n["cpu_s"] = round(n["self_cpu_s"] + sum(c["cpu_s"] for c in n["children"]), 9)
        own = round(n["self_wall_s"] / interval) if n["self_wall_s"] else 0
        n["samples"] = max(own + sum(c["samples"] for c in n["children"]), 1)
    return root


def document(root: Node, meta: dict[str, Any], *, interval: float = 0.001, truncated_reasons: list[str] | None = None,
             async_mode: str = "enabled", max_depth: int = 50, started_at: float = 1767261600.0) -> dict[str, Any]:
    finish(root, interval)
    reasons = list(truncated_reasons or [])
    return {
        "version": 1,
        "reqprof_version": "0.1.0",
        "started_at": started_at,
        "duration_s": round(root["wall_s"] * 1.02 + 0.0004, 9),
        "interval_s": interval,
        "samples": root["samples"],
        "wall_s": root["wall_s"],
        "cpu_s": root["cpu_s"],
        "async_mode": async_mode,
        "max_depth": max_depth,
        "truncated": bool(reasons),
        "truncated_reasons": reasons,
        "meta": meta,
        "root": root,
    }


def walk(node: Node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n["children"]))


# ---------------------------------------------------------------- profiles


def small_profile() -> dict[str, Any]:
    """GET /users/42 on a FastAPI app: a query awaited on the database, a
    password hash in a worker thread, JSON rendering, a deep recursive
    helper cut by the depth cap."""
    s, lib, app = SITE, STDLIB, APP
    recursion: Node = pseudo("truncated", "[truncated]", self_wall=0.0031, self_cpu=0.003)
    for depth in range(6):
        recursion = frame("walk_tree", app + "app/services/tree.py", 12, recursion,
                          self_wall=0.0002 * (depth % 2), lines={14: 0.0002 * (depth % 2)} if depth % 2 else None)
    endpoint = frame(
        "get_user", app + "app/api/users.py", 42,
        frame("UserRepo.fetch", app + "app/db/users.py", 30,
              frame("AsyncSession.execute", s + "sqlalchemy/ext/asyncio/session.py", 441,
                    frame("greenlet_spawn", s + "sqlalchemy/util/_concurrency_py3k.py", 171,
                          frame("Connection.fetch", s + "asyncpg/connection.py", 650,
                                pseudo("await", "[await]", self_wall=0.0181, lines={690: 0.0181}),
                                self_wall=0.0004),
                          self_wall=0.0006)),
              self_wall=0.0003, lines={33: 0.0003}),
        frame("to_thread", lib + "asyncio/threads.py", 12,
              frame("BaseEventLoop.run_in_executor", lib + "asyncio/base_events.py", 815,
                    pseudo("thread", "[thread ThreadPoolExecutor-0_0]",
                           frame("hash_password", app + "app/security.py", 18,
                                 self_wall=0.0096, lines={21: 0.0093, 22: 0.0003})))),
        frame("render_profile", app + "app/views.py", 77, recursion, self_wall=0.0008,
              lines={80: 0.0005, 83: 0.0003}),
        self_wall=0.0005, lines={45: 0.0003, 47: 0.0002},
    )
    serialize = frame(
        "serialize_response", s + "fastapi/routing.py", 140,
        frame("jsonable_encoder", s + "fastapi/encoders.py", 102, self_wall=0.0021,
              lines={160: 0.0015, 171: 0.0006}),
        frame("JSONResponse.render", s + "starlette/responses.py", 180,
              frame("dumps", lib + "json/__init__.py", 183,
                    frame("JSONEncoder.encode", lib + "json/encoder.py", 183,
                          frame("JSONEncoder.iterencode", lib + "json/encoder.py", 205, self_wall=0.0016,
                                lines={258: 0.0016})))),
    )
    route = frame(
        "get_request_handler.<locals>.app", s + "fastapi/routing.py", 217,
        frame("run_endpoint_function", s + "fastapi/routing.py", 186, endpoint),
        serialize,
        frame("solve_dependencies", s + "fastapi/dependencies/utils.py", 530,
              frame("get_db", app + "app/deps.py", 9,
                    frame("_find_and_load", "<frozen importlib._bootstrap>", 1165,
                          frame("_load_unlocked", "<frozen importlib._bootstrap>", 664, self_wall=0.0012),
                          short_file="<frozen importlib._bootstrap>"),
                    self_wall=0.0002),
              self_wall=0.0003),
    )
    root = frame(
        "ProfilingMiddleware.__call__", s + "reqprof/asgi.py", 88,
        frame("ExceptionMiddleware.__call__", s + "starlette/middleware/exceptions.py", 46,
              frame("Router.__call__", s + "starlette/routing.py", 697,
                    frame("Route.handle", s + "starlette/routing.py", 275,
                          frame("request_response.<locals>.app", s + "starlette/routing.py", 69, route)))),
        self_wall=0.0001,
    )
    meta = {
        "method": "GET",
        "path": "/users/42",
        "route": "/users/{user_id}",
        "query": "include=orders",
        "status": 200,
        "content_type": "application/json",
        "response_bytes": 1834,
        "exception": None,
        "client": "127.0.0.1",
    }
    return document(root, meta, truncated_reasons=["depth"])


def loop_busy_profile() -> dict[str, Any]:
    """GET /victim: a 50 ms sleep that took 330 ms, most of it ready to run
    while GET /hog held the event loop (the wait costs the victim no CPU;
    no breakdown yet: the engine's
    JSON reader and writer add it, ``Report.from_dict(...).to_dict()``)."""
    s, lib, app = SITE, STDLIB, APP
    busy = pseudo("loop-busy", "[event loop busy]",
                  pseudo("blocker", "GET /hog",
                         frame("hog", app + "app/api/export.py", 20,
                               frame("burn", app + "app/api/export.py", 12, self_wall=0.2771,
                                     self_cpu=0.0, lines={15: 0.2771}))),
                  pseudo("blocker", "[no request]", self_wall=0.002))
    endpoint = frame(
        "victim", app + "app/api/victim.py", 31,
        frame("sleep", lib + "asyncio/tasks.py", 637,
              pseudo("await", "[await]", busy, self_wall=0.0506, lines={649: 0.0506})),
        frame("render", app + "app/api/victim.py", 40, self_wall=0.0012, self_cpu=0.0011))
    root = pseudo("request", "GET /victim",
                  frame("run_endpoint_function", s + "fastapi/routing.py", 372, endpoint),
                  pseudo("unsampled", "[unsampled]", self_wall=0.0008))
    meta = {"trigger": "manual", "method": "GET", "path": "/victim", "route": "/victim",
            "status": 200}
    return document(root, meta)


def large_profile(n: int = 50_000, seed: int = 7) -> dict[str, Any]:
    """A deterministic profile of exactly n nodes: a request through some
    library layers into app code that fans out, 40 levels deep at most,
    over a few hundred modules and a few thousand functions."""
    rng = random.Random(seed)
    modules = []
    for i in range(300):
        if i % 3 == 0:
            modules.append(f"{APP}app/pkg{i % 17}/mod{i}.py")
        elif i % 3 == 1:
            modules.append(f"{SITE}lib{i % 23}/sub/mod{i}.py")
        else:
            modules.append(f"{STDLIB}std{i % 11}/mod{i}.py")
    functions = [(f"Class{k % 97}.method_{k}", modules[k % len(modules)], 10 + (k * 7) % 900) for k in range(3000)]

    root = frame("ProfilingMiddleware.__call__", SITE + "reqprof/asgi.py", 88)
    count = 1
    # Grow the tree from a frontier: mostly depth-first (long call chains),
    # sometimes from a random earlier frame (fan-out), 40 levels at most.
    frontier: list[tuple[Node, int]] = [(root, 0)]
    while count < n:
        if not frontier:
            frontier.append((root, 0))
        at = len(frontier) - 1 if rng.random() < 0.4 else rng.randrange(len(frontier))
        parent, depth = frontier.pop(at)
        if depth < 3:
            fanout = 1
        elif depth < 10:
            fanout = rng.choice((1, 2, 2, 3, 4))
        else:
            fanout = rng.choices((0, 1, 2, 3, 5, 8), weights=(25, 40, 18, 9, 6, 2))[0]
        for _ in range(fanout):
            if count >= n:
                break
            k = rng.randrange(len(functions))
            roll = rng.random()
            if roll < 0.01:
                child = pseudo("await", "[await]", self_wall=rng.uniform(1e-4, 2e-3),
                               lines={rng.randrange(10, 900): 0.0})
            elif roll < 0.012:
                child = pseudo("thread", f"[thread worker-{k % 4}]")
            elif roll < 0.013:
                child = pseudo("out-of-context", "[out-of-context]", self_wall=rng.uniform(1e-4, 1e-3))
            else:
                fn, file, line = functions[k]
                self_wall = rng.uniform(0, 2e-4) if rng.random() < 0.6 else 0.0
                child = frame(fn, file, line, self_wall=self_wall, self_cpu=self_wall * rng.uniform(0.2, 1.0),
                              lines={line + rng.randrange(1, 40): self_wall} if self_wall else None)
            parent["children"].append(child)
            count += 1
            if child["kind"] in ("frame", "thread") and depth + 1 < 40:
                frontier.append((child, depth + 1))
    # A leaf must carry time; give empty leaves a little.
    for node in walk(root):
        if not node["children"] and node["self_wall_s"] == 0 and node["kind"] != "thread":
            node["self_wall_s"] = 1e-5
            node["self_cpu_s"] = 1e-5
    meta = {"method": "POST", "path": "/reports/generate", "route": "/reports/generate", "status": 201}
    return document(root, meta, truncated_reasons=["nodes"])


def hostile_profile() -> dict[str, Any]:
    """Every string a viewer could get wrong: markup, quotes, newlines, NUL,
    non-ASCII, U+FFFD (what the writer puts for bytes that are not UTF-8),
    U+2028/9, entities, and a path with quotes."""
    quoted = APP + "app/it's \"quoted\" & <odd>.py"
    root = frame(
        "handler", APP + "app/main.py", 1,
        frame(XSS_NAME, APP + "app/x.py", 3, self_wall=0.004, lines={4: 0.004}),
        frame(XSS_IMG, quoted, 5, self_wall=0.003),
        frame("line\nbreak\tand\u0000nul", APP + "app/nul\u0000file.py", 7, self_wall=0.002),
        frame("café_λ_函数_🔥", APP + "app/ünïcode/模块.py", 9, self_wall=0.002),
        frame("bad_\ufffd_bytes", APP + "app/bad\ufffd\ufffdname.py", 11, self_wall=0.0015),
        frame("sep\u2028arators\u2029", APP + "app/sep.py", 13, self_wall=0.001),
        frame("&lt;b&gt;not bold&lt;/b&gt; &amp;", APP + "app/ent.py", 15, self_wall=0.001),
        frame("<!-- comment --><script>window.__xss=1</script>", SITE + "evil/<script>.py", 17, self_wall=0.001),
        pseudo("thread", "[thread <b>worker</b>]", frame("{{constructor.constructor('window.__xss=1')()}}", APP + "app/t.py", 19,
                                                           self_wall=0.001)),
        self_wall=0.0005,
    )
    meta = {
        "method": "GET",
        "path": "/search/<script>window.__xss=1</script>",
        "query": "q=\"><img src=x onerror=window.__xss=1>&x='1'",
        "route": "/search/{term}",
        "status": 500,
        "exception": "ValueError('<b>boom</b> </script><script>window.__xss=1</script>')\n  next line",
        "user_agent": "<svg onload=window.__xss=1>",
        "note": "\u2028\u2029\u0000\ufffd",
    }
    return document(root, meta)


def empty_profile() -> dict[str, Any]:
    """A session stopped before its first sample: a root and nothing else."""
    root = frame("handler", APP + "app/main.py", 1)
    doc = document(root, {"method": "HEAD", "path": "/health", "status": 204})
    root.update(wall_s=0, cpu_s=0, samples=0)
    doc.update(samples=0, wall_s=0, cpu_s=0, duration_s=0.00002)
    return doc


# ---------------------------------------------------------------- the page


def script_safe_json(profile: dict[str, Any] | str) -> str:
    """JSON that cannot close a <script> element, as the C writer emits it:
    <, >, & and U+2028/9 as \\u escapes (they only occur inside strings)."""
    text = profile if isinstance(profile, str) else json.dumps(profile, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def page_html(profile: dict[str, Any] | str, *, csp: bool = True) -> str:
    """The report page for a profile: head + script-safe JSON + tail.
    csp=False drops the CSP meta tag, to prove the escaping holds alone."""
    from reqprof.viewer import load_template

    head, tail = load_template()
    if not csp:
        start = head.index('<meta http-equiv="Content-Security-Policy"')
        head = head[:start] + head[head.index(">", start) + 1:]
    return head + script_safe_json(profile) + tail


FIXTURES = {
    "small": small_profile,
    "empty": empty_profile,
    "hostile": hostile_profile,
    "large": large_profile,
}


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "test-output/viewer")
    out.mkdir(parents=True, exist_ok=True)
    for name, make in FIXTURES.items():
        profile = make()
        (out / f"{name}.json").write_text(json.dumps(profile), encoding="utf-8")
        (out / f"{name}.html").write_text(page_html(profile), encoding="utf-8")
        print(out / f"{name}.html")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
