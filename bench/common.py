"""Helpers shared by the benchmark driver: child processes, statistics,
markdown tables, machine description."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from typing import Any, Iterable, Sequence

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)


class ChildError(RuntimeError):
    pass


def run_child(script: str, args: Sequence[str], env: dict[str, str] | None = None,
              timeout: float = 120.0) -> dict[str, Any]:
    """Runs ``python bench/<script> args...`` in a fresh process and returns
    the JSON object it prints on its last stdout line."""
    full_env = dict(os.environ)
    full_env.pop("REQPROF_PORTABLE", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, script), *args],
        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ChildError(f"{script} {' '.join(args)} exited {proc.returncode}: " + " | ".join(tail))
    return json.loads(lines[-1])


def emit(result: dict[str, Any]) -> None:
    """A child's answer: one JSON line on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


class Spread:
    """Median, min and max of some measurements."""

    def __init__(self, values: Iterable[float]) -> None:
        self.values = [v for v in values if v is not None]

    def __bool__(self) -> bool:
        return bool(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def lo(self) -> float:
        return min(self.values)

    @property
    def hi(self) -> float:
        return max(self.values)

    def fmt(self, spec: str = ".2f", suffix: str = "") -> str:
        if not self.values:
            return "n/a"
        if len(self.values) == 1:
            return f"{self.median:{spec}}{suffix}"
        return f"{self.median:{spec}}{suffix} ({self.lo:{spec}}–{self.hi:{spec}})"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def ver(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "not installed"

    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return {
        "cpu": f"{cpu_model()} ({os.cpu_count()} logical CPUs)",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "versions": ", ".join(f"{p} {ver(p)}" for p in
                              ("reqprof", "pyinstrument", "jinja2", "fastapi", "uvicorn")),
        "load": load,
    }
