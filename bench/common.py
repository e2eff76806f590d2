"""Helpers shared by the benchmark driver: child processes, statistics,
markdown tables, machine description."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from typing import Any, Callable, Iterable, Sequence

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


def run_main(main: Callable[[], None]) -> None:
    """Runs a child's ``main()``; if it fails, the traceback goes to the
    stderr the child started with (``main`` may point fd 2 elsewhere, as
    the logging it measures writes there) and the exit status is 1."""
    stderr = os.dup(2)
    try:
        main()
    except BaseException:
        import traceback

        os.dup2(stderr, 2)
        traceback.print_exc()
        sys.exit(1)


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


def proc_threads(pid: int | str = "self") -> dict[int, dict[str, Any]]:
    """The threads of process ``pid`` now, by thread id: ``comm`` (the
    kernel's thread name), ``run_ns`` / ``runq_ns`` (time on a CPU / waiting
    for one, /proc/.../schedstat), ``vcs`` / ``ivcs`` (voluntary and
    involuntary context switches). A thread that ends while being read is
    left out."""
    out: dict[int, dict[str, Any]] = {}
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{base}/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"{base}/{tid}/schedstat") as f:
                run_ns, runq_ns = (int(x) for x in f.read().split()[:2])
            vcs = ivcs = 0
            with open(f"{base}/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vcs = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        ivcs = int(line.split()[1])
        except (OSError, ValueError):
            continue
        out[int(tid)] = {"comm": comm, "run_ns": run_ns, "runq_ns": runq_ns, "vcs": vcs, "ivcs": ivcs}
    return out


def name_threads() -> None:
    """From now on, every Python thread started gets its name as its kernel
    thread name (``comm``, 15 bytes: ``reqprof-reporte``), so that
    ``proc_threads`` tells them apart. For benchmark processes only."""
    import ctypes
    import threading

    libc = ctypes.CDLL(None, use_errno=True)
    bootstrap_inner = threading.Thread._bootstrap_inner      # type: ignore[attr-defined]

    def named(self: threading.Thread) -> None:
        libc.prctl(15, self.name.encode("utf-8", "replace")[:15], 0, 0, 0)    # PR_SET_NAME
        bootstrap_inner(self)

    threading.Thread._bootstrap_inner = named                # type: ignore[attr-defined]


def process_cpu_ns(pid: int | str = "self") -> int:
    """CPU time of process ``pid`` so far, all its threads (ended ones
    included), in ns (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def thread_delta(before: dict[int, dict[str, Any]],
                 after: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """What each thread of ``after`` did since ``before`` (a thread born in
    between counts from zero)."""
    out = {}
    for tid, a in after.items():
        b = before.get(tid)
        if b is not None and a["run_ns"] < b["run_ns"]:    # the id was reused
            b = None
        out[tid] = {"comm": a["comm"], **{k: a[k] - (b[k] if b else 0)
                                         for k in ("run_ns", "runq_ns", "vcs", "ivcs")}}
    return out


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
