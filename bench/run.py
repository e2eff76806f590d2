"""reqprof against its peers on this machine: ``make bench``.

    python bench/run.py                  # everything, writes bench/RESULTS.md
    python bench/run.py --quick          # fewer rounds, prints only
    python bench/run.py --only overhead,accuracy

Every figure is a ratio or an error measured side by side in the same run;
every timed run is a fresh process; rounds are interleaved (each round runs
every configuration once, in a shuffled order) so that load from elsewhere
on the machine falls on all of them alike. Cells show the median over the
rounds and, in parentheses, the min–max. Nothing here asserts anything.
"""
from __future__ import annotations

import argparse
import datetime
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import blame  # noqa: E402
import cost  # noqa: E402
import http_bench  # noqa: E402
from common import BENCH, ROOT, ChildError, Spread, machine, run_child, table  # noqa: E402
from tools import SAMPLING_TOOLS, TOOLS, tool_env  # noqa: E402
from workloads import MISSING, WORKLOADS  # noqa: E402

SECTIONS = ("overhead", "fidelity", "accuracy", "http", "wsgi", "production", "memory", "report",
            "render", "blame", "dashboard", "loopbusy", "cost")
FIDELITY_SCENARIOS = {
    "cpu": "CPU-bound Python",
    "c_nogil": "long C call, GIL released (pbkdf2_hmac)",
    "sleep": "time.sleep",
    "threads4": "CPU-bound Python, 4 other threads busy",
    "c_gil": "long C call holding the GIL (sum(range))",
}
INTERVALS = (0.01, 0.001, 0.0002)
TOOL_NAMES = {"bare": "bare (noise)", "reqprof": "reqprof", "reqprof-portable": "reqprof portable",
              "pyinstrument": "pyinstrument", "cProfile": "cProfile"}

T0 = time.monotonic()


def progress(msg: str) -> None:
    sys.stderr.write(f"[{time.monotonic() - T0:6.1f}s] {msg}\n")
    sys.stderr.flush()


def child(script: str, args: list[str], env: dict[str, str] | None = None,
          errors: list[str] | None = None, timeout: float = 120.0) -> dict[str, Any] | None:
    try:
        return run_child(script, args, env, timeout=timeout)
    except (ChildError, subprocess.TimeoutExpired, ValueError) as exc:
        if errors is not None:
            errors.append(str(exc)[:300])
        progress(f"  failed: {str(exc)[:200]}")
        return None


def ratio_cell(values: list[float]) -> str:
    s = Spread(values)
    return s.fmt(".2f", "×") if s else "n/a"


def interval_label(seconds: float) -> str:
    return f"{seconds * 1000:g} ms" if seconds >= 0.001 else f"{seconds * 1e6:g} µs"


# -- 1. overhead ----------------------------------------------------------------

def bench_overhead(rounds: int, errors: list[str]) -> tuple[str, dict[str, Any]]:
    # results[workload][tool] = list of {"bare_s", "tool_s", "samples"}
    results: dict[str, dict[str, list[dict]]] = {w: {t: [] for t in TOOLS} for w in WORKLOADS}
    for name, why in MISSING.items():
        progress(f"overhead: workload {name} skipped: {why}")
    rng = random.Random(2024)
    for r in range(rounds):
        progress(f"overhead round {r + 1}/{rounds}")
        for workload in WORKLOADS:
            order = list(TOOLS)
            rng.shuffle(order)
            for tool in order:
                out = child("overhead.py", [workload, tool], tool_env(tool), errors)
                if out is not None:
                    results[workload][tool].append(out)
    def rows(suffix: str) -> list[list[str]]:
        out = []
        for workload, by_tool in results.items():
            bare = Spread(x["bare" + suffix] for t in by_tool.values() for x in t)
            row = [workload, bare.fmt(".3f", " s") if bare else "n/a"]
            for tool in TOOLS:
                row.append(ratio_cell([x["tool" + suffix] / x["bare" + suffix] for x in by_tool[tool]]))
            out.append(row)
        return out

    headers = ["workload", "bare time"] + [TOOL_NAMES[t] for t in TOOLS]
    text = (
        "Slowdown = wall time under the profiler / bare wall time of the same code in the "
        "same process (each process: one warm-up run under the tool, then bare and tool "
        f"alternately, {3} of each, best of each; start and stop of the profiler included). "
        f"Interval 1 ms for the samplers. Median of {rounds} fresh processes per cell "
        "(min–max). *bare (noise)* is a process whose \"tool\" runs are bare too: the "
        "ratio's noise floor.\n\n" + table(headers, rows("_s"))
        + "\n\nThe same runs in CPU time of the whole process (all threads, the sampler "
        "thread included; less sensitive to other load on the machine):\n\n"
        + table(headers, rows("_cpu_s"))
    )
    if MISSING:
        text += "\n\nSkipped: " + "; ".join(f"*{n}*: {why}" for n, why in MISSING.items()) + "."
    return text, results


# -- 2. sampling fidelity --------------------------------------------------------

def bench_fidelity(rounds: int, errors: list[str]) -> tuple[str, dict[str, Any]]:
    results: dict[Any, Any] = {
        (s, i): {t: [] for t in SAMPLING_TOOLS} for s in FIDELITY_SCENARIOS for i in INTERVALS}
    rng = random.Random(7)
    for r in range(rounds):
        progress(f"fidelity round {r + 1}/{rounds}")
        for key in results:
            order = list(SAMPLING_TOOLS)
            rng.shuffle(order)
            for tool in order:
                out = child("fidelity.py", [key[0], tool, repr(key[1])], tool_env(tool), errors)
                if out is not None:
                    results[key][tool].append(out)
    rows = []
    for (scenario, interval), by_tool in results.items():
        asked = 1 / interval
        row = [FIDELITY_SCENARIOS[scenario], interval_label(interval)]
        for tool in SAMPLING_TOOLS:
            rates = Spread(x["rate"] for x in by_tool[tool])
            row.append(f"{rates.median:,.0f}/s ({100 * rates.median / asked:.0f}%)" if rates else "n/a")
        late = Spread(x["stats"]["late_pct"] for x in by_tool["reqprof"] if x.get("stats"))
        wait = Spread(x["stats"]["gil_wait_us"] for x in by_tool["reqprof"] if x.get("stats"))
        row.append(f"{late.median:.0f}%" if late else "n/a")
        row.append(f"{wait.median:,.0f} µs" if wait else "n/a")
        rows.append(row)
    short: dict[str, Any] = {}
    for tool in SAMPLING_TOOLS:
        progress(f"fidelity: short sessions, {tool}")
        short[tool] = child("short_sessions.py", [tool], tool_env(tool), errors)
    short_rows = []
    for length in ("0.0005", "0.002", "0.005", "0.02"):
        row = [f"{float(length) * 1000:g} ms"]
        for tool in SAMPLING_TOOLS:
            rec = (short.get(tool) or {}).get(length)
            row.append(f"{rec['samples_per_session']:.2f} of {rec['expected']:.2f} · "
                       f"{100 * rec['coverage']:.0f}%" if rec else "n/a")
        short_rows.append(row)
    headers = ["code being profiled", "asked", "reqprof", "reqprof portable", "pyinstrument",
               "reqprof late ticks", "reqprof GIL wait / tick"]
    text = (
        "Samples recorded per second of profile (and % of the rate asked), median of "
        f"{rounds} fresh processes, 0.5 s of each kind of code. A late tick is one taken "
        "more than an interval after it was due; *GIL wait* is the engine's average time from "
        "asking for the GIL to holding it (`_core.stats()`). In *4 other threads busy*, "
        "the profiled code is the main thread's; the four threads are not part of the "
        "profile.\n\n" + table(headers, rows)
        + "\n\n**Short sessions** (many requests one after another, each a session of CPU-bound "
        "Python of the length shown, interval 1 ms): samples per session of the number the "
        "interval implies (duration / interval) · share of the sessions' duration that the "
        "profiles' wall time covers.\n\n"
        + table(["session length"] + [TOOL_NAMES[t] for t in SAMPLING_TOOLS], short_rows)
    )
    results["short"] = short
    return text, results


# -- 3. accuracy -----------------------------------------------------------------

ACCURACY_PARTS = {"part_python": "CPU-bound Python", "part_sleep": "time.sleep",
                  "part_c_call": "C call, GIL released", "part_await": "await asyncio.sleep"}


def bench_accuracy(rounds: int, errors: list[str]) -> tuple[str, dict[str, Any]]:
    long_runs: dict[str, list[dict]] = {t: [] for t in SAMPLING_TOOLS}
    short_runs: dict[str, list[dict]] = {t: [] for t in SAMPLING_TOOLS}
    rng = random.Random(11)
    for r in range(rounds):
        progress(f"accuracy round {r + 1}/{rounds}")
        order = list(SAMPLING_TOOLS)
        rng.shuffle(order)
        for tool in order:
            out = child("accuracy.py", [tool, "1.0"], tool_env(tool), errors)
            if out is not None:
                long_runs[tool].append(out)
            out = child("accuracy.py", [tool, "0.02"], tool_env(tool), errors)
            if out is not None:
                short_runs[tool].append(out)
    rows = []
    for part, label in ACCURACY_PARTS.items():
        truth = Spread(x["parts"][part]["true_pct"] for x in long_runs["reqprof"])
        row = [label, f"{truth.median:.1f}%" if truth else "n/a"]
        for tool in SAMPLING_TOOLS:
            err = Spread(x["parts"][part]["error"] for x in long_runs[tool])
            row.append(f"{err.median:.2f} (max {err.hi:.2f})" if err else "n/a")
        rows.append(row)
    worst = ["worst part, each run", ""]
    for tool in SAMPLING_TOOLS:
        err = Spread(max(p["error"] for p in x["parts"].values()) for x in long_runs[tool])
        worst.append(f"{err.median:.2f} (max {err.hi:.2f})" if err else "n/a")
    rows.append(worst)
    short = ["samples in a 20 ms request (4 × 5 ms)", ""]
    short_err = ["worst part error in that request", ""]
    for tool in SAMPLING_TOOLS:
        s = Spread(x["samples"] for x in short_runs[tool])
        short.append(s.fmt(".0f") if s else "n/a")
        e = Spread(max(p["error"] for p in x["parts"].values()) for x in short_runs[tool])
        short_err.append(f"{e.median:.1f} (max {e.hi:.1f})" if e else "n/a")
    rows += [short, short_err]
    headers = ["part (1 s request, 4 × 250 ms)", "true share"] + [TOOL_NAMES[t] for t in SAMPLING_TOOLS]
    text = (
        "One asyncio task runs four parts in turn, each timed with `perf_counter`; error = "
        "|share of the profile's wall time under the part's function − its true share|, in "
        f"percentage points, interval 1 ms for both tools. Median of {rounds} fresh processes "
        "(max).\n\n" + table(headers, rows)
    )
    return text, {"long": long_runs, "short": short_runs}


# -- 4. HTTP -------------------------------------------------------------------------

def http_tables(results: dict[str, Any], configs: list) -> list[str]:
    """One table per concurrency: req/s, latency and server CPU per request
    of each configuration, with ratios to (a) in the same round."""
    parts = []
    base = {c: [x["rps"] for x in results["a"]["runs"][c]] for c in http_bench.CONCURRENCY}
    base_cpu = {c: [cpu_per_request(x) for x in results["a"]["runs"][c]] for c in http_bench.CONCURRENCY}
    for conc in http_bench.CONCURRENCY:
        rows = []
        for key, desc, *_ in configs:
            res = results[key]
            runs = res["runs"][conc]
            if not runs:
                rows.append([f"({key}) {desc}", "not available", "", "", "", "", "", ""])
                continue
            rps = Spread(x["rps"] for x in runs)
            # Ratios per round against (a) of the same round.
            ratios = [x["rps"] / b for x, b in zip(runs, base[conc]) if b]
            cpu = [cpu_per_request(x) for x in runs]
            cpu_ratios = [c / b for c, b in zip(cpu, base_cpu[conc]) if b and c]
            p50 = Spread(x["p50_us"] / 1000 for x in runs if x["requests"])
            p99 = Spread(x["p99_us"] / 1000 for x in runs if x["requests"])
            errs = sum(x["errors"] for x in runs)
            rows.append([f"({key}) {desc}", rps.fmt(",.0f"), ratio_cell(ratios),
                         p50.fmt(".2f", " ms") if p50 else "no response",
                         p99.fmt(".2f", " ms") if p99 else "no response",
                         Spread(c * 1000 for c in cpu if c).fmt(".2f", " ms"),
                         ratio_cell(cpu_ratios), f"{errs}" if errs else "0"])
        parts.append(f"**Concurrency {conc}**\n\n" + table(
            ["configuration", "req/s", "req/s vs (a)", "p50", "p99", "server CPU / request",
             "CPU vs (a)", "errors"], rows))
    return parts


def server_logs(results: dict[str, Any], configs: list) -> list[str]:
    """What went wrong in a configuration's servers, a line each."""
    logs = []
    for key, desc, *_ in configs:
        res = results[key]
        if res["error"]:
            logs.append(f"- ({key}) stopped after {len(res['runs'][1])} round(s): {res['error'][:300]}")
        tb = sum(x["tracebacks"] for x in res["log"])
        if tb:
            first = next(x["first_traceback"] for x in res["log"] if x["first_traceback"])
            last = first.strip().splitlines()[-1][:200] if first else ""
            logs.append(f"- ({key}): {tb} traceback(s) in the server log; the first ends `{last}`")
    return logs


def start_pyroscope() -> Optional[tuple[str, str]]:
    """A real Pyroscope server for row (i), from REQPROF_PYROSCOPE_DIR:
    (its URL, its data directory), or None."""
    tools = os.environ.get("REQPROF_PYROSCOPE_DIR", "")
    script = os.path.join(tools, "run-pyroscope")
    if not tools or not os.path.isfile(script):
        return None
    data = tempfile.mkdtemp(prefix="reqprof-bench-pyroscope-")
    port = str(http_bench.free_port())
    progress("starting Pyroscope for the push row")
    out = subprocess.run([script, data, port], capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        return None
    return out.stdout.strip().splitlines()[-1], data


def stop_pyroscope(data: str) -> None:
    try:
        with open(os.path.join(data, "pyroscope.pid")) as f:
            os.kill(int(f.read()), signal.SIGKILL)
    except (OSError, ValueError):
        pass
    shutil.rmtree(data, ignore_errors=True)


def push_figures(results: dict[str, Any]) -> str:
    """Bytes pushed per minute per route, from row (i)'s server logs: the
    size of a profile times the pushes a minute (the run is shorter than an
    interval: the profile is the one pushed at exit)."""
    logs = [x for x in results.get("i", {}).get("log", []) if x.get("pushed_profiles")]
    if not logs:
        return ""
    sizes = [x["pushed_bytes"] / x["pushed_profiles"] for x in logs]
    per_minute = 60 / 15
    return (f"\n\n**Pushing to Pyroscope** (row (i), one route `GET /items`): "
            f"{Spread(s / 1000 for s in sizes).fmt('.1f', ' kB')} per profile (gzipped "
            f"pprof), so {Spread(s * per_minute / 1000 for s in sizes).fmt('.0f', ' kB')} "
            f"pushed per minute per route at the default 15 s interval. Row (i) differs from "
            f"(h) by the second merge of each request (into the push interval's aggregate) "
            f"on the request's thread; the pushes themselves run in the reporter thread.")


def bench_http(rounds: int, seconds: int, errors: list[str]) -> tuple[str, dict[str, Any]]:
    if http_bench.wrk_path() is None:
        return "not available: `wrk` is not installed (Debian package `wrk`).", {}
    pyroscope = start_pyroscope()
    if pyroscope is not None:
        os.environ["REQPROF_BENCH_PYROSCOPE"] = pyroscope[0]
    try:
        results = http_bench.run(rounds, seconds, progress)
    finally:
        os.environ.pop("REQPROF_BENCH_PYROSCOPE", None)
        if pyroscope is not None:
            stop_pyroscope(pyroscope[1])
    parts = http_tables(results, http_bench.CONFIGS)
    probe_rows = []
    for key, desc, _env, _q, kind in http_bench.CONFIGS:
        probes = results[key]["probes"]
        if not kind or not probes:
            continue
        for when, label in (("idle", "alone"), ("c16", "with 15 other connections")):
            recs = [p for p in probes.get(when, []) if "error" not in p]
            if not recs:
                continue
            probe_rows.append([
                f"({key}) {kind}", label,
                Spread(p["latency_s"] * 1000 for p in recs).fmt(".0f", " ms"),
                Spread(p["duration_s"] * 1000 for p in recs).fmt(".0f", " ms"),
                Spread(p["samples"] for p in recs).fmt(".0f"),
                Spread(100 * p["foreign"] for p in recs).fmt(".0f", "%"),
            ])
    logs = server_logs(results, http_bench.CONFIGS)
    text = (
        f"FastAPI (`bench/http_app.py`: `GET /items`, filter + sort + pydantic response model) "
        f"under uvicorn, one worker, 127.0.0.1; `wrk -t1 -cN -d{seconds}s`; a fresh server "
        f"per configuration and round, {rounds} interleaved rounds, median (min–max). "
        "*vs (a)* columns are ratios to (a) in the same round. *server CPU / request* is the "
        "server process's CPU time (all threads) over the requests wrk completed: less "
        "sensitive than req/s to other load on the machine. The load generator and the "
        "server share the machine's 2 cores. Rows (g) and (f0) are additions: (g) is reqprof's "
        "counterpart of (f); (f0) is (f)'s middleware when it does not profile.\n\n"
        + "\n\n".join(parts)
    )
    if probe_rows:
        text += (
            "\n\n**What a profiled request's report holds.** Probe requests to `/probe` "
            "(4 ms of Python, then a 4 ms await), with `?profile=1`, alone and while 15 "
            "other connections load the server with profiled requests. *foreign* is the "
            "share of the report's time in frames the probe never runs: the load's endpoint "
            "(`list_items`) and other requests' report rendering (`output_html`, "
            "`_render`). Five probes each.\n\n"
            + table(["configuration", "probe sent", "latency", "report duration", "samples",
                     "foreign"], probe_rows)
        )
    text += push_figures(results)
    if logs:
        text += "\n\n" + "\n".join(logs)
    return text, results


def bench_wsgi(rounds: int, seconds: int, errors: list[str]) -> tuple[str, dict[str, Any]]:
    if http_bench.wrk_path() is None:
        return "not available: `wrk` is not installed (Debian package `wrk`).", {}
    results = http_bench.run(rounds, seconds, progress, http_bench.WSGI_CONFIGS,
                             http_bench.GUNICORN_GTHREAD)
    text = (
        f"Flask (`bench/wsgi_app.py`: `GET /items`, the same filter + sort, `jsonify`) under "
        f"gunicorn, one worker, gthread with 4 threads, 127.0.0.1; `wrk -t1 -cN -d{seconds}s`; "
        f"a fresh server per configuration and round, {rounds} interleaved rounds, median "
        "(min–max). *server CPU / request* counts gunicorn's master and worker. (f) is "
        "pyinstrument's documented Flask recipe (`before_request`/`after_request`) asked "
        "for a report on every request; (g) is reqprof's counterpart.\n\n"
        + "\n\n".join(http_tables(results, http_bench.WSGI_CONFIGS)))
    logs = server_logs(results, http_bench.WSGI_CONFIGS)
    if logs:
        text += "\n\n" + "\n".join(logs)
    return text, results


def bench_production(errors: list[str]) -> tuple[str, dict[str, Any]]:
    progress("production view: merge cost and store size")
    out = child("production.py", [], None, errors, timeout=600)
    if out is None:
        return "not available (see the failed runs below).", {}
    m, s = out["merge"], out["store"]
    text = (f"`bench/production.py`. Merging a finished request's profile ({m['nodes']} "
            f"call-tree nodes, random call paths) into its route's aggregate, on the request's "
            f"thread: **{m['median_us']:.1f} µs** median, {m['p99_us']:.1f} µs p99 (2,000 "
            f"merges). Store size: {s['requests']:,} requests over {s['routes']} routes in "
            f"{s['windows']} one-minute windows (1,000 requests/s), 1% of them kept in full "
            f"({s['kept']:,} reports of {s['report_kb']:.0f} KB of JSON each, stored gzipped): "
            f"**{s['mb_per_million']:.1f} MB per million requests**; the aggregates alone take "
            f"a few kilobytes per route and minute. The always-on HTTP row is (h) in section 4.")
    return text, out


def cpu_per_request(run: dict[str, Any]) -> float:
    return run["server_cpu_s"] / run["requests"] if run.get("requests") else 0.0


# -- 5. memory ---------------------------------------------------------------------

MEMORY_SCENARIOS = {
    "typical": "typical: 20 FastAPI requests (ASGI, in-process), 1 ms",
    "deep": "deep recursion: 900 frames, max_depth=1000, 1 ms",
    "distinct": "100,000 distinct functions in random 45-deep chains, 200 µs",
    "distinct_4mib": "the same with max_bytes=4 MiB",
}


def mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB" if abs(n) >= 2**20 else f"{n / 1024:.0f} KiB"


def bench_memory(errors: list[str]) -> tuple[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for scenario in MEMORY_SCENARIOS:
        progress(f"memory: {scenario}")
        tools = ("reqprof",) if scenario == "distinct_4mib" else ("bare", "reqprof", "pyinstrument")
        results[scenario] = {t: child("memory.py", [scenario, t], tool_env(t), errors) for t in tools}
    rows = []
    for scenario, label in MEMORY_SCENARIOS.items():
        r = results[scenario]
        rp, pyi, bare = r.get("reqprof"), r.get("pyinstrument"), r.get("bare")
        if rp is None:
            rows.append([label] + ["n/a"] * 7)
            continue
        per_node = rp["bytes"] / rp["nodes"] if rp["nodes"] else 0
        rows.append([
            label, f"{rp['samples']:,}", f"{rp['nodes']:,}",
            f"{mib(rp['bytes'])} ({per_node:.0f} B/node)",
            ", ".join(rp["truncated"]) or "no",
            f"{mib(rp['rss_sampling'])} / {mib(rp['rss_growth'])}",
            f"{mib(pyi['rss_sampling'])} / {mib(pyi['rss_growth'])}" if pyi else "–",
            mib(bare["rss_growth"]) if bare else "–",
        ])
    text = (
        "One session per row, fresh process, after a warm-up session. *engine bytes* is "
        "`Report.memory_bytes` (call-tree tables + code table); caps are the defaults "
        "(100,000 nodes, 32 MiB, depth 50) unless the row says otherwise. RSS growth is "
        "measured while sampling (before `stop()`) / after `stop()` (which resolves names and "
        "lines); it includes what the workload itself allocates, for which *bare* is the "
        "reference.\n\n" + table(
            ["session", "samples", "nodes", "engine bytes", "truncated by",
             "reqprof RSS growth (sampling / stopped)", "pyinstrument RSS growth (sampling / stopped)",
             "bare RSS growth"], rows)
    )
    return text, results


# -- 6. report writers -------------------------------------------------------------

def bench_report(viewer_runs: int, errors: list[str]) -> tuple[str, dict[str, Any]]:
    progress("report writers: building a 50,000-node profile")
    with tempfile.TemporaryDirectory(prefix="reqprof-bench-") as tmp:
        out = child("report_write.py", ["50000", os.path.join(tmp, "report.html")], None, errors,
                    timeout=300)
    rows = []
    if out is not None:
        for name, w in out["writers"].items():
            where = f"`Report.{name}()`" if not w or w["via"] == "Report" else \
                f"`{name}()` (engine; not on `Report` yet)"
            rows.append([f"reqprof {where}", f"{out['nodes']:,} nodes",
                         f"{w['seconds'] * 1000:.0f} ms" if w else "not available",
                         mib(w["bytes"]) if w else "–"])
        for name, w in out["pyinstrument"]["writers"].items():
            rows.append([f"pyinstrument `output_{name}()` (same workload)",
                         f"{out['pyinstrument']['frames']:,} frames",
                         f"{w['seconds'] * 1000:.0f} ms", mib(w["bytes"])])
    text = ("Best of 3 (pyinstrument: one run). The profile: random chains through 100,000 "
            "distinct functions, sampled at 200 µs until the 50,000-node cap.\n\n"
            + table(["writer", "profile", "time", "size"], rows))
    viewer = os.path.join(BENCH, "viewer_render.py")
    if os.path.exists(viewer):
        progress("report: viewer render in headless Chromium")
        try:
            proc = subprocess.run([sys.executable, viewer, "--nodes", "50000", "--runs", str(viewer_runs)],
                                  capture_output=True, text=True, timeout=300, cwd=ROOT)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("median:")]
            first = proc.stdout.splitlines()[:1]
            if proc.returncode == 0 and lines:
                text += (f"\n\nViewer in headless Chromium (`bench/viewer_render.py --nodes 50000 "
                         f"--runs {viewer_runs}`, {first[0] if first else ''}): "
                         f"{lines[0][len('median:'):].strip()} (medians).")
            else:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                text += f"\n\nViewer render: not available ({tail[0][:200]})."
        except subprocess.TimeoutExpired:
            text += "\n\nViewer render: not available (timed out)."
    else:
        text += "\n\nViewer render: not available (`bench/viewer_render.py` is missing)."
    return text, out or {}


# -- 7. a large report beside other requests ------------------------------------------

def bench_render(rounds: int, errors: list[str]) -> tuple[str, dict[str, Any]]:
    results: dict[str, list[dict]] = {"loop": [], "thread": []}
    for r in range(rounds):
        for mode in random.Random(r).sample(list(results), 2):
            progress(f"render stall: round {r + 1}/{rounds}, {mode}")
            out = child("render_stall.py", [mode], None, errors, timeout=300)
            if out is not None:
                results[mode].append(out)
    labels = {"loop": "rendered on the event loop (before)",
              "thread": "rendered in a reqprof thread, writers without the GIL (now)"}
    rows = []
    for mode, runs in results.items():
        if not runs:
            continue

        def cell(key: str) -> str:
            s = Spread(x[key] for x in runs if x.get(key) is not None)
            return s.fmt(".1f", " ms") if s else "n/a"

        rows.append([labels[mode], Spread(x["report_mb"] for x in runs).fmt(".1f", " MB"),
                     cell("render_ms"), cell("p50_idle_ms"), cell("p99_idle_ms"),
                     cell("p50_during_ms"), cell("p99_during_ms"), cell("max_during_ms")])
    text = ("`bench/render_stall.py`: a keep-alive client pings a trivial endpoint every 2 ms "
            "while three `?profile=1` requests each get a ~25 MB HTML report (random call "
            "paths 600 frames deep, `max_depth=1000`). Ping latency before any profiled "
            "request (idle) and for the pings that overlap a render.\n\n"
            + table(["report", "size", "render", "idle p50", "idle p99", "during p50",
                     "during p99", "during max"], rows))
    backlog: dict[str, list[dict]] = {"python": [], "engine": []}
    for r in range(rounds):
        for mode in random.Random(r).sample(list(backlog), 2):
            progress(f"reporter beside a busy thread: round {r + 1}/{rounds}, {mode}")
            out = child("reporter_backlog.py", [mode], None, errors, timeout=300)
            if out is not None:
                backlog[mode].append(out)
    labels = {"python": "one system call at a time (before)",
              "engine": "listed and placed by the engine, the GIL let go once (now)"}
    rows = [[labels[mode], Spread(x["idle_ms"] for x in runs).fmt(".1f", " ms"),
             Spread(x["busy_ms"] for x in runs).fmt(".1f", " ms")]
            for mode, runs in backlog.items() if runs]
    text += ("\n\n`bench/reporter_backlog.py`: the reporter thread logs a short request's "
             "report and writes it to a full output directory (100 reports: each write "
             "also removes the oldest), alone and beside a thread running Python code "
             "without pause (a busy event loop: each system call that lets the GIL go "
             "waits up to the 5 ms switch interval to get it back). Time per report; "
             "the reporter's queue holds 64.\n\n"
             + table(["output directory", "per report, idle", "per report, beside a busy "
                      "thread"], rows))
    results["reporter"] = backlog
    return text, results


# -- 8. the dashboard over a busy day ---------------------------------------------------

def bench_dashboard(runs: int, errors: list[str]) -> tuple[str, dict[str, Any]]:
    progress("dashboard: building a store of 500 routes x 24 h, then Chromium")
    out = child("dashboard_render.py", ["--routes", "500", "--hours", "24", "--runs", str(runs)],
                None, errors, timeout=1800)
    if out is None:
        return "not available (see *Runs that failed*).", {}

    def cell(key: str) -> str:
        s = Spread(out["runs"][key])
        return s.fmt(".0f", " ms") if s else "n/a"

    rows = [
        ["route table, last 24 h: the API's answer", cell("routes_fetch_ms")],
        ["route table: its first 60 rows on screen (built, laid out, drawn)", cell("routes_render_ms")],
        [f"route table: all {out['routes']} rows (then 100 after each frame)", cell("routes_all_ms")],
        ["route table: re-sort by another column (click to first rows drawn)", cell("sort_ms")],
        [f"a route's merged flame graph, 24 h: the API's answer ({out['hours'] * 60:,} profiles "
         f"merged, {out['profile_nodes']:,} nodes)", cell("profile_fetch_ms")],
        ["that flame graph: render (index, call tree, layout, first draw)", cell("profile_render_ms")],
        ["then switching to its call tree", cell("tree_switch_ms")],
    ]
    text = (f"`bench/dashboard_render.py --routes {out['routes']} --hours {out['hours']} --runs {runs}`: "
            f"a store of {out['routes']} routes with a window every minute for {out['hours']} h "
            f"({out['windows']:,} windows written with `Store.write`, counts and latency histograms "
            f"from real `_core.Aggregate`s; {out['profiles']:,} merged profiles of real sessions, "
            f"{out['profile_json_kb']} kB of JSON each: every window of the route opened, one an "
            f"hour for the others), {out['store_mb']} MB on disk; `reqprof dashboard` on it, "
            "opened in headless Chromium. Times from the page's own marks, median of the runs "
            "(min–max); *the API's answer* is the server's work plus the transfer.\n\n"
            + table(["step", "time"], rows))
    return text, out


# -- targets ------------------------------------------------------------------------

def targets(data: dict[str, Any]) -> str:
    rows = []

    def status(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**not met**")

    ov = data.get("overhead")
    if ov:
        for workload, by_tool in ov.items():
            s = Spread(x["tool_s"] / x["bare_s"] for x in by_tool["reqprof"])
            if s:
                rows.append([f"overhead at 1 ms, {workload}", "≤ 3%",
                             f"{100 * (s.median - 1):+.1f}% ({100 * (s.lo - 1):+.1f} to {100 * (s.hi - 1):+.1f})",
                             status(s.median <= 1.03)])
    fid = data.get("fidelity")
    if fid:
        s = Spread(x["rate"] for x in fid[("cpu", 0.001)]["reqprof"])
        if s:
            rows.append(["achieved rate at 1 ms, CPU-bound", "≥ 95% of asked",
                         f"{s.median / 10:.1f}%", status(s.median >= 950)])
    acc = data.get("accuracy")
    if acc:
        s = Spread(max(p["error"] for p in x["parts"].values()) for x in acc["long"]["reqprof"])
        if s:
            rows.append(["accuracy, worst part", "≤ 3 points", f"{s.median:.2f} points (max {s.hi:.2f})",
                         status(s.median <= 3)])
        s = Spread(x["samples"] for x in acc["short"]["reqprof"])
        if s:
            rows.append(["samples in a 20 ms request", "≥ 15", f"{s.median:.0f} ({s.lo:.0f}–{s.hi:.0f})",
                         status(s.median >= 15)])
    http = data.get("http")
    if http and "a" in http:
        for key, goal, limit in (("b", "≥ 99% of (a)", 0.99), ("c", "≥ 99% of (a)", 0.99),
                                 ("d", "≥ 97% of (a)", 0.97), ("e", "≥ 90% of (a)", 0.90),
                                 ("h", "≥ 95% of (a), CPU ≤ 1.05×", 0.95)):
            for conc in http_bench.CONCURRENCY:
                runs = http[key]["runs"][conc]
                base = http["a"]["runs"][conc]
                ratios = Spread(x["rps"] / b["rps"] for x, b in zip(runs, base) if b["rps"])
                cpu = Spread(cpu_per_request(x) / cpu_per_request(b) for x, b in zip(runs, base)
                             if cpu_per_request(x) and cpu_per_request(b))
                if ratios:
                    rows.append([f"HTTP ({key}) req/s, concurrency {conc}", goal,
                                 f"{100 * ratios.median:.1f}% ({100 * ratios.lo:.1f}–{100 * ratios.hi:.1f}); "
                                 f"server CPU per request {cpu.fmt('.2f', '×')}",
                                 status(ratios.median >= limit)])
    if not rows:
        return ""
    return ("Targets from the benchmark issue, against this run's medians (min–max). "
            "A target whose range straddles the limit is within this machine's noise.\n\n"
            + table(["target", "goal", "measured", ""], rows))


# -- 7. blame ----------------------------------------------------------------------------

def bench_blame(rounds: int) -> tuple[str, Any]:
    """bench/blame.py: the share of wall time each profiler charges to
    innocent frames in the situations of real apps (issue 15)."""
    before = blame.default_before()
    results = blame.collect(list(blame.SITUATIONS), rounds, before, progress)
    return blame.render(results, rounds, before), results


# -- 10. the event loop's detection -----------------------------------------------------

LOOP_TASKS = (1, 32)


def bench_loop_busy(rounds: int, errors: list[str]) -> tuple[str, dict[str, Any]]:
    """bench/loop_busy.py: what telling [event loop busy] from [await] costs
    a tick and a workload, with 1 and 32 profiled tasks in flight."""
    results: dict[int, list[dict]] = {n: [] for n in LOOP_TASKS}
    for r in range(rounds):
        progress(f"event loop round {r + 1}/{rounds}")
        for n in LOOP_TASKS:
            out = child("loop_busy.py", [str(n)], None, errors)
            if out is not None:
                results[n].append(out)
    rows = []
    for n, runs in results.items():
        off = Spread(x["tick_us"]["off"] for x in runs)
        on = Spread(x["tick_us"]["on"] for x in runs)
        extra = Spread(x["tick_us"]["on"] / x["tick_us"]["off"] - 1 for x in runs)
        w_off = Spread(x["wall_s"]["off"] / x["wall_s"]["bare"] - 1 for x in runs)
        w_on = Spread(x["wall_s"]["on"] / x["wall_s"]["bare"] - 1 for x in runs)
        if not runs:
            rows.append([n] + ["n/a"] * 5)
            continue
        rows.append([n, off.fmt(".2f", " µs"), on.fmt(".2f", " µs"),
                     f"{100 * extra.median:+.1f}%",
                     f"{100 * w_off.median:+.1f}%", f"{100 * w_on.median:+.1f}%"])
    text = (
        "The tick with the event loop's detection ([event loop busy], the loop block) off and "
        "on (`_core._set_loop_busy`), in one process: a tick (`_core._sample_now()`) while "
        "one session runs and the others wait in a long `asyncio.sleep` (each waiting task "
        "looked at, none ready), best of 5; and the overhead on a fixed workload whose "
        "tasks all stay ready (each round of 40 µs of Python ends in `await "
        "asyncio.sleep(0)`: every waiting task is [event loop busy] at every tick, the "
        f"worst case), against bare runs, best of 5. Median of {rounds} processes.\n\n"
        + table(["tasks in flight", "tick, detection off", "tick, on", "tick: more",
                 "workload overhead, off", "workload overhead, on"], rows))
    return text, {str(k): v for k, v in results.items()}


# -- 11. where the cost goes -------------------------------------------------------------

def bench_cost(rounds: int, errors: list[str]) -> tuple[str, dict[str, Any]]:
    """bench/cost.py: the ticks per workload, the achieved rate, the HTTP
    server's CPU per request by thread, reqprof's own code per request,
    logging one sampled report."""
    results = cost.collect(list(cost.PARTS), rounds, progress, errors)
    return cost.render(results, rounds), results


# -- driver ---------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description="reqprof benchmarks against pyinstrument and cProfile")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run); prints only")
    ap.add_argument("--only", default="", help=f"comma-separated sections: {','.join(SECTIONS)}")
    ap.add_argument("--rounds", type=int, default=0, help="rounds for overhead/accuracy (default 5)")
    ap.add_argument("--output", default=None,
                    help="markdown file to write (default bench/RESULTS.md for a full run)")
    opts = ap.parse_args()

    only = [s for s in opts.only.split(",") if s]
    for s in only:
        if s not in SECTIONS:
            ap.error(f"unknown section {s!r}; sections: {', '.join(SECTIONS)}")
    sections = only or list(SECTIONS)
    rounds = opts.rounds or (2 if opts.quick else 5)
    fid_rounds = 1 if opts.quick else 3
    http_rounds, http_seconds = (1, 2) if opts.quick else (3, 3)
    output = opts.output
    if output is None and not only and not opts.quick:
        output = os.path.join(BENCH, "RESULTS.md")

    info = machine()
    started = datetime.datetime.now(datetime.timezone.utc)
    command = "make bench" if os.environ.get("REQPROF_BENCH_VIA_MAKE") == "1" else \
        "python bench/run.py" + ("".join(f" {shlex.quote(a)}" for a in sys.argv[1:]))
    progress(f"{info['cpu']}; {info['python']}; sections: {', '.join(sections)}")

    errors: list[str] = []
    texts: dict[str, str] = {}
    data: dict[str, Any] = {}
    runners: dict[str, Callable[[], tuple[str, Any]]] = {
        "overhead": lambda: bench_overhead(rounds, errors),
        "fidelity": lambda: bench_fidelity(fid_rounds, errors),
        "accuracy": lambda: bench_accuracy(rounds, errors),
        "http": lambda: bench_http(http_rounds, http_seconds, errors),
        "wsgi": lambda: bench_wsgi(http_rounds, http_seconds, errors),
        "production": lambda: bench_production(errors),
        "memory": lambda: bench_memory(errors),
        "report": lambda: bench_report(1 if opts.quick else 3, errors),
        "render": lambda: bench_render(1 if opts.quick else 3, errors),
        "blame": lambda: bench_blame(1 if opts.quick else 3),
        "dashboard": lambda: bench_dashboard(1 if opts.quick else 3, errors),
        "loopbusy": lambda: bench_loop_busy(1 if opts.quick else 3, errors),
        "cost": lambda: bench_cost(1 if opts.quick else 3, errors),
    }
    for name in sections:
        texts[name], data[name] = runners[name]()

    elapsed = time.monotonic() - T0
    titles = {
        "overhead": "1. Overhead on code",
        "fidelity": "2. Sampling fidelity",
        "accuracy": "3. Accuracy",
        "http": "4. HTTP throughput and latency",
        "wsgi": "4b. WSGI: Flask under gunicorn",
        "production": "4c. The production view: merge cost and store size",
        "memory": "5. Memory per session",
        "report": "6. Report writers",
        "render": "7. A large report beside other requests",
        "blame": "8. Blame",
        "dashboard": "9. The dashboard over 500 routes × 24 h",
        "loopbusy": "10. Waiting for a busy event loop: the detection's cost",
        "cost": "11. Where the cost goes",
    }
    end_load = machine()["load"]
    doc = [
        "# reqprof benchmarks",
        "",
        f"- command: `{command}` ({elapsed / 60:.1f} minutes)",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {info['cpu']}",
        f"- Python: {info['python']} on {info['os']}",
        f"- packages: {info['versions']}",
        f"- load average (1, 5, 15 min) at start: {info['load']}; at end: {end_load}",
        "",
        "Every figure compares tools measured side by side in this run: a ratio or an error, "
        "never an absolute time from elsewhere. Cells: median (min–max) over interleaved "
        "rounds, each timed run in a fresh process. The machine may be shared; the "
        "min–max and the *bare (noise)* column show how much the figures move.",
    ]
    summary = targets(data)
    if summary:
        doc += ["", "## Targets", "", summary]
    for name in sections:
        doc += ["", f"## {titles[name]}", "", texts[name]]
    if errors:
        doc += ["", "## Runs that failed", ""] + [f"- {e}" for e in errors[:20]]
    # Paths of this checkout (in error messages) are shown relative to it.
    markdown = ("\n".join(doc) + "\n").replace(ROOT + os.sep, "").replace(ROOT, ".")
    sys.stdout.write(markdown)
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(markdown)
        progress(f"wrote {os.path.relpath(output, ROOT)}")
    progress(f"done in {elapsed / 60:.1f} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
