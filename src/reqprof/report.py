"""Report: the result of a profiling session, in every format.

The data stays in the C session (call tree, code table, resolved symbols);
each ``to_*`` method runs a C writer over it.
"""
from __future__ import annotations

import json
from typing import Any

from ._version import __version__


class Report:
    """A finished profile. ``meta`` (a dict) describes what was profiled
    (the middleware puts the request there); writers embed it."""

    def __init__(self, session: Any, meta: dict[str, Any] | None = None) -> None:
        self._session = session
        self.meta: dict[str, Any] = dict(meta or {})
        summary = session.summary()
        self.samples: int = summary["samples"]
        self.wall_s: float = summary["wall_s"]
        self.cpu_s: float = summary["cpu_s"]
        self.duration_s: float = summary["duration_s"]
        self.started_at: float = summary["started_at"]
        self.truncated_reasons: list[str] = summary["truncated_reasons"]
        self.nodes: int = summary["nodes"]
        self.memory_bytes: int = summary["memory_bytes"]
        self.counts: dict[str, int] = {
            "running": summary["running_samples"],
            "await": summary["await_samples"],
            "out_of_context": summary["out_of_context_samples"],
        }

    @property
    def truncated(self) -> bool:
        return bool(self.truncated_reasons)

    def to_json(self) -> str:
        """The documented JSON schema (docs/json-schema.md)."""
        return self._session.to_json(self.meta, __version__)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())

    def to_text(
        self,
        ascii: bool = False,
        color: bool = False,
        min_percent: float = 0.0,
        max_lines: int = 0,
    ) -> str:
        """A console tree: wall, CPU and share of wall time per frame."""
        return self._session.to_text(self.meta, __version__, ascii, color, float(min_percent), int(max_lines))

    def to_collapsed(self) -> str:
        """Folded stacks, ``root;child;leaf <self wall µs>`` per line."""
        return self._session.to_collapsed()

    def to_html(self) -> str:
        """The interactive report: one self-contained HTML page (viewer and
        data inlined, no network)."""
        from .viewer import load_template

        head, tail = load_template()
        return self._session.to_html(head, tail, self.meta, __version__)

    def top_functions(self, n: int = 3) -> list[tuple[str, float]]:
        """The n functions with the most self wall time: (name, seconds)."""
        return self._session.top_functions(n)

    def __repr__(self) -> str:
        return (
            f"<Report samples={self.samples} duration={self.duration_s:.3f}s "
            f"wall={self.wall_s:.3f}s cpu={self.cpu_s:.3f}s"
            f"{' truncated' if self.truncated else ''}>"
        )
