"""Where the profiler's cost goes: the section ``cost`` of ``bench/run.py``.

    python bench/run.py --only cost      # the section, printed
    python bench/cost.py                 # the same, without run.py's header
    python bench/cost.py --parts ticks,http

Five parts, each measured side by side in one run (ratios to a bare
configuration of the same round, where there is one):

- ``ticks``: each overhead workload at 1 ms (``cost_ticks.py``, a fresh
  process per round): slowdown, ticks achieved, GIL waits and hand-overs,
  the CPU and context switches of the engine's threads (``reqprof-sampler``,
  ``reqprof-assist``) from /proc/self/task, and the main thread's extra
  time split into CPU, waiting for a CPU and blocked (waiting for the GIL).
- ``rate``: samples per second at 1 ms beside 4 busy threads and in one
  long C call holding the GIL (``fidelity.py``'s scenarios).
- ``http``: the HTTP app under uvicorn (``cost_server.py``), a keep-alive
  client at concurrency 1 sending a fixed number of requests; the server's
  CPU per request, per thread, with no middleware, profiling off, rate 0.1
  and rate 1.0; the sampler's wake-ups and the ticks per profiled request.
- ``glue``: the same app called in-process (``cost_glue.py``): what each
  part of reqprof's own code costs a profiled request.
- ``log``: what logging one sampled report costs the reporter thread
  (``cost_log.py``): the summary line, its fields, the text tree and the
  record through the product's own handler, CPU per report.

When ``perf`` works, it records the engine's threads (ticks) and the server
(rate 1.0) and their CPU is split by what the stacks show; when py-spy
works, it records the server's Python threads. Either is skipped, with a
note, when it does not work here.
"""
from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Iterable, Optional

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

import http_bench  # noqa: E402
from common import (ROOT, ChildError, Spread, process_cpu_ns, proc_threads, run_child,  # noqa: E402
                    table, thread_delta)
from workloads import MISSING, WORKLOADS  # noqa: E402

PARTS = ("ticks", "rate", "http", "glue", "log")
RATE_SCENARIOS = {"cpu": "CPU-bound Python (reference)",
                  "threads4": "CPU-bound Python, 4 other threads busy",
                  "c_gil": "one long C call holding the GIL (`sum(range(n))`)"}
RATE_TOOLS = ("reqprof", "pyinstrument")
HTTP_CONFIGS = [(k, d, e) for k, d, e, _q, _p in http_bench.BASE_CONFIGS if k in ("a", "b", "d", "e")]
HTTP_REQUESTS = 300
HTTP_BATCHES = 3
HTTP_WARMUP = 200
ENGINE = ("reqprof-sampler", "reqprof-assist")
REPORTER = "reqprof-reporte"    # "reqprof-reporter", as the kernel keeps it (15 bytes)

Progress = Callable[[str], None]


def _child(script: str, args: list[str], errors: list[str], progress: Progress,
           timeout: float = 180.0) -> Optional[dict[str, Any]]:
    try:
        return run_child(script, args, timeout=timeout)
    except (ChildError, subprocess.TimeoutExpired, ValueError) as exc:
        errors.append(str(exc)[:300])
        progress(f"  failed: {str(exc)[:200]}")
        return None


def _med(values: Iterable[Optional[float]]) -> Optional[float]:
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def _f(value: Optional[float], spec: str = ".0f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def _ratio(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def _div(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


# -- perf ----------------------------------------------------------------------------

def perf_works() -> Optional[str]:
    """None when ``perf record`` with call graphs works here, else why not."""
    if shutil.which("perf") is None:
        return "`perf` is not installed (Debian package `linux-perf`)"
    with tempfile.TemporaryDirectory(prefix="reqprof-bench-") as tmp:
        out = subprocess.run(["perf", "record", "-q", "-F", "999", "-g", "-o", f"{tmp}/p.data",
                              "--", sys.executable, "-c", "sum(range(10**6))"],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            return "`perf record` fails here: " + (out.stderr.strip().splitlines() or ["?"])[-1][:200]
    return None


def perf_stacks(data: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """The samples of a perf.data file: (thread name, [(symbol, dso)],
    innermost first)."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym,dso"],
                         capture_output=True, text=True, errors="replace", timeout=300)
    samples: list[tuple[str, list[tuple[str, str]]]] = []
    comm, frames = None, []
    for line in out.stdout.splitlines():
        if not line.strip():
            if comm is not None:
                samples.append((comm, frames))
            comm, frames = None, []
        elif not line[0].isspace():
            comm, frames = line.split()[0], []
        else:
            parts = line.strip().split(None, 1)
            rest = parts[1] if len(parts) > 1 else "?"
            sym = rest.split(" (")[0].split("+0x")[0]
            frames.append((sym, rest.rsplit("(", 1)[-1].rstrip(")")))
    if comm is not None:
        samples.append((comm, frames))
    return samples


def _has(frames: list[tuple[str, str]], *names: str) -> bool:
    return any(f in names for f, _ in frames)


def _engine_c(frames: list[tuple[str, str]]) -> bool:
    return any(os.sep + "reqprof" + os.sep + "_core." in d for _, d in frames)


# What a sampled stack of each thread was doing, first match wins.
SAMPLER_PARTS: list[tuple[str, Callable[[list], bool]]] = [
    ("walk: reading a thread's CPU clock (cpu_delta)", lambda s: _has(s, "cpu_delta", "rp_compat_thread_cpu_ns")),
    ("walk: the rest (tick, sample_due)", lambda s: _has(s, "tick", "sample_due")),
    ("taking the GIL: waking the thread that gave it (take_gil)", lambda s: _has(s, "take_gil") and _has(s, "futex_wake", "___pthread_cond_signal")),
    ("taking the GIL: waiting, timeouts (take_gil)", lambda s: _has(s, "take_gil", "PyEval_RestoreThread")),
    ("giving the GIL back: waking the main thread (drop_gil)", lambda s: _has(s, "drop_gil", "PyEval_SaveThread")),
    ("waking the assist thread (ask_assist)", lambda s: _has(s, "ask_assist")),
    ("sleeping until the tick (cond_timedwait)", lambda s: _has(s, "___pthread_cond_timedwait64", "__pthread_cond_wait_common", "pthread_cond_timedwait")),
    ("other", lambda s: True),
]
ASSIST_PARTS: list[tuple[str, Callable[[list], bool]]] = [
    ("nanosleep between drop requests", lambda s: _has(s, "__GI___nanosleep", "__GI___clock_nanosleep", "clock_nanosleep", "nanosleep")),
    ("waiting to be asked (cond_wait)", lambda s: _has(s, "___pthread_cond_wait", "__pthread_cond_wait_common")),
    ("other (locks, drop requests)", lambda s: True),
]
MAIN_PARTS: list[tuple[str, Callable[[list], bool]]] = [
    ("reqprof's C engine (session start/stop, gc hook, reports)", _engine_c),
    ("giving the GIL up / taking it back (drop_gil, take_gil)", lambda s: _has(s, "drop_gil", "take_gil")),
    ("garbage collection", lambda s: _has(s, "gc_collect_main")),
    ("other system calls", lambda s: _has(s, "do_syscall_64")),
    ("the rest (the app's code, Python)", lambda s: True),
]
REPORTER_PARTS: list[tuple[str, Callable[[list], bool]]] = [
    ("the engine's log record (summary line, fields, text tree)",
     lambda s: _has(s, "mod_log_record", "rp_write_log", "session_to_text", "rp_write_text")),
    ("writing the log (write system call)", lambda s: _has(s, "_io_FileIO_write", "ksys_write")),
    ("taking the GIL (take_gil)", lambda s: _has(s, "take_gil")),
    ("freeing reports (session_dealloc)", lambda s: _has(s, "session_dealloc")),
    ("sleeping / waiting for work", lambda s: _has(s, "time_sleep", "lock_PyThread_acquire_lock")),
    ("garbage collection (gc_collect_main)", lambda s: _has(s, "gc_collect_main")),
    ("the rest (Python: the record through `logging`)", lambda s: True),
]
THREAD_PARTS = {"reqprof-sampler": SAMPLER_PARTS, "reqprof-assist": ASSIST_PARTS,
                REPORTER: REPORTER_PARTS}


SAMPLES = "samples"      # split_perf's key for the number of samples split


def split_perf(samples: list[tuple[str, list]], comm: str, parts: list) -> dict[str, float]:
    """Shares of thread ``comm``'s samples by the first part whose test
    matches the stack."""
    counts: collections.Counter = collections.Counter()
    n = 0
    for c, frames in samples:
        if c != comm:
            continue
        n += 1
        for label, test in parts:
            if test(frames):
                counts[label] += 1
                break
    out = {label: counts[label] / n for label, _ in parts} if n else {}
    out[SAMPLES] = n
    return out


def perf_record(pid_or_cmd: Any, seconds: float, data: str, freq: int = 999,
                stack: int = 16000) -> bool:
    cmd = ["perf", "record", "-q", "-F", str(freq), "--call-graph", f"dwarf,{stack}", "-o", data]
    if isinstance(pid_or_cmd, int):
        cmd += ["-p", str(pid_or_cmd), "--", "sleep", str(seconds)]
    else:
        cmd += ["--"] + pid_or_cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120).returncode == 0


# -- a. the ticks -----------------------------------------------------------------------

def collect_ticks(rounds: int, progress: Progress, errors: list[str]) -> dict[str, Any]:
    runs: dict[str, list[dict]] = {w: [] for w in WORKLOADS}
    for r in range(rounds):
        order = list(WORKLOADS)
        random.Random(r).shuffle(order)
        for w in order:
            progress(f"cost: ticks, round {r + 1}/{rounds}, {w}")
            out = _child("cost_ticks.py", [w], errors, progress)
            if out is not None:
                runs[w].append(out["runs"])
    perf: dict[str, Any] = {}
    why = perf_works()
    if why is None:
        for w in ("fib(30)", "json"):
            progress(f"cost: perf on the engine's threads, {w}")
            with tempfile.TemporaryDirectory(prefix="reqprof-bench-") as tmp:
                ok = perf_record([sys.executable, os.path.join(BENCH, "cost_ticks.py"), w, "3"], 0,
                                 f"{tmp}/p.data", freq=1999, stack=8192)
                samples = perf_stacks(f"{tmp}/p.data") if ok else []
            if samples:
                perf[w] = {c: split_perf(samples, c, THREAD_PARTS[c]) for c in ENGINE}
    return {"runs": runs, "perf": perf, "perf_missing": why}


def tick_figures(processes: list[list[dict]]) -> dict[str, Optional[float]]:
    """Medians over the rounds of one workload (each round: the bare,
    reqprof and pyinstrument runs of one process, in order)."""
    rows: list[dict[str, float]] = []
    best: dict[str, list[float]] = {"best": [], "pyi_best": []}
    for runs in processes:
        walls = collections.defaultdict(list)
        for run in runs:
            walls[run["tool"]].append(run["wall_ns"])
        if walls["bare"] and walls["reqprof"]:
            best["best"].append(min(walls["reqprof"]) / min(walls["bare"]))
        if walls["bare"] and walls["pyinstrument"]:
            best["pyi_best"].append(min(walls["pyinstrument"]) / min(walls["bare"]))
        rounds: list[dict[str, dict]] = []
        current: dict[str, dict] = {}
        for run in runs:
            if run["tool"] in current:
                rounds.append(current)
                current = {}
            current[run["tool"]] = run
        rounds.append(current)
        for rd in rounds:
            bare, rp, pyi = rd.get("bare"), rd.get("reqprof"), rd.get("pyinstrument")
            if not bare or not rp:
                continue
            wall = rp["wall_ns"] / 1e9
            ticks = max(1, rp.get("ticks", 0))
            row = {
                "slowdown": rp["wall_ns"] / bare["wall_ns"],
                "pyi_slowdown": pyi["wall_ns"] / bare["wall_ns"] if pyi else None,
                "ticks_s": rp.get("ticks", 0) / wall,
                "wait_us": rp.get("gil_wait_ns", 0) / ticks / 1e3,
                "walk_us": rp.get("tick_ns", 0) / ticks / 1e3,
                "switches_s": rp.get("gil_switches", 0) / wall,
                "assisted_s": rp.get("assisted_waits", 0) / wall,
                "gc_s": rp.get("gc_collections", 0) / wall,
                "sampler_pct": 100 * rp.get("sampler_run_ns", 0) / rp["wall_ns"],
                "sampler_us_tick": rp.get("sampler_run_ns", 0) / ticks / 1e3,
                "assist_pct": 100 * rp.get("assist_run_ns", 0) / rp["wall_ns"],
                "assist_us_tick": rp.get("assist_run_ns", 0) / ticks / 1e3,
                "sampler_vcs_s": rp.get("sampler_vcs", 0) / wall,
                "assist_vcs_s": rp.get("assist_vcs", 0) / wall,
                "main_vcs_s": rp["main_vcs"] / wall,
                "main_ivcs_s": rp["main_ivcs"] / wall,
                "bare_ivcs_s": bare["main_ivcs"] / (bare["wall_ns"] / 1e9),
                "extra_pct": 100 * (rp["wall_ns"] - bare["wall_ns"]) / bare["wall_ns"],
            }
            for part in ("run", "runq", "blocked"):
                d = rp[f"main_{part}_ns"] - bare[f"main_{part}_ns"]
                row[f"d_{part}_pct"] = 100 * d / bare["wall_ns"]
                row[f"d_{part}_us_tick"] = d / ticks / 1e3
            rows.append(row)
    keys = set().union(*rows) if rows else set()
    out = {k: _med(r.get(k) for r in rows) for k in keys}
    out["n"] = len(rows)
    out["best"] = Spread(best["best"])
    out["pyi_best"] = Spread(best["pyi_best"])
    return out


def render_ticks(res: dict[str, Any], rounds: int) -> str:
    figs = {w: tick_figures(p) for w, p in res["runs"].items() if p}
    t1, t2, t3 = [], [], []
    for w, f in figs.items():
        t1.append([w, f["best"].fmt(".2f", "×"), f["pyi_best"].fmt(".2f", "×"),
                   _ratio(f.get("slowdown")), _ratio(f.get("pyi_slowdown")),
                   _f(f.get("ticks_s"), ",.0f"), _f(f.get("wait_us"), ",.0f", " µs"),
                   _f(f.get("walk_us"), ".1f", " µs"), _f(f.get("switches_s"), ",.0f"),
                   _f(f.get("assisted_s"), ",.0f"), _f(f.get("gc_s"), ",.0f")])
        t2.append([w, f"{_f(f.get('sampler_pct'), '.1f', '%')} · {_f(f.get('sampler_us_tick'), '.0f', ' µs')}",
                   f"{_f(f.get('assist_pct'), '.1f', '%')} · {_f(f.get('assist_us_tick'), '.0f', ' µs')}",
                   _f(f.get("sampler_vcs_s"), ",.0f"), _f(f.get("assist_vcs_s"), ",.0f"),
                   _f(f.get("main_vcs_s"), ",.0f"),
                   f"{_f(f.get('main_ivcs_s'), ',.0f')} ({_f(f.get('bare_ivcs_s'), ',.0f')})"])
        t3.append([w, _f(f.get("extra_pct"), "+.1f", "%"),
                   f"{_f(f.get('d_run_pct'), '+.1f', '%')} · {_f(f.get('d_run_us_tick'), '+.0f', ' µs')}",
                   f"{_f(f.get('d_runq_pct'), '+.1f', '%')} · {_f(f.get('d_runq_us_tick'), '+.0f', ' µs')}",
                   f"{_f(f.get('d_blocked_pct'), '+.1f', '%')} · {_f(f.get('d_blocked_us_tick'), '+.0f', ' µs')}"])
    n = max((f["n"] for f in figs.values()), default=0)
    text = (
        f"`bench/cost_ticks.py WORKLOAD`, {rounds} fresh processes per workload, each running "
        "the workload bare, under reqprof and under pyinstrument (interval 1 ms) in shuffled "
        f"rounds. *best-of*: the best reqprof (pyinstrument) run / the best bare run of a "
        f"process, median (min–max) of the {rounds} processes, as section 1 measures it; "
        f"*per round*: wall time / the bare run of the same round, median of the {n} rounds; "
        "every other figure is the median over the rounds. *ticks/s*, *GIL wait / tick* (from asking for the GIL to holding it), *walk / "
        "tick* (the tick with the GIL held), *hand-overs/s* (the GIL's `switch_number`, "
        "`_core.stats()['gil_switches']`), *assisted waits/s* (waits long enough to wake the "
        "assist thread), *GC/s* (collections the gc hook saw) are the engine's counters.\n\n"
        + table(["workload", "reqprof best-of", "pyinstrument best-of", "reqprof per round",
                 "pyinstrument per round", "ticks/s",
                 "GIL wait / tick", "walk / tick", "GIL hand-overs/s", "assisted waits/s",
                 "GC/s"], t1)
        + "\n\nThe engine's threads, from /proc/self/task/TID/schedstat (CPU) and status "
        "(context switches), per second of the profiled run: CPU as a share of one core · "
        "per tick; voluntary context switches (wake-ups) per second; the main thread's "
        "involuntary switches (preempted), bare in parentheses.\n\n"
        + table(["workload", "sampler CPU · per tick", "assist CPU · per tick",
                 "sampler wake-ups/s", "assist wake-ups/s", "main: voluntary/s",
                 "main: preempted/s (bare)"], t2)
        + "\n\nThe main thread's extra wall time under reqprof against the bare run of the "
        "same round, split by its schedstat: more CPU (its own work: GIL drop/take, the gc "
        "hook, slower code after a switch), more time *runnable but not running* (another "
        "thread on its core: the engine's, or the machine's other load), and more time "
        "*blocked* (not runnable: waiting for the GIL while the sampler holds it, and the "
        "hand-over's wake-up latency). Each as % of the bare run · µs per tick. On a shared "
        "2-core machine these move by several points between rounds: read the signs and "
        "orders of magnitude.\n\n"
        + table(["workload", "extra wall", "main: more CPU", "main: more waiting for a CPU",
                 "main: more blocked (GIL)"], t3))
    if res.get("perf"):
        rows = []
        for w, by_thread in res["perf"].items():
            for comm, parts in by_thread.items():
                for label, share in parts.items():
                    if label != SAMPLES and share >= 0.005:
                        rows.append([w, f"{comm} ({parts[SAMPLES]} samples)", label,
                                     f"{100 * share:.0f}%"])
        text += ("\n\n`perf record -F 1999 --call-graph dwarf` of a 3 s loop of the workload "
                 "under reqprof (`cost_ticks.py WORKLOAD 3`): where the engine threads' CPU "
                 "goes, by what their stacks show (share of the thread's samples; multiply "
                 "by the CPU per tick above for µs per tick).\n\n"
                 + table(["workload", "thread", "what", "share of its CPU"], rows))
    elif res.get("perf_missing"):
        text += f"\n\nperf: not used ({res['perf_missing']})."
    return text


# -- b. achieved rate ---------------------------------------------------------------------

def collect_rate(rounds: int, progress: Progress, errors: list[str]) -> dict[str, Any]:
    res: dict[str, dict[str, list]] = {s: {t: [] for t in RATE_TOOLS} for s in RATE_SCENARIOS}
    for r in range(rounds):
        progress(f"cost: achieved rate, round {r + 1}/{rounds}")
        for s in RATE_SCENARIOS:
            for t in random.Random(r).sample(RATE_TOOLS, len(RATE_TOOLS)):
                out = _child("fidelity.py", [s, t, "0.001"], errors, progress)
                if out is not None:
                    res[s][t].append(out)
    return res


def render_rate(res: dict[str, Any], rounds: int) -> str:
    rows = []
    for s, label in RATE_SCENARIOS.items():
        rp, pyi = res[s]["reqprof"], res[s]["pyinstrument"]
        st = [x["stats"] for x in rp if x.get("stats")]
        dur = [x["duration_s"] for x in rp if x.get("stats")]
        rows.append([
            label, Spread(x["rate"] for x in rp).fmt(",.0f", "/s"),
            Spread(x["rate"] for x in pyi).fmt(",.0f", "/s"),
            _f(_med(x["gil_wait_us"] for x in st), ",.0f", " µs"),
            _f(_med(x.get("gil_switches", 0) / d for x, d in zip(st, dur)), ",.0f"),
            _f(_med(x.get("assisted_waits", 0) / d for x, d in zip(st, dur)), ",.0f"),
            _f(_med(100 * x.get("sampler_cpu_s", 0) / d for x, d in zip(st, dur)), ".1f", "%"),
            _f(_med(100 * x.get("assist_cpu_s", 0) / d for x, d in zip(st, dur)), ".1f", "%"),
            _f(_med(100 * x.get("watch_cpu_s", 0) / d for x, d in zip(st, dur)), ".1f", "%"),
            _f(_med(x.get("snapshot_samples", 0) / d for x, d in zip(st, dur)), ",.0f", "/s"),
        ])
    return ("`bench/fidelity.py SCENARIO TOOL 0.001` (its scenarios, 0.5 s each), "
            f"{rounds} fresh processes per cell, median (min–max) of the samples recorded per "
            "second of profile (1,000/s asked); for reqprof, the engine's GIL wait per tick, "
            "GIL hand-overs and assisted waits per second, the CPU of its threads as a "
            "share of one core, and the samples per second taken from stacks read during "
            "waits for the GIL (wait snapshots).\n\n"
            + table(["code being profiled", "reqprof", "pyinstrument", "reqprof GIL wait / tick",
                     "GIL hand-overs/s", "assisted waits/s", "sampler CPU", "assist CPU",
                     "watch CPU", "samples from wait snapshots"], rows))


# -- c. per request, HTTP -------------------------------------------------------------------

def _thread_role(tid: int, pid: int, comm: str) -> str:
    if tid == pid:
        return "main (event loop)"
    if comm in ENGINE:
        return comm
    if comm == REPORTER:
        return "reqprof-reporter"
    if comm.startswith("AnyIO") or comm.startswith("asyncio"):
        return "worker threads"
    return "other threads"


ROLES = ("main (event loop)", "reqprof-sampler", "reqprof-assist", "reqprof-reporter",
         "worker threads", "other threads", "ended threads")


class CostServer(http_bench.Server):
    """The bench app under uvicorn through ``cost_server.py``, which names
    its threads and writes engine counters on SIGUSR1."""

    def __init__(self, env: dict[str, str]) -> None:
        self.stats_file = tempfile.mktemp(prefix="reqprof-bench-stats-")
        super().__init__({**env, "BENCH_STATS_FILE": self.stats_file},
                         [sys.executable, os.path.join(BENCH, "cost_server.py"), "{port}"])

    def engine(self) -> dict[str, Any]:
        if os.path.exists(self.stats_file):
            os.unlink(self.stats_file)
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not os.path.exists(self.stats_file):
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not write its counters")
            time.sleep(0.01)
        with open(self.stats_file) as f:
            return json.load(f)

    def stop(self) -> dict[str, Any]:
        if os.path.exists(self.stats_file):
            os.unlink(self.stats_file)
        return super().stop()


def client(port: int, n: int) -> list[float]:
    """n requests on one keep-alive connection; their latencies (s)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            conn.request("GET", http_bench.PATH)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"status {resp.status}")
            out.append(time.perf_counter() - t)
    finally:
        conn.close()
    return out


def _snapshot(server: CostServer) -> tuple[dict, dict, int]:
    pid = server.proc.pid
    return server.engine(), proc_threads(pid), process_cpu_ns(pid)


def http_batch(server: CostServer, n: int) -> dict[str, Any]:
    """n requests to a running server: its CPU per request, by thread, and
    the engine's counters over them."""
    pid = server.proc.pid
    e0, t0, c0 = _snapshot(server)
    lat = client(server.port, n)
    time.sleep(0.05)        # the reporter's batch delay (10 ms): its work is counted
    e1, t1, c1 = _snapshot(server)
    per: dict[str, dict[str, float]] = {r: {"cpu": 0.0, "vcs": 0.0, "ivcs": 0.0} for r in ROLES}
    for tid, d in thread_delta(t0, t1).items():
        role = per[_thread_role(tid, pid, d["comm"])]
        role["cpu"] += d["run_ns"] / n
        role["vcs"] += d["vcs"] / n
        role["ivcs"] += d["ivcs"] / n
    per["ended threads"]["cpu"] = max(0.0, (c1 - c0) / n - sum(r["cpu"] for r in per.values()))
    stats = {k: v - e0["stats"].get(k, 0) for k, v in e1["stats"].items() if isinstance(v, int)}
    return {"n": n, "cpu": (c1 - c0) / n, "threads": per, "profiles": e1["profiles"] - e0["profiles"],
            "stats": stats, "p50_ms": 1000 * statistics.median(lat)}


def http_repetition(rep: int, progress: Progress) -> dict[str, list[dict]]:
    """One server per configuration, all running at once; HTTP_BATCHES
    rounds, each sending HTTP_REQUESTS to every server in a shuffled order."""
    servers = {key: CostServer(env) for key, _, env in HTTP_CONFIGS}
    out: dict[str, list[dict]] = {key: [] for key in servers}
    try:
        for server in servers.values():
            server.wait_ready()
            client(server.port, HTTP_WARMUP)
        for b in range(HTTP_BATCHES):
            order = list(servers)
            random.Random(100 * rep + b).shuffle(order)
            progress(f"cost: http repetition {rep + 1}, batch {b + 1}/{HTTP_BATCHES}: {', '.join(order)}")
            for key in order:
                out[key].append(http_batch(servers[key], HTTP_REQUESTS))
    finally:
        logs = {key: server.stop() for key, server in servers.items()}
    for key, log in logs.items():
        if log["tracebacks"] and out[key]:
            out[key][-1]["tracebacks"] = log["tracebacks"]
    return out


def spy_server(progress: Progress, seconds: float = 6.0) -> dict[str, Any]:
    """py-spy (Python frames, 1 kHz, non-blocking) and perf (native, CPU
    only) on the server at rate 1.0 under the keep-alive client."""
    out: dict[str, Any] = {}
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    perf_missing = perf_works()
    env = dict(HTTP_CONFIGS[-1][2])
    for tool in ("py-spy", "perf"):
        if tool == "py-spy" and not os.path.exists(py_spy):
            out["py-spy missing"] = "py-spy is not installed (`pip install py-spy`)"
            continue
        if tool == "perf" and perf_missing:
            out["perf missing"] = perf_missing
            continue
        progress(f"cost: {tool} on the server at rate 1.0")
        server = CostServer(env)
        stop = threading.Event()
        loader: Optional[threading.Thread] = None
        try:
            server.wait_ready()

            def load() -> None:
                try:
                    while not stop.is_set():
                        client(server.port, 50)
                except OSError:     # the server went first
                    pass

            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            time.sleep(1.0)
            with tempfile.TemporaryDirectory(prefix="reqprof-bench-") as tmp:
                if tool == "py-spy":
                    rc = subprocess.run([py_spy, "record", "--rate", "1000", "--nonblocking",
                                         "--threads", "-f", "raw", "-d", str(int(seconds)),
                                         "-p", str(server.proc.pid), "-o", f"{tmp}/raw.txt"],
                                        capture_output=True, text=True, timeout=seconds + 60)
                    if rc.returncode == 0 and os.path.exists(f"{tmp}/raw.txt"):
                        with open(f"{tmp}/raw.txt") as f:
                            out["py-spy"] = spy_summary(f.read())
                    else:
                        out["py-spy missing"] = "py-spy failed: " + rc.stderr.strip()[-200:]
                else:
                    if perf_record(server.proc.pid, seconds - 2, f"{tmp}/p.data"):
                        samples = perf_stacks(f"{tmp}/p.data")
                        comms = collections.Counter(c for c, _ in samples)
                        main = max((c for c in comms if c not in ENGINE and c != REPORTER),
                                   key=lambda c: comms[c], default=None)
                        out["perf"] = {
                            "samples": dict(comms),
                            "main": split_perf(samples, main, MAIN_PARTS) if main else {},
                            "main_engine": engine_functions(samples, main) if main else {},
                            "reporter": split_perf(samples, REPORTER, REPORTER_PARTS),
                            "sampler": split_perf(samples, "reqprof-sampler", SAMPLER_PARTS),
                        }
        finally:
            stop.set()
            if loader is not None:
                loader.join(30)
            server.stop()
    return out


def engine_functions(samples: list[tuple[str, list]], comm: str) -> dict[str, float]:
    """Shares of thread ``comm``'s samples inside each of reqprof's C entry
    points (the outermost frame of the extension in the stack)."""
    counts: collections.Counter = collections.Counter()
    n = 0
    for c, frames in samples:
        if c != comm:
            continue
        n += 1
        names = [f for f, d in frames if os.sep + "reqprof" + os.sep + "_core." in d]
        if names:
            counts[names[-1]] += 1
    return {k: v / n for k, v in counts.most_common(8)} if n else {}


def spy_summary(raw: str) -> dict[str, Any]:
    """From py-spy's raw output (``thread (TID): NAME;frame;...;frame N``):
    per thread, its samples, the share under reqprof's frames, and the
    functions of reqprof (and logging, called by it) with the most samples
    inside them (inclusive) and where those end (self)."""
    threads: dict[str, dict[str, Any]] = {}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        name = frames[0].split(": ", 1)[-1]
        frames = [f.split(" (", 1)[0] + " (" + f.split(" (", 1)[1].split(":")[0] + ")"
                  if " (" in f else f for f in frames[1:]]
        th = threads.setdefault(name, {"samples": 0, "reqprof": 0, "inclusive": collections.Counter(),
                                       "self": collections.Counter()})
        th["samples"] += n
        ours = [f for f in frames if "reqprof/" in f]
        if ours:
            th["reqprof"] += n
            outermost = frames.index(ours[0])
            seen = set()
            for f in frames[outermost:]:
                if ("reqprof/" in f or "logging/" in f) and f not in seen:
                    seen.add(f)
                    th["inclusive"][f] += n
            th["self"][frames[-1]] += n
    return {name: {"samples": th["samples"], "reqprof": th["reqprof"],
                   "inclusive": th["inclusive"].most_common(12), "self": th["self"].most_common(8)}
            for name, th in threads.items()}


def collect_http(rounds: int, progress: Progress, errors: list[str]) -> dict[str, Any]:
    runs: dict[str, list[dict]] = {k: [] for k, _, _ in HTTP_CONFIGS}
    for r in range(rounds):
        try:
            for key, batches in http_repetition(r, progress).items():
                runs[key] += batches
        except Exception as exc:  # the rows say they have fewer rounds
            errors.append(f"cost http: {type(exc).__name__}: {exc}"[:300])
    return {"runs": runs, "spy": spy_server(progress)}


def render_http(res: dict[str, Any], rounds: int) -> str:
    runs = res["runs"]
    base = runs.get("a") or []
    rows, thread_rows, per_profile = [], [], []
    for key, desc, _ in HTTP_CONFIGS:
        rs = runs[key]
        if not rs:
            rows.append([f"({key}) {desc}", "n/a", "", "", "", "", ""])
            continue
        ratios = [x["cpu"] / b["cpu"] for x, b in zip(rs, base) if b["cpu"]]
        prof = _med(x["profiles"] / HTTP_REQUESTS for x in rs)
        rows.append([f"({key}) {desc}", _f(_med(x["p50_ms"] for x in rs), ".2f", " ms"),
                     Spread(x["cpu"] / 1e3 for x in rs).fmt(",.0f", " µs"),
                     Spread(ratios).fmt(".2f", "×") if ratios else "n/a",
                     _f(prof * 100 if prof is not None else None, ".0f", "%"),
                     _f(_med(x["stats"].get("ticks", 0) / HTTP_REQUESTS for x in rs), ".2f"),
                     _f(_med(x["stats"].get("gil_switches", 0) / HTTP_REQUESTS for x in rs), ".1f")])
        cells = [f"({key})"]
        for role in ROLES:
            v = _med(x["threads"][role]["cpu"] / 1e3 for x in rs)
            cells.append(_f(v, ",.0f", " µs") if v else "–")
        main = "main (event loop)"
        cells.append(f"{_f(_med(x['threads'][main]['vcs'] for x in rs), '.1f')} / "
                     f"{_f(_med(x['threads'][main]['ivcs'] for x in rs), '.1f')}")
        thread_rows.append(cells)
        profiled = [x for x in rs if x["profiles"]]
        if profiled and base:
            def extra(role: Optional[str]) -> str:
                vals = [((x["threads"][role]["cpu"] - b["threads"][role]["cpu"]) if role
                         else x["cpu"] - b["cpu"]) * x["n"] / x["profiles"] / 1e3
                        for x, b in zip(rs, base) if x["profiles"]]
                return Spread(vals).fmt("+,.0f", " µs")

            per_profile.append([
                f"({key})", extra(None), *[extra(role) for role in ROLES[:4]],
                _f(_med(x["threads"]["reqprof-sampler"]["vcs"] * x["n"] / x["profiles"]
                        for x in profiled), ".1f"),
                _f(_med(x["threads"]["reqprof-assist"]["vcs"] * x["n"] / x["profiles"]
                        for x in profiled), ".1f"),
                _f(_med(x["stats"].get("ticks", 0) / x["profiles"] for x in profiled), ".2f"),
                _f(_med(x["stats"].get("tick_ns", 0) / max(1, x["stats"].get("ticks", 0)) / 1e3
                        for x in profiled), ".0f", " µs"),
                _f(_med(x["stats"].get("gil_wait_ns", 0) / max(1, x["stats"].get("ticks", 0)) / 1e3
                        for x in profiled), ",.0f", " µs"),
            ])
    text = (
        f"The HTTP benchmark's app (`GET /items`) under uvicorn (`bench/cost_server.py`: "
        f"`http_app.py` as `http_bench` runs it, its threads named after their Python names). "
        f"{rounds} repetitions; in each, one fresh server per configuration, all started "
        f"together and warmed up ({HTTP_WARMUP} requests), then {HTTP_BATCHES} rounds in which "
        f"a keep-alive client at concurrency 1 sends {HTTP_REQUESTS} requests to each server in "
        f"a shuffled order: {rounds * HTTP_BATCHES} batches per configuration, median "
        "(min–max). CPU from /proc/PID/task/*/schedstat and /proc/PID/stat before and after a "
        "batch; *vs (a)* pairs each batch with (a)'s of the same round. *profiled*: "
        "profiles started (`start_session` calls) counted in the server; *ticks* and *hand-overs* are the "
        "engine's counters per request.\n\n"
        + table(["configuration", "p50 latency", "server CPU / request", "CPU vs (a)", "profiled",
                 "ticks / request", "GIL hand-overs / request"], rows)
        + "\n\nServer CPU per request by thread (median of the rounds): the main thread runs "
        "the event loop and the app; *ended threads* is the process total less the live "
        "threads.\n\n"
        + table(["config"] + list(ROLES) + ["main: voluntary / preempted switches"], thread_rows))
    if per_profile:
        text += (
            "\n\nPer **profiled** request: the extra CPU against (a) in the same round, "
            "divided by the requests profiled, by thread, median (min–max): at rate 0.1 the "
            "main thread's figure is ten times the noise of a batch, so only the engine's "
            "threads are resolved there; the sampler's and the assist "
            "thread's voluntary context switches (wake-ups) per profiled request; ticks per "
            "profiled request, the walk per tick and the GIL wait per tick.\n\n"
            + table(["config", "extra CPU", "main", "sampler", "assist", "reporter",
                     "sampler wake-ups", "assist wake-ups", "ticks", "walk / tick",
                     "GIL wait / tick"], per_profile))
    broken = {key: sum(x.get("tracebacks", 0) for x in rs) for key, rs in runs.items()}
    if any(broken.values()):
        text += "\n\nTracebacks in the server logs: " + ", ".join(
            f"({key}) {n}" for key, n in broken.items() if n) + "."
    spy = res.get("spy", {})
    perf = spy.get("perf")
    if perf:
        tot = sum(perf["samples"].values()) or 1
        rows = []
        for what, parts in (("main (event loop)", perf["main"]), ("reqprof-reporter", perf["reporter"]),
                            ("reqprof-sampler", perf["sampler"])):
            for label, share in parts.items():
                if label != SAMPLES and share >= 0.005:
                    rows.append([f"{what} ({parts.get(SAMPLES, 0)} samples)", label,
                                 f"{100 * share:.1f}%"])
        for fn, share in perf["main_engine"].items():
            rows.append(["main (event loop)", f"… of which in `{fn}`", f"{100 * share:.1f}%"])
        text += ("\n\n`perf record -F 999 --call-graph dwarf -p PID` of the server at rate 1.0 "
                 "(keep-alive client, concurrency 1): each thread's share of the process's "
                 "CPU samples: " + ", ".join(f"{c} {100 * n / tot:.0f}%" for c, n in
                                             sorted(perf["samples"].items(), key=lambda kv: -kv[1]))
                 + "; and what each thread's samples show (share of that thread's).\n\n"
                 + table(["thread", "what", "share"], rows))
    elif spy.get("perf missing"):
        text += f"\n\nperf: not used ({spy['perf missing']})."
    ps = spy.get("py-spy")
    if ps:
        rows = []
        for name, th in ps.items():
            if not th["reqprof"]:
                continue
            rows.append([name, f"{100 * th['reqprof'] / th['samples']:.0f}% of {th['samples']:,}",
                         "<br>".join(f"{f} {100 * n / th['samples']:.1f}%" for f, n in th["inclusive"][:8]),
                         "<br>".join(f"{f} {100 * n / th['samples']:.1f}%" for f, n in th["self"][:5])])
        text += ("\n\n`py-spy record --rate 1000 --nonblocking --threads -p PID` of the server "
                 "at rate 1.0: per thread, the share of its samples under reqprof's frames, "
                 "the reqprof and logging functions with most samples inside them, and where "
                 "those samples end (self). py-spy counts wall time of threads it does not see "
                 "idle, waiting for the GIL included: a frame where the GIL is handed over "
                 "(just after a C call returns) collects the waits; perf above counts CPU.\n\n"
                 + table(["thread", "under reqprof", "inclusive", "self"], rows))
    elif spy.get("py-spy missing"):
        text += f"\n\npy-spy: not used ({spy['py-spy missing']})."
    return text


# -- d. reqprof's own code per profiled request -----------------------------------------------

def collect_glue(progress: Progress, errors: list[str]) -> Optional[dict[str, Any]]:
    progress("cost: reqprof's own code, in-process")
    return _child("cost_glue.py", [], errors, progress, timeout=300)


GLUE_LABELS = {"alone": "app alone", "off": "middleware, profiling off",
               "rate1": "rate 1.0 (1 ms, reports logged)",
               "rate1_no_ticks": "rate 1.0, interval 1 s (no tick in a request)",
               "rate1_quiet": "rate 1.0, reporter quiet (reports not logged)",
               "rate1_bare": "rate 1.0, no tick and reporter quiet: reqprof's code alone"}


def render_glue(res: Optional[dict[str, Any]]) -> str:
    if not res:
        return "not available (see the failed runs)."
    runs = res["runs"]

    def med(cfg: str, key: str) -> Optional[float]:
        return _med(x.get(key, 0) for x in runs[cfg])

    rows = []
    for cfg, label in GLUE_LABELS.items():
        # Against the app alone in the same round (the rounds drift with the machine's load).
        extra = Spread((x["loop"] - a["loop"]) / 1e3 for x, a in zip(runs[cfg], runs["alone"]))
        app_extra = Spread((x["app"] - a["app"]) / 1e3 for x, a in zip(runs[cfg], runs["alone"]))
        rows.append([label, _f(_div(med(cfg, "wall"), 1e3), ",.0f", " µs"),
                     _f(_div(med(cfg, "loop"), 1e3), ",.0f", " µs"),
                     extra.fmt("+,.0f", " µs") if cfg != "alone" else "–",
                     app_extra.fmt("+,.0f", " µs") if cfg != "alone" else "–",
                     _f(_div(med(cfg, REPORTER), 1e3), ",.0f", " µs"),
                     _f(_div(med(cfg, "reqprof-sampler"), 1e3), ",.0f", " µs"),
                     _f(_div(med(cfg, "reqprof-assist"), 1e3), ",.0f", " µs"),
                     _f(med(cfg, "ticks"), ".2f"),
                     _f(_div(med(cfg, "gil_wait_ns"), 1e3 * (med(cfg, "ticks") or 0)), ",.0f", " µs"),
                     _f(med(cfg, "assisted_waits"), ".2f"), _f(med(cfg, "gil_switches"), ".1f"),
                     _f(med(cfg, "reqprof-sampler vcs"), ".1f")])
    steps = [[label, f"{s['median_us']:.0f} µs", f"{s['mean_us']:.0f} µs", f"{s['per_request']:.2f}"]
             for label, s in res["steps"].items()]
    calls = res.get("calls")
    text = (
        f"`bench/cost_glue.py`: the app of the HTTP benchmark called in-process through ASGI "
        f"(no server, no socket), {res['n']} requests one after another per run, "
        f"{res['rounds']} interleaved rounds of every configuration in one process; medians. "
        "Per request: wall time; CPU of the event loop thread (the request's), its extra "
        "against the app alone of the same round, median (min–max) (*profiling off* is the "
        "noise floor), and the part of it spent inside the app itself (the app's own code "
        "running slower under the profile: GIL hand-overs in it, ticks, cold caches); CPU of the reporter, sampler and assist threads; ticks, the "
        "GIL wait per tick, assisted waits, GIL hand-overs; the sampler's wake-ups.\n\n"
        + table(["configuration", "wall", "request thread CPU", "vs app alone",
                 "of which inside the app", "reporter CPU",
                 "sampler CPU", "assist CPU", "ticks", "GIL wait / tick", "assisted waits",
                 "GIL hand-overs", "sampler wake-ups"], rows)
        + "\n\nThe steps of reqprof's code, timed (wall, `perf_counter_ns`) around its "
        "functions in the rate 1.0 runs: median and mean per call, calls per request "
        "(*request:* on the request's thread, *reporter:* in the reporter thread; nested "
        "steps are included in the whole).\n\n"
        + table(["step", "median", "mean", "per request"], steps))
    if calls:
        text += (f"\n\nPython function calls per request (cProfile's exact counts, "
                 f"{calls['n']} requests): app alone {calls['alone']:,.0f}, profiled "
                 f"{calls['rate1']:,.0f} (**{calls['rate1'] - calls['alone']:+,.0f}**); reqprof's "
                 "and the stdlib's functions called most per profiled request:\n\n"
                 + table(["function", "calls / request"],
                         [[f"`{k}`", f"{v:.0f}"] for k, v in calls["top"]]))
    return text


# -- e. logging one sampled report ---------------------------------------------------------------

def collect_log(progress: Progress, errors: list[str]) -> Optional[dict[str, Any]]:
    progress("cost: logging one sampled report, in-process")
    return _child("cost_log.py", [], errors, progress, timeout=300)


LOG_LABELS = {"whole": "the reporter's `handle` (whole)",
              "logging_call": "… the logging call alone (`logger.info`: record, filters, formatter, write)",
              "rest": "… the rest: summary line, `extra` fields, text tree"}


def render_log(res: Optional[dict[str, Any]]) -> str:
    if not res:
        return "not available (see the failed runs)."
    nodes = res["nodes"]
    rows = [[label, f"{res[k]['median']:.1f} µs", f"{res[k]['mean']:.1f} µs", f"{res[k]['p90']:.1f} µs"]
            for k, label in LOG_LABELS.items()]
    return (
        f"`bench/cost_log.py`: {res['reports']:,} reports of a FastAPI endpoint (a dependency, a "
        f"few layers of Python, some standard library), profiled in-process at rate 1.0 with an "
        f"interval of {res['interval_s'] * 1e3:g} ms ({nodes['median']:.0f} nodes per report, "
        f"{nodes['min']}–{nodes['max']}; {res['samples']:.0f} samples), then each logged "
        f"{res['rounds']} times by the reporter's own per-report path on one thread, through "
        f"reqprof's fallback handler to a file ({res['bytes_per_record']:,.0f} bytes per record). "
        "CPU per report (`time.thread_time_ns`), no other thread competing for the GIL: "
        "median, mean and 90th percentile over every report and round. The logging call alone "
        "sends the same message, arguments and `extra` again; the rest is the difference for "
        "the same report.\n\n"
        + table(["step", "median", "mean", "90th percentile"], rows))


# -- the section --------------------------------------------------------------------------------

def collect(parts: list[str], rounds: int, progress: Progress, errors: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if MISSING:
        for name, why in MISSING.items():
            progress(f"cost: workload {name} skipped: {why}")
    if "ticks" in parts:
        out["ticks"] = collect_ticks(rounds, progress, errors)
    if "rate" in parts:
        out["rate"] = collect_rate(rounds, progress, errors)
    if "http" in parts:
        out["http"] = collect_http(rounds, progress, errors)
    if "glue" in parts:
        out["glue"] = collect_glue(progress, errors)
    if "log" in parts:
        out["log"] = collect_log(progress, errors)
    return out


def render(res: dict[str, Any], rounds: int) -> str:
    out = []
    if "ticks" in res:
        out.append("**a. The ticks, per workload (interval 1 ms).** " + render_ticks(res["ticks"], rounds))
        if MISSING:
            out.append("Skipped: " + "; ".join(f"*{n}*: {why}" for n, why in MISSING.items()) + ".")
    if "rate" in res:
        out.append("**b. Achieved rate at 1 ms.** " + render_rate(res["rate"], rounds))
    if "http" in res:
        out.append("**c. Per request, HTTP.** " + render_http(res["http"], rounds))
    if "glue" in res:
        out.append("**d. reqprof's own code per profiled request, in-process.** "
                   + render_glue(res["glue"]))
    if "log" in res:
        out.append("**e. Logging one sampled report, in-process.** " + render_log(res["log"]))
    out.append("The breakdown and what to change: `bench/COST.md`.")
    return "\n\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {','.join(PARTS)}")
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    parts = [p for p in opts.parts.split(",") if p]
    for p in parts:
        if p not in PARTS:
            ap.error(f"unknown part {p!r}")
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        sys.stderr.write(f"[{time.monotonic() - t0:6.1f}s] {msg}\n")

    errors: list[str] = []
    text = render(collect(parts, opts.rounds, progress, errors), opts.rounds)
    if errors:
        text += "\n\nRuns that failed:\n\n" + "\n".join(f"- {e}" for e in errors[:20])
    print(text.replace(ROOT + os.sep, "").replace(ROOT, "."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
