"""The record the reporter logs for a sampled request (summary line,
``extra`` fields, text tree), built by the engine in one call
(``_core.log_record``), against the Python code that built it before, kept
here as the reference: the same text byte for byte and the same fields,
values and types, for generated reports of every shape (hostile names and
metadata, rounding ties, event-loop waits and blocks), for live reports
(names that are not valid UTF-8), for reports without the engine's data,
and through the reporter and the `reqprof` logger."""
from __future__ import annotations

import gc
import logging
import math
import random
import re
import sys
from typing import Any, Optional

import pytest

from reqprof import Profiler, Report, _logging
from reqprof._reporter import reporter
from viewer_fixtures import APP, SITE, STDLIB, document, frame, pseudo

# ---- the reference: the Python code of the previous version, unchanged -------------

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def ref_printable(text: Any) -> str:
    text = str(text)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}")
                            if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def ref_has_call_tree(report: Any) -> bool:
    return int(getattr(report, "samples", 0) or 0) > 0


def ref_breakdown(report: Any) -> Optional[dict]:
    try:
        return report.breakdown
    except Exception:
        return None


def ref_summary(report: Any, meta: dict, trigger: str) -> tuple[str, dict]:
    printable = ref_printable
    sampled = ref_has_call_tree(report)
    top = []
    if sampled:
        try:
            top = [(printable(name), float(secs)) for name, secs in report.top_functions(3)]
        except Exception:
            pass
    duration_ms = float(getattr(report, "duration_s", 0.0) or 0.0) * 1000.0
    samples = int(getattr(report, "samples", 0) or 0)
    status = meta.get("status")
    target = meta.get("route") or meta.get("path") or "?"
    line = (f"{printable(meta.get('method', '?'))} {printable(target)} -> "
            f"{status if status is not None else '-'} "
            f"in {duration_ms:.1f} ms, {samples} sample{'' if samples == 1 else 's'} "
            f"({trigger})")
    if meta.get("exception"):
        line += f", raised {printable(meta['exception'])}"
    if meta.get("ended"):
        line += f", ended at {printable(meta['ended'])}"
        if meta.get("response_cut"):
            line += " (the response was cut)"
    response_s = getattr(report, "response_s", None)
    gc_ms = float(getattr(report, "gc_s", 0.0) or 0.0) * 1000.0
    undersampled = getattr(report, "undersampled_reason", None)
    if response_s is not None:
        line += f", response sent at {float(response_s) * 1000.0:.1f} ms"
    if gc_ms > 0.0:
        line += f", GC {gc_ms:.1f} ms"
    if undersampled:
        line += f", undersampled ({undersampled})"
    if getattr(report, "truncated", False):
        line += ", truncated"
    breakdown = ref_breakdown(report) if sampled else None
    busy_ms = awaiting_ms = running_ms = block_ms = 0.0
    blockers: list = []
    block_at = None
    if breakdown:
        busy = breakdown["event_loop_busy"]
        busy_ms = busy["wall_s"] * 1000.0
        awaiting_ms = breakdown["awaiting"]["wall_s"] * 1000.0
        running_ms = breakdown["running"]["wall_s"] * 1000.0
        blockers = [(printable(b["name"]), b["share"]) for b in busy["blockers"]]
        block = breakdown.get("loop_block")
        if block:
            block_ms = block["wall_s"] * 1000.0
            if block.get("short_file") or block.get("file"):
                block_at = f"{printable(block.get('short_file') or block['file'])}:{block['line']}"
    if busy_ms >= 0.5:
        line += f": {busy_ms:.0f} ms waiting for a busy event loop"
        if blockers:
            line += " (blocked by " + ", ".join(f"{name} {share * 100:.0f}%"
                                               for name, share in blockers[:2]) + ")"
        line += f", {awaiting_ms:.0f} ms awaiting, {running_ms:.0f} ms running"
    if block_ms > 0.0:
        line += f", blocked the event loop for {block_ms:.0f} ms"
        if block_at:
            line += f" at {block_at}"
    if meta.get("trace_id"):
        line += f", trace {printable(meta['trace_id'])} span {printable(meta.get('span_id'))}"
    if top:
        line += "; top: " + ", ".join(f"{name} {secs * 1000.0:.1f} ms" for name, secs in top)
    elif not sampled:
        line += "; shorter than the sampling interval (PROFILING_INTERVAL): no call tree"
    extra = {
        "reqprof_trigger": trigger,
        "reqprof_method": meta.get("method"),
        "reqprof_path": meta.get("path"),
        "reqprof_route": meta.get("route"),
        "reqprof_status": status,
        "reqprof_duration_ms": round(duration_ms, 3),
        "reqprof_cpu_ms": round(float(getattr(report, "cpu_s", 0.0) or 0.0) * 1000.0, 3),
        "reqprof_samples": samples,
        "reqprof_truncated": bool(getattr(report, "truncated", False)),
        "reqprof_top": [[name, round(secs * 1000.0, 3)] for name, secs in top],
        "reqprof_exception": meta.get("exception"),
        "reqprof_response_ms": (round(float(response_s) * 1000.0, 3)
                                if response_s is not None else None),
        "reqprof_gc_ms": round(gc_ms, 3),
        "reqprof_undersampled": undersampled,
        "reqprof_loop_busy_ms": round(busy_ms, 3),
        "reqprof_blockers": [[name, round(share, 3)] for name, share in blockers],
        "reqprof_awaiting_ms": round(awaiting_ms, 3),
        "reqprof_running_ms": round(running_ms, 3),
        "reqprof_loop_block_ms": round(block_ms, 3),
        "reqprof_loop_block_at": block_at,
        "reqprof_trace_id": meta.get("trace_id"),
        "reqprof_span_id": meta.get("span_id"),
        "reqprof_request_id": meta.get("request_id"),
    }
    return line, extra


def ref_tree(report: Any) -> Optional[str]:
    if not ref_has_call_tree(report):
        return None
    try:
        return report.to_log_text(max_lines=_logging.TREE_MAX_LINES,
                                  min_percent=_logging.TREE_MIN_PERCENT)
    except Exception:
        return None


def ref_message(report: Any, meta: dict) -> str:
    """The logged message (after the escaping filter) of the previous version."""
    line, _ = ref_summary(report, meta, str(meta.get("trigger", "auto")))
    tree = ref_tree(report)
    return "reqprof: " + ref_printable(line) + ("\n" + tree if tree else "")


# ---- comparing ---------------------------------------------------------------------


def assert_same(got: Any, want: Any, where: str = "") -> None:
    """Equal values of the same types, all the way down (1 is not 1.0 and
    not True; NaN equals NaN; dicts in the same key order)."""
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for k in want:
            assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), f"{where}: {got!r} != nan"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
        if isinstance(want, float) and want == 0.0:
            assert math.copysign(1, got) == math.copysign(1, want), f"{where}: sign of zero"


def check(report: Any, meta: dict, trigger: str = "auto") -> None:
    want_line, want_extra = ref_summary(report, meta, trigger)
    line, extra, tree = _logging.log_record(report, meta, trigger)
    assert_same(line, want_line, "line")
    assert_same(extra, want_extra, "extra")
    assert_same(tree, ref_tree(report), "tree")
    assert_same(_logging.summary(report, meta, trigger), (want_line, want_extra), "summary")
    _, _, no_tree = _logging.log_record(report, meta, trigger, tree=False)
    assert no_tree is None


# ---- generated reports -------------------------------------------------------------

PIECES = ["a", "get_user", "Model.save", "<lambda>", " ", "\n", "\r", "\t", "\x00", "\x1b[2J",
          "\x7f", "\x85", "\x9f", "\xa0", "é", "λ", "函数", "🔥", "\ufffd", "\u2028", "\u2029",
          "%s", "%(x)s", "{x}", "\\", "\"", "'"]


def text(rng: random.Random, surrogates: bool = False) -> str:
    pieces = PIECES + (["\udcff", "\ud800", "\udc80"] if surrogates else [])
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 5)))


class Odd:
    """A metadata value that is not a str: str() and format() of it differ."""

    def __str__(self) -> str:
        return "odd\nstr"

    def __format__(self, spec: str) -> str:
        return "odd\x1bformat"


def meta_value(rng: random.Random, json_safe: bool) -> Any:
    values = [text(rng, True), text(rng, True), "", None, 0, 1, 500, True, False, 2.5, "200",
              "/items/{id}", "GET"]
    return rng.choice(values if json_safe else values + [float("nan"), Odd()])


def random_meta(rng: random.Random, json_safe: bool = False) -> dict:
    meta: dict = {}
    for key in ("trigger", "method", "path", "route", "query", "status", "exception", "ended",
                "response_cut", "trace_id", "span_id", "request_id", "kept_because"):
        if rng.random() < 0.6:
            meta[key] = meta_value(rng, json_safe)
    if rng.random() < 0.5:
        meta.update(method="GET", path="/items/42", route="/items/{item_id}", status=200)
    return meta


def seconds(rng: random.Random) -> float:
    """A duration as a report has it (ns / 1e9), with the ties and edges of
    rounding to 0.1 ms, 1 ms and 0.001 ms."""
    return rng.choice([
        round(rng.uniform(0, 0.05), 9), round(rng.uniform(0, 2), 9), rng.randint(0, 10**6) / 1e9,
        0.00025, 0.00075, 0.00125, 0.0000005, 0.0000015, 0.0005, 0.0015, 0.0025, 1e-9, 0.0,
        0.0000625, 0.0001, 0.0002, 12.3455, 1234.5, 0.0006665, 0.0004995,
    ])


def random_tree(rng: random.Random, depth: int = 0) -> dict:
    """A subtree of frames and pseudo-frames, library code and app code."""
    roll = rng.random()
    children = [random_tree(rng, depth + 1) for _ in range(rng.choice([0, 0, 1, 1, 1, 2, 3]))] \
        if depth < 7 else []
    self_wall = seconds(rng) if rng.random() < 0.6 else 0.0
    if roll < 0.1:
        return pseudo("await", "[await]", *children, self_wall=self_wall)
    if roll < 0.15:
        blockers = [pseudo("blocker", rng.choice(["GET /export", "[no request]", "POST /\x1bx",
                                                  text(rng)]),
                           frame("hog", APP + "app/hog.py", 3, self_wall=seconds(rng)),
                           self_wall=seconds(rng)) for _ in range(rng.randint(0, 6))]
        return pseudo("loop-busy", "[event loop busy]", *blockers, self_wall=self_wall)
    if roll < 0.18:
        return pseudo("gc", "[gc]", self_wall=self_wall)
    if roll < 0.2:
        return pseudo("thread", "[thread worker]", *children, self_wall=self_wall)
    if roll < 0.22:
        return pseudo("unsampled", "[unsampled]", self_wall=self_wall)
    base = rng.choice([SITE + "fastapi/", SITE + "starlette/", STDLIB + "asyncio/", APP + "app/",
                       "<frozen importlib._bootstrap>/", "/opt/dist-packages/x/"])
    name = rng.choice(["handler", "fetch", "run", "dispatch", "call_next", text(rng)])
    file = base + rng.choice(["routing.py", "models.py", "it's.py", text(rng) + ".py"])
    return frame(name, file, rng.randint(1, 900), *children, self_wall=self_wall)


def random_document(rng: random.Random) -> dict:
    children = [random_tree(rng) for _ in range(rng.randint(0, 4))]
    if rng.random() < 0.4:
        root = pseudo("request", "GET /items/{item_id}", *children,
                      pseudo("unsampled", "[unsampled]", self_wall=seconds(rng)))
    else:
        root = frame("handler", APP + "app/main.py", 10, *children, self_wall=seconds(rng))
    doc = document(root, random_meta(rng, json_safe=True),
                   truncated_reasons=rng.choice([[], [], ["depth"], ["nodes", "duration"]]))
    doc["duration_s"] = rng.choice([doc["duration_s"], seconds(rng), 0.0, 1e-9])
    if rng.random() < 0.2:
        doc["samples"] = doc["root"]["samples"] = 0 if rng.random() < 0.5 else 1
    doc["gc_s"] = rng.choice([0, 0, seconds(rng)])
    doc["response_s"] = rng.choice([None, None, seconds(rng)])
    doc["undersampled_reason"] = rng.choice([None, None, "short request", "GIL held by C code",
                                             "machine load"])
    doc["undersampled"] = doc["undersampled_reason"] is not None
    if rng.random() < 0.3:
        doc["loop_block"] = {"wall_s": seconds(rng), "function": text(rng) or "hog",
                             "file": rng.choice(["", APP + "app/hog.py", APP + text(rng)]),
                             "short_file": rng.choice(["", "app/hog.py", text(rng)]),
                             "line": rng.randint(0, 99)}
    return doc


@pytest.mark.parametrize("seed", range(40))
def test_generated_reports_log_what_the_python_code_logged(seed):
    rng = random.Random(seed)
    for _ in range(25):
        doc = random_document(rng)
        report = Report.from_dict(doc)
        meta = random_meta(rng) if rng.random() < 0.5 else report.meta
        check(report, meta, rng.choice(["auto", "manual", "slow\n", text(rng, True)]))


def test_a_report_with_every_part_of_the_line():
    busy = pseudo("loop-busy", "[event loop busy]",
                  pseudo("blocker", "GET /export", frame("burn", APP + "app/x.py", 3,
                                                         self_wall=0.0061)),
                  pseudo("blocker", "[no request]", self_wall=0.0021),
                  pseudo("blocker", "POST /third", self_wall=0.0011))
    root = pseudo("request", "GET /items/{item_id}",
                  frame("run_endpoint_function", SITE + "fastapi/routing.py", 372,
                        frame("handler", APP + "app/main.py", 10,
                              pseudo("await", "[await]", busy, self_wall=0.0125),
                              self_wall=0.00845)),
                  pseudo("unsampled", "[unsampled]", self_wall=0.0003))
    doc = document(root, {}, truncated_reasons=["depth"])
    doc.update(gc_s=0.00125, response_s=0.031, undersampled_reason="machine load",
               undersampled=True,
               loop_block={"wall_s": 0.0525, "function": "handler", "file": APP + "app/main.py",
                           "short_file": "app/main.py", "line": 12})
    report = Report.from_dict(doc)
    meta = {"trigger": "auto", "method": "GET", "path": "/items/7", "route": "/items/{item_id}",
            "status": 500, "exception": "ValueError: bad\nline", "ended": "PROFILING_MANUAL_TIMEOUT",
            "response_cut": True, "trace_id": "4bf92f3577b34da6", "span_id": "00f067aa0ba902b7",
            "request_id": "r-1"}
    check(report, meta)
    line, extra, tree = _logging.log_record(report, meta, "auto")
    assert line == (
        "GET /items/{item_id} -> 500 in 31.6 ms, 30 samples (auto), raised ValueError: bad\\nline, "
        "ended at PROFILING_MANUAL_TIMEOUT (the response was cut), response sent at 31.0 ms, "
        "GC 1.2 ms, undersampled (machine load), truncated: 9 ms waiting for a busy event loop "
        "(blocked by GET /export 66%, [no request] 23%), 12 ms awaiting, 8 ms running, blocked "
        "the event loop for 52 ms at app/main.py:12, trace 4bf92f3577b34da6 span 00f067aa0ba902b7; "
        "top: [await] 12.5 ms, [event loop busy] 9.3 ms, handler (app/main.py:10) 8.4 ms")
    assert extra["reqprof_blockers"] == [["GET /export", 0.656], ["[no request]", 0.226],
                                         ["POST /third", 0.118]]
    assert tree is not None and tree.startswith("30.6 ms 100%  GET /items/{item_id}\n")


def test_live_reports_with_names_that_are_not_utf8():
    def spin() -> int:
        x = 0
        for i in range(200_000):
            x += i
        return x

    spin.__code__ = spin.__code__.replace(co_qualname="bad\udc80\x1bname",
                                          co_filename="/srv/app/x\udcffy.py")
    with Profiler(interval=0.0005) as prof:
        for _ in range(5):
            spin()
    report = prof.report
    assert report.samples > 0
    check(report, {"method": "GET\udcff", "path": "/x\udcff\n", "status": 200}, "auto")
    line, extra, _ = _logging.log_record(report, {}, "auto")
    assert "; top: bad\ufffd\ufffd\ufffd\\x1bname (/srv/app/x\ufffd\ufffd\ufffdy.py:" in line
    report.name_request()
    check(report, report.meta)


def test_a_report_without_the_engines_data_gets_the_line_from_its_totals():
    class Totals:
        def __init__(self, **attrs: Any) -> None:
            self.__dict__.update(attrs)

    rng = random.Random(5)
    shapes = [
        {},
        {"samples": 3, "duration_s": 0.0125, "cpu_s": 0.002, "gc_s": 0.00025, "response_s": 0.01,
         "undersampled_reason": "short request", "truncated": True},
        {"samples": 0, "duration_s": 0.0004, "response_s": 0, "undersampled_reason": ""},
        {"samples": 1, "duration_s": "0.5", "cpu_s": None, "gc_s": -0.0, "truncated": ["depth"]},
        {"samples": True, "duration_s": float("nan"), "gc_s": float("inf"), "response_s": -0.0},
        {"samples": 2**70, "duration_s": 1e300, "cpu_s": -1e-300, "response_s": "2"},
        {"samples": "7", "duration_s": 5e-324, "undersampled_reason": Odd()},
        {"samples": -2, "duration_s": -0.00125},
    ]
    for attrs in shapes:
        for _ in range(5):
            check(Totals(**attrs), random_meta(rng))


def test_text_a_request_controls_is_escaped_as_printable_escapes_it():
    rng = random.Random(11)
    report = Report.from_dict(document(frame("h", APP + "app/main.py", 1, self_wall=0.002), {}))
    for _ in range(300):
        value = text(rng, surrogates=True)
        meta = {"method": value, "route": value, "exception": value, "ended": value,
                "trace_id": value or "t", "span_id": value}
        check(report, meta)
        assert _logging.printable(value) == ref_printable(value)


def test_the_record_holds_no_reference_it_should_not():
    class Value:
        def __str__(self) -> str:
            return "value\udcff"

    rng = random.Random(9)
    report = Report.from_dict(random_document(rng))
    values = {k: Value() for k in ("method", "route", "path", "status", "exception", "ended",
                                   "response_cut", "trace_id", "span_id", "request_id")}
    meta = dict(values)
    trigger = "trigger \udcff"
    before = [sys.getrefcount(v) for v in (report, report._session, trigger, *values.values())]
    gc.collect()
    objects = len(gc.get_objects())
    for _ in range(2000):
        _logging.log_record(report, meta, trigger)
        _logging.log_record(Value(), meta, trigger)
    gc.collect()
    assert len(gc.get_objects()) <= objects + 10
    assert [sys.getrefcount(v) for v in (report, report._session, trigger, *values.values())] \
        == before


# ---- through the reporter ----------------------------------------------------------


def test_the_fallback_handler_writes_what_a_stream_handler_wrote(monkeypatch):
    import io

    class Reference(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return f"{record.levelname + ':':<10}{super().format(record)}"

    def written(handler: logging.Handler, record: logging.LogRecord) -> str:
        out = io.StringIO()
        monkeypatch.setattr("sys.stderr", out)
        handler.emit(record)
        return out.getvalue()

    fallback = _logging._FallbackHandler()
    try:
        raise ValueError("boom\nline")
    except ValueError:
        exc_info = sys.exc_info()
    report = Report.from_dict(random_document(random.Random(1)))
    line, extra, tree = _logging.log_record(report, report.meta, "auto")
    cases = [("reqprof: %s%s", (line, _logging.Lines("\n" + (tree or ""))), None, None, extra),
             ("reqprof: %d%%", (5,), None, None, None),
             ("plain", (), exc_info, None, None),
             ("with stack", (), None, "Stack (most recent call last):\n  here", None),
             ("%(a)s", ({"a": "dict args"},), None, None, None)]
    for msg, args, exc, stack, fields in cases:
        for level in (logging.INFO, logging.WARNING, logging.ERROR):
            make = lambda: logging.getLogger("reqprof").makeRecord(   # noqa: E731
                "reqprof", level, __file__, 1, msg, args, exc, "f", fields, stack)
            want = logging.StreamHandler(io.StringIO())
            want.setFormatter(Reference("%(message)s"))
            want.emit(make())
            got = written(fallback, make())
            assert got == want.stream.getvalue()


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_reporter_logs_the_same_record(tmp_path):
    from reqprof._logging import RateLimited
    from reqprof._output import OutputDir

    rng = random.Random(3)
    logger = logging.getLogger("reqprof")
    keep = Keep()
    old_level = logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        reports = [Report.from_dict(random_document(rng)) for _ in range(60)]
        for i, report in enumerate(reports):
            output = OutputDir(str(tmp_path), 10**9) if i % 10 == 0 else None
            reporter.handle(report, output, RateLimited())
    finally:
        logger.removeHandler(keep)
        logger.setLevel(old_level)
    records = [r for r in keep.records if hasattr(r, "reqprof_samples")]
    assert len(records) == len(reports)
    for i, (record, report) in enumerate(zip(records, reports)):
        meta = report.meta
        _, want_extra = ref_summary(report, meta, str(meta.get("trigger", "auto")))
        assert (record.name, record.levelno, record.funcName) == ("reqprof", logging.INFO, "handle")
        want = ref_message(report, meta)
        if i % 10 == 0:
            path = record.reqprof_report_path
            want_extra["reqprof_report_path"] = path
            line, _, tail = want.partition("\n")
            want = line + ref_printable(f"; report: {path}") + (_ + tail if tail else "")
        assert record.getMessage() == want
        assert_same({k: v for k, v in vars(record).items() if k.startswith("reqprof_")},
                    want_extra, "record")
