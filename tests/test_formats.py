"""Report formats proven by their real consumers: pprof read by `go tool
pprof` (and by speedscope's pprof importer), speedscope's file format
loaded by speedscope's own importer, folded stacks parsed back, the JSON
validated against docs/profile.schema.json and read back by
Report.from_json to the same document; hostile names through every format.
"""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

import format_consumers as fc

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def report() -> Any:
    return fc.workload_report()


@pytest.fixture(scope="module")
def hostile() -> Any:
    return fc.hostile_report()


@pytest.fixture(scope="module")
def saved(report: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("formats")
    files = {"pprof": out / "profile.pb.gz", "speedscope": out / "profile.speedscope.json"}
    files["pprof"].write_bytes(report.to_pprof())
    files["speedscope"].write_text(report.to_speedscope(), encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def speedscope() -> Path:
    return fc.speedscope_release()


# ---------------------------------------------------------------- pprof


def test_pprof_is_gzip_of_a_protobuf(report: Any) -> None:
    data = report.to_pprof()
    assert isinstance(data, bytes) and data[:2] == b"\x1f\x8b"
    raw = gzip.decompress(data)
    assert raw and raw[0] == 0x0A  # field 1 (sample_type), length-delimited
    assert report.to_pprof() == data, "deterministic"


@pytest.mark.consumer
def test_go_pprof_top_function_by_flat_time_is_the_hot_function(saved: dict[str, Path]) -> None:
    rows = fc.pprof_top(saved["pprof"])
    assert rows, "go tool pprof -top printed no rows"
    assert rows[0][1] == fc.HOT, rows[:5]
    # Wall time is the default sample type; CPU agrees on the hot function.
    assert fc.pprof_top(saved["pprof"], "-sample_index=cpu")[0][1] == fc.HOT


@pytest.mark.consumer
def test_go_pprof_shows_sample_types_period_and_request_labels(saved: dict[str, Path]) -> None:
    raw = fc.go_pprof("-raw", str(saved["pprof"]))
    assert "samples/count wall/nanoseconds[dflt] cpu/nanoseconds" in raw
    assert "PeriodType: wall nanoseconds" in raw
    assert "Period: 1000000" in raw
    for label in ("method:[GET]", "path:[/items/42]", "route:[/items/{item_id}]", "status:[200]"):
        assert label in raw, label
    # -traces prints each stack under its labels.
    traces = fc.go_pprof("-traces", str(saved["pprof"]))
    hot = next(t for t in traces.split("-----------+") if fc.HOT in t)
    assert re.search(r"method:\s+GET\n", hot) and re.search(r"status:\s+200\n", hot), hot


@pytest.mark.consumer
def test_go_pprof_lines_point_into_the_hot_loop(saved: dict[str, Path]) -> None:
    import inspect

    lines, first = inspect.getsourcelines(fc.reqprof_hot_loop)
    body = range(first + 1, first + len(lines))
    name = fc.go_pprof("-top", "-lines", str(saved["pprof"])).split("flat%")[1].splitlines()[1]
    m = re.search(r"reqprof_hot_loop \S*format_consumers\.py:(\d+)", name)
    assert m and int(m.group(1)) in body, name


def test_speedscope_imports_the_pprof_file_too(saved: dict[str, Path], browser: Any, speedscope: Path,
                                               tmp_path: Path) -> None:
    got = fc.speedscope_import(browser, speedscope, tmp_path, "profile.pb.gz", saved["pprof"].read_bytes())
    assert not got["alerts"], got["alerts"]
    assert "Importing as protobuf encoded pprof file" in got["console"], got["console"]
    assert got["rows"][0][2] == fc.HOT, got["rows"][:3]


# ---------------------------------------------------------------- speedscope


def test_speedscope_document_follows_the_file_format(report: Any) -> None:
    doc = json.loads(report.to_speedscope())
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert doc["exporter"] == f"reqprof@{report.version}"
    assert doc["name"] == "GET /items/42" and doc["activeProfileIndex"] == 0
    (profile,) = doc["profiles"]
    assert profile["type"] == "sampled" and profile["unit"] == "nanoseconds"
    assert len(profile["samples"]) == len(profile["weights"]) > 0
    assert profile["startValue"] == 0 and profile["endValue"] == sum(profile["weights"])
    assert profile["endValue"] == round(report.wall_s * 1e9)
    frames = doc["shared"]["frames"]
    assert all(0 <= i < len(frames) for stack in profile["samples"] for i in stack)
    hot = [f for f in frames if f["name"] == fc.HOT]
    assert len(hot) == 1 and hot[0]["file"].endswith("format_consumers.py") and hot[0]["line"] > 0


def test_speedscope_importer_accepts_it_and_the_heaviest_frame_is_the_hot_function(
        saved: dict[str, Path], browser: Any, speedscope: Path, tmp_path: Path) -> None:
    # A neutral file name: speedscope must recognise the format by content.
    got = fc.speedscope_import(browser, speedscope, tmp_path, "profile.json", saved["speedscope"].read_bytes())
    assert not got["alerts"], got["alerts"]
    assert "Importing as speedscope json file" in got["console"], got["console"]
    assert not [line for line in got["console"] if "rror" in line], got["console"]
    total, self_time, name = got["rows"][0]
    assert name == fc.HOT, got["rows"][:3]
    assert got["title"].startswith("GET /items/42"), got["title"]


# ---------------------------------------------------------------- collapsed


def _profile_from_stacks(stacks: dict[tuple[str, ...], int]) -> dict[str, Any]:
    """A schema-v1 document whose leaves have the given self wall (ns)."""
    def node(function: str, line: int) -> dict[str, Any]:
        return {"name": f"{function} (app.py:{line})", "function": function, "file": "/srv/app.py",
                "short_file": "app.py", "line": line, "kind": "frame", "wall_s": 0, "cpu_s": 0,
                "self_wall_s": 0, "self_cpu_s": 0, "samples": 0, "lines": {}, "children": []}

    root = node("handler", 1)
    for stack, ns in stacks.items():
        cur = root
        cur["wall_s"] += ns
        for depth, function in enumerate(stack, 2):
            child = next((c for c in cur["children"] if c["function"] == function), None)
            if child is None:
                child = node(function, depth * 10)
                cur["children"].append(child)
            child["wall_s"] += ns
            cur = child
        cur["self_wall_s"] += ns
    todo = [root]
    while todo:  # nanoseconds to seconds, as the schema has them
        n = todo.pop()
        for key in ("wall_s", "self_wall_s"):
            n[key] = n[key] / 1e9
        todo.extend(n["children"])
    return {"version": 1, "root": root}


def test_collapsed_round_trips_known_stacks() -> None:
    from reqprof.report import Report

    stacks = {
        (): 250_000,
        ("db", "execute"): 3_000_000,
        ("db",): 1_000_000,
        ("render", "semi;colon", "leaf"): 1_499_600,
        ("render",): 400,  # rounds to 0 µs: still one line, with 1
    }
    report = Report.from_dict(_profile_from_stacks(stacks))
    got = {}
    for line in report.to_collapsed().splitlines():
        path, _, us = line.rpartition(" ")
        got[path] = int(us)
    want = {}
    for stack, ns in stacks.items():
        names = ["handler (app.py:1)"] + [
            f"{f.replace(';', ':')} (app.py:{d * 10})" for d, f in enumerate(stack, 2)]
        want[";".join(names)] = max(1, round(ns / 1000))
    assert got == want


def test_collapsed_of_a_real_profile_adds_up_to_its_wall_time(report: Any) -> None:
    lines = report.to_collapsed().splitlines()
    total_us = sum(int(line.rpartition(" ")[2]) for line in lines)
    assert abs(total_us - report.wall_s * 1e6) <= len(lines)
    assert any(line.split(" ")[-2].startswith(fc.HOT) or fc.HOT + " (" in line.split(";")[-1] for line in lines)


# ---------------------------------------------------------------- JSON


@pytest.fixture(scope="module")
def validator() -> Any:
    try:
        import jsonschema
    except ImportError:
        pytest.fail("the JSON tests need the 'jsonschema' package: pip install -e '.[test]'", pytrace=False)
    schema = json.loads((DOCS / "profile.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _doc_fields(section: str) -> set[str]:
    text = (DOCS / "json-schema.md").read_text()
    part = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", part, re.M))


def test_schema_file_lists_exactly_the_documented_fields(validator: Any) -> None:
    schema = validator.schema
    assert set(schema["properties"]) == set(schema["required"]) == _doc_fields("Top level")
    node = schema["$defs"]["node"]
    assert set(node["properties"]) == set(node["required"]) == _doc_fields("Node")


def _all_nodes(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    todo = [doc["root"]]
    while todo:
        n = todo.pop()
        yield n
        todo.extend(n["children"])


def test_json_validates_against_the_schema_with_no_extra_fields(report: Any, hostile: Any, validator: Any) -> None:
    from reqprof import Profiler

    with Profiler() as prof:
        pass
    for r in (report, hostile, prof.report):
        doc = r.to_dict()
        validator.validate(doc)
        assert set(doc) == _doc_fields("Top level")
        for n in _all_nodes(doc):
            assert set(n) == _doc_fields("Node")


def test_from_json_round_trips_the_document_and_every_format(report: Any) -> None:
    from reqprof.report import Report

    text = report.to_json()
    back = Report.from_json(text)
    assert back.to_json() == text
    assert back.meta == report.meta and back.version == report.version
    assert (back.samples, back.wall_s, back.cpu_s, back.duration_s, back.started_at) == (
        report.samples, report.wall_s, report.cpu_s, report.duration_s, report.started_at)
    assert back.to_text() == report.to_text()
    assert back.to_collapsed() == report.to_collapsed()
    assert back.to_speedscope() == report.to_speedscope()
    assert back.to_pprof() == report.to_pprof()
    assert back.to_html() == report.to_html()
    assert Report.from_json(text.encode()).to_json() == text
    assert Report.from_dict(report.to_dict()).to_json() == text
    assert back.top_functions(1)[0][0] == report.top_functions(1)[0][0]


def test_from_json_keeps_meta_values_and_their_types() -> None:
    from reqprof import Profiler
    from reqprof.report import Report

    with Profiler() as prof:
        sum(range(1000))
    r = prof.report
    r.meta.update({"status": 404, "big": 2**70, "ratio": 0.1, "tiny": 1e-300, "ok": False, "exception": None,
                   "path": "/caf\u00e9?q=\u2028", "nan": float("nan")})
    back = Report.from_json(r.to_json())
    assert back.to_json() == r.to_json()
    assert back.meta == {**{k: v for k, v in r.meta.items() if k != "nan"}, "nan": None}
    assert type(back.meta["big"]) is int and type(back.meta["ratio"]) is float


def test_from_json_reads_a_tree_deeper_than_pythons_recursion_limit() -> None:
    import sys

    from reqprof.report import Report

    depth = sys.getrecursionlimit() * 3
    # Built as text: json.dumps itself would recurse too deep.
    opens = "".join(
        f'{{"function": "f{i}", "kind": "frame", "file": "/srv/a.py", "short_file": "a.py", "line": {i + 1}, '
        f'"wall_s": 0.000001, "self_wall_s": {0.000001 if i == depth - 1 else 0}, "samples": 1, "children": ['
        for i in range(depth))
    text = '{"version": 1, "root": ' + opens + "]}" * depth + "}"
    r = Report.from_json(text)
    assert r.nodes == depth and r.samples == 1
    assert Report.from_json(r.to_json()).to_json() == r.to_json()
    (line,) = r.to_collapsed().splitlines()
    assert line.count(";") == depth - 1 and line.endswith(f"f{depth - 1} (a.py:{depth}) 1")


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "unexpected end"),
        ("not json", "unexpected character"),
        ('{"version": 1}', 'no "root"'),
        ('{"version": 2, "root": {}}', "schema version 2"),
        ('{"root": {"function": "f", "kind": "frame"}}', 'no "version"'),
        ('{"version": 1, "root": {"function": "f", "kind": "frame", "wall_s": "1"}}', "must be a number"),
        ('{"version": 1, "root": {"function": "f", "kind": "sleeping"}}', 'unknown node kind "sleeping"'),
        ('{"version": 1, "root": {"function": "f", "kind": "frame", "samples": -1}}', "non-negative integer"),
        ('{"version": 1, "meta": {"a": [1]}, "root": {"function": "f", "kind": "frame"}}', '"meta" values'),
        ("[" * 1_000_000, "nested deeper than"),
        (b'{"version": 1, "root": {"function": "\xff", "kind": "frame"}}', "not UTF-8"),
    ],
)
def test_from_json_refuses_bad_input_with_a_clear_message(text: Any, message: str) -> None:
    from reqprof.report import Report

    with pytest.raises(ValueError, match=re.escape(message)):
        Report.from_json(text)


def test_from_json_refuses_other_types_and_from_dict_non_json_values() -> None:
    from reqprof.report import Report

    with pytest.raises(TypeError):
        Report.from_json(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Report.from_dict([])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid profile"):
        Report.from_dict({"version": 1, "root": {"function": "f", "kind": "frame", "wall_s": float("inf")}})
    with pytest.raises(ValueError):
        Report.from_json('{"version": 1, "root": {"function": "\\ud800", "kind": "frame"}}'.encode("utf-16"))


def test_a_loaded_report_cannot_be_started_again(report: Any) -> None:
    from reqprof.report import Report

    back = Report.from_json(report.to_json())
    import sys

    with pytest.raises(RuntimeError):
        back._session.start(sys._getframe())


# ---------------------------------------------------------------- hostile names, every format


def test_hostile_names_in_json_and_html_stay_inert(hostile: Any) -> None:
    from reqprof.report import Report

    text = hostile.to_json()
    assert "<" not in text and ">" not in text and "\u2028" not in text
    doc = json.loads(text)
    functions = {n["function"] for n in _all_nodes(doc)}
    assert {fc.CAFE, fc.SURROGATE_SHOWN, fc.XSS} <= functions
    files = {n["file"] for n in _all_nodes(doc)}
    assert f"/srv/{fc.CAFE}/app.py" in files and f"/srv/{fc.FFFD3}/odd.py" in files
    assert doc["meta"]["path"] == f"/{fc.CAFE}/{fc.XSS}" and doc["meta"]["note"] == fc.FFFD3 + "\u2028"
    assert Report.from_json(text).to_json() == text

    from reqprof.viewer import load_template

    head, tail = load_template()
    html = hostile.to_html()
    assert html == head + text + tail
    assert html.count("<script") == (head + tail).count("<script")
    assert fc.XSS not in html and "alert(1)</script>" not in html


def test_hostile_names_in_text_and_collapsed(hostile: Any) -> None:
    text = hostile.to_text(min_percent=0)
    for name in (fc.CAFE, fc.SURROGATE_SHOWN, fc.XSS):
        assert name in text
    assert "\u2028" not in text and "\x1b" not in text
    folded = hostile.to_collapsed()
    assert fc.CAFE in folded and fc.SURROGATE_SHOWN in folded and fc.XSS in folded
    for line in folded.splitlines():
        assert re.fullmatch(r".+ \d+", line), line


def test_hostile_names_in_speedscope_load_in_speedscope(hostile: Any, browser: Any, speedscope: Path,
                                                        tmp_path: Path) -> None:
    text = hostile.to_speedscope()
    assert "<" not in text
    doc = json.loads(text)
    names = {f["name"] for f in doc["shared"]["frames"]}
    assert {fc.CAFE, fc.SURROGATE_SHOWN, fc.XSS} <= names
    got = fc.speedscope_import(browser, speedscope, tmp_path, "hostile.json", text.encode())
    assert not got["alerts"], got["alerts"]
    shown = {row[2] for row in got["rows"]}
    assert {fc.CAFE, fc.SURROGATE_SHOWN, fc.XSS} <= shown, shown


@pytest.mark.consumer
def test_hostile_names_in_pprof_read_by_go(hostile: Any, tmp_path: Path) -> None:
    path = tmp_path / "hostile.pb.gz"
    path.write_bytes(hostile.to_pprof())
    names = {name for _, name in fc.pprof_top(path)}
    assert {fc.CAFE, fc.SURROGATE_SHOWN, fc.XSS} <= names, names
    raw = fc.go_pprof("-raw", str(path))
    assert f"path:[/{fc.CAFE}/{fc.XSS}]" in raw
    assert "\u2028" not in raw and "\udcff" not in raw
