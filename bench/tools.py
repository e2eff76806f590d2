"""The profilers under comparison, behind one start/stop interface, for the
benchmark child processes.

A tool name is one of ``TOOLS``. ``reqprof-portable`` is reqprof itself: the
parent process sets ``REQPROF_PORTABLE=1`` in its environment (see
``tool_env``), which makes the engine use public CPython APIs only.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Iterator

TOOLS = ("bare", "reqprof", "reqprof-portable", "pyinstrument", "cProfile")
SAMPLING_TOOLS = ("reqprof", "reqprof-portable", "pyinstrument")


def tool_env(tool: str) -> dict[str, str]:
    """Environment additions for a child process that runs `tool`."""
    return {"REQPROF_PORTABLE": "1"} if tool == "reqprof-portable" else {}


class Run:
    """One profiled (or bare) run: ``start()``, the work, ``stop()``."""

    def __init__(self, tool: str, interval: float = 0.001, **options: Any) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        if tool == "reqprof-portable" and os.environ.get("REQPROF_PORTABLE") != "1":
            raise RuntimeError("reqprof-portable needs REQPROF_PORTABLE=1 in the environment")
        self.tool = tool
        self.interval = interval
        self.options = options
        self.result: Any = None
        self._prof: Any = None

    def start(self, root_frame: Any = None) -> None:
        """Starts profiling; reqprof's call tree is rooted at `root_frame`
        (default: the caller's frame, which must stay on the stack)."""
        if self.tool.startswith("reqprof"):
            from reqprof import Profiler

            self._prof = Profiler(interval=self.interval, **self.options)
            self._prof.start(root_frame if root_frame is not None else sys._getframe(1))
        elif self.tool == "pyinstrument":
            import pyinstrument

            self._prof = pyinstrument.Profiler(interval=self.interval, **self.options)
            self._prof.start()
        elif self.tool == "cProfile":
            import cProfile

            self._prof = cProfile.Profile()
            self._prof.enable()

    def stop(self) -> None:
        if self.tool.startswith("reqprof"):
            self.result = self._prof.stop()
        elif self.tool == "pyinstrument":
            self.result = self._prof.stop()
        elif self.tool == "cProfile":
            self._prof.disable()
            self.result = self._prof

    def samples(self) -> int | None:
        if self.tool.startswith("reqprof"):
            return int(self.result.samples)
        if self.tool == "pyinstrument":
            return int(self.result.sample_count)
        return None

    def duration(self) -> float | None:
        if self.tool.startswith("reqprof"):
            return float(self.result.duration_s)
        if self.tool == "pyinstrument":
            return float(self.result.duration)
        return None

    def inclusive_times(self) -> tuple[dict[str, float], float]:
        """({function name: wall seconds under it, nested calls counted
        once}, profile total wall seconds) for the sampling tools."""
        if self.tool.startswith("reqprof"):
            root = self.result.to_dict()["root"]
            return _inclusive(root, lambda n: n["function"], lambda n: n["wall_s"],
                              lambda n: n["children"]), float(root["wall_s"])
        if self.tool == "pyinstrument":
            root = self.result.root_frame()
            if root is None:
                return {}, 0.0
            return _inclusive(root, lambda f: f.function, lambda f: f.time,
                              lambda f: f.children), float(root.time)
        raise ValueError(f"{self.tool} has no call tree")


def _inclusive(root: Any, name: Callable[[Any], str], wall: Callable[[Any], float],
               children: Callable[[Any], list]) -> dict[str, float]:
    totals: dict[str, float] = {}
    stack: list[tuple[Any, frozenset[str]]] = [(root, frozenset())]
    while stack:
        node, above = stack.pop()
        fn = name(node)
        if fn not in above:
            totals[fn] = totals.get(fn, 0.0) + wall(node)
            above = above | {fn}
        stack.extend((c, above) for c in children(node))
    return totals


def timed(run: Run, work: Callable[[], object]) -> float:
    """Seconds from before ``start()`` to after ``stop()``: what the
    profiled code pays, profiler start-up and tear-down included."""
    t0 = time.perf_counter()
    run.start(sys._getframe(0))
    try:
        work()
    finally:
        run.stop()
    return time.perf_counter() - t0


def walk(node: Any, children: Callable[[Any], list]) -> Iterator[Any]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(children(n))
