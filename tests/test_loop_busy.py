"""Waiting for a busy event loop: a request whose task is ready to run
while the loop runs another request's code is [event loop busy] under its
[await], with the request holding the loop named; the request holding it
flags the stretch. First at the engine, one tick taken at a chosen moment
(``_core._sample_now()``), then through FastAPI behind uvicorn: the hog and
the victim, and the controls that must show no [event loop busy]."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from profile_tree import find, path_to, walk
from reqprof import Profiler, ProfilingMiddleware, Report, Settings, _core

PARKED = 10.0       # a session interval no tick of the sampler thread reaches


def spin(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def kinds(doc: dict) -> set[str]:
    return {n["kind"] for n, _ in walk(doc["root"])}


def busy_nodes(doc: dict) -> list[dict]:
    return [n for n, _ in walk(doc["root"]) if n["kind"] == "loop-busy"]


def hold_the_loop() -> None:
    """The hog's own code, holding the loop when the tick comes."""
    _core._sample_now()


def run(main: Any) -> Any:
    return asyncio.run(main())


# ---- at the engine: one tick at a chosen moment ---------------------------

async def victim_and_hog(victim_waits, hog_label: str | None = "GET /hog",
                         before_tick=None) -> tuple[dict, dict]:
    """The victim's task waits in `victim_waits(state)`; the hog's task
    (profiled and named `hog_label`, profiled unnamed when "", unprofiled
    when None) runs `before_tick(state)` then takes a tick without
    awaiting."""
    state: dict = {"fut": asyncio.get_running_loop().create_future()}

    async def victim():
        async with Profiler(interval=PARKED) as prof:
            prof.set_label("GET /victim")
            await victim_waits(state)
        return prof.report.to_dict()

    async def hog():
        if before_tick is not None:
            before_tick(state)
        if hog_label is None:
            hold_the_loop()
            return None
        prof = Profiler(interval=PARKED)
        if hog_label:
            prof.set_label(hog_label)
        async with prof:
            hold_the_loop()
        return prof.report.to_dict()

    victim_task = asyncio.create_task(victim())
    await asyncio.sleep(0)          # the victim starts and suspends
    hog_doc = await hog()
    if not state["fut"].done():
        state["fut"].set_result(None)
    if state.get("cancel"):
        victim_task.cancel()
    return await victim_task, hog_doc


async def await_the_future(state):
    await state["fut"]


def complete_it(state):
    state["fut"].set_result(1)      # the victim's wake-up is queued now


def test_a_task_whose_future_is_done_waits_for_the_request_holding_the_loop():
    victim, _ = run(lambda: victim_and_hog(await_the_future, before_tick=complete_it))
    [busy] = busy_nodes(victim)
    parent = path_to(victim["root"], "[event loop busy]")
    assert parent is not None and parent[-2] == "[await]"
    [blocker] = busy["children"]
    assert blocker["kind"] == "blocker" and blocker["function"] == "GET /hog"
    # Its innermost frames of its own code, outer first, down to where it is.
    frames = path_to(blocker, "hold_the_loop")
    # (qualified names from CPython 3.11, bare ones before)
    assert frames is not None and frames[-1] == "hold_the_loop" and frames[-2].endswith("hog")
    assert len(frames) <= 1 + 3
    b = victim["breakdown"]
    assert b["event_loop_busy"]["blockers"][0]["name"] == "GET /hog"
    assert b["event_loop_busy"]["blockers"][0]["share"] == pytest.approx(1.0)
    assert b["event_loop_busy"]["wall_s"] == pytest.approx(busy["wall_s"])


def test_a_task_awaiting_a_pending_future_is_only_awaiting():
    victim, _ = run(lambda: victim_and_hog(await_the_future))
    assert "loop-busy" not in kinds(victim) and "await" in kinds(victim)
    assert victim["breakdown"]["event_loop_busy"]["wall_s"] == 0


def test_a_task_that_yielded_with_sleep_0_is_ready():
    async def yield_once(state):
        await asyncio.sleep(0)

    victim, _ = run(lambda: victim_and_hog(yield_once))
    [busy] = busy_nodes(victim)
    assert busy["children"][0]["function"] == "GET /hog"


def test_a_due_sleep_timer_makes_the_task_ready():
    async def short_sleep(state):
        await asyncio.sleep(0.01)

    def past_the_timer(state):
        spin(0.03)      # the victim's timer is due: only the busy loop holds it

    victim, _ = run(lambda: victim_and_hog(short_sleep, before_tick=past_the_timer))
    [busy] = busy_nodes(victim)
    assert busy["children"][0]["function"] == "GET /hog"


def test_a_sleep_not_due_yet_is_only_awaiting():
    async def long_sleep(state):
        state["cancel"] = True      # ended once the tick is taken
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            pass

    victim, _ = run(lambda: victim_and_hog(long_sleep))
    assert "loop-busy" not in kinds(victim) and "await" in kinds(victim)


def test_an_unprofiled_holder_is_no_request():
    victim, _ = run(lambda: victim_and_hog(await_the_future, hog_label=None,
                                           before_tick=complete_it))
    [busy] = busy_nodes(victim)
    assert busy["children"][0]["function"] == "[no request]"
    assert busy["children"][0]["kind"] == "blocker"


def test_a_profiled_holder_nobody_named_is_named_after_its_root_function():
    victim, _ = run(lambda: victim_and_hog(await_the_future, hog_label="",
                                           before_tick=complete_it))
    [busy] = busy_nodes(victim)
    assert busy["children"][0]["function"] == "hog"
    assert busy["children"][0]["kind"] == "blocker"


def test_strict_and_disabled_modes_record_no_event_loop_busy():
    for mode in ("strict", "disabled"):
        async def main():
            fut = asyncio.get_running_loop().create_future()

            async def victim():
                async with Profiler(interval=PARKED, async_mode=mode) as prof:
                    await fut
                return prof.report.to_dict()

            task = asyncio.create_task(victim())
            await asyncio.sleep(0)
            fut.set_result(1)
            hold_the_loop()
            return await task

        doc = run(main)
        assert "loop-busy" not in kinds(doc), mode


def test_the_request_holding_the_loop_reports_its_longest_stretch():
    async def main():
        async with Profiler(interval=0.001, loop_block=0.05) as prof:
            spin(0.15)
            await asyncio.sleep(0.01)
            spin(0.02)
        return prof.report

    report = run(main)
    block = report.breakdown["loop_block"]
    assert block is not None and block["wall_s"] >= 0.08
    assert block["function"] == "spin" and block["line"] > 0
    doc = report.to_dict()
    assert doc["loop_block"]["function"] == "spin"
    assert doc["loop_block"]["line"] == block["line"]
    again = Report.from_dict(doc)
    assert again.to_dict() == doc and again.breakdown["loop_block"] == block


def test_a_stretch_under_the_threshold_is_not_reported():
    async def main():
        async with Profiler(interval=0.001, loop_block=1.0) as prof:
            spin(0.05)
        return prof.report

    report = run(main)
    assert report.breakdown["loop_block"] is None
    assert report.to_dict()["loop_block"] is None


def test_the_breakdown_adds_up_to_the_wall_time_and_round_trips():
    victim, _ = run(lambda: victim_and_hog(await_the_future, before_tick=complete_it))
    b = victim["breakdown"]
    parts = (b["running"]["wall_s"] + b["awaiting"]["wall_s"] + b["event_loop_busy"]["wall_s"]
             + b["in_worker_threads"]["wall_s"] + b["gc"]["wall_s"] + b["unsampled"]["wall_s"]
             + b["out_of_context"]["wall_s"])
    assert parts == pytest.approx(victim["wall_s"], abs=1e-6)
    again = Report.from_dict(victim).to_dict()
    assert again["breakdown"] == b and again["loop_block"] == victim["loop_block"]


# ---- through a real server --------------------------------------------------

APP_SRC = '''
import asyncio
import concurrent.futures
import time

from fastapi import FastAPI

app = FastAPI()
pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)


def burn(seconds):
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


@app.get("/hog")
async def hog():
    return {"n": burn(0.3)}


@app.get("/sleepy")
async def sleepy():
    time.sleep(0.2)         # a sync call inside async code
    return {"ok": True}


@app.get("/victim")
async def victim():
    await asyncio.sleep(0.05)
    return {"ok": True}


@app.get("/slow")
async def slow():
    await asyncio.sleep(0.3)
    return {"ok": True}


@app.get("/pooled")
async def pooled():
    await asyncio.get_running_loop().run_in_executor(pool, time.sleep, 0.2)
    return {"ok": True}
'''


@pytest.fixture
def app_module(tmp_path, monkeypatch):
    (tmp_path / "loopbusy_app.py").write_text(APP_SRC)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys
    sys.modules.pop("loopbusy_app", None)
    return importlib.import_module("loopbusy_app")


def serve_app(serve, app_module, **settings: Any):
    options = dict(enabled=True, sample_rate=1.0, max_concurrent=8)
    options.update(settings)
    return serve(ProfilingMiddleware(app_module.app, settings=Settings(**options)))


def while_waiting(server, victim: str, blocker: str, delay: float = 0.02) -> tuple[dict, Any]:
    """`victim` (its JSON report), with `blocker` requested while it waits."""
    out: dict = {}

    def get():
        out["victim"] = server.client.get(f"{victim}?profile=1&profile_format=json")

    t = threading.Thread(target=get)
    t.start()
    time.sleep(delay)
    other = server.client.get(blocker)
    t.join()
    assert out["victim"].status_code == 200 and other.status_code == 200
    return out["victim"].json(), other


def test_the_victim_waits_for_the_hog_and_names_it(serve, app_module, reqprof_logs):
    server = serve_app(serve, app_module)
    doc, _ = while_waiting(server, "/victim", "/hog")
    server.wait_idle()
    b = doc["breakdown"]
    busy = b["event_loop_busy"]
    share = busy["wall_s"] / doc["duration_s"]
    print(f"victim: {busy['wall_s'] * 1000:.0f} ms of {doc['duration_s'] * 1000:.0f} ms "
          f"waiting for a busy event loop ({share:.0%}); blockers {busy['blockers']}")
    assert share >= 0.6
    assert busy["blockers"][0]["name"] == "GET /hog" and busy["blockers"][0]["share"] >= 0.8
    [node] = busy_nodes(doc)
    assert path_to(doc["root"], "[event loop busy]")[-4:-1] == ["victim", "sleep", "[await]"]
    hog = [c for c in node["children"] if c["function"] == "GET /hog"][0]
    assert "burn" in {n["function"] for n, _ in walk(hog)}
    # The hog's side: its log line flags the stretch, with where it was.
    [hog_line] = [r.getMessage() for r in reqprof_logs.summaries()
                  if r.reqprof_path == "/hog"]
    print(hog_line)
    assert "blocked the event loop for" in hog_line and "loopbusy_app.py:" in hog_line
    [hog_record] = [r for r in reqprof_logs.summaries() if r.reqprof_path == "/hog"]
    assert hog_record.reqprof_loop_block_ms >= 200


def test_the_victims_log_line_says_it_waited_for_the_busy_loop(serve, app_module, reqprof_logs):
    server = serve_app(serve, app_module)
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(r=server.client.get("/victim")))
    t.start()
    time.sleep(0.02)
    server.client.get("/hog")
    t.join()
    server.wait_idle()
    [line] = [r.getMessage() for r in reqprof_logs.summaries() if r.reqprof_path == "/victim"]
    print(line)
    assert "ms waiting for a busy event loop (blocked by GET /hog" in line
    assert "ms awaiting" in line and "ms running" in line
    [record] = [r for r in reqprof_logs.summaries() if r.reqprof_path == "/victim"]
    assert record.reqprof_blockers[0][0] == "GET /hog"
    # The hog's frames are not the victim's top functions: the wait is.
    top = [name for name, _ in record.reqprof_top]
    assert top[0] == "[event loop busy]" and not any("burn" in name for name in top), top


def test_a_sync_sleep_in_async_code_is_named_as_the_blocker(serve, app_module):
    server = serve_app(serve, app_module)
    doc, _ = while_waiting(server, "/victim", "/sleepy")
    busy = doc["breakdown"]["event_loop_busy"]
    print(f"victim of /sleepy: {busy}")
    assert busy["wall_s"] / doc["duration_s"] >= 0.4
    assert busy["blockers"][0]["name"] == "GET /sleepy"
    [node] = busy_nodes(doc)
    assert "sleepy" in {n["function"] for n, _ in walk(node)}


def test_a_plain_slow_await_has_no_event_loop_busy(serve, app_module):
    server = serve_app(serve, app_module)
    doc = server.client.get("/slow?profile=1&profile_format=json").json()
    assert doc["duration_s"] >= 0.3
    assert "loop-busy" not in kinds(doc)
    assert doc["breakdown"]["event_loop_busy"]["wall_s"] == 0
    assert doc["breakdown"]["awaiting"]["wall_s"] >= 0.25


def test_a_saturated_executor_pool_is_awaiting_not_a_busy_loop(serve, app_module):
    server = serve_app(serve, app_module)
    doc, _ = while_waiting(server, "/pooled", "/pooled", delay=0.0)
    doc2 = server.client.get("/pooled?profile=1&profile_format=json").json()
    for d in (doc, doc2):
        assert "loop-busy" not in kinds(d)
        assert d["breakdown"]["event_loop_busy"]["wall_s"] == 0


@pytest.mark.parametrize("mode", ["strict", "disabled"])
def test_strict_and_disabled_modes_through_the_server(serve, app_module, mode):
    server = serve_app(serve, app_module, async_mode=mode)
    doc, _ = while_waiting(server, "/victim", "/hog")
    assert "loop-busy" not in kinds(doc)
    if mode == "strict":
        # The hog's time is the victim's [out-of-context].
        assert doc["breakdown"]["out_of_context"]["wall_s"] / doc["duration_s"] >= 0.6
    else:
        # The starting thread's samples, whatever runs on it: the hog's own frames.
        assert find(doc["root"], "burn")


def test_the_routes_aggregate_keeps_the_wait_and_its_blocker(serve, app_module, tmp_path):
    from reqprof.dashboard import DashboardData
    from reqprof.store import Store

    server = serve_app(serve, app_module, store=str(tmp_path / "s.db"))
    while_waiting(server, "/victim", "/hog")
    server.client.get("/victim")    # the same route, not blocked: its share drops
    server.wait_idle()
    server.server.config.app.profiling.production.flush(final=True)
    data = DashboardData(Store(str(tmp_path / "s.db"), readonly=True))
    profile = data.profile("GET", "/victim")
    assert profile is not None and profile["meta"]["requests"] >= 2
    busy = profile["breakdown"]["event_loop_busy"]
    print(f"route GET /victim: {busy}")
    assert busy["wall_s"] >= 0.15
    assert busy["blockers"][0]["name"] == "GET /hog"
    assert "loop-busy" in kinds(profile)
    hog = data.profile("GET", "/hog")
    assert hog is not None and hog["breakdown"]["event_loop_busy"]["wall_s"] == 0
