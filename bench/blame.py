"""Blame: how much of a profile's wall time lands on innocent frames, in the
situations of real apps that fooled reqprof's first engine.

    python bench/blame.py                 # the table, 3 rounds, printed
    python bench/blame.py --write         # and into bench/RESULTS.md ("Blame")
    python bench/blame.py --rounds 5 --only gc,children

Three profilers, each run in a fresh process per situation and round:
- ``reqprof``: this checkout's engine;
- ``reqprof before``: the engine before attribution was fixed (``--before
  REV``, default: where this branch left ``main``, ``git merge-base HEAD
  main``), built once into build/blame-before from ``git archive``
  (skipped when that fails);
- ``pyinstrument`` (bench/requirements.txt), with ``async_mode="enabled"``.

Each situation builds its workload, profiles it and reads the call tree
back (reqprof's JSON, pyinstrument's frame tree), and reports the share of
the profile's wall time charged to frames that did not spend it: what the
situation's row says counts as innocent. 0% is a profile that blames no
one; time a profiler honestly leaves unattributed ([unsampled]) is not
blame. Cells: median over the rounds (min–max).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import io
import tarfile
import time
from typing import Any, Callable

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

from common import Spread, emit, table  # noqa: E402

TOOLS = ("reqprof", "reqprof-before", "pyinstrument")
TOOL_NAMES = {"reqprof": "reqprof (now)", "reqprof-before": "reqprof before", "pyinstrument": "pyinstrument"}


# ---- profiles as plain trees ----------------------------------------------------
#
# A node: {"function", "file", "kind", "wall", "children"}; kind is "frame" or
# a pseudo-frame kind ("await", "gc", "unsampled", "after-response", ...).


def from_reqprof(doc: dict[str, Any]) -> dict[str, Any]:
    def conv(n: dict[str, Any]) -> dict[str, Any]:
        return {"function": n["function"], "file": n["file"], "kind": n["kind"],
                "wall": n["wall_s"], "children": []}

    root = conv(doc["root"])
    stack = [(doc["root"], root)]
    while stack:
        src, dst = stack.pop()
        for c in src["children"]:
            d = conv(c)
            dst["children"].append(d)
            stack.append((c, d))
    return root


def from_pyinstrument(frame: Any) -> dict[str, Any]:
    def conv(f: Any) -> dict[str, Any]:
        ident = f.identifier or ""
        kind = "frame"
        if "[await]" in ident:
            kind = "await"
        elif "[self]" in ident:
            kind = "self"
        elif "[out-of-context]" in ident:
            kind = "out-of-context"
        return {"function": f.function or ident, "file": f.file_path or "", "kind": kind,
                "wall": f.time, "children": []}

    root = conv(frame)
    stack = [(frame, root)]
    while stack:
        src, dst = stack.pop()
        for c in src.children:
            d = conv(c)
            dst["children"].append(d)
            stack.append((c, d))
    return root


def named(node: dict[str, Any], name: str) -> bool:
    """Whether a node is function `name` (a qualname's last part, as
    pyinstrument names functions by co_name)."""
    return node["function"].rsplit(".", 1)[-1] == name


def subtree_wall(root: dict[str, Any], pred: Callable[[dict, tuple], bool]) -> float:
    """Wall time of the nodes matching `pred`, nested matches counted once."""
    total = 0.0
    stack = [(root, (), False)]
    while stack:
        n, p, inside = stack.pop()
        hit = not inside and pred(n, p)
        if hit:
            total += n["wall"]
        stack.extend((c, p + (n["function"],), inside or hit) for c in n["children"])
    return total


# ---- running a workload under a profiler ---------------------------------------------


class Profiled:
    """One profile of `tool` around the caller's code."""

    def __init__(self, tool: str, **options: Any) -> None:
        self.tool = tool
        self.options = options
        self.tree: dict[str, Any] | None = None
        self.extra: dict[str, Any] = {}

    def start(self) -> None:
        if self.tool.startswith("reqprof"):
            from reqprof import Profiler
            from reqprof.profiler import hide

            hide(Profiled.start)    # this harness is the profiler's plumbing
            hide(Profiled.stop)
            self.prof = Profiler(**self.options)
            self.prof.start(sys._getframe(1))
        else:
            import pyinstrument

            self.prof = pyinstrument.Profiler(interval=0.001, async_mode="enabled")
            self.prof.start()

    def mark_response_end(self) -> None:
        mark = getattr(self.prof, "mark_response_end", None)
        if mark is not None:
            mark()

    def stop(self) -> dict[str, Any]:
        if self.tool.startswith("reqprof"):
            report = self.prof.stop()
            doc = json.loads(report.to_json())
            self.extra = doc
            self.tree = from_reqprof(doc)
        else:
            session = self.prof.stop()
            self.tree = from_pyinstrument(session.root_frame())
        return self.tree


def spin(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


# ---- the situations ------------------------------------------------------------------


class Transport:
    def __del__(self) -> None:
        pass


def make_cycles(n: int) -> None:
    for _ in range(n):
        t = Transport()
        t.cycle = {"t": t}


def trigger_collection() -> None:
    gc.collect()


def after_collection() -> None:
    spin(0.02)


def situation_gc(tool: str) -> float:
    """A collection with finalizers, then 20 ms of other work. Innocent:
    the empty ``__del__`` charged outside a [gc] node, and what
    ``after_collection`` got beyond its own 20 ms."""
    gc.collect()
    gc.disable()
    make_cycles(200_000)
    p = Profiled(tool)
    p.start()
    trigger_collection()
    t0 = time.perf_counter()
    after_collection()
    after_true = time.perf_counter() - t0
    tree = p.stop()
    gc.enable()
    dels = subtree_wall(tree, lambda n, path: named(n, "__del__") and "[gc]" not in path)
    after = subtree_wall(tree, lambda n, path: named(n, "after_collection"))
    return (dels + max(0.0, after - after_true)) / tree["wall"]


async def view() -> None:
    spin(0.005)
    await asyncio.sleep(0.2)


def situation_children(tool: str) -> float:
    """A framework's handler runs the view in a child task beside a
    disconnect listener and waits for the first (Django's ASGI handler).
    Innocent: everything not under the view, which is the whole request."""
    async def handler() -> None:
        tasks = [asyncio.create_task(view()), asyncio.create_task(asyncio.sleep(10))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        tasks[1].cancel()

    async def main() -> dict[str, Any]:
        p = Profiled(tool)
        p.start()
        await handler()
        return p.stop()

    tree = asyncio.run(main())
    own = subtree_wall(tree, lambda n, path: named(n, "view"))
    unsampled = subtree_wall(tree, lambda n, path: n["kind"] == "unsampled")
    return max(0.0, tree["wall"] - own - unsampled) / tree["wall"]


def situation_greenlet(tool: str) -> float:
    """SQLAlchemy's asyncio mode (greenlets) with aiosqlite, three requests
    at once. Innocent: time charged outside the request's endpoint (ORM
    frames grafted at the root, frames of other stacks)."""
    import sqlite3
    import tempfile

    from sqlalchemy import Column, Integer, String, select, text
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.orm import declarative_base

    Base: Any = declarative_base()

    class Book(Base):
        __tablename__ = "books"
        id = Column(Integer, primary_key=True)
        title = Column(String)

    db = os.path.join(tempfile.mkdtemp(), "books.db")
    with sqlite3.connect(db) as conn:
        conn.execute("create table books (id integer primary key, title text)")
        conn.executemany("insert into books (title) values (?)", [(f"b{i}",) for i in range(2000)])

    async def endpoint(engine: Any) -> None:
        async with AsyncSession(engine) as session:
            for _ in range(10):     # the ORM builds objects in a greenlet
                (await session.execute(select(Book))).scalars().all()

    async def request(engine: Any) -> dict[str, Any]:
        p = Profiled(tool)
        p.start()
        await endpoint(engine)
        return p.stop()

    async def main() -> list[dict[str, Any]]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
        async with AsyncSession(engine) as session:     # connect outside the profiles
            await session.execute(text("select 1"))
        if tool == "pyinstrument":      # one profiler at a time
            return [await request(engine) for _ in range(3)]
        return list(await asyncio.gather(*(request(engine) for _ in range(3))))

    shares = []
    for tree in asyncio.run(main()):
        own = subtree_wall(tree, lambda n, path: named(n, "endpoint"))
        honest = subtree_wall(tree, lambda n, path: n["kind"] == "unsampled")
        shares.append(max(0.0, tree["wall"] - own - honest) / tree["wall"])
    return sum(shares) / len(shares)


def score_reviews() -> None:
    spin(0.0025)


def situation_short(tool: str) -> float:
    """Short requests (2.5 ms of work behind a middleware frame), 40 of
    them, with another thread busy (a loaded server). Innocent: the
    middleware's own frame (the profile's root self time) and any reqprof
    or pyinstrument frame."""
    import threading

    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            spin(0.001)

    other = threading.Thread(target=busy, daemon=True)
    other.start()

    async def app() -> None:
        score_reviews()

    async def middleware() -> dict[str, Any]:
        p = Profiled(tool)
        p.start()
        await app()
        return p.stop()

    innocent = total = 0.0
    try:
        for _ in range(40):
            tree = asyncio.run(middleware())
            root_self = max(0.0, tree["wall"] - sum(c["wall"] for c in tree["children"]))
            root_self += subtree_wall(tree, lambda n, path: n["kind"] == "self" and len(path) == 1)
            plumbing = subtree_wall(tree, lambda n, path: "reqprof" in n["file"] or "pyinstrument" in n["file"]
                                    or (n["file"].endswith("blame.py") and (named(n, "start") or named(n, "stop"))))
            innocent += root_self + plumbing
            total += tree["wall"]
    finally:
        stop.set()
        other.join()
    return innocent / total


def background_job() -> None:
    spin(0.04)
    time.sleep(0.02)


def situation_background(tool: str) -> float:
    """A response sent after 1 ms, then a 60 ms background task in the same
    request (Starlette's BackgroundTasks). Innocent: the background work
    shown as the request's own, unmarked."""
    p = Profiled(tool)
    p.start()
    spin(0.001)
    p.mark_response_end()
    t0 = time.perf_counter()
    background_job()
    after_true = time.perf_counter() - t0
    tree = p.stop()
    marked = subtree_wall(tree, lambda n, path: n["kind"] == "after-response")
    return max(0.0, after_true - marked) / tree["wall"]


def situation_trio(tool: str) -> float:
    """Three trio tasks, each profiled: 30 ms of work and 150 ms of sleep.
    Innocent: in a task's profile, whatever is not its own work or its own
    waits (the other tasks' work, trio's scheduler, the runner)."""
    import trio

    def worker(i: int) -> Callable[[float], int]:
        ns: dict[str, Any] = {"spin": spin}
        exec(f"def trio_work_{i}(s):\n    return spin(s)\n", ns)
        return ns[f"trio_work_{i}"]

    workers = [worker(i) for i in range(3)]
    trees: dict[int, dict[str, Any]] = {}

    async def one(i: int) -> None:
        p = Profiled(tool)
        p.start()
        for _ in range(3):
            workers[i](0.01)
            await trio.sleep(0.005)
        await trio.sleep(0.15)
        trees[i] = p.stop()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(3 if tool != "pyinstrument" else 1):
                nursery.start_soon(one, i)

    if tool == "pyinstrument":      # one profiler at a time: one task profiled
        async def main_one() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(one, 0)
                for i in (1, 2):
                    async def other(i: int = i) -> None:
                        for _ in range(3):
                            workers[i](0.01)
                            await trio.sleep(0.005)
                        await trio.sleep(0.15)
                    nursery.start_soon(other)
        trio.run(main_one)
    else:
        trio.run(main)
    shares = []
    for i, tree in trees.items():
        own = subtree_wall(tree, lambda n, path, i=i: named(n, f"trio_work_{i}"))
        waits = subtree_wall(tree, lambda n, path: n["kind"] == "await" and "sleep" in path)
        honest = subtree_wall(tree, lambda n, path: n["kind"] == "unsampled")
        shares.append(max(0.0, tree["wall"] - own - waits - honest) / tree["wall"])
    return sum(shares) / len(shares)


SITUATIONS: dict[str, tuple[str, Callable[[str], float], str]] = {
    "gc": ("garbage collection with finalizers (#15.1)", situation_gc,
           "empty `__del__` outside [gc], the next function beyond its own time"),
    "children": ("view in a child task beside a disconnect listener (#15.2)", situation_children,
                 "all but the view"),
    "greenlet": ("SQLAlchemy asyncio + aiosqlite, 3 requests at once (#15.3)", situation_greenlet,
                 "outside the endpoint"),
    "short": ("40 requests of 2.5 ms, another thread busy (#15.4)", situation_short,
              "the middleware's own frame, the profiler's start/stop frames"),
    "background": ("background task after a 1 ms response (#15.5)", situation_background,
                   "after-response work not marked as such"),
    "trio": ("3 concurrent trio tasks (#15.6)", situation_trio,
             "other tasks' work, scheduler and runner frames"),
}


# ---- the driver ------------------------------------------------------------------------


def default_before() -> str:
    """Where this checkout left main (the engine before this work), or main."""
    try:
        return subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()[:12] or "main"
    except (OSError, subprocess.CalledProcessError):
        return "main"


def build_before(rev: str) -> str | None:
    """The engine of `rev`, built into build/blame-before; its path, or None."""
    target = os.path.join(ROOT, "build", "blame-before")
    stamp = os.path.join(target, ".rev")
    try:
        sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        if os.path.exists(stamp) and open(stamp).read() == sha:
            return os.path.join(target, "src")
        archive = subprocess.run(["git", "archive", sha, "src", "setup.py", "pyproject.toml", "README.md"],
                                 cwd=ROOT, capture_output=True, check=True).stdout
        os.makedirs(target, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target)
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=target,
                       capture_output=True, check=True)
        with open(stamp, "w") as f:
            f.write(sha)
        return os.path.join(target, "src")
    except (OSError, subprocess.CalledProcessError, tarfile.TarError) as exc:
        sys.stderr.write(f"blame: could not build the engine of {rev}: {exc}\n")
        return None


def run_one(situation: str, tool: str, before_src: str | None) -> float | None:
    env = dict(os.environ)
    env.pop("REQPROF_PORTABLE", None)
    if tool == "reqprof-before":
        if before_src is None:
            return None
        env["PYTHONPATH"] = before_src
    else:
        env["PYTHONPATH"] = os.path.join(ROOT, "src")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", situation, tool],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        sys.stderr.write(f"blame: {situation} with {tool} failed: "
                         f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}\n")
        return None
    return json.loads(lines[-1])["blame"]


def render(results: dict[str, dict[str, list[float]]], rounds: int, rev: str) -> str:
    rows = []
    for name, (title, _, innocent) in SITUATIONS.items():
        if name not in results:
            continue
        cells = []
        for tool in TOOLS:
            s = Spread(v * 100 for v in results[name].get(tool, []))
            cells.append(s.fmt(".0f", "%") if s else "n/a")
        rows.append([title, innocent, *cells])
    head = ["situation", "innocent frames", *(TOOL_NAMES[t] for t in TOOLS)]
    return (f"Share of each profile's wall time charged to innocent frames (median of {rounds} "
            f"rounds, min–max; `reqprof before` is the engine of `{rev}`, before attribution "
            "was fixed; pyinstrument runs with `async_mode=\"enabled\"`). Reproduce: "
            f"`python bench/blame.py --rounds {rounds} --write` (or `make bench`).\n\n"
            + table(head, rows) + "\n")


def write_section(text: str) -> None:
    """Puts `text` in bench/RESULTS.md as its "7. Blame" section (replacing
    the one there, which `make bench` writes too)."""
    path = os.path.join(BENCH, "RESULTS.md")
    with open(path) as f:
        doc = f.read()
    section = "## 7. Blame\n\n" + text
    pattern = re.compile(r"^## (?:\d+\. )?Blame\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(doc):
        doc = pattern.sub(lambda m: section + "\n", doc)
    else:
        doc = doc.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(doc)


def collect(names: list[str], rounds: int, rev: str,
            progress: Callable[[str], None] = lambda msg: sys.stderr.write(msg + "\n")
            ) -> dict[str, dict[str, list[float]]]:
    """Blame shares per situation and profiler, `rounds` fresh runs each."""
    before_src = build_before(rev)
    results: dict[str, dict[str, list[float]]] = {n: {t: [] for t in TOOLS} for n in names}
    for r in range(rounds):
        for name in names:
            for tool in TOOLS:
                v = run_one(name, tool, before_src)
                if v is not None:
                    results[name][tool].append(v)
                progress(f"blame round {r + 1}: {name} {tool}: "
                         f"{'failed' if v is None else f'{v * 100:.1f}%'}")
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="", help=f"comma-separated: {','.join(SITUATIONS)}")
    ap.add_argument("--before", default="", help="git revision of the engine to compare with "
                    "(default: git merge-base HEAD main)")
    ap.add_argument("--write", action="store_true", help="replace the Blame section of bench/RESULTS.md")
    ap.add_argument("--child", nargs=2, metavar=("SITUATION", "TOOL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        situation, tool = args.child
        emit({"blame": SITUATIONS[situation][1](tool)})
        return 0
    names = [n for n in (args.only.split(",") if args.only else SITUATIONS) if n]
    before = args.before or default_before()
    results = collect(names, args.rounds, before)
    text = render(results, args.rounds, before)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
