"""Report: the result of a profiling session, in every format.

The data stays in the C session (call tree, code table, resolved symbols);
each ``to_*`` method runs a C writer over it. ``Report.from_json`` reads a
saved profile back into a session (C, read_json.c), so every format can be
written from a file.
"""
from __future__ import annotations

import json
import os
import sysconfig
from typing import Any

from ._version import __version__


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths.get("stdlib"), paths.get("platstdlib")}
    return tuple(sorted(os.path.join(d, "") for d in dirs if d))


#: Directories of library code besides site-packages and dist-packages (the
#: standard library): the text writers fold and dim their frames.
LIBRARY_DIRS = _library_dirs()


def _dumps_profile(data: dict[str, Any]) -> str:
    """``json.dumps(data)`` of a profile document, with its tree written
    without recursion (node -> "children" -> nodes, at any depth)."""
    parts: list[str] = []
    # Work items: a value to write, or a str already written.
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        value = item[0] if isinstance(item, tuple) else item
        if isinstance(value, dict) and isinstance(value.get("children", value.get("root")), (list, dict)):
            key = "children" if "children" in value else "root"
            rest = {k: v for k, v in value.items() if k != key}
            head = json.dumps(rest, allow_nan=False)
            nested = value[key]
            parts.append(head[:-1] + ("," if rest else "") + json.dumps(key) + ":")
            stack.append("}")
            if isinstance(nested, list):
                parts.append("[")
                stack.append("]")
                for i in range(len(nested) - 1, -1, -1):
                    stack.append((nested[i],))
                    if i:
                        stack.append(",")
            else:
                stack.append((nested,))
        else:
            parts.append(json.dumps(value, allow_nan=False))
    return "".join(parts)


class Report:
    """A finished profile. ``meta`` (a dict) describes what was profiled
    (the middleware puts the request there); writers embed it."""

    def __init__(self, session: Any, meta: dict[str, Any] | None = None, version: str = __version__) -> None:
        self._session = session
        self.meta: dict[str, Any] = dict(meta or {})
        #: the reqprof that recorded the profile (written into every format)
        self.version: str = version
        summary = session.summary()
        self.samples: int = summary["samples"]
        self.wall_s: float = summary["wall_s"]
        self.cpu_s: float = summary["cpu_s"]
        self.duration_s: float = summary["duration_s"]
        self.started_at: float = summary["started_at"]
        self.truncated_reasons: list[str] = summary["truncated_reasons"]
        self.nodes: int = summary["nodes"]
        self.memory_bytes: int = summary["memory_bytes"]
        #: time spent in garbage collections run by the request's threads
        self.gc_s: float = summary["gc_s"]
        #: start to the end of the response (its last byte sent), or None
        #: when not known; ``duration_s`` runs until the app returned
        self.response_s: float | None = summary["response_s"]
        #: why the report has too few samples for its duration ("short
        #: request", "GIL held by C code", "machine load"), or None
        self.undersampled_reason: str | None = summary["undersampled"]
        #: the sampling interval asked for (seconds)
        self.interval_s: float = summary["interval_s"]
        #: the mean interval of the ticks that sampled it: longer than
        #: ``interval_s`` when the overhead budget lengthened it
        self.effective_interval_s: float = summary["effective_interval_s"]
        #: the overhead budget asked (percent of one core), or None
        self.overhead_budget_percent: float | None = summary["overhead_budget_percent"]
        #: CPU the engine's own threads (sampler and assist) used while the
        #: session was active: the engine's whole CPU then, shared with any
        #: session active beside it; None when not known (a merged profile, a
        #: profile saved before it was recorded)
        self.sampler_cpu_s: float | None = summary["sampler_cpu_s"]
        #: that as a percent of one core over ``duration_s``, or None
        self.sampler_cpu_percent: float | None = summary["sampler_cpu_percent"]
        self.counts: dict[str, int] = {
            "running": summary["running_samples"],
            "await": summary["await_samples"],
            "out_of_context": summary["out_of_context_samples"],
        }

    @classmethod
    def from_json(cls, text: str | bytes) -> Report:
        """A report from its JSON (``to_json()``, a saved ``.json`` profile).
        ``to_json()`` of the result is the same document. Raises ValueError
        with the reason when the text is not a valid reqprof profile."""
        from . import _core

        session, meta, version = _core.load_json(text)
        return cls(session, meta, version)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """A report from ``to_dict()`` output (see ``from_json``)."""
        if not isinstance(data, dict):
            raise TypeError(f"from_dict() needs a dict, not {type(data).__name__}")
        try:
            text = _dumps_profile(data)
        except (TypeError, ValueError, RecursionError) as e:
            raise ValueError(f"invalid profile: {e}") from None
        return cls.from_json(text)

    @property
    def breakdown(self) -> dict[str, Any]:
        """Where the request's time went (the JSON's ``breakdown``, with
        ``loop_block``): ``running`` (wall and CPU), ``awaiting``,
        ``event_loop_busy`` (its ``blockers``, largest first, with their
        ``share``), ``in_worker_threads``, ``gc``, ``unsampled``,
        ``out_of_context``; ``loop_block`` is the longest stretch the
        request held its event loop, or None (docs/json-schema.md)."""
        return self._session.breakdown()

    @property
    def truncated(self) -> bool:
        return bool(self.truncated_reasons)

    @property
    def undersampled(self) -> bool:
        """Fewer samples than its duration calls for (fewer than 10, or
        under half of duration / interval): read its tree with care."""
        return self.undersampled_reason is not None

    def name_root(self, label: str) -> None:
        """Make the tree's root the request itself, a ``request`` node
        named `label`, instead of the frame the profiler started in (whose
        own time, reqprof's code around the app, becomes ``[unsampled]``)."""
        self._session.name_root(str(label))

    def name_request(self) -> None:
        """:meth:`name_root` with the request from ``meta``:
        ``GET /books/{book_id}`` (the route when known, else the path)."""
        method = self.meta.get("method") or ""
        target = self.meta.get("route") or self.meta.get("path") or ""
        self.name_root(f"{method} {target}".strip() or "request")

    def to_json(self) -> str:
        """The documented JSON schema (docs/json-schema.md)."""
        return self._session.to_json(self.meta, self.version)

    def to_dict(self) -> dict[str, Any]:
        """``json.loads(self.to_json())``, at any depth: the tree is built
        by the engine without recursion (a parser would reach Python's
        recursion limit at a few hundred levels)."""
        text = self.to_json()
        # The root is the document's last field, and `,"root":` cannot
        # occur earlier: a quote inside a JSON string is escaped.
        cut = text.index(',"root":')
        doc: dict[str, Any] = json.loads(text[:cut] + "}")
        doc["root"] = self._session.tree_dict()
        return doc

    def to_text(
        self,
        ascii: bool = False,
        color: bool = False,
        min_percent: float = 0.0,
        max_lines: int = 0,
    ) -> str:
        """A console tree: wall, CPU and share of wall time per frame."""
        return self._session.to_text(self.meta, self.version, ascii, color, float(min_percent),
                                     int(max_lines), False, LIBRARY_DIRS)

    def to_log_text(self, max_lines: int = 40, min_percent: float = 1.0) -> str:
        """The compact tree the middleware logs under a request's summary
        line: ``12.3 ms 45%  name`` per frame over ``min_percent`` of the
        time, runs of library frames that only call one another folded into
        one line, at most ``max_lines`` lines (then ``…``)."""
        return self._session.to_text(self.meta, self.version, False, False, float(min_percent),
                                     int(max_lines), True, LIBRARY_DIRS).rstrip("\n")

    def to_collapsed(self) -> str:
        """Folded stacks, ``root;child;leaf <self wall µs>`` per line."""
        return self._session.to_collapsed()

    def to_html(self) -> str:
        """The interactive report: one self-contained HTML page (viewer and
        data inlined, no network)."""
        from .viewer import load_template

        head, tail = load_template()
        return self._session.to_html(head, tail, self.meta, self.version)

    def to_speedscope(self) -> str:
        """speedscope's file format (https://www.speedscope.app): one sampled
        profile, each stack weighted by its self wall time."""
        return self._session.to_speedscope(self.meta, self.version)

    def to_pprof(self) -> bytes:
        """pprof's gzipped profile.proto (``go tool pprof``, Pyroscope,
        Parca): sample types samples/count, wall/nanoseconds and
        cpu/nanoseconds, request metadata as labels."""
        return self._session.to_pprof(self.meta, self.version)

    def to_bytes(self, fmt: str) -> bytes:
        """The report in format ``fmt`` (``html``, ``json``, ``text``,
        ``collapsed``, ``speedscope`` or ``pprof``) as bytes, UTF-8 for the
        text formats: what a server sends or stores. The C writer's output
        is returned as it is, without the decode and encode a large report
        would cost through ``to_html().encode()``. Raises ValueError for an
        unknown format."""
        s = self._session
        if fmt == "html":
            from .viewer import load_template

            head, tail = load_template()
            return s.to_html(head, tail, self.meta, self.version, as_bytes=True)
        if fmt == "text":
            return s.to_text(self.meta, self.version, library_prefixes=LIBRARY_DIRS,
                             as_bytes=True)
        if fmt == "collapsed":
            return s.to_collapsed(as_bytes=True)
        if fmt == "pprof":
            return self.to_pprof()
        if fmt in ("json", "speedscope"):
            return getattr(s, f"to_{fmt}")(self.meta, self.version, as_bytes=True)
        raise ValueError(f"unknown report format {fmt!r}")

    def top_functions(self, n: int = 3) -> list[tuple[str, float]]:
        """The n functions with the most self wall time: (name, seconds)."""
        return self._session.top_functions(n)

    def __repr__(self) -> str:
        return (
            f"<Report samples={self.samples} duration={self.duration_s:.3f}s "
            f"wall={self.wall_s:.3f}s cpu={self.cpu_s:.3f}s"
            f"{' truncated' if self.truncated else ''}>"
        )
