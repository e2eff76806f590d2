"""The command line: `python -m reqprof render PROFILE.json --format ...`
converts a saved profile into every format (the same bytes as the Report
methods, pprof read by `go tool pprof`), picks the format from the output
suffix, reads standard input, and fails with exit status 2 and one clear
line for every kind of bad input.
"""
from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import format_consumers as fc


def run(*args: str, input: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "reqprof", *args], input=input, capture_output=True,
                          cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def report() -> Any:
    return fc.workload_report()


@pytest.fixture(scope="module")
def profile(report: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "profile.json"
    path.write_text(report.to_json(), encoding="utf-8")
    return path


def _expected(report: Any, fmt: str) -> bytes:
    if fmt == "pprof":
        return report.to_pprof()
    method = {"html": report.to_html, "speedscope": report.to_speedscope, "collapsed": report.to_collapsed,
              "json": report.to_json, "text": lambda: report.to_text(min_percent=1.0)}[fmt]
    return method().encode("utf-8")


# ---------------------------------------------------------------- help


def test_help_lists_the_render_command() -> None:
    proc = run("--help")
    assert proc.returncode == 0 and proc.stderr == b""
    assert b"render" in proc.stdout and b"diff" in proc.stdout and b"usage: reqprof" in proc.stdout
    proc = run("render", "--help")
    assert proc.returncode == 0
    for word in (b"html", b"text", b"speedscope", b"pprof", b"collapsed", b"--ascii", b"--color",
                 b"--min-percent", b"-o OUT"):
        assert word in proc.stdout, word


def test_version() -> None:
    from reqprof import __version__

    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.decode().strip() == f"reqprof {__version__}"


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "reqprof"
    assert script.exists(), "pip install -e . installs the 'reqprof' command (pyproject [project.scripts])"
    proc = subprocess.run([str(script), "--help"], capture_output=True, timeout=60)
    assert proc.returncode == 0 and b"render" in proc.stdout


# ---------------------------------------------------------------- every format


@pytest.mark.parametrize("fmt", ["html", "text", "speedscope", "pprof", "collapsed", "json"])
def test_render_writes_each_format_like_the_report_does(fmt: str, profile: Path, report: Any,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run("render", str(profile), "--format", fmt, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"" and proc.stderr == b""
    assert out.read_bytes() == _expected(report, fmt)


@pytest.mark.consumer
def test_render_pprof_is_read_by_go_pprof(profile: Path, tmp_path: Path) -> None:
    out = tmp_path / "profile.pb.gz"
    assert run("render", str(profile), "-o", str(out)).returncode == 0
    assert gzip.decompress(out.read_bytes())
    assert fc.pprof_top(out)[0][1] == fc.HOT


def test_render_json_is_the_saved_document(profile: Path) -> None:
    proc = run("render", str(profile), "-f", "json")
    assert proc.returncode == 0 and proc.stdout == profile.read_bytes()


@pytest.mark.parametrize(
    "name, fmt",
    [("r.html", "html"), ("r.HTM", "html"), ("r.txt", "text"), ("r.pb.gz", "pprof"), ("r.pprof", "pprof"),
     ("r.speedscope.json", "speedscope"), ("r.folded", "collapsed"), ("r.collapsed", "collapsed"),
     ("r.json", "json")],
)
def test_the_format_follows_the_output_suffix(name: str, fmt: str, profile: Path, report: Any,
                                              tmp_path: Path) -> None:
    assert run("render", str(profile), "-o", str(tmp_path / name)).returncode == 0
    assert (tmp_path / name).read_bytes() == _expected(report, fmt)


@pytest.mark.parametrize("name", ["r.svg", "r.out", "report"])
def test_an_unknown_output_suffix_is_refused(name: str, profile: Path, tmp_path: Path) -> None:
    _fails(run("render", str(profile), "-o", str(tmp_path / name)),
           "reqprof: error: cannot tell the format from")
    assert not (tmp_path / name).exists()
    assert run("render", str(profile), "-f", "text", "-o", str(tmp_path / name)).returncode == 0


@pytest.mark.parametrize("fmt", ["json", "text", "pprof", "speedscope", "collapsed"])
def test_an_html_report_renders_like_its_profile(fmt: str, profile: Path, report: Any,
                                                 tmp_path: Path) -> None:
    html = tmp_path / "saved.html"
    html.write_text(report.to_html())
    out = tmp_path / "again.out"
    assert run("render", str(html), "-f", fmt, "-o", str(out)).returncode == 0
    assert out.read_bytes() == _expected(report, fmt)


def test_format_option_wins_over_the_suffix(profile: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert run("render", str(profile), "-f", "collapsed", "-o", str(out)).returncode == 0
    assert not out.read_bytes().startswith(b"<")


# ---------------------------------------------------------------- text options, stdin, stdout


def test_text_to_a_pipe_has_no_colour_unless_asked(profile: Path) -> None:
    plain = run("render", str(profile))
    assert plain.returncode == 0 and fc.HOT.encode() in plain.stdout
    assert b"\x1b[" not in plain.stdout and "\u2514\u2500".encode() in plain.stdout
    coloured = run("render", str(profile), "--color", "always")
    assert b"\x1b[" in coloured.stdout
    assert b"\x1b[" not in run("render", str(profile), "--color", "never").stdout


def test_text_ascii_min_percent_and_max_lines(profile: Path, report: Any) -> None:
    ascii = run("render", str(profile), "--ascii", "--min-percent", "0").stdout
    assert ascii.decode("ascii")  # nothing but ASCII in the tree drawing
    assert ascii == report.to_text(ascii=True).encode()
    assert b"_cold_wait" in ascii
    hidden = run("render", str(profile), "--min-percent", "50").stdout
    assert b"_cold_wait" not in hidden and fc.HOT.encode() in hidden
    short = run("render", str(profile), "--max-lines", "1").stdout
    assert short == report.to_text(min_percent=1.0, max_lines=1).encode()


def test_profile_from_standard_input(profile: Path, report: Any) -> None:
    proc = run("render", "-", "-f", "speedscope", input=profile.read_bytes())
    assert proc.returncode == 0 and proc.stdout == report.to_speedscope().encode()
    proc = run("render", "-", "-o", "-", "-f", "collapsed", input=profile.read_bytes())
    assert proc.stdout == report.to_collapsed().encode()


def test_a_closed_pipe_is_not_an_error(profile: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "reqprof", "render", str(profile), "-f", "html"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == b"<!DOCTYPE "
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert b"Traceback" not in err


def test_hostile_names_render_in_every_format(tmp_path: Path) -> None:
    report = fc.hostile_report()
    path = tmp_path / "hostile.json"
    path.write_text(report.to_json(), encoding="utf-8")
    for fmt in ("html", "text", "speedscope", "pprof", "collapsed", "json"):
        proc = run("render", str(path), "-f", fmt, "--min-percent", "0", "-o", str(tmp_path / f"h.{fmt}"))
        assert proc.returncode == 0, (fmt, proc.stderr)
        data = (tmp_path / f"h.{fmt}").read_bytes()
        if fmt == "pprof":
            data = gzip.decompress(data)
        assert fc.CAFE.encode() in data or b"caf\\u00e9" in data, fmt
    text = (tmp_path / "h.text").read_text(encoding="utf-8")
    assert fc.XSS in text and fc.SURROGATE_SHOWN in text
    assert fc.XSS not in (tmp_path / "h.html").read_text(encoding="utf-8")


# ---------------------------------------------------------------- errors


def _fails(proc: subprocess.CompletedProcess[bytes], message: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == b""
    err = proc.stderr.decode()
    assert message in err, err
    assert "Traceback" not in err


def test_missing_or_unreadable_profile(tmp_path: Path) -> None:
    _fails(run("render", str(tmp_path / "nope.json")), "reqprof: error: cannot read")
    _fails(run("render", str(tmp_path)), "reqprof: error: cannot read")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "invalid JSON: unexpected end"),
        (b"<html>", "an HTML page that is not a reqprof report"),
        (b"<!DOCTYPE html><p>hello</p>", "an HTML page that is not a reqprof report"),
        (b'{"a": 1}', 'no "version"'),
        (b'{"version": 3, "root": {}}', "schema version 3"),
        (b'{"version": 1, "root": {"function": "f", "kind": "frame", "children": [{}]}}', 'no "function"'),
        (b"\xff\xfe{", "invalid JSON"),
    ],
)
def test_invalid_profiles(content: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    _fails(run("render", str(path)), f"reqprof: error: {path}: ")
    _fails(run("render", str(path)), message)
    _fails(run("render", "-", input=content), "reqprof: error: <stdin>: ")


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "the following arguments are required: COMMAND"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
        (("render",), "the following arguments are required: PROFILE"),
        (("render", "p.json", "--format", "svg"), "invalid choice: 'svg'"),
        (("render", "p.json", "--color", "sometimes"), "invalid choice: 'sometimes'"),
        (("render", "p.json", "--min-percent", "lots"), "not a number: 'lots'"),
        (("render", "p.json", "--min-percent", "101"), "must be between 0 and 100"),
        (("render", "p.json", "--max-lines", "-1"), "must be between 0 and 4294967295"),
        (("render", "p.json", "--bogus"), "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors(args: tuple[str, ...], message: str) -> None:
    _fails(run(*args), message)


def test_unwritable_output(profile: Path, tmp_path: Path) -> None:
    _fails(run("render", str(profile), "-o", str(tmp_path / "missing" / "out.html")),
           "reqprof: error: cannot write")


def test_pprof_is_not_written_to_a_terminal(profile: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from reqprof import cli

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert cli.main(["render", str(profile), "-f", "pprof"]) == 2
    captured = capsys.readouterr()
    assert "pprof output is binary" in captured.err and captured.out == ""


def test_main_returns_zero_in_process(profile: Path, tmp_path: Path) -> None:
    from reqprof import cli

    out = tmp_path / "r.speedscope.json"
    assert cli.main(["render", str(profile), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["$schema"].startswith("https://www.speedscope.app/")


# ---------------------------------------------------------------- diff

_DIFF_DATA = re.compile(rb'<script type="application/json" id="diff-data">(.*?)</script>', re.S)


def _diff_data(page: bytes) -> dict:
    found = _DIFF_DATA.search(page)
    assert found is not None, page[:200]
    return json.loads(found.group(1))


def test_diff_writes_one_page_with_both_profiles(profile: Path, report: Any, tmp_path: Path) -> None:
    after = fc.hostile_report()
    after_path = tmp_path / "after.html"        # an HTML report as input
    after_path.write_text(after.to_html(), encoding="utf-8")
    out = tmp_path / "diff.html"
    proc = run("diff", str(profile), str(after_path), "-o", str(out))
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b"", proc.stderr
    page = out.read_bytes()
    assert page.startswith(b"<!DOCTYPE html>")
    data = _diff_data(page)
    assert data["before"] == json.loads(report.to_json())
    assert data["after"] == json.loads(after.to_json())
    assert data["labels"]["before"] == "profile.json: GET /items/42 -> 200"
    assert data["labels"]["after"].startswith("after.html")
    assert fc.XSS.encode() not in page, "hostile names stay script-safe JSON"
    assert b"ReqprofDiffView" in page and b"http://" not in page and b"https://" not in page
    # Standard output, and standard input for one side.
    proc = run("diff", "-", str(profile), input=profile.read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert _diff_data(proc.stdout)["labels"]["before"] == "<stdin>: GET /items/42 -> 200"


@pytest.mark.parametrize("name", ["diff.svg", "diff.json", "diff"])
def test_diff_writes_html_only(name: str, profile: Path, tmp_path: Path) -> None:
    _fails(run("diff", str(profile), str(profile), "-o", str(tmp_path / name)),
           "reqprof: error: diff writes an HTML page: name OUT with .html or .htm, not ")
    assert not (tmp_path / name).exists()


def test_diff_bad_input_is_one_line(profile: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"a": 1}')
    page = tmp_path / "page.html"
    page.write_bytes(b"<!DOCTYPE html><p>hello</p>")
    for args, message in (
        ((str(tmp_path / "nope.json"), str(profile)), "reqprof: error: cannot read "),
        ((str(profile), str(bad)), f"reqprof: error: {bad}: invalid profile"),
        ((str(page), str(profile)), "an HTML page that is not a reqprof report"),
        (("-", "-"), "only one of BEFORE and AFTER can be standard input"),
        ((str(profile),), "the following arguments are required: AFTER"),
    ):
        proc = run("diff", *args, "-o", str(tmp_path / "d.html"))
        _fails(proc, message)
        assert len(proc.stderr.decode().strip().splitlines()) == 1 or "usage:" in proc.stderr.decode()
        assert not (tmp_path / "d.html").exists()
    _fails(run("diff", str(profile), str(profile), "-o", str(tmp_path / "missing" / "d.html")),
           "reqprof: error: cannot write")
