"""Reporter-throughput child: ``reporter_backlog.py MODE``.

The reporter thread logs each sampled report and writes it to the output
directory (a JSON + HTML pair; the directory full at its 100 reports, so
every write also removes the oldest). Beside a thread that runs Python
code without pause (a busy event loop), every system call that lets the
GIL go costs the reporter up to the interpreter's switch interval to get
it back. Times ``Reporter.handle`` on a small report (a short request's),
alone and beside such a thread.

MODE ``engine``: as reqprof is (the directory listed and the files placed
by the engine, the GIL let go once for each). MODE ``python``: the same
policy one system call at a time (``os.scandir``, ``stat``, ``open``,
``os.replace``), as before.

Prints one JSON line: ms per report, idle and beside the busy thread.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time

from common import emit

REPORTS = 40


def per_call_output_dir() -> type:
    """OutputDir as it was: the same policy, one system call at a time."""
    from reqprof import _output

    class PerCallOutputDir(_output.OutputDir):
        def _scan(self) -> list[tuple[str, int, float]]:
            found = []
            with os.scandir(self.path) as entries:
                for entry in entries:
                    if entry.name.startswith("reqprof-"):
                        st = entry.stat(follow_symlinks=False)
                        found.append((entry.name, st.st_size, st.st_mtime))
            return found

        def _put(self, remove: list, files: list) -> None:
            for path in remove:
                os.unlink(path)
            for tmp, _, data in files:
                with open(tmp, "wb") as f:
                    f.write(data)
            for tmp, path, _ in files:
                os.replace(tmp, path)

    return PerCallOutputDir


def main(mode: str) -> None:
    from reqprof import Profiler, _output
    from reqprof._logging import RateLimited
    from reqprof._reporter import reporter

    PerCallOutputDir = per_call_output_dir()

    logging.basicConfig(filename=os.devnull, level=logging.INFO, force=True)
    with Profiler(interval=0.001) as prof:
        deadline = time.perf_counter() + 0.01
        while time.perf_counter() < deadline:
            sum(i * i for i in range(200))
    report = prof.report
    report.meta.update(method="GET", path="/items/{n}", status=200)
    kind = PerCallOutputDir if mode == "python" else _output.OutputDir
    out = kind(tempfile.mkdtemp(prefix="reqprof-bench-"), 256 << 20)
    failures = RateLimited(60.0)
    for _ in range(_output.OUTPUT_KEEP):       # a full directory
        reporter.handle(report, out, failures)

    def per_report() -> float:
        t = time.perf_counter()
        for _ in range(REPORTS):
            reporter.handle(report, out, failures)
        return (time.perf_counter() - t) / REPORTS * 1000.0

    idle = per_report()
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(i * i for i in range(1000))

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        contended = per_report()
    finally:
        stop.set()
        thread.join()
    emit({"mode": mode, "idle_ms": idle, "busy_ms": contended,
          "switch_interval_ms": sys.getswitchinterval() * 1000.0})


if __name__ == "__main__":
    main(sys.argv[1])
