"""The HTTP benchmark's app (``http_app.py``) under uvicorn, as
``http_bench.UVICORN`` runs it, with what the cost section needs to see
inside the server and nothing in the product:

- every Python thread gets its name as its kernel thread name (``comm``,
  15 characters: ``reqprof-reporte``, ``AnyIO worker t``...), so that
  ``/proc/PID/task/*`` tells the threads apart;
- profiles started (``reqprof.profiler.start_session`` calls: the
  middleware's and ``Profiler.start``'s) are counted;
- on SIGUSR1 it writes ``{"stats": _core.stats(), "profiles": n}`` as JSON
  to ``$BENCH_STATS_FILE``.

    python bench/cost_server.py PORT
"""
from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

from common import name_threads  # noqa: E402

profiles = [0]


def _count_profiles() -> None:
    if os.environ.get("BENCH_MIDDLEWARE") != "reqprof":
        return
    from reqprof import profiler

    start_session = profiler.start_session

    def counted_session(*args: Any, **kwargs: Any) -> Any:
        profiles[0] += 1
        return start_session(*args, **kwargs)

    profiler.start_session = counted_session


def _write_stats(signum: int, frame: Any) -> None:
    stats: dict[str, Any] = {}
    if "reqprof._core" in sys.modules:
        stats = dict(sys.modules["reqprof._core"].stats())
    path = os.environ["BENCH_STATS_FILE"]
    with open(path + ".tmp", "w") as f:
        json.dump({"stats": stats, "profiles": profiles[0]}, f)
    os.replace(path + ".tmp", path)


def main() -> None:
    import uvicorn

    name_threads()
    _count_profiles()
    signal.signal(signal.SIGUSR1, _write_stats)
    uvicorn.run("http_app:app", host="127.0.0.1", port=int(sys.argv[1]), workers=1,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
